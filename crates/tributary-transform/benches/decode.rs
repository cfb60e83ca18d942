//! Decode throughput: Mailchimp-like NDJSON pages (about 450 bytes a record, 1,000 records a
//! page, generated here in memory) through `RecordDecoder`, inferred schema and known schema.
//! Reports records/s (`decode/records`) and MB/s of JSON (`decode/bytes`).
//!
//! `decode/mock_pages` takes the records `tributary bench` serves, in the form the fetcher
//! hands them over (the records array turned into NDJSON in place: commas became newlines), and
//! compares our path — the engine's: rescue on, inferred schema; once sequentially, once
//! through `PageDecoder` + `decode_predecoded` as the decode workers run it, and once without
//! the direct decoder (`ours_tape_only`) — with plain arrow-json's decoder on the same pages and
//! schema, so a regression of either shows.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tributary_transform::decode::{DecoderOptions, PageDecoder, RecordDecoder};

const PAGES: usize = 20;
const RECORDS_PER_PAGE: usize = 1_000;

const FIRST_NAMES: [&str; 8] = [
    "Ann", "Bo", "Carla", "Dmitri", "Eve", "Farid", "Grace", "Hiro",
];
const LAST_NAMES: [&str; 8] = [
    "Lee", "Okafor", "Smith", "Nguyen", "Garcia", "Kowalski", "Ito", "Brown",
];
const STATUSES: [&str; 4] = ["subscribed", "unsubscribed", "cleaned", "pending"];
const ZONES: [(&str, &str); 4] = [
    ("US", "America/New_York"),
    ("FR", "Europe/Paris"),
    ("JP", "Asia/Tokyo"),
    ("BR", "America/Sao_Paulo"),
];

fn bench_decode(c: &mut Criterion) {
    let pages = generate_pages();
    let n_records = (PAGES * RECORDS_PER_PAGE) as u64;
    let n_bytes: u64 = pages.iter().map(|page| page.len() as u64).sum();
    eprintln!(
        "decode bench input: {n_records} records, {n_bytes} bytes ({} bytes a record)",
        n_bytes / n_records
    );
    report_cpu_throughput(&pages, n_records, n_bytes);
    let known_schema = Arc::new(
        tributary_transform::decode::infer_schema(&pages[0], RECORDS_PER_PAGE)
            .expect("the generated page is valid"),
    );

    let mut group = c.benchmark_group("decode/records");
    group.throughput(Throughput::Elements(n_records));
    group.bench_function("inferred", |b| {
        b.iter(|| decode_all(&pages, DecoderOptions::default()));
    });
    group.bench_function("known_schema", |b| {
        b.iter(|| {
            decode_all(
                &pages,
                DecoderOptions {
                    known_schema: Some(known_schema.clone()),
                    ..DecoderOptions::default()
                },
            )
        });
    });
    // arrow-json alone with the same schema and no checks: the floor our decoder builds on.
    group.bench_function("arrow_json_baseline", |b| {
        b.iter(|| arrow_json_only(&pages, &known_schema));
    });
    group.finish();

    let mut group = c.benchmark_group("decode/bytes");
    group.throughput(Throughput::Bytes(n_bytes));
    group.bench_function("inferred", |b| {
        b.iter(|| decode_all(&pages, DecoderOptions::default()));
    });
    group.finish();
}

/// Wall-clock figures suffer when other work shares the machine; records per CPU-second of this
/// thread say what one core does. Linux only (reads `/proc/thread-self/stat`); silent elsewhere.
fn report_cpu_throughput(pages: &[Vec<u8>], n_records: u64, n_bytes: u64) {
    let Some(start) = thread_cpu_ticks() else {
        return;
    };
    let started = Instant::now();
    let mut rounds = 0_u64;
    while started.elapsed() < Duration::from_secs(3) {
        decode_all(pages, DecoderOptions::default());
        rounds += 1;
    }
    let Some(end) = thread_cpu_ticks() else {
        return;
    };
    // The kernel counts in clock ticks of 1/100 s on Linux.
    let cpu_seconds = (end - start) as f64 / 100.0;
    if cpu_seconds > 0.0 {
        eprintln!(
            "decode per CPU-second (inferred schema): {:.0} records/s, {:.1} MB/s ({cpu_seconds:.2} CPU s, {:.2} wall s)",
            (rounds * n_records) as f64 / cpu_seconds,
            (rounds * n_bytes) as f64 / cpu_seconds / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
}

/// User plus system time of this thread, in clock ticks.
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn decode_all(pages: &[Vec<u8>], options: DecoderOptions) -> usize {
    let mut decoder = RecordDecoder::new(options);
    let mut rows = 0;
    for (page_idx, page) in pages.iter().enumerate() {
        let decoded = decoder
            .decode_page(page_idx as u64, page)
            .expect("the generated pages are valid");
        rows += decoded.batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    let rest = decoder.finish().expect("the generated pages are valid");
    rows += rest.iter().map(|b| b.num_rows()).sum::<usize>();
    black_box(rows)
}

fn arrow_json_only(pages: &[Vec<u8>], schema: &SchemaRef) -> usize {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build_decoder()
        .expect("the schema is supported");
    let mut rows = 0;
    for page in pages {
        let mut rest = page.as_slice();
        while !rest.is_empty() {
            let consumed = decoder.decode(rest).expect("the generated pages are valid");
            rest = &rest[consumed..];
            if !rest.is_empty() {
                rows += decoder.flush().expect("valid").map_or(0, |b| b.num_rows());
            }
        }
    }
    rows += decoder.flush().expect("valid").map_or(0, |b| b.num_rows());
    black_box(rows)
}

/// Pages of NDJSON records shaped like Mailchimp list members.
fn generate_pages() -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64*: deterministic and good enough to vary the fields.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut pages = Vec::with_capacity(PAGES);
    let mut record = String::new();
    for page_idx in 0..PAGES {
        let mut page = Vec::with_capacity(RECORDS_PER_PAGE * 480);
        for i in 0..RECORDS_PER_PAGE {
            let index = (page_idx * RECORDS_PER_PAGE + i) as u64;
            let r = next();
            let first = FIRST_NAMES[(r % 8) as usize];
            let last = LAST_NAMES[((r >> 3) % 8) as usize];
            let status = STATUSES[((r >> 6) % 4) as usize];
            let (country, zone) = ZONES[((r >> 8) % 4) as usize];
            record.clear();
            write!(
                record,
                concat!(
                    r#"{{"id":"{:016x}{:016x}","email_address":"{}.{}{}@ex.io","#,
                    r#""unique_email_id":"{:010x}","status":"{}","#,
                    r#""merge_fields":{{"FNAME":"{}","LNAME":"{}","PHONE":"555-{:04}"}},"#,
                    r#""stats":{{"avg_open_rate":{}.{:02},"avg_click_rate":0.{:03}}},"#,
                    r#""ip_signup":"10.{}.{}.{}","timestamp_opt":"2024-0{}-1{}T0{}:1{}:2{}Z","#,
                    r#""member_rating":{},"vip":{},"#,
                    r#""location":{{"latitude":{}.{:02},"longitude":-{}.{:02},"country_code":"{}","timezone":"{}"}},"#,
                    r#""tags":[{{"id":{},"name":"s{}"}}],"list_id":"b1","#,
                    r#""last_changed":"2025-01-01T00:{:02}:{:02}Z"}}"#,
                    "\n"
                ),
                r,
                index,
                first.to_lowercase(),
                last.to_lowercase(),
                index,
                r >> 24,
                status,
                first,
                last,
                r % 10_000,
                r % 2,
                (r >> 5) % 100,
                (r >> 9) % 1000,
                r % 256,
                (r >> 8) % 256,
                (r >> 16) % 256,
                1 + r % 9,
                r % 10,
                r % 10,
                (r >> 3) % 10,
                (r >> 6) % 10,
                1 + r % 5,
                r % 7 == 0,
                r % 90,
                (r >> 7) % 100,
                (r >> 11) % 180,
                (r >> 19) % 100,
                country,
                zone,
                r % 50,
                r % 50,
                (index / 60) % 60,
                index % 60,
            )
            .expect("writing to a String cannot fail");
            page.extend_from_slice(record.as_bytes());
        }
        pages.push(page);
    }
    pages
}

/// Pages of the mock API's records as the fetcher's in-place locator leaves them.
fn mock_pages() -> Vec<Vec<u8>> {
    let mut pages = Vec::with_capacity(PAGES);
    for page_idx in 0..PAGES {
        let mut page = Vec::with_capacity(RECORDS_PER_PAGE * 700);
        for i in 0..RECORDS_PER_PAGE {
            if i > 0 {
                page.push(b'\n');
            }
            let index = (page_idx * RECORDS_PER_PAGE + i) as u64;
            tributary_mockapi::write_record_json(7, index, &mut page);
        }
        pages.push(page);
    }
    pages
}

/// The engine's options without a mapping set: rescue on, schema inferred from the first page.
fn engine_options() -> DecoderOptions {
    DecoderOptions {
        rescue: true,
        ..DecoderOptions::default()
    }
}

fn decode_predecoded_all(pages: &[Vec<u8>], options: DecoderOptions) -> usize {
    let mut decoder = RecordDecoder::new(options);
    let mut worker = PageDecoder::new();
    let mut rows = 0;
    for (page_idx, page) in pages.iter().enumerate() {
        let decoded = match decoder.page_decoder_spec() {
            Some(spec) => {
                let predecoded = worker.predecode(&spec, page);
                decoder.decode_predecoded(page_idx as u64, page, predecoded)
            }
            None => decoder.decode_page(page_idx as u64, page),
        }
        .expect("the mock pages are valid");
        rows += decoded.batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    let rest = decoder.finish().expect("the mock pages are valid");
    rows += rest.iter().map(|b| b.num_rows()).sum::<usize>();
    black_box(rows)
}

fn bench_mock_pages(c: &mut Criterion) {
    let pages = mock_pages();
    let n_records = (PAGES * RECORDS_PER_PAGE) as u64;
    let n_bytes: u64 = pages.iter().map(|page| page.len() as u64).sum();
    eprintln!(
        "mock pages: {n_records} records, {n_bytes} bytes ({} bytes a record)",
        n_bytes / n_records
    );
    let schema = Arc::new(
        tributary_transform::decode::infer_schema(&pages[0], RECORDS_PER_PAGE)
            .expect("the mock page is valid"),
    );
    let mut group = c.benchmark_group("decode/mock_pages");
    group.throughput(Throughput::Elements(n_records));
    group.bench_function("ours", |b| {
        b.iter(|| decode_all(&pages, engine_options()));
    });
    group.bench_function("ours_predecoded", |b| {
        b.iter(|| decode_predecoded_all(&pages, engine_options()));
    });
    // Our path without the direct decoder: every page on arrow-json's tape.
    group.bench_function("ours_tape_only", |b| {
        b.iter(|| {
            decode_all(
                &pages,
                DecoderOptions {
                    direct: false,
                    ..engine_options()
                },
            )
        });
    });
    group.bench_function("arrow_json", |b| {
        b.iter(|| arrow_json_only(&pages, &schema));
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_mock_pages);
criterion_main!(benches);

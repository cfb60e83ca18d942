//! Criterion bench of the Parquet writer: ~100k Mailchimp-like members (about 20 top-level
//! columns, nested `merge_fields`, `location` and `stats` structs, a list of tag structs), already
//! decoded into Arrow batches of 1,000 rows (one page each), written by `PartWriter` to a temporary
//! folder, finished (footer + fsync) and published. Criterion reports wall-clock records/s; each
//! case also prints its on-CPU records/s and MB/s of source JSON, which a busy machine distorts
//! less.

use std::io::Cursor;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tributary_write::{
    BatchId, Compression, DatasetId, DatasetLayout, PartWriter, Statistics, WriterOptions,
    publish_batch, remove_batch,
};

const RECORDS: usize = 100_000;
const PAGE_SIZE: usize = 1_000;

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10));
    targets = encode
}
criterion_main!(benches);

fn encode(c: &mut Criterion) {
    let schema = member_schema();
    let (batches, json_bytes) = decode_members(&schema);
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let layout = DatasetLayout::new(tmp.path());
    let dataset = DatasetId::try_new("members").expect("a valid id");

    let default = WriterOptions::default;
    let cases: Vec<(&str, WriterOptions)> = vec![
        ("zstd1", default()),
        (
            "snappy",
            WriterOptions {
                compression: Compression::Snappy,
                ..default()
            },
        ),
        (
            "none",
            WriterOptions {
                compression: Compression::None,
                ..default()
            },
        ),
        (
            "zstd1_no_dictionary",
            WriterOptions {
                dictionary: false,
                ..default()
            },
        ),
        (
            "zstd1_chunk_statistics",
            WriterOptions {
                statistics: Statistics::Chunk,
                ..default()
            },
        ),
        (
            "zstd1_row_group_32k",
            WriterOptions {
                row_group_rows: NonZeroUsize::new(32 * 1024).expect("non-zero"),
                ..default()
            },
        ),
    ];

    let mut group = c.benchmark_group("write_members");
    group.throughput(Throughput::Elements(RECORDS as u64));
    let mut run = 0u64;
    for (name, options) in cases {
        let mut file_bytes = 0;
        let mut cpu = Duration::ZERO;
        let mut n_runs = 0u32;
        let mut peak_buffered = 0u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            // `iter_custom`: time encoding, finishing and publishing, not the cleanup.
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    run += 1;
                    let batch = BatchId::try_new(format!("run{run}")).expect("a valid id");
                    let started = Instant::now();
                    let cpu_started = thread_cpu_time();
                    let mut writer =
                        PartWriter::try_new(&layout, &dataset, &batch, 0, options.clone())
                            .expect("valid options");
                    let mut parts = Vec::new();
                    for page in &batches {
                        parts.extend(writer.write(page).expect("encoding succeeds"));
                        peak_buffered = peak_buffered.max(writer.buffered_bytes());
                    }
                    parts.extend(writer.finish().expect("finishing succeeds"));
                    let names: Vec<String> = parts
                        .iter()
                        .map(|part| part.seq)
                        .map(|seq| format!("part-{seq:05}.parquet"))
                        .collect();
                    publish_batch(&layout, &dataset, &batch, &names, &[])
                        .expect("publishing succeeds");
                    elapsed += started.elapsed();
                    cpu += thread_cpu_time().saturating_sub(cpu_started);
                    n_runs += 1;
                    file_bytes = parts.iter().map(|p| p.bytes).sum::<u64>();
                    remove_batch(&layout, &dataset, &batch).expect("removal succeeds");
                }
                elapsed
            });
        });
        if n_runs == 0 {
            // Filtered out on the command line.
            continue;
        }
        let cpu_per_run = cpu.as_secs_f64() / f64::from(n_runs);
        eprintln!(
            "write_members/{name}: {RECORDS} records, {:.0} B of JSON per record, {:.1} MB of \
             Parquet ({:.1}x smaller than the JSON); on-CPU time {:.0} ms per run = {:.0} records/s \
             and {:.0} MB/s of JSON per core; encoder buffer peak {:.1} MB",
            json_bytes as f64 / RECORDS as f64,
            file_bytes as f64 / 1e6,
            json_bytes as f64 / file_bytes.max(1) as f64,
            cpu_per_run * 1e3,
            RECORDS as f64 / cpu_per_run,
            json_bytes as f64 / 1e6 / cpu_per_run,
            peak_buffered as f64 / 1e6,
        );
    }
    group.finish();
}

/// CPU time of the calling thread (`tributary_write::cpu`): the machine is shared, so
/// wall-clock throughput alone says more about the neighbours than about the writer. Zero where
/// the platform does not say.
fn thread_cpu_time() -> Duration {
    tributary_write::cpu::thread_cpu().unwrap_or_default()
}

fn decode_members(schema: &SchemaRef) -> (Vec<RecordBatch>, usize) {
    let mut json = String::with_capacity(RECORDS * 600);
    for i in 0..RECORDS {
        json.push_str(&member_json(i));
        json.push('\n');
    }
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(PAGE_SIZE)
        .build(Cursor::new(json.as_bytes()))
        .expect("the schema is supported");
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .expect("the fixture is valid JSON");
    (batches, json.len())
}

fn member_schema() -> SchemaRef {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    let f64_field = |name: &str| Field::new(name, DataType::Float64, true);
    let i64_field = |name: &str| Field::new(name, DataType::Int64, true);
    let timestamp = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        )
    };
    let tag = Fields::from(vec![i64_field("id"), utf8("name")]);
    Arc::new(Schema::new(vec![
        utf8("id"),
        utf8("email_address"),
        utf8("unique_email_id"),
        i64_field("web_id"),
        utf8("email_type"),
        utf8("status"),
        Field::new(
            "merge_fields",
            DataType::Struct(Fields::from(vec![
                utf8("FNAME"),
                utf8("LNAME"),
                utf8("ADDRESS"),
                utf8("PHONE"),
            ])),
            true,
        ),
        Field::new(
            "stats",
            DataType::Struct(Fields::from(vec![
                f64_field("avg_open_rate"),
                f64_field("avg_click_rate"),
            ])),
            true,
        ),
        utf8("ip_signup"),
        timestamp("timestamp_signup"),
        timestamp("timestamp_opt"),
        i64_field("member_rating"),
        timestamp("last_changed"),
        utf8("language"),
        Field::new("vip", DataType::Boolean, true),
        utf8("email_client"),
        Field::new(
            "location",
            DataType::Struct(Fields::from(vec![
                f64_field("latitude"),
                f64_field("longitude"),
                i64_field("gmtoff"),
                utf8("country_code"),
                utf8("timezone"),
            ])),
            true,
        ),
        utf8("source"),
        i64_field("tags_count"),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(tag), true))),
            true,
        ),
        utf8("list_id"),
    ]))
}

fn member_json(i: usize) -> String {
    const STATUSES: [&str; 4] = ["subscribed", "unsubscribed", "cleaned", "pending"];
    const LANGUAGES: [&str; 5] = ["en", "fr", "de", "es", "pt"];
    const CLIENTS: [&str; 4] = ["Gmail", "Apple Mail", "Outlook", ""];
    const ZONES: [&str; 3] = ["America/New_York", "Europe/Paris", "Asia/Tokyo"];
    let n_tags = i % 4;
    let tags: Vec<String> = (0..n_tags)
        .map(|t| format!(r#"{{"id":{},"name":"segment-{}"}}"#, 100 + t, (i + t) % 13))
        .collect();
    format!(
        concat!(
            r#"{{"id":"{hash:032x}","email_address":"user{i}@example.com","#,
            r#""unique_email_id":"{uid:010x}","web_id":{web},"email_type":"html","status":"{status}","#,
            r#""merge_fields":{{"FNAME":"First{i}","LNAME":"Last{last}","ADDRESS":"{i} Main St","PHONE":"555-{phone:04}"}},"#,
            r#""stats":{{"avg_open_rate":{open},"avg_click_rate":{click}}},"#,
            r#""ip_signup":"10.{a}.{b}.{c}","timestamp_signup":"2024-0{month}-1{day}T{h:02}:{m:02}:{s:02}Z","#,
            r#""timestamp_opt":"2024-0{month}-1{day}T{h:02}:{m:02}:{s:02}Z","member_rating":{rating},"#,
            r#""last_changed":"2025-01-0{day}T{h:02}:{m:02}:{s:02}Z","language":"{lang}","vip":{vip},"#,
            r#""email_client":"{client}","location":{{"latitude":{lat},"longitude":{lon},"gmtoff":{gmt},"#,
            r#""country_code":"US","timezone":"{zone}"}},"source":"API - Generic","tags_count":{n_tags},"#,
            r#""tags":[{tags}],"list_id":"bench"}}"#
        ),
        hash = (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
        i = i,
        uid = (i as u64).wrapping_mul(2_654_435_761) & 0xff_ffff_ffff,
        web = 100_000 + i,
        status = STATUSES[i % 4],
        last = i % 997,
        phone = i % 10_000,
        open = (i % 100) as f64 / 100.0,
        click = (i % 37) as f64 / 100.0,
        a = i % 256,
        b = (i / 256) % 256,
        c = (i / 65_536) % 256,
        month = i % 9 + 1,
        day = i % 9 + 1,
        h = (i / 3600) % 24,
        m = (i / 60) % 60,
        s = i % 60,
        rating = i % 5 + 1,
        lang = LANGUAGES[i % 5],
        vip = i.is_multiple_of(50),
        client = CLIENTS[i % 4],
        lat = 40.0 + (i % 1000) as f64 / 1000.0,
        lon = -73.0 - (i % 500) as f64 / 1000.0,
        gmt = -5 + (i % 3) as i64 * 6,
        zone = ZONES[i % 3],
        n_tags = n_tags,
        tags = tags.join(","),
    )
}

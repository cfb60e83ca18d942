//! Tests of the writer against real files in temporary folders, read back with parquet's own
//! `ParquetRecordBatchReaderBuilder`.

use std::fs;
use std::io::Cursor;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use expect_test::{Expect, expect};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression as ParquetCompression;
use parquet::file::metadata::ParquetMetaData;

use crate::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A Mailchimp-like member schema: strings, numbers, booleans, a timestamp, a date, nested
/// structs and a list of structs.
fn member_schema() -> SchemaRef {
    let tag = DataType::Struct(
        vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]
        .into(),
    );
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("email_address", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new(
            "merge_fields",
            DataType::Struct(
                vec![
                    Field::new("FNAME", DataType::Utf8, true),
                    Field::new("LNAME", DataType::Utf8, true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new(
            "location",
            DataType::Struct(
                vec![
                    Field::new("latitude", DataType::Float64, true),
                    Field::new("longitude", DataType::Float64, true),
                    Field::new("country_code", DataType::Utf8, true),
                ]
                .into(),
            ),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", tag, true))),
            true,
        ),
        Field::new("member_rating", DataType::Int64, true),
        Field::new("vip", DataType::Boolean, true),
        Field::new(
            "timestamp_opt",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("last_changed", DataType::Date32, true),
    ]))
}

/// Member `i` as one JSON line. Deterministic, so read-back data can be compared exactly.
fn member_json(i: usize) -> String {
    const STATUSES: [&str; 4] = ["subscribed", "unsubscribed", "cleaned", "pending"];
    let tags: Vec<String> = (0..i % 3)
        .map(|t| format!(r#"{{"id":{},"name":"tag-{}"}}"#, t + 1, (i + t) % 7))
        .collect();
    format!(
        concat!(
            r#"{{"id":"m{i:06}","email_address":"user{i}@example.com","status":"{status}","#,
            r#""merge_fields":{{"FNAME":"First{i}","LNAME":"Last{last}"}},"#,
            r#""location":{{"latitude":{lat},"longitude":{lon},"country_code":"US"}},"#,
            r#""tags":[{tags}],"member_rating":{rating},"vip":{vip},"#,
            r#""timestamp_opt":"2024-05-01T{h:02}:{m:02}:{s:02}Z","last_changed":"2024-06-{d:02}"}}"#
        ),
        i = i,
        status = STATUSES[i % 4],
        last = i % 97,
        lat = 40.0 + (i % 100) as f64 / 100.0,
        lon = -73.5,
        tags = tags.join(","),
        rating = i % 5,
        vip = i.is_multiple_of(11),
        h = (i / 3600) % 24,
        m = (i / 60) % 60,
        s = i % 60,
        d = i % 28 + 1,
    )
}

/// Members `start..start + n` decoded into one batch of [`member_schema`].
fn members(start: usize, n: usize) -> RecordBatch {
    members_with_schema(member_schema(), start, n)
}

fn members_with_schema(schema: SchemaRef, start: usize, n: usize) -> RecordBatch {
    let lines: Vec<String> = (start..start + n).map(member_json).collect();
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(n.max(1))
        .build(Cursor::new(lines.join("\n")))
        .unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    single_batch(&schema, &batches)
}

fn single_batch(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    match batches {
        [] => RecordBatch::new_empty(schema.clone()),
        [one] => one.clone(),
        _ => panic!("the fixture decodes into one batch"),
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    layout: DatasetLayout,
    dataset: DatasetId,
    batch: BatchId,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let layout = DatasetLayout::new(tmp.path().join("data"));
    Fixture {
        _tmp: tmp,
        layout,
        dataset: DatasetId::try_new("members").unwrap(),
        batch: BatchId::try_new("01HZX3BATCH").unwrap(),
    }
}

impl Fixture {
    fn writer(&self, first_seq: u32, options: WriterOptions) -> PartWriter {
        PartWriter::try_new(&self.layout, &self.dataset, &self.batch, first_seq, options).unwrap()
    }

    /// Publishes the fixture's batch made of `parts`.
    fn publish(&self, parts: &[StagedPart]) -> Result<PublishedBatch, WriteError> {
        self.publish_batch_of(&self.batch, parts)
    }

    fn publish_batch_of(
        &self,
        batch: &BatchId,
        parts: &[StagedPart],
    ) -> Result<PublishedBatch, WriteError> {
        let (data, errors) = file_names(parts);
        publish_batch(&self.layout, &self.dataset, batch, &data, &errors)
    }
}

/// The file names of data parts and of rejected-row parts, as a batch record lists them.
fn file_names(parts: &[StagedPart]) -> (Vec<String>, Vec<String>) {
    let name = |part: &StagedPart| {
        part.staged_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let data = parts
        .iter()
        .filter(|p| p.kind != PartKind::JsonLines)
        .map(name)
        .collect();
    let errors = parts
        .iter()
        .filter(|p| p.kind == PartKind::JsonLines)
        .map(name)
        .collect();
    (data, errors)
}

fn published(data: PublishOutcome, errors: PublishOutcome) -> PublishedBatch {
    PublishedBatch { data, errors }
}

struct ReadBack {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    metadata: Arc<ParquetMetaData>,
}

fn read_parquet(path: &Path) -> ReadBack {
    let file = fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let metadata = builder.metadata().clone();
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    ReadBack {
        schema,
        batches,
        metadata,
    }
}

fn pretty(batches: &[RecordBatch]) -> String {
    arrow_cast::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

fn ids(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let column = batch.column_by_name("id").unwrap();
        let column = column.as_any().downcast_ref::<StringArray>().unwrap();
        out.extend(column.iter().map(|v| v.unwrap().to_owned()));
    }
    out
}

/// Every regular file under `dir`, relative to it, sorted; empty if `dir` does not exist.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn options_with(f: impl FnOnce(&mut WriterOptions)) -> WriterOptions {
    let mut options = WriterOptions::default();
    f(&mut options);
    options
}

fn nz64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Round trip: rows, schema, logical types, metadata

#[test]
fn round_trip_keeps_rows_schema_logical_types_and_metadata() {
    let fx = fixture();
    let options = WriterOptions::default().with_lineage("flow-1", "run-7");
    let mut writer = fx.writer(0, options);
    assert_eq!(writer.buffered_bytes(), 0, "nothing open yet");
    let input = [members(0, 300), members(300, 500), members(800, 200)];
    for batch in &input {
        assert_eq!(
            writer.write(batch).unwrap(),
            vec![],
            "no part rolls under the defaults"
        );
    }
    assert!(
        writer.buffered_bytes() > 0,
        "the row group is still in memory"
    );
    let part = writer.finish().unwrap().expect("1000 rows were written");
    assert_eq!(part.seq, 0);
    assert_eq!(part.rows, 1000);
    assert_eq!(part.bytes, fs::metadata(&part.staged_path).unwrap().len());
    assert_eq!(
        part.kind,
        PartKind::Parquet {
            schema: member_schema()
        }
    );
    let schema_json = serde_json::to_string(part.schema().unwrap().as_ref()).unwrap();
    let schema_back: Schema = serde_json::from_str(&schema_json).unwrap();
    assert_eq!(
        schema_back,
        *member_schema(),
        "the schema JSON for the batch record round-trips"
    );

    assert_eq!(
        fx.publish(std::slice::from_ref(&part)).unwrap(),
        published(PublishOutcome::Published, PublishOutcome::Empty)
    );
    let final_path = fx.layout.part_path(&fx.dataset, &fx.batch, 0);
    assert_eq!(part.final_path, final_path);
    let read = read_parquet(&final_path);

    assert_eq!(
        pretty(&read.batches),
        pretty(&input),
        "every value survives the round trip"
    );
    assert_eq!(
        read.batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        1000
    );
    // The Arrow types come back as written, timestamp zone included.
    let read_types: Vec<String> = read
        .schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    expect![[r#"
        id: Utf8
        email_address: Utf8
        status: Utf8
        merge_fields: Struct("FNAME": Utf8, "LNAME": Utf8)
        location: Struct("latitude": Float64, "longitude": Float64, "country_code": Utf8)
        tags: List(Struct("id": Int64, "name": Utf8), field: 'element')
        member_rating: Int64
        vip: Boolean
        timestamp_opt: Timestamp(µs, "+00:00")
        last_changed: Date32"#]]
    .assert_eq(&read_types.join("\n"));

    // The Parquet schema uses the standard logical types other readers rely on.
    let mut parquet_schema = Vec::new();
    parquet::schema::printer::print_schema(
        &mut parquet_schema,
        read.metadata.file_metadata().schema_descr().root_schema(),
    );
    expect![[r#"
        message arrow_schema {
          REQUIRED BYTE_ARRAY id (STRING);
          OPTIONAL BYTE_ARRAY email_address (STRING);
          OPTIONAL BYTE_ARRAY status (STRING);
          OPTIONAL group merge_fields {
            OPTIONAL BYTE_ARRAY FNAME (STRING);
            OPTIONAL BYTE_ARRAY LNAME (STRING);
          }
          OPTIONAL group location {
            OPTIONAL DOUBLE latitude;
            OPTIONAL DOUBLE longitude;
            OPTIONAL BYTE_ARRAY country_code (STRING);
          }
          OPTIONAL group tags (LIST) {
            REPEATED group list {
              OPTIONAL group element {
                OPTIONAL INT64 id;
                OPTIONAL BYTE_ARRAY name (STRING);
              }
            }
          }
          OPTIONAL INT64 member_rating;
          OPTIONAL BOOLEAN vip;
          OPTIONAL INT64 timestamp_opt (TIMESTAMP(MICROS,true));
          OPTIONAL INT32 last_changed (DATE);
        }
    "#]]
    .assert_eq(&String::from_utf8(parquet_schema).unwrap());

    let kv: Vec<String> = read
        .metadata
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|kv| kv.key.starts_with("tributary."))
        .map(|kv| format!("{}={}", kv.key, kv.value.as_deref().unwrap_or("")))
        .collect();
    expect![[r#"
        tributary.flow_id=flow-1
        tributary.run_id=run-7
        tributary.dataset_id=members
        tributary.batch_id=01HZX3BATCH"#]]
    .assert_eq(&kv.join("\n"));

    let column = read.metadata.row_group(0).column(0);
    assert!(
        matches!(column.compression(), ParquetCompression::ZSTD(_)),
        "zstd is the default"
    );
}

#[test]
fn compression_is_configurable() {
    for (compression, is_expected) in [
        (
            Compression::Snappy,
            (|c| c == ParquetCompression::SNAPPY) as fn(ParquetCompression) -> bool,
        ),
        (Compression::None, |c| c == ParquetCompression::UNCOMPRESSED),
        // The level is not recorded in the file, only the codec.
        (Compression::Zstd { level: 3 }, |c| {
            matches!(c, ParquetCompression::ZSTD(_))
        }),
    ] {
        let fx = fixture();
        let mut writer = fx.writer(0, options_with(|o| o.compression = compression));
        writer.write(&members(0, 50)).unwrap();
        let part = writer.finish().unwrap().unwrap();
        let read = read_parquet(&part.staged_path);
        let codec = read.metadata.row_group(0).column(1).compression();
        assert!(is_expected(codec), "{compression} wrote {codec:?}");
        assert_eq!(ids(&read.batches), ids(&[members(0, 50)]));
    }
}

#[test]
fn row_groups_roll_by_rows() {
    let fx = fixture();
    let mut writer = fx.writer(
        0,
        options_with(|o| o.row_group_rows = NonZeroUsize::new(100).unwrap()),
    );
    writer.write(&members(0, 250)).unwrap();
    let part = writer.finish().unwrap().unwrap();
    let read = read_parquet(&part.staged_path);
    let group_rows: Vec<i64> = read
        .metadata
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(group_rows, vec![100, 100, 50]);
}

/// The parts `options` makes of members 0..12,000 in uneven batches, as (name, bytes) pairs,
/// and the CPU time of the writer's encode threads.
fn parts_as_bytes(options: WriterOptions) -> (Vec<(String, Vec<u8>)>, Option<std::time::Duration>) {
    let fx = fixture();
    let mut writer = fx.writer(0, options);
    let mut parts = Vec::new();
    let mut start = 0;
    for n in [1, 700, 2_500, 33, 4_000, 1_766, 3_000] {
        parts.extend(writer.write(&members(start, n)).unwrap());
        start += n;
    }
    let helper_cpu = writer.helper_cpu();
    parts.extend(writer.finish().unwrap());
    let files = parts
        .iter()
        .map(|part| {
            let name = part.staged_path.file_name().unwrap().to_string_lossy();
            (name.into_owned(), fs::read(&part.staged_path).unwrap())
        })
        .collect();
    (files, helper_cpu)
}

#[test]
fn columns_encoded_on_several_threads_make_the_same_files_byte_for_byte() {
    let limits = |o: &mut WriterOptions| {
        // Row groups split inside batches, by rows and by bytes, and parts roll by size.
        o.row_group_rows = NonZeroUsize::new(1_000).unwrap();
        o.row_group_bytes = NonZeroUsize::new(96 * 1024).unwrap();
        o.max_bytes_per_file = nz64(400 * 1024);
    };
    let (serial, serial_helpers) = parts_as_bytes(options_with(limits));
    assert!(serial.len() >= 2, "{} parts", serial.len());
    if cfg!(target_os = "linux") {
        assert_eq!(serial_helpers, Some(std::time::Duration::ZERO));
    }
    for threads in [2, 4, 64] {
        let (parallel, helpers) = parts_as_bytes(options_with(|o| {
            limits(o);
            o.encode_threads = NonZeroUsize::new(threads).unwrap();
        }));
        if cfg!(target_os = "linux") {
            // The encode threads' CPU time is counted (the engine reports it as encoding).
            assert!(
                helpers.unwrap() > std::time::Duration::ZERO,
                "{threads} threads"
            );
        }
        let names = |parts: &[(String, Vec<u8>)]| -> Vec<String> {
            parts.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(names(&parallel), names(&serial), "{threads} threads");
        for ((name, got), (_, expected)) in parallel.iter().zip(&serial) {
            assert!(got == expected, "{name} differs with {threads} threads");
        }
    }
    // The fixture exercises what it means to: several row groups in a part.
    let most_groups = serial
        .iter()
        .map(|(_, bytes)| {
            let read = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
                .unwrap();
            read.metadata().row_groups().len()
        })
        .max()
        .unwrap();
    assert!(
        most_groups >= 3,
        "at most {most_groups} row groups in a part"
    );
}

// ---------------------------------------------------------------------------------------------
// File rolling

#[test]
fn files_roll_by_rows() {
    let fx = fixture();
    let mut writer = fx.writer(7, options_with(|o| o.max_rows_per_file = nz64(250)));
    let mut parts = Vec::new();
    let mut closed_per_call = Vec::new();
    for start in (0..1000).step_by(100) {
        let closed = writer.write(&members(start, 100)).unwrap();
        // The checkpoint property: parts returned by write(batch) end right before `batch`.
        let rows_so_far: u64 = parts
            .iter()
            .chain(closed.iter())
            .map(|p: &StagedPart| p.rows)
            .sum();
        if !closed.is_empty() {
            assert_eq!(
                rows_so_far, start as u64,
                "closed parts end at the batch boundary"
            );
        }
        closed_per_call.push(closed.len());
        parts.extend(closed);
    }
    parts.extend(writer.finish().unwrap());
    assert_eq!(closed_per_call, vec![0, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
    let seqs_rows: Vec<(u32, u64)> = parts.iter().map(|p| (p.seq, p.rows)).collect();
    assert_eq!(
        seqs_rows,
        vec![(7, 200), (8, 200), (9, 200), (10, 200), (11, 200)]
    );
    assert_eq!(parts.last().unwrap().seq, 11);

    let mut read_ids = Vec::new();
    for part in &parts {
        let read = read_parquet(&part.staged_path);
        assert_eq!(
            read.batches
                .iter()
                .map(|b| b.num_rows() as u64)
                .sum::<u64>(),
            part.rows
        );
        read_ids.extend(ids(&read.batches));
    }
    assert_eq!(
        read_ids,
        ids(&[members(0, 1000)]),
        "every row once, in order"
    );
}

#[test]
fn a_batch_larger_than_a_file_is_not_split() {
    let fx = fixture();
    let mut writer = fx.writer(0, options_with(|o| o.max_rows_per_file = nz64(250)));
    assert_eq!(writer.write(&members(0, 100)).unwrap(), vec![]);
    let closed = writer.write(&members(100, 600)).unwrap();
    assert_eq!(closed.iter().map(|p| p.rows).collect::<Vec<_>>(), vec![100]);
    assert_eq!(
        writer.open_rows(),
        600,
        "the big batch went whole into the next part"
    );
    let closed = writer.write(&members(700, 10)).unwrap();
    assert_eq!(closed.iter().map(|p| p.rows).collect::<Vec<_>>(), vec![600]);
    let last = writer.finish().unwrap().unwrap();
    assert_eq!((last.seq, last.rows), (2, 10));
}

#[test]
fn files_roll_by_bytes() {
    let fx = fixture();
    let max_bytes = 64 * 1024;
    let mut writer = fx.writer(
        0,
        options_with(|o| {
            o.max_bytes_per_file = nz64(max_bytes);
            o.row_group_rows = NonZeroUsize::new(500).unwrap();
        }),
    );
    let mut parts = Vec::new();
    for start in (0..20_000).step_by(500) {
        parts.extend(writer.write(&members(start, 500)).unwrap());
    }
    parts.extend(writer.finish().unwrap());
    assert!(
        parts.len() >= 3,
        "20,000 members do not fit in 64 KiB: {} parts",
        parts.len()
    );

    let mut read_ids = Vec::new();
    for (idx, part) in parts.iter().enumerate() {
        assert_eq!(part.seq, idx as u32);
        let size = fs::metadata(&part.staged_path).unwrap().len();
        assert_eq!(part.bytes, size);
        // The estimate counts buffered pages before compression and a generous footer, so
        // files land at or under the limit.
        assert!(size <= max_bytes, "part {idx} is {size} bytes");
        // Conservative, not absurdly so: with row groups flushed per batch the estimate is the
        // compressed bytes plus the footer allowance.
        let is_last = idx + 1 == parts.len();
        assert!(
            is_last || size >= max_bytes / 2,
            "part {idx} is only {size} bytes"
        );
        read_ids.extend(ids(&read_parquet(&part.staged_path).batches));
    }
    assert_eq!(
        read_ids,
        ids(&[members(0, 20_000)]),
        "every row once, in order"
    );
}

#[test]
fn files_roll_on_schema_change() {
    let fx = fixture();
    let wide_schema = {
        let mut fields: Vec<Field> = member_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("unique_email_id", DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    };
    let mut writer = fx.writer(0, WriterOptions::default());
    assert_eq!(writer.write(&members(0, 10)).unwrap(), vec![]);
    assert_eq!(
        writer.write(&members(10, 10)).unwrap(),
        vec![],
        "same schema, same file"
    );
    let closed_by_wide = writer
        .write(&members_with_schema(wide_schema.clone(), 20, 5))
        .unwrap();
    let closed_by_narrow = writer.write(&members(25, 5)).unwrap();
    let last = writer.finish().unwrap().unwrap();

    let parts: Vec<&StagedPart> = closed_by_wide
        .iter()
        .chain(closed_by_narrow.iter())
        .chain([&last])
        .collect();
    let summary: Vec<(u32, u64, usize)> = parts
        .iter()
        .map(|p| match &p.kind {
            PartKind::Parquet { schema } => (p.seq, p.rows, schema.fields().len()),
            PartKind::JsonLines => panic!("data parts are parquet"),
        })
        .collect();
    assert_eq!(summary, vec![(0, 20, 10), (1, 5, 11), (2, 5, 10)]);
    assert_eq!(
        read_parquet(&parts[1].staged_path).schema.fields().len(),
        11
    );
}

#[test]
fn empty_batches_create_no_file() {
    let fx = fixture();
    let mut writer = fx.writer(0, WriterOptions::default());
    assert_eq!(writer.write(&members(0, 0)).unwrap(), vec![]);
    assert_eq!(writer.open_rows(), 0);
    assert_eq!(writer.finish().unwrap(), None);
    assert_eq!(files_under(fx.layout.data_dir()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Staging and publishing

#[test]
fn nothing_is_under_datasets_before_publish_and_then_the_whole_batch_at_once() {
    let fx = fixture();
    let mut writer = fx.writer(0, options_with(|o| o.max_rows_per_file = nz64(100)));
    assert_eq!(writer.write(&members(0, 100)).unwrap(), vec![]);
    let mut parts = writer.write(&members(100, 50)).unwrap();
    // One part sealed, one still open: neither is visible to a reader.
    assert_eq!(files_under(&fx.layout.datasets_dir()), Vec::<String>::new());
    assert_eq!(
        files_under(&fx.layout.staging_dir()),
        vec![
            "members/batch=01HZX3BATCH/part-00000.parquet",
            "members/batch=01HZX3BATCH/part-00001.parquet.inprogress",
        ]
    );
    parts.extend(writer.finish().unwrap());
    assert_eq!(files_under(&fx.layout.datasets_dir()), Vec::<String>::new());

    fx.publish(&parts).unwrap();
    assert_eq!(
        files_under(&fx.layout.datasets_dir()),
        vec![
            "members/batch=01HZX3BATCH/part-00000.parquet",
            "members/batch=01HZX3BATCH/part-00001.parquet",
        ]
    );
    assert_eq!(files_under(&fx.layout.staging_dir()), Vec::<String>::new());
}

#[test]
fn publish_is_idempotent() {
    let fx = fixture();
    let mut writer = fx.writer(0, WriterOptions::default());
    writer.write(&members(0, 10)).unwrap();
    let parts = vec![writer.finish().unwrap().unwrap()];

    assert_eq!(
        fx.publish(&parts).unwrap(),
        published(PublishOutcome::Published, PublishOutcome::Empty)
    );
    // A redo after a crash between the rename and the bookkeeping: final exists, staged not.
    assert_eq!(
        fx.publish(&parts).unwrap(),
        published(PublishOutcome::AlreadyPublished, PublishOutcome::Empty)
    );
    assert_eq!(
        ids(&read_parquet(&parts[0].final_path).batches),
        ids(&[members(0, 10)])
    );
}

#[test]
fn publish_after_a_restart_needs_only_the_ids_and_file_names() {
    let fx = fixture();
    let mut writer = fx.writer(3, WriterOptions::default());
    writer.write(&members(0, 10)).unwrap();
    let part = writer.finish().unwrap().unwrap();
    // Recovery after a restart rebuilds the paths from (dataset, batch, seq) alone.
    let staged_path = fx.layout.staged_part_path(&fx.dataset, &fx.batch, 3);
    let final_path = fx.layout.part_path(&fx.dataset, &fx.batch, 3);
    assert_eq!(
        (&staged_path, &final_path),
        (&part.staged_path, &part.final_path)
    );
    // The batch folder does not exist yet: publish creates it.
    assert!(!fx.layout.batch_dir(&fx.dataset, &fx.batch).exists());
    let outcome = publish_batch(
        &fx.layout,
        &fx.dataset,
        &fx.batch,
        &["part-00003.parquet".to_owned()],
        &[],
    )
    .unwrap();
    assert_eq!(
        outcome,
        published(PublishOutcome::Published, PublishOutcome::Empty)
    );
    assert!(!staged_path.exists());
    assert_eq!(
        ids(&read_parquet(&final_path).batches),
        ids(&[members(0, 10)])
    );
}

#[test]
fn publish_drops_files_the_batch_does_not_name() {
    let fx = fixture();
    let mut writer = fx.writer(0, options_with(|o| o.max_rows_per_file = nz64(10)));
    writer.write(&members(0, 10)).unwrap();
    let mut parts = writer.write(&members(10, 10)).unwrap();
    parts.extend(writer.finish().unwrap());
    // Part 1 was sealed by an attempt that died before recording it; a leftover in-progress
    // file sits beside them. Only what the batch names is published.
    let recorded = vec![parts[0].clone()];
    let leftover = fx
        .layout
        .staged_batch_dir(&fx.dataset, &fx.batch)
        .join("part-00002.parquet.inprogress");
    fs::write(&leftover, b"half").unwrap();
    fx.publish(&recorded).unwrap();
    assert_eq!(
        files_under(&fx.layout.datasets_dir()),
        vec!["members/batch=01HZX3BATCH/part-00000.parquet"]
    );
}

#[test]
fn publish_refuses_contradictory_states() {
    let fx = fixture();
    let mut writer = fx.writer(0, WriterOptions::default());
    writer.write(&members(0, 10)).unwrap();
    let parts = vec![writer.finish().unwrap().unwrap()];
    fx.publish(&parts).unwrap();

    // Both present: someone staged the batch again after publishing it.
    fs::create_dir_all(fx.layout.staged_batch_dir(&fx.dataset, &fx.batch)).unwrap();
    fs::write(&parts[0].staged_path, b"not parquet").unwrap();
    let err = fx.publish(&parts).unwrap_err();
    assert!(matches!(err, WriteError::PublishConflict { .. }), "{err}");
    assert_eq!(err.cause(), ErrorCause::Protocol);
    assert!(!err.is_retryable());
    assert_eq!(
        ids(&read_parquet(&parts[0].final_path).batches),
        ids(&[members(0, 10)]),
        "untouched"
    );
    fs::remove_dir_all(fx.layout.staging_dir()).unwrap();

    // A named file that is nowhere: its rows would be lost, so nothing is published.
    let other = BatchId::try_new("other").unwrap();
    let err = publish_batch(
        &fx.layout,
        &fx.dataset,
        &other,
        &["part-00009.parquet".to_owned()],
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, WriteError::StagedMissing { .. }), "{err}");
    fs::create_dir_all(fx.layout.staged_batch_dir(&fx.dataset, &other)).unwrap();
    let err = publish_batch(
        &fx.layout,
        &fx.dataset,
        &other,
        &["part-00009.parquet".to_owned()],
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, WriteError::StagedMissing { .. }), "{err}");
    assert!(!fx.layout.batch_dir(&fx.dataset, &other).exists());
}

#[test]
fn writing_over_a_published_part_is_refused() {
    let fx = fixture();
    let mut writer = fx.writer(0, WriterOptions::default());
    writer.write(&members(0, 10)).unwrap();
    fx.publish(&[writer.finish().unwrap().unwrap()]).unwrap();

    let mut writer = fx.writer(0, WriterOptions::default());
    let err = writer.write(&members(10, 10)).unwrap_err();
    assert!(matches!(err, WriteError::AlreadyPublished { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("part-00000.parquet is already published"),
        "{err}"
    );
    // The published file keeps its rows.
    let final_path = fx.layout.part_path(&fx.dataset, &fx.batch, 0);
    assert_eq!(
        ids(&read_parquet(&final_path).batches),
        ids(&[members(0, 10)])
    );
}

#[test]
fn abort_and_drop_delete_the_open_part() {
    let fx = fixture();
    let mut writer = fx.writer(0, options_with(|o| o.max_rows_per_file = nz64(10)));
    writer.write(&members(0, 10)).unwrap();
    let closed = writer.write(&members(10, 5)).unwrap();
    assert_eq!(closed.len(), 1);
    let in_progress = |seq: u32| {
        let mut path = fx
            .layout
            .staged_part_path(&fx.dataset, &fx.batch, seq)
            .into_os_string();
        path.push(".inprogress");
        PathBuf::from(path)
    };
    assert!(in_progress(1).exists());
    writer.abort();
    assert!(!in_progress(1).exists());
    assert!(
        closed[0].staged_path.exists(),
        "closed parts are the caller's"
    );

    let mut writer = fx.writer(5, WriterOptions::default());
    writer.write(&members(0, 5)).unwrap();
    assert!(in_progress(5).exists());
    drop(writer);
    assert!(!in_progress(5).exists());
    assert!(
        !fx.layout
            .staged_part_path(&fx.dataset, &fx.batch, 5)
            .exists(),
        "an unsealed part never gets its staged name"
    );
}

#[test]
fn redo_overwrites_the_leftover_of_an_interrupted_attempt() {
    let fx = fixture();
    let staged_path = fx.layout.staged_part_path(&fx.dataset, &fx.batch, 0);
    fs::create_dir_all(staged_path.parent().unwrap()).unwrap();
    // A sealed part whose recording never happened, and an unsealed attempt at it.
    fs::write(&staged_path, b"an earlier attempt at part 0").unwrap();
    let mut in_progress = staged_path.clone().into_os_string();
    in_progress.push(".inprogress");
    fs::write(&in_progress, b"half a parquet file from a killed process").unwrap();

    let mut writer = fx.writer(0, WriterOptions::default());
    writer.write(&members(0, 10)).unwrap();
    let part = writer.finish().unwrap().unwrap();
    assert_eq!(part.staged_path, staged_path);
    assert!(!Path::new(&in_progress).exists());
    fx.publish(std::slice::from_ref(&part)).unwrap();
    assert_eq!(
        ids(&read_parquet(&part.final_path).batches),
        ids(&[members(0, 10)])
    );
}

// ---------------------------------------------------------------------------------------------
// Removing batches and cleaning staging

#[test]
fn remove_batch_takes_data_and_errors_away_atomically() {
    let fx = fixture();
    let other_batch = BatchId::try_new("other").unwrap();
    for batch in [&fx.batch, &other_batch] {
        let mut writer = PartWriter::try_new(
            &fx.layout,
            &fx.dataset,
            batch,
            0,
            options_with(|o| o.max_rows_per_file = nz64(5)),
        )
        .unwrap();
        writer.write(&members(0, 5)).unwrap();
        let mut parts = writer.write(&members(5, 3)).unwrap();
        parts.extend(writer.finish().unwrap());
        let mut errors = ErrorWriter::try_new(
            &fx.layout,
            &fx.dataset,
            batch,
            0,
            ErrorWriterOptions::default(),
        )
        .unwrap();
        errors.write(&serde_json::json!({"reason": "bad"})).unwrap();
        parts.extend(errors.finish().unwrap());
        assert_eq!(
            fx.publish_batch_of(batch, &parts).unwrap(),
            published(PublishOutcome::Published, PublishOutcome::Published)
        );
    }
    assert_eq!(files_under(&fx.layout.dataset_dir(&fx.dataset)).len(), 6);

    let removed = remove_batch(&fx.layout, &fx.dataset, &fx.batch).unwrap();
    assert_eq!(
        removed,
        RemovedBatch {
            data: true,
            errors: true
        }
    );
    assert_eq!(
        files_under(&fx.layout.dataset_dir(&fx.dataset)),
        vec![
            "_errors/batch=other/part-00000.jsonl",
            "batch=other/part-00000.parquet",
            "batch=other/part-00001.parquet",
        ]
    );
    assert_eq!(
        files_under(&fx.layout.trash_dir()),
        Vec::<String>::new(),
        "trash emptied"
    );

    let removed_again = remove_batch(&fx.layout, &fx.dataset, &fx.batch).unwrap();
    assert_eq!(
        removed_again,
        RemovedBatch {
            data: false,
            errors: false
        }
    );

    // The same batch id can be written again after its removal.
    let mut writer = fx.writer(0, WriterOptions::default());
    writer.write(&members(100, 3)).unwrap();
    fx.publish(&[writer.finish().unwrap().unwrap()]).unwrap();
    let final_path = fx.layout.part_path(&fx.dataset, &fx.batch, 0);
    assert_eq!(
        ids(&read_parquet(&final_path).batches),
        ids(&[members(100, 3)])
    );
}

#[test]
fn clean_staging_keeps_what_the_caller_says_is_pending() {
    let fx = fixture();
    // Two staged, unpublished parts: the engine says the first is pending in its state.
    let mut writer = fx.writer(0, options_with(|o| o.max_rows_per_file = nz64(10)));
    writer.write(&members(0, 10)).unwrap();
    let mut parts = writer.write(&members(10, 10)).unwrap();
    parts.extend(writer.finish().unwrap());
    assert_eq!(parts.len(), 2);
    let pending = parts[0].clone();
    // What a killed process leaves: an unfinished part of another batch, an error part, and a
    // batch removal interrupted between its rename and its delete.
    let killed = fx
        .layout
        .staged_part_path(&fx.dataset, &BatchId::try_new("killed").unwrap(), 0);
    fs::create_dir_all(killed.parent().unwrap()).unwrap();
    fs::write(&killed, b"PAR1 and no footer").unwrap();
    let errors = fx.layout.staged_error_part_path(&fx.dataset, &fx.batch, 0);
    fs::create_dir_all(errors.parent().unwrap()).unwrap();
    fs::write(&errors, b"{}\n").unwrap();
    let trash = fx.layout.trash_dir().join("0123abcd");
    fs::create_dir_all(trash.join("batch=gone")).unwrap();
    fs::write(trash.join("batch=gone/part-00000.parquet"), b"old").unwrap();
    // A published part must never be touched by cleaning.
    let mut other = PartWriter::try_new(
        &fx.layout,
        &fx.dataset,
        &BatchId::try_new("published").unwrap(),
        0,
        WriterOptions::default(),
    )
    .unwrap();
    other.write(&members(0, 3)).unwrap();
    fx.publish_batch_of(
        &BatchId::try_new("published").unwrap(),
        &[other.finish().unwrap().unwrap()],
    )
    .unwrap();

    let report = clean_staging(&fx.layout, |path| path == pending.staged_path).unwrap();
    assert_eq!(
        report,
        CleanReport {
            removed_files: 3,
            removed_bytes: parts[1].bytes + 18 + 3,
            kept_files: 1,
            removed_trash: 1,
        }
    );
    assert_eq!(
        files_under(&fx.layout.staging_dir()),
        vec!["members/batch=01HZX3BATCH/part-00000.parquet"]
    );
    // Empty folders go too, so staging does not accumulate one folder per run.
    assert!(!fx.layout.trash_dir().exists());
    assert!(!killed.parent().unwrap().exists());
    assert_eq!(
        files_under(&fx.layout.datasets_dir()),
        vec!["members/batch=published/part-00000.parquet"]
    );
    // The kept part can still be published by recovery.
    assert_eq!(
        fx.publish(std::slice::from_ref(&pending)).unwrap(),
        published(PublishOutcome::Published, PublishOutcome::Empty)
    );
    assert_eq!(
        ids(&read_parquet(&pending.final_path).batches),
        ids(&[members(0, 10)])
    );
}

#[test]
fn clean_staging_without_staging_folder_is_a_no_op() {
    let fx = fixture();
    assert_eq!(
        clean_staging(&fx.layout, |_| false).unwrap(),
        CleanReport::default()
    );
}

// ---------------------------------------------------------------------------------------------
// Rejected rows

#[test]
fn error_writer_stages_and_publishes_json_lines() {
    let fx = fixture();
    let options = ErrorWriterOptions {
        max_rows_per_file: nz64(2),
        ..ErrorWriterOptions::default()
    };
    let mut writer = ErrorWriter::try_new(&fx.layout, &fx.dataset, &fx.batch, 0, options).unwrap();
    let mut parts = Vec::new();
    for i in 0..5 {
        let row = serde_json::json!({
            "page": 3, "index": i, "reason": "expected a number at /age, found \"x\"\nnext line",
            "record": {"age": "x"},
        });
        parts.extend(writer.write(&row).unwrap());
    }
    parts.extend(writer.finish().unwrap());
    assert_eq!(
        parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert!(parts.iter().all(|p| p.kind == PartKind::JsonLines));
    assert_eq!(files_under(&fx.layout.datasets_dir()), Vec::<String>::new());

    for part in &parts {
        assert_eq!(part.bytes, fs::metadata(&part.staged_path).unwrap().len());
    }
    assert_eq!(
        fx.publish(&parts).unwrap(),
        published(PublishOutcome::Empty, PublishOutcome::Published)
    );
    assert_eq!(
        files_under(&fx.layout.datasets_dir()),
        vec![
            "members/_errors/batch=01HZX3BATCH/part-00000.jsonl",
            "members/_errors/batch=01HZX3BATCH/part-00001.jsonl",
            "members/_errors/batch=01HZX3BATCH/part-00002.jsonl",
        ]
    );
    let first = fs::read_to_string(&parts[0].final_path).unwrap();
    expect![[r#"
        {"page":3,"index":0,"reason":"expected a number at /age, found \"x\"\nnext line","record":{"age":"x"}}
        {"page":3,"index":1,"reason":"expected a number at /age, found \"x\"\nnext line","record":{"age":"x"}}
    "#]]
    .assert_eq(&first);
}

#[test]
fn error_writer_rolls_by_bytes_and_rejects_unserialisable_rows() {
    let fx = fixture();
    let options = ErrorWriterOptions {
        max_bytes_per_file: nz64(100),
        ..ErrorWriterOptions::default()
    };
    let mut writer = ErrorWriter::try_new(&fx.layout, &fx.dataset, &fx.batch, 0, options).unwrap();
    let row = "x".repeat(60); // 63 bytes per line with quotes and newline
    assert_eq!(writer.write(&row).unwrap(), None);
    let closed = writer
        .write(&row)
        .unwrap()
        .expect("126 bytes would pass the 100-byte limit");
    assert_eq!((closed.seq, closed.rows, closed.bytes), (0, 1, 63));
    // The rows of one call stay together, even past the limit.
    assert_eq!(
        writer
            .write_rows([&row, &row])
            .unwrap()
            .map(|p| (p.seq, p.rows)),
        Some((1, 1))
    );
    assert_eq!(
        writer.write_rows(Vec::<&String>::new()).unwrap(),
        None,
        "no rows, no change"
    );

    // A map with non-string keys cannot be JSON: an error, and no empty part is left behind.
    let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let err = writer.write(&bad).unwrap_err();
    assert!(matches!(err, WriteError::Json { .. }), "{err}");
    assert_eq!(err.cause(), ErrorCause::Data);
    let last = writer.finish().unwrap().unwrap();
    assert_eq!((last.seq, last.rows, last.bytes), (2, 2, 126));
    assert_eq!(
        fs::read_to_string(&last.staged_path)
            .unwrap()
            .lines()
            .count(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Ids, layout, options, errors

fn check_id(input: &str, expect: Expect) {
    let dataset = match DatasetId::try_new(input) {
        Ok(id) => format!("ok {id}"),
        Err(err) => err.to_string(),
    };
    let batch = match BatchId::try_new(input) {
        Ok(id) => format!("ok {id}"),
        Err(err) => err.to_string(),
    };
    assert_eq!(
        dataset.replace("dataset id", "ID"),
        batch.replace("batch id", "ID")
    );
    expect.assert_eq(&dataset);
}

#[test]
fn ids_are_safe_path_components() {
    check_id("members", expect!["ok members"]);
    check_id("5f3c-AB_1.2", expect!["ok 5f3c-AB_1.2"]);
    check_id(
        "",
        expect![[r#"invalid dataset id "": expected a non-empty id"#]],
    );
    check_id(
        "..",
        expect![[r#"invalid dataset id "..": expected no "..""#]],
    );
    check_id(
        "a..b",
        expect![[r#"invalid dataset id "a..b": expected no "..""#]],
    );
    check_id(
        "a/b",
        expect![[
            r#"invalid dataset id "a/b": expected only ASCII letters, digits, '_', '.' and '-'"#
        ]],
    );
    check_id(
        "a\\b",
        expect![[
            r#"invalid dataset id "a\\b": expected only ASCII letters, digits, '_', '.' and '-'"#
        ]],
    );
    check_id(
        "a b",
        expect![[
            r#"invalid dataset id "a b": expected only ASCII letters, digits, '_', '.' and '-'"#
        ]],
    );
    check_id(
        "caf\u{e9}",
        expect![[
            r#"invalid dataset id "café": expected only ASCII letters, digits, '_', '.' and '-'"#
        ]],
    );
    check_id(
        ".hidden",
        expect![[
            r#"invalid dataset id ".hidden": expected an id that does not start with '.' or '_' (readers skip such names)"#
        ]],
    );
    check_id(
        "_staging",
        expect![[
            r#"invalid dataset id "_staging": expected an id that does not start with '.' or '_' (readers skip such names)"#
        ]],
    );
    assert_eq!(
        DatasetId::try_new("a".repeat(128)).unwrap().as_str().len(),
        MAX_ID_LEN
    );
    let too_long = DatasetId::try_new("a".repeat(129)).unwrap_err();
    assert!(
        too_long
            .to_string()
            .ends_with(": expected at most 128 characters"),
        "{too_long}"
    );
    assert_eq!(too_long.cause(), ErrorCause::Input);
}

#[test]
fn ids_deserialise_with_validation() {
    let id: DatasetId = serde_json::from_str(r#""members""#).unwrap();
    assert_eq!(id.as_str(), "members");
    assert_eq!(serde_json::to_string(&id).unwrap(), r#""members""#);
    let err = serde_json::from_str::<BatchId>(r#""../etc""#).unwrap_err();
    assert!(err.to_string().contains("invalid batch id"), "{err}");
}

#[test]
fn layout_paths() {
    let layout = DatasetLayout::new("/data");
    let dataset = DatasetId::try_new("members").unwrap();
    let batch = BatchId::try_new("b1").unwrap();
    let paths: Vec<PathBuf> = vec![
        layout.datasets_dir(),
        layout.dataset_dir(&dataset),
        layout.batch_dir(&dataset, &batch),
        layout.part_path(&dataset, &batch, 3),
        layout.part_path(&dataset, &batch, 123_456),
        layout.errors_dir(&dataset, &batch),
        layout.error_part_path(&dataset, &batch, 0),
        layout.staging_dir(),
        layout.staged_batch_dir(&dataset, &batch),
        layout.staged_errors_dir(&dataset, &batch),
        layout.staged_part_path(&dataset, &batch, 3),
        layout.staged_error_part_path(&dataset, &batch, 0),
        layout.trash_dir(),
    ];
    let text: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    expect![[r#"
        /data/datasets
        /data/datasets/members
        /data/datasets/members/batch=b1
        /data/datasets/members/batch=b1/part-00003.parquet
        /data/datasets/members/batch=b1/part-123456.parquet
        /data/datasets/members/_errors/batch=b1
        /data/datasets/members/_errors/batch=b1/part-00000.jsonl
        /data/_staging
        /data/_staging/members/batch=b1
        /data/_staging/members/_errors/batch=b1
        /data/_staging/members/batch=b1/part-00003.parquet
        /data/_staging/members/_errors/batch=b1/part-00000.jsonl
        /data/_staging/_trash"#]]
    .assert_eq(&text.join("\n"));
}

fn check_compression(input: &str, expect: Expect) {
    let actual = match input.parse::<Compression>() {
        Ok(compression) => format!("ok {compression}"),
        Err(err) => err.to_string(),
    };
    expect.assert_eq(&actual);
}

#[test]
fn compression_parses_config_forms() {
    check_compression("zstd", expect!["ok zstd(1)"]);
    check_compression("ZSTD(3)", expect!["ok zstd(3)"]);
    check_compression("zstd:-5", expect!["ok zstd(-5)"]);
    check_compression("snappy", expect!["ok snappy"]);
    check_compression("none", expect!["ok none"]);
    check_compression("uncompressed", expect!["ok none"]);
    check_compression(
        "zstd(23)",
        expect![
            "invalid writer option compression = zstd(23): expected zstd, zstd(LEVEL) with LEVEL -131072..=22, snappy or none"
        ],
    );
    check_compression(
        "gzip",
        expect![
            "invalid writer option compression = gzip: expected zstd, zstd(LEVEL) with LEVEL -131072..=22, snappy or none"
        ],
    );
}

#[test]
fn bad_zstd_level_is_rejected_at_construction() {
    let fx = fixture();
    let options = options_with(|o| o.compression = Compression::Zstd { level: 40 });
    let err = PartWriter::try_new(&fx.layout, &fx.dataset, &fx.batch, 0, options).unwrap_err();
    expect![
        "invalid writer option compression = zstd(40): expected a zstd level from -131072 to 22"
    ]
    .assert_eq(&err.to_string());
    assert!(!err.is_retryable());
}

#[test]
fn io_errors_name_the_path_and_classify_retries() {
    let fx = fixture();
    // A file where the staging folder should be makes creating the staged part fail.
    fs::create_dir_all(fx.layout.data_dir()).unwrap();
    fs::write(fx.layout.staging_dir(), b"not a folder").unwrap();
    let mut writer = fx.writer(0, WriterOptions::default());
    let err = writer.write(&members(0, 1)).unwrap_err();
    assert!(matches!(err, WriteError::Io { .. }), "{err}");
    assert!(err.to_string().contains("_staging"), "{err}");
    assert_eq!(err.cause(), ErrorCause::Environment);
    assert!(!err.is_retryable());
    let err = writer.write(&members(0, 1)).unwrap_err();
    assert!(
        matches!(err, WriteError::WriterFailed { .. }),
        "a failed writer stays failed: {err}"
    );

    let transient = WriteError::Io {
        op: "writing staged file",
        path: PathBuf::from("/x"),
        source: std::io::Error::from(std::io::ErrorKind::Interrupted),
    };
    assert!(transient.is_retryable());
}

#[test]
fn large_string_values_round_trip() {
    // A 5 MB string field (a bad-input case of the issue) is written and read back intact.
    let fx = fixture();
    let schema = Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8, true)]));
    let big = "y".repeat(5 * 1024 * 1024);
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![
            Some(big.as_str()),
            None,
            Some("small"),
        ]))],
    )
    .unwrap();
    let mut writer = fx.writer(0, WriterOptions::default());
    writer.write(&batch).unwrap();
    let part = writer.finish().unwrap().unwrap();
    let read = read_parquet(&part.staged_path);
    assert_eq!(read.batches.len(), 1);
    let column = read.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(column.value(0).len(), big.len());
    assert!(column.is_null(1));
    assert_eq!(column.value(2), "small");
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_deletes_the_open_part_and_stops_the_writer() {
    // The in-progress path is a symlink to /dev/full: every write that reaches the disk fails
    // with "no space left on device", as on a full filesystem.
    let fx = fixture();
    let mut staged_path = fx
        .layout
        .staged_part_path(&fx.dataset, &fx.batch, 0)
        .into_os_string();
    staged_path.push(".inprogress");
    let staged_path = PathBuf::from(staged_path);
    fs::create_dir_all(staged_path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/full", &staged_path).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8, true)]));
    let blob = "z".repeat(3 * 1024 * 1024);
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![
            blob.as_str(),
            blob.as_str(),
        ]))],
    )
    .unwrap();

    let mut writer = fx.writer(
        0,
        options_with(|o| {
            o.row_group_rows = NonZeroUsize::new(1).unwrap();
            o.compression = Compression::None;
        }),
    );
    let err = writer.write(&batch).unwrap_err();
    assert!(matches!(err, WriteError::Parquet { .. }), "{err}");
    assert!(
        !staged_path.exists() && fs::symlink_metadata(&staged_path).is_err(),
        "open part deleted"
    );

    let err = writer.write(&batch).unwrap_err();
    expect!["the writer of batch 01HZX3BATCH of dataset members failed earlier and lost its open part: expected a new writer for a new attempt"]
        .assert_eq(&err.to_string());
    let err = writer.finish().unwrap_err();
    assert!(matches!(err, WriteError::WriterFailed { .. }), "{err}");
    assert_eq!(err.cause(), ErrorCause::Protocol);
}

#[test]
fn dictionary_and_statistics_are_configurable() {
    let column_facts = |options: WriterOptions| {
        let fx = fixture();
        let mut writer = fx.writer(0, options);
        writer.write(&members(0, 200)).unwrap();
        let part = writer.finish().unwrap().unwrap();
        let read = read_parquet(&part.staged_path);
        assert_eq!(ids(&read.batches), ids(&[members(0, 200)]));
        // Column 2 is `status`: four distinct values, the textbook dictionary column.
        let status = read.metadata.row_group(0).column(2);
        let has_dictionary = status.dictionary_page_offset().is_some();
        let has_chunk_statistics = status.statistics().is_some();
        let has_page_index = status.column_index_offset().is_some();
        (has_dictionary, has_chunk_statistics, has_page_index)
    };
    assert_eq!(column_facts(WriterOptions::default()), (true, true, true));
    assert_eq!(
        column_facts(options_with(|o| {
            o.dictionary = false;
            o.statistics = Statistics::Chunk;
        })),
        (false, true, false)
    );
    assert_eq!(
        column_facts(options_with(|o| o.statistics = Statistics::None)),
        (true, false, false)
    );
}

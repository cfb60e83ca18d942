//! Delta commits against real tables in temporary folders: batches staged with `PartWriter`,
//! published by rename, committed with `commit_batch`, then read back with deltalake's own log
//! reader and by parsing the commit files.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use expect_test::{Expect, expect};
use serde_json::Value;

use super::*;
use crate::{PartWriter, WriterOptions, publish_batch};

struct Table {
    _tmp: tempfile::TempDir,
    layout: DatasetLayout,
    dataset: DatasetId,
}

fn table() -> Table {
    let tmp = tempfile::tempdir().unwrap();
    let layout = DatasetLayout::new(tmp.path().join("data"));
    let dataset = DatasetId::try_new("orders").unwrap();
    mark_delta_table(&layout, &dataset).unwrap();
    Table {
        _tmp: tmp,
        layout,
        dataset,
    }
}

fn batch_id(id: &str) -> BatchId {
    BatchId::try_new(id).unwrap()
}

/// `ids` as a batch of `{id: Int64, name: Utf8}`, plus `note: Utf8` when `with_note`.
fn orders(ids: &[i64], with_note: bool) -> RecordBatch {
    let mut fields = vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|id| format!("order-{id}")),
        )),
    ];
    if with_note {
        fields.push(Field::new("note", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter_values(
            ids.iter().map(|id| format!("note-{id}")),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

impl Table {
    /// Stages `parts` (one part file each) as batch `batch`, publishes it by rename and returns
    /// the files for a commit.
    fn publish(&self, batch: &BatchId, parts: &[RecordBatch]) -> Vec<DeltaFile> {
        let mut files = Vec::new();
        for (seq, part) in parts.iter().enumerate() {
            let mut writer = PartWriter::try_new(
                &self.layout,
                &self.dataset,
                batch,
                seq as u32,
                WriterOptions::default(),
            )
            .unwrap();
            assert!(writer.write(part).unwrap().is_empty());
            let staged = writer.finish().unwrap().unwrap();
            files.push(DeltaFile {
                name: staged
                    .final_path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                rows: staged.rows,
            });
        }
        let names: Vec<String> = files.iter().map(|file| file.name.clone()).collect();
        publish_batch(&self.layout, &self.dataset, batch, &names, &[]).unwrap();
        files
    }

    fn commit(
        &self,
        batch: &BatchId,
        files: &[DeltaFile],
        replaces: &[BatchId],
        version: i64,
    ) -> Result<DeltaOutcome, WriteError> {
        commit_batch(
            &self.layout,
            None,
            &self.dataset,
            &DeltaCommit {
                batch,
                files,
                replaces,
                app_id: "tributary-test-window",
                version,
            },
        )
    }

    /// The live files of the table's latest version, as deltalake reads the log.
    fn live_files(&self) -> BTreeSet<String> {
        let table = self.load();
        let state = table.snapshot().unwrap();
        state
            .log_data()
            .iter()
            .map(|file| file.path().into_owned())
            .collect()
    }

    fn load(&self) -> deltalake::DeltaTable {
        let dir = self.layout.dataset_dir(&self.dataset);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let url = deltalake::ensure_table_uri(dir.to_str().unwrap()).unwrap();
            deltalake::open_table(url).await.unwrap()
        })
    }

    /// The actions of commit `version`, one JSON object per line of its log file.
    fn commit_actions(&self, version: u64) -> Vec<Value> {
        let path = self
            .layout
            .delta_log_dir(&self.dataset)
            .join(format!("{version:020}.json"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn log_versions(&self) -> usize {
        std::fs::read_dir(self.layout.delta_log_dir(&self.dataset))
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count()
    }
}

/// The kinds of the actions (`add`, `remove`, `metaData`, `txn`, ...) with the path or app id.
fn action_summary(actions: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = actions
        .iter()
        .flat_map(|action| action.as_object().unwrap().iter())
        .filter(|(kind, _)| kind.as_str() != "commitInfo")
        .map(|(kind, body)| match kind.as_str() {
            "add" | "remove" => format!("{kind} {}", body["path"].as_str().unwrap()),
            "txn" => format!(
                "txn {} {}",
                body["appId"].as_str().unwrap(),
                body["version"]
            ),
            other => other.to_owned(),
        })
        .collect();
    out.sort();
    out
}

fn check_schema(schema: &Schema, expect: Expect) {
    let text = match table_schema(schema) {
        Ok(delta) => serde_json::to_string_pretty(&delta).unwrap(),
        Err(message) => format!("error: {message}"),
    };
    expect.assert_eq(&text);
}

fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

#[test]
fn every_type_the_writer_produces_maps_to_a_delta_type() {
    let address = Fields::from(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("zip", DataType::Int64, true),
    ]);
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("vip", DataType::Boolean, true),
        Field::new("born", DataType::Date32, true),
        Field::new("seen_at", utc_timestamp(), true),
        Field::new("address", DataType::Struct(address.clone()), true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new(
            "homes",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(address),
                true,
            ))),
            true,
        ),
        Field::new("_rescued_data", DataType::Utf8, true),
    ]);
    check_schema(
        &schema,
        expect![[r#"
            {
              "type": "struct",
              "fields": [
                {
                  "name": "id",
                  "type": "long",
                  "nullable": false,
                  "metadata": {}
                },
                {
                  "name": "score",
                  "type": "double",
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "vip",
                  "type": "boolean",
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "born",
                  "type": "date",
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "seen_at",
                  "type": "timestamp",
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "address",
                  "type": {
                    "type": "struct",
                    "fields": [
                      {
                        "name": "city",
                        "type": "string",
                        "nullable": true,
                        "metadata": {}
                      },
                      {
                        "name": "zip",
                        "type": "long",
                        "nullable": true,
                        "metadata": {}
                      }
                    ]
                  },
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "tags",
                  "type": {
                    "type": "array",
                    "elementType": "string",
                    "containsNull": true
                  },
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "homes",
                  "type": {
                    "type": "array",
                    "elementType": {
                      "type": "struct",
                      "fields": [
                        {
                          "name": "city",
                          "type": "string",
                          "nullable": true,
                          "metadata": {}
                        },
                        {
                          "name": "zip",
                          "type": "long",
                          "nullable": true,
                          "metadata": {}
                        }
                      ]
                    },
                    "containsNull": true
                  },
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "_rescued_data",
                  "type": "string",
                  "nullable": true,
                  "metadata": {}
                },
                {
                  "name": "batch",
                  "type": "string",
                  "nullable": true,
                  "metadata": {}
                }
              ]
            }"#]],
    );
}

#[test]
fn types_delta_cannot_store_are_errors_that_name_the_column() {
    let one = |field: Field| Schema::new(vec![field]);
    check_schema(
        &one(Field::new("empty", DataType::Null, true)),
        expect![
            "error: column `empty` has Arrow type Null, which a Delta table of tributary does not store: expected a string, integer, floating-point, boolean, binary, date, UTC timestamp, decimal, struct or list column"
        ],
    );
    check_schema(
        &one(Field::new(
            "address",
            DataType::Struct(Fields::from(vec![Field::new("n", DataType::UInt64, true)])),
            true,
        )),
        expect![
            "error: column `address.n` has Arrow type UInt64, which a Delta table of tributary does not store: expected a string, integer, floating-point, boolean, binary, date, UTC timestamp, decimal, struct or list column"
        ],
    );
    check_schema(
        &one(Field::new(
            "local",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )),
        expect![
            "error: column `local` has Arrow type Timestamp(µs), which a Delta table of tributary does not store: expected a string, integer, floating-point, boolean, binary, date, UTC timestamp, decimal, struct or list column"
        ],
    );
    check_schema(
        &one(Field::new("batch", DataType::Utf8, true)),
        expect![
            "error: column `batch`: the name is taken by the Delta table's partition column (the batch id); rename the field with a mapping set"
        ],
    );
}

fn check_merge(current: Schema, batch: Schema, expect: Expect) {
    let current = table_schema(&current).unwrap();
    let batch = table_schema(&batch).unwrap();
    let text = match merged_schema(&current, &batch) {
        Ok(None) => "unchanged".to_owned(),
        Ok(Some(grown)) => grown
            .fields()
            .map(|field| format!("{}: {}", field.name(), field.data_type()))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(message) => format!("error: {message}"),
    };
    expect.assert_eq(&text);
}

#[test]
fn the_table_schema_grows_by_new_and_nested_columns_and_widens_long_to_double_only() {
    let address = |fields: Vec<Field>| Field::new("address", DataType::Struct(fields.into()), true);
    let city = Field::new("city", DataType::Utf8, true);
    let zip = Field::new("zip", DataType::Utf8, true);
    let score = |data_type| Field::new("score", data_type, true);
    check_merge(
        Schema::new(vec![score(DataType::Int64), address(vec![city.clone()])]),
        Schema::new(vec![score(DataType::Int64), address(vec![city.clone()])]),
        expect!["unchanged"],
    );
    // A batch that lacks a column the table has (its files read it as null) changes nothing.
    check_merge(
        Schema::new(vec![score(DataType::Int64), address(vec![city.clone()])]),
        Schema::new(vec![address(vec![city.clone()])]),
        expect!["unchanged"],
    );
    check_merge(
        Schema::new(vec![score(DataType::Int64), address(vec![city.clone()])]),
        Schema::new(vec![
            Field::new("satisfaction", DataType::Float64, true),
            score(DataType::Float64),
            address(vec![zip.clone(), city.clone()]),
        ]),
        expect![[r#"
            score: double
            address: struct<city: string, zip: string>
            satisfaction: double
            batch: string"#]],
    );
    check_merge(
        Schema::new(vec![score(DataType::Float64)]),
        Schema::new(vec![score(DataType::Int64)]),
        expect![
            "error: column `score` is double in the Delta table and long in the batch: expected the same type, a new column, or long widened to double"
        ],
    );
    check_merge(
        Schema::new(vec![address(vec![city.clone()])]),
        Schema::new(vec![address(vec![Field::new(
            "city",
            DataType::Int64,
            true,
        )])]),
        expect![
            "error: column `address.city` is string in the Delta table and long in the batch: expected the same type, a new column, or long widened to double"
        ],
    );
}

#[test]
fn the_first_commit_creates_the_table_and_a_redone_commit_is_not_made_twice() {
    let table = table();
    let batch = batch_id("b1");
    let files = table.publish(&batch, &[orders(&[1, 2], false), orders(&[3], false)]);
    let outcome = table.commit(&batch, &files, &[], 100).unwrap();
    assert_eq!(
        outcome,
        DeltaOutcome::Committed {
            table_version: 0,
            schema_changed: true
        }
    );
    assert_eq!(
        action_summary(&table.commit_actions(0)),
        [
            "add batch=b1/part-00000.parquet",
            "add batch=b1/part-00001.parquet",
            "metaData",
            "protocol",
            "txn tributary-test-window 100",
        ]
    );
    let add = table
        .commit_actions(0)
        .into_iter()
        .find_map(|action| action.get("add").cloned());
    let add = add.unwrap();
    assert_eq!(add["partitionValues"]["batch"], "b1");
    assert_eq!(
        serde_json::from_str::<Value>(add["stats"].as_str().unwrap()).unwrap()["numRecords"],
        2
    );
    let metadata = table
        .commit_actions(0)
        .into_iter()
        .find_map(|action| action.get("metaData").cloned());
    assert_eq!(
        metadata.unwrap()["partitionColumns"],
        serde_json::json!(["batch"])
    );

    // A crash after the commit landed and before the caller recorded it: the redo finds it.
    let redone = table.commit(&batch, &files, &[], 100).unwrap();
    assert_eq!(
        redone,
        DeltaOutcome::AlreadyCommitted {
            recorded_version: 100
        }
    );
    assert_eq!(table.log_versions(), 1, "no second commit");
    assert_eq!(
        table.live_files(),
        BTreeSet::from([
            "batch=b1/part-00000.parquet".to_owned(),
            "batch=b1/part-00001.parquet".to_owned()
        ])
    );
}

#[test]
fn a_replacing_commit_adds_and_removes_in_one_commit_grows_the_schema_and_keeps_old_files() {
    let table = table();
    let first = batch_id("b1");
    let first_files = table.publish(&first, &[orders(&[1, 2], false)]);
    table.commit(&first, &first_files, &[], 100).unwrap();
    let other = batch_id("other-window");
    let other_files = table.publish(&other, &[orders(&[9], false)]);
    commit_batch(
        &table.layout,
        None,
        &table.dataset,
        &DeltaCommit {
            batch: &other,
            files: &other_files,
            replaces: &[],
            app_id: "another-window",
            version: 5,
        },
    )
    .unwrap();

    // A re-run of the first window: its new batch has a new column and replaces b1.
    let second = batch_id("b2");
    let second_files = table.publish(&second, &[orders(&[1, 2, 3], true)]);
    let outcome = table
        .commit(&second, &second_files, std::slice::from_ref(&first), 200)
        .unwrap();
    assert_eq!(
        outcome,
        DeltaOutcome::Committed {
            table_version: 2,
            schema_changed: true
        }
    );
    assert_eq!(
        action_summary(&table.commit_actions(2)),
        [
            "add batch=b2/part-00000.parquet",
            "metaData",
            "remove batch=b1/part-00000.parquet",
            "txn tributary-test-window 200",
        ]
    );
    assert_eq!(
        table.live_files(),
        BTreeSet::from([
            "batch=b2/part-00000.parquet".to_owned(),
            "batch=other-window/part-00000.parquet".to_owned()
        ])
    );
    let loaded = table.load();
    let schema = loaded.snapshot().unwrap().schema();
    let names: Vec<&str> = schema.fields().map(|field| field.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "note", "batch"]);
    // Removed, not deleted: readers of version 1 still find the file.
    assert!(table.layout.part_path(&table.dataset, &first, 0).exists());

    // The same data again (no new column): no metaData action.
    let third = batch_id("b3");
    let third_files = table.publish(&third, &[orders(&[4], true)]);
    let outcome = table
        .commit(&third, &third_files, std::slice::from_ref(&second), 300)
        .unwrap();
    assert_eq!(
        outcome,
        DeltaOutcome::Committed {
            table_version: 3,
            schema_changed: false
        }
    );
    assert_eq!(
        action_summary(&table.commit_actions(3)),
        [
            "add batch=b3/part-00000.parquet",
            "remove batch=b2/part-00000.parquet",
            "txn tributary-test-window 300",
        ]
    );
}

#[test]
fn a_version_below_the_recorded_one_is_refused_when_the_batch_is_not_in_the_table() {
    let table = table();
    let first = batch_id("b1");
    let files = table.publish(&first, &[orders(&[1], false)]);
    table.commit(&first, &files, &[], 100).unwrap();
    let second = batch_id("b2");
    let files = table.publish(&second, &[orders(&[2], false)]);
    let err = table
        .commit(&second, &files, std::slice::from_ref(&first), 50)
        .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::DeltaVersionAhead {
                recorded: 100,
                version: 50,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(table.log_versions(), 1);
}

#[test]
fn an_empty_first_batch_makes_no_table_and_an_empty_rerun_removes_the_old_batch() {
    let table = table();
    let empty = batch_id("b0");
    assert_eq!(
        table.commit(&empty, &[], &[], 1).unwrap(),
        DeltaOutcome::Empty
    );
    assert_eq!(table.log_versions(), 0);

    let first = batch_id("b1");
    let files = table.publish(&first, &[orders(&[1], false)]);
    table.commit(&first, &files, &[], 2).unwrap();
    let rerun = batch_id("b2");
    let outcome = table
        .commit(&rerun, &[], std::slice::from_ref(&first), 3)
        .unwrap();
    assert_eq!(
        outcome,
        DeltaOutcome::Committed {
            table_version: 1,
            schema_changed: false
        }
    );
    assert!(table.live_files().is_empty());
}

#[test]
fn the_log_folder_marks_a_delta_table() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = DatasetLayout::new(tmp.path());
    let dataset = DatasetId::try_new("plain").unwrap();
    assert!(!is_delta_table(&layout, &dataset).unwrap());
    mark_delta_table(&layout, &dataset).unwrap();
    assert!(is_delta_table(&layout, &dataset).unwrap());
    assert!(Path::new(&layout.delta_log_dir(&dataset)).is_dir());
}

/// An Azure endpoint on loopback that answers every request 403 and echoes the request line
/// (where a SAS token travels, in the query) in its body, as a misbehaving proxy might.
fn echoing_forbidden_endpoint() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            // Only the signature parameter, as a server that quotes the one it rejected would.
            let signature = request_line
                .split(['?', '&', ' '])
                .find(|part| part.starts_with("sig="))
                .unwrap_or("no signature");
            let body = format!("denied: {} ({signature})", request_line.trim());
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_delta_error_from_an_object_store_never_shows_its_sas_token() {
    const SAS_SIGNATURE: &str = "TOPSECRETSIG123";
    let port = echoing_forbidden_endpoint();
    let options = std::collections::BTreeMap::from([
        (
            "azure_storage_account_name".to_owned(),
            "devstoreaccount1".to_owned(),
        ),
        (
            "azure_storage_sas_key".to_owned(),
            format!("sv=2022-11-02&ss=b&sig={SAS_SIGNATURE}"),
        ),
        (
            "azure_storage_endpoint".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("allow_http".to_owned(), "true".to_owned()),
    ]);
    let root = ObjectRoot::open("az://lake/raw", &options).unwrap();
    let t = table();
    let batch = batch_id("20240101T000000-aaaa");
    let files = t.publish(&batch, &[orders(&[1, 2], false)]);
    let err = commit_batch(
        &t.layout,
        Some(&root),
        &t.dataset,
        &DeltaCommit {
            batch: &batch,
            files: &files,
            replaces: &[],
            app_id: "tributary-test-window",
            version: 1,
        },
    )
    .unwrap_err();
    let shown = format!("{err} / {err:?}");
    assert!(matches!(err, WriteError::Delta { .. }), "{shown}");
    // The store was reached and refused; the message says so without the token.
    assert!(shown.contains("403"), "{shown}");
    assert!(!shown.contains(SAS_SIGNATURE), "{shown}");
}

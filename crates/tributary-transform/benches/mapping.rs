//! Mapping throughput: a 10-mapping set (7 renames, `lower`, `concat`, a date parse) over
//! 1 M Mailchimp-like records held in one Arrow batch, compiled once and applied per
//! iteration. Criterion reports records/s as "elem/s".
//!
//! Run: `cargo bench -p tributary-transform --bench mapping`.

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tributary_transform::mapping::{apply, compile};

const N_RECORDS: usize = 1_000_000;

/// Mailchimp-member-like columns; strings vary per row so no kernel can shortcut them.
fn members(n: usize) -> RecordBatch {
    let mut id = StringBuilder::new();
    let mut email = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut first = StringBuilder::new();
    let mut last = StringBuilder::new();
    let mut phone = StringBuilder::new();
    let mut country = StringBuilder::new();
    let mut rating = Int64Builder::new();
    let mut open_rate = Float64Builder::new();
    let mut changed = StringBuilder::new();
    let statuses = ["Subscribed", "UNSUBSCRIBED", "cleaned", "Pending"];
    let countries = ["GB", "FR", "US", "DE", "JP"];
    for i in 0..n {
        id.append_value(format!("{i:032x}"));
        email.append_value(format!("member{i}@example.com"));
        status.append_value(statuses[i % statuses.len()]);
        first.append_value(format!("First{}", i % 1000));
        last.append_value(format!("Last{}", i % 977));
        if i % 10 == 0 {
            phone.append_null();
        } else {
            phone.append_value(format!("+1 555 {:07}", i % 10_000_000));
        }
        country.append_value(countries[i % countries.len()]);
        rating.append_value((i % 5) as i64 + 1);
        open_rate.append_value((i % 100) as f64 / 100.0);
        changed.append_value(format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            i % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 60,
            (i / 60) % 60
        ));
    }
    let merge_fields = StructArray::from(vec![
        (
            Arc::new(Field::new("FNAME", DataType::Utf8, true)),
            Arc::new(first.finish()) as ArrayRef,
        ),
        (
            Arc::new(Field::new("LNAME", DataType::Utf8, true)),
            Arc::new(last.finish()) as ArrayRef,
        ),
        (
            Arc::new(Field::new("PHONE", DataType::Utf8, true)),
            Arc::new(phone.finish()) as ArrayRef,
        ),
    ]);
    let location = StructArray::from(vec![(
        Arc::new(Field::new("country_code", DataType::Utf8, true)),
        Arc::new(country.finish()) as ArrayRef,
    )]);
    let stats = StructArray::from(vec![(
        Arc::new(Field::new("avg_open_rate", DataType::Float64, true)),
        Arc::new(open_rate.finish()) as ArrayRef,
    )]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(id.finish())),
        ("email_address", Arc::new(email.finish())),
        ("status", Arc::new(status.finish())),
        ("merge_fields", Arc::new(merge_fields)),
        ("location", Arc::new(location)),
        ("stats", Arc::new(stats)),
        ("member_rating", Arc::new(rating.finish())),
        ("last_changed", Arc::new(changed.finish())),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(Fields::from(fields))),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("the generated columns match their schema")
}

/// The ten mappings; the bench also times subsets to show what each kind costs.
fn mappings() -> Vec<serde_json::Value> {
    vec![
        json!({"sourceType": "ATTRIBUTE", "source": "id", "destination": "personID"}),
        json!({"sourceType": "ATTRIBUTE", "source": "email_address", "destination": "personalEmail.address"}),
        json!({"sourceType": "ATTRIBUTE", "source": "merge_fields.FNAME", "destination": "person.name.firstName"}),
        json!({"sourceType": "ATTRIBUTE", "source": "merge_fields.LNAME", "destination": "person.name.lastName"}),
        json!({"sourceType": "ATTRIBUTE", "source": "merge_fields.PHONE", "destination": "mobilePhone.number"}),
        json!({"sourceType": "ATTRIBUTE", "source": "location.country_code", "destination": "homeAddress.countryCode"}),
        json!({"sourceType": "ATTRIBUTE", "source": "member_rating", "destination": "rating"}),
        json!({"sourceType": "EXPRESSION", "source": "lower(status)", "destination": "consents.status"}),
        json!({"sourceType": "EXPRESSION", "source": "concat(merge_fields.FNAME, \" \", merge_fields.LNAME)",
               "destination": "person.name.fullName"}),
        json!({"sourceType": "EXPRESSION", "source": "date(last_changed, \"yyyy-MM-dd'T'HH:mm:ssXXX\")",
               "destination": "lastChanged"}),
    ]
}

fn mapping_set(mappings: &[serde_json::Value]) -> tributary_spec::MappingSet {
    tributary_spec::mapping_set_from_value("bench.json", &json!({ "mappings": mappings }))
        .expect("the bench mapping set is valid")
}

fn bench_mapping(c: &mut Criterion) {
    let batch = members(N_RECORDS);
    let all = mappings();
    let cases: [(&str, Vec<serde_json::Value>); 6] = [
        (
            "10 mappings (7 renames, lower, concat, date) x 1M records",
            all.clone(),
        ),
        ("7 renames only", all[..7].to_vec()),
        ("lower only", all[7..8].to_vec()),
        ("concat only", all[8..9].to_vec()),
        ("date parse only", all[9..10].to_vec()),
        (
            "row-by-row iif (no kernel)",
            vec![
                json!({"sourceType": "EXPRESSION", "source": "iif(member_rating > 3, \"high\", \"low\")",
                        "destination": "tier"}),
            ],
        ),
    ];
    let mut group = c.benchmark_group("mapping");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N_RECORDS as u64));
    for (name, subset) in cases {
        let plan = compile(&mapping_set(&subset), batch.schema().as_ref(), None)
            .expect("the bench mapping set compiles");
        group.bench_function(name, |b| {
            b.iter(|| {
                let mapped = apply(&plan, black_box(&batch)).expect("apply");
                assert_eq!(mapped.batch.num_rows(), N_RECORDS);
                mapped
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_mapping);
criterion_main!(benches);

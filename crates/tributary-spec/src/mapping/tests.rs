//! Mapping sets in both dialects, the stored sourceType aliases, and their problems.

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;
use crate::SpecError;
use crate::document::mapping_set_from_value;

fn check(mapping_set: Value, expect: Expect) {
    let shown = match mapping_set_from_value("m.json", &mapping_set) {
        Ok(set) => {
            let mut text = format!(
                "strict={} allow_null={} schema={:?}\n",
                set.strict, set.allow_null_values, set.output_schema_id
            );
            for mapping in &set.mappings {
                text.push_str(&format!(
                    "{:?} {:?} -> {:?} identity={}\n",
                    mapping.source_type, mapping.source, mapping.destination, mapping.identity
                ));
            }
            text
        }
        Err(SpecError::Invalid { diagnostics, .. }) => diagnostics.to_string(),
        Err(other) => format!("unexpected {other}"),
    };
    expect.assert_eq(&shown);
}

#[test]
fn legacy_dialect() {
    check(
        json!({"version": 0, "xdmSchema": "https://ns.adobe.com/acme/schemas/abc", "xdmVersion": "1.0", "id": null,
        "mappings": [
            {"destinationXdmPath": "person.name.firstName", "sourceAttribute": "merge_fields.FNAME", "identity": false, "identityGroup": null, "namespaceCode": null, "version": 0},
            {"destinationXdmPath": "personalEmail.address", "sourceAttribute": "email_address", "identity": true, "namespaceCode": "Email"}
        ]}),
        expect![[r#"
            strict=false allow_null=false schema=Some("https://ns.adobe.com/acme/schemas/abc")
            Attribute "merge_fields.FNAME" -> "person.name.firstName" identity=false
            Attribute "email_address" -> "personalEmail.address" identity=true
        "#]],
    );
}

#[test]
fn current_dialect_with_every_source_type_and_alias() {
    check(
        json!({"outputSchema": {"schemaRef": {"id": "https://ns.adobe.com/acme/schemas/xyz", "contentType": "application/vnd.adobe.xed-full+json;version=1"}},
        "strictMapping": true, "allowNullValues": "true",
        "mappings": [
            {"sourceType": "ATTRIBUTE", "source": "firstName", "destination": "person.name.firstName", "name": "first"},
            {"sourceType": "expression", "source": "concat(firstName, \" \", lastName)", "destination": "person.name.fullName"},
            {"sourceType": "STATIC", "source": 42, "destination": "meta.version"},
            {"sourceType": "text/x.schema-path", "source": "id", "destination": "_id"},
            {"sourceType": "text/x.aep-xl", "source": "lower(email)", "destination": "email"},
            {"sourceType": "text/plain", "source": "web", "destination": "channel"},
            {"source": "no_type_given", "destination": "defaults.toAttribute"}
        ]}),
        expect![[r#"
            strict=true allow_null=true schema=Some("https://ns.adobe.com/acme/schemas/xyz")
            Attribute "firstName" -> "person.name.firstName" identity=false
            Expression "concat(firstName, \" \", lastName)" -> "person.name.fullName" identity=false
            Static "42" -> "meta.version" identity=false
            Attribute "id" -> "_id" identity=false
            Expression "lower(email)" -> "email" identity=false
            Static "web" -> "channel" identity=false
            Attribute "no_type_given" -> "defaults.toAttribute" identity=false
        "#]],
    );
}

#[test]
fn problems_of_every_mapping_are_reported() {
    let long_expression = format!("concat({})", "a, ".repeat(1400));
    check(
        json!({"mappings": [
            {"sourceType": "LOOKUP", "source": "x", "destination": "a"},
            {"sourceType": "ATTRIBUTE", "destination": "b"},
            {"sourceType": "ATTRIBUTE", "source": "y", "destination": "a"},
            {"sourceType": "EXPRESSION", "source": long_expression, "destination": "c"},
            {"sourceType": "ATTRIBUTE", "source": 5, "destination": ""},
            "not an object"
        ]}),
        expect![[r#"
            m.json: /mappings/0/sourceType: unknown sourceType "LOOKUP"; expected one of ATTRIBUTE, EXPRESSION, STATIC (or text/x.schema-path, text/x.aep-xl, text/plain)
            m.json: /mappings/1/source: missing required field source (or sourceAttribute): expected the source field path, expression or literal, found nothing
            m.json: /mappings/2/destination: destination "a" is already mapped by /mappings/0; each destination takes one mapping
            m.json: /mappings/3/source: expected a calculated field of at most 4096 characters, found 4208
            m.json: /mappings/4/destination: expected the destination path (e.g. person.name.firstName) (a non-empty string), found an empty string
            m.json: /mappings/4/source: expected the source (a string), found the number 5
            m.json: /mappings/5: expected a mapping (an object), found the string "not an object"
        "#]],
    );
    check(
        json!({"mapping": []}),
        expect![[r#"
            m.json: /mappings: missing required field mappings: expected an array of mappings, found nothing
        "#]],
    );
}

#[test]
fn source_type_aliases() {
    let parsed: Vec<Option<MappingSourceType>> = [
        "ATTRIBUTE",
        "Expression",
        "static",
        "text/x.schema-path",
        "TEXT/X.AEP-XL",
        "text/plain",
        "macro",
    ]
    .iter()
    .map(|text| source_type_of(text))
    .collect();
    use MappingSourceType::*;
    assert_eq!(
        parsed,
        [
            Some(Attribute),
            Some(Expression),
            Some(Static),
            Some(Attribute),
            Some(Expression),
            Some(Static),
            None
        ]
    );
}

//! Proves the JSON Schema documents shipped in `schemas/` say what the
//! consumers' parsers enforce: every record the emulator writes is valid
//! under both, and each broken record is refused by both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use tributary_shop::domain::{Emulator, Product, Prompt};

fn validator(file: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft202012::new(&doc).expect("a valid schema")
}

fn agree(v: &jsonschema::Validator, record: &Value, parses: bool) {
    assert_eq!(
        v.is_valid(record),
        parses,
        "schema and parser disagree on {record}"
    );
}

// Proves emulated products are valid and each broken product is refused by the schema and Product::parse alike.
#[test]
fn product_schema_matches_the_parser() {
    let v = validator("product.schema.json");
    let e = Emulator::new(9);
    for i in 0..200 {
        let p = serde_json::to_value(e.product(i, chrono::Utc::now())).unwrap();
        agree(&v, &p, Product::parse(p.to_string().as_bytes()).is_ok());
        assert!(v.is_valid(&p));
    }
    let base = serde_json::to_value(e.product(0, chrono::Utc::now())).unwrap();
    let broken: Vec<(&str, Value)> = vec![
        ("product_id", json!(42)),
        ("product_id", json!("  ")),
        ("name", json!("")),
        ("price", json!({"amount": "10", "currency": "RUB"})),
        ("price", json!({"amount": -1, "currency": "RUB"})),
        ("price", json!({"amount": 1.5, "currency": "RUB"})),
        ("price", json!({"amount": 1, "currency": " "})),
        ("stock", json!({"available": 1})),
        ("tags", json!(["a", 1])),
        ("images", json!([{"url": "u"}])),
        ("specifications", json!({"weight": "1 g"})),
        ("index", json!(7)),
        ("store_id", json!(null)),
    ];
    for (field, bad) in broken {
        let mut p = base.clone();
        p[field] = bad;
        assert!(Product::parse(p.to_string().as_bytes()).is_err(), "{field}");
        agree(&v, &p, false);
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("sku");
    agree(&v, &missing, false);
    let mut extra = base;
    extra["color"] = json!("red");
    agree(
        &v,
        &extra,
        Product::parse(extra.to_string().as_bytes()).is_ok(),
    );
    agree(&v, &json!([1]), false);
}

// Proves emulated prompts are valid and each broken prompt is refused by the schema and Prompt::parse alike.
#[test]
fn prompt_schema_matches_the_parser() {
    let v = validator("prompt.schema.json");
    let e = Emulator::new(4);
    for i in 0..100 {
        let p = serde_json::to_value(e.prompt(i, 10)).unwrap();
        assert!(Prompt::parse(p.to_string().as_bytes()).is_ok());
        agree(&v, &p, true);
    }
    let id = uuid::Uuid::new_v4().to_string();
    for bad in [
        json!({"id": "not-a-uuid", "user_id": "u", "find": "x"}),
        json!({"id": id, "user_id": 42, "find": "x"}),
        json!({"id": id, "user_id": "u", "find": " \t"}),
        json!({"id": id, "find": "x"}),
    ] {
        assert!(Prompt::parse(bad.to_string().as_bytes()).is_err(), "{bad}");
        agree(&v, &bad, false);
    }
}

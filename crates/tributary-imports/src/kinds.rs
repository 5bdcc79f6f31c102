//! The record kinds of a running system: the built-in `company` kind and
//! the kinds declared in configuration by a JSON Schema file (draft
//! 2020-12, through the `jsonschema` crate, no remote `$ref` resolving) and
//! a natural-key pointer (`[[imports.kinds]]`). Records of a schema kind go
//! to the generic `imports_records` table (kind, key, document).

use std::sync::Arc;

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::domain::body::Record;
use crate::domain::rules::{Violation, RULES};
use crate::events::ViolationView;
use crate::settings::{ImportsSettings, SchemaKindSettings};
use crate::store::{RecordError, RecordRow};

/// Name of the built-in kind.
pub const COMPANY: &str = "company";

/// Rule of a record whose natural key is missing or not a string/number.
pub const KEY_RULE: &str = "key.required";

/// One kind declared by a JSON Schema.
pub struct SchemaKind {
    /// Its name (the `{kind}` of the upload path).
    pub name: String,
    /// JSON pointer of the natural key.
    pub key: String,
    /// The schema file, as configured.
    pub file: String,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaKind")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// A kind, resolved.
#[derive(Debug, Clone, Copy)]
pub enum Kind<'a> {
    /// The built-in `company` kind (typed table).
    Company,
    /// A schema kind (generic table).
    Schema(&'a SchemaKind),
}

/// Every kind of this configuration. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct Kinds {
    schema: Vec<SchemaKind>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Kinds {
    /// The built-in kinds only.
    pub fn builtin() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The built-in kinds plus every `[[imports.kinds]]`, their schema files
    /// read and compiled.
    ///
    /// # Errors
    /// Naming the kind and file: a bad name, a key that is not a JSON
    /// pointer, an unreadable file, a document that is not a valid schema.
    pub fn load(settings: &ImportsSettings) -> anyhow::Result<Arc<Self>> {
        let mut schema = Vec::with_capacity(settings.kinds.len());
        for k in &settings.kinds {
            schema.push(Self::compile(k)?);
        }
        for (i, k) in schema.iter().enumerate() {
            if k.name == COMPANY || schema[..i].iter().any(|o| o.name == k.name) {
                bail!("imports.kinds: kind {:?} is declared twice", k.name);
            }
        }
        Ok(Arc::new(Self { schema }))
    }

    fn compile(k: &SchemaKindSettings) -> anyhow::Result<SchemaKind> {
        if !valid_name(&k.name) {
            bail!(
                "imports.kinds: name {:?}: 1 to 64 of a-z, 0-9, '-', '_'",
                k.name
            );
        }
        if !k.key.starts_with('/') {
            bail!(
                "imports.kinds {:?}: key {:?} is not a JSON pointer (e.g. \"/id\")",
                k.name,
                k.key
            );
        }
        let file = k.schema.display().to_string();
        let text = std::fs::read(&k.schema)
            .with_context(|| format!("imports.kinds {:?}: read the schema {file}", k.name))?;
        let doc: Value = serde_json::from_slice(&text).with_context(|| {
            format!("imports.kinds {:?}: the schema {file} is not JSON", k.name)
        })?;
        let validator = jsonschema::draft202012::new(&doc).map_err(|e| {
            anyhow::anyhow!(
                "imports.kinds {:?}: the schema {file} is not a valid draft 2020-12 schema: {e}",
                k.name
            )
        })?;
        Ok(SchemaKind {
            name: k.name.clone(),
            key: k.key.clone(),
            file,
            validator,
        })
    }

    /// The kind `name`, if known.
    pub fn get(&self, name: &str) -> Option<Kind<'_>> {
        if name == COMPANY {
            return Some(Kind::Company);
        }
        self.schema
            .iter()
            .find(|k| k.name == name)
            .map(Kind::Schema)
    }

    /// Every kind name, `company` first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(COMPANY.to_owned())
            .chain(self.schema.iter().map(|k| k.name.clone()))
            .collect()
    }

    /// The kinds with their natural key and rules (for `GET /api/imports/kinds`).
    pub fn views(&self) -> Vec<crate::api::KindView> {
        use crate::api::{KindView, RuleView};
        let rule = |n: &str, d: String| RuleView {
            name: n.to_owned(),
            description: d,
        };
        let mut out = vec![KindView {
            kind: COMPANY.into(),
            natural_key: "/permalink".into(),
            schema: None,
            rules: RULES
                .iter()
                .map(|(n, d)| rule(n, (*d).to_owned()))
                .collect(),
        }];
        out.extend(self.schema.iter().map(|k| KindView {
            kind: k.name.clone(),
            natural_key: k.key.clone(),
            schema: Some(k.file.clone()),
            rules: vec![
                rule(
                    "schema.<keyword>",
                    format!(
                        "the record is valid against {} (draft 2020-12); the rule names the failing keyword, e.g. schema.required",
                        k.file
                    ),
                ),
                rule(
                    KEY_RULE,
                    format!("`{}` is a non-blank string or a number", k.key),
                ),
            ],
        }));
        out
    }
}

fn view(v: &Violation, rule: String) -> ViolationView {
    ViolationView {
        pointer: v.pointer.clone(),
        rule,
        value: v.value.clone(),
        message: v.message.clone(),
    }
}

/// The natural key at `pointer`: a non-blank string, or a number as written.
fn natural_key(doc: &Value, pointer: &str) -> Option<String> {
    match doc.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Validates `records` of a schema kind (pure CPU): the rows to load (the
/// last record of a key wins within the batch), the rejected records, and
/// how many were valid.
pub fn judge_schema(
    kind: &SchemaKind,
    request_id: &str,
    records: Vec<Record>,
) -> (Vec<RecordRow>, Vec<RecordError>, u64) {
    let mut rows: Vec<RecordRow> = Vec::with_capacity(records.len());
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut errors = Vec::new();
    let mut valid = 0u64;
    for r in records {
        let mut views = Vec::new();
        match r.parse() {
            Err(e) => views.push(view(
                &Violation::new(
                    "",
                    "schema",
                    &Value::Null,
                    format!("the record does not decode: {}", e.reason),
                ),
                "type.document".into(),
            )),
            Ok(doc) => {
                for e in kind.validator.iter_errors(&doc) {
                    let keyword = e
                        .schema_path()
                        .as_str()
                        .rsplit('/')
                        .next()
                        .unwrap_or("schema")
                        .to_owned();
                    let pointer = e.instance_path().to_string();
                    let v = Violation::new(&pointer, "schema", e.instance(), e.to_string());
                    views.push(view(&v, format!("schema.{keyword}")));
                }
                let key = natural_key(&doc, &kind.key);
                if key.is_none() {
                    let got = doc.pointer(&kind.key).cloned().unwrap_or(Value::Null);
                    let v = Violation::new(
                        &kind.key,
                        KEY_RULE,
                        &got,
                        format!(
                            "the natural key {} is missing, blank or not a string/number",
                            kind.key
                        ),
                    );
                    views.push(view(&v, KEY_RULE.into()));
                }
                if let (true, Some(key)) = (views.is_empty(), key) {
                    valid += 1;
                    let row = RecordRow::new(&kind.name, key, &doc, request_id, r.index as u64);
                    match at.get(&row.key) {
                        Some(&i) => rows[i] = row,
                        None => {
                            at.insert(row.key.clone(), rows.len());
                            rows.push(row);
                        }
                    }
                    continue;
                }
            }
        }
        let first = views[0].clone();
        errors.push(RecordError {
            record: r.index as u64,
            line: r.line as u64,
            pointer: first.pointer,
            rule: first.rule,
            value: first.value,
            message: first.message,
            violations: views,
        });
    }
    (rows, errors, valid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::body::split;

    fn kind(schema: &Value) -> SchemaKind {
        let dir = std::env::temp_dir().join(format!("kinds-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&file, schema.to_string()).unwrap();
        Kinds::compile(&SchemaKindSettings {
            name: "product".into(),
            schema: file,
            key: "/sku".into(),
        })
        .unwrap()
    }

    // Proves schema violations are named by keyword with the instance
    // pointer, a missing key is `key.required`, and the last record of a
    // key wins within a batch.
    #[test]
    fn schema_kind_judges_records() {
        let k = kind(&serde_json::json!({
            "type": "object",
            "required": ["sku", "price"],
            "properties": {"price": {"type": "number", "minimum": 0}}
        }));
        let body = br#"{"sku":"a","price":1}
{"sku":"b","price":-1}
{"price":2}
{"sku":"a","price":3}
{"sku":7,"price":4}"#;
        let (_, records) = split(body).unwrap();
        let (rows, errors, valid) = judge_schema(&k, "r", records);
        assert_eq!(valid, 3);
        let keys: Vec<(&str, u64)> = rows.iter().map(|r| (r.key.as_str(), r.record)).collect();
        assert_eq!(keys, [("a", 3), ("7", 4)]);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            (errors[0].rule.as_str(), errors[0].pointer.as_str()),
            ("schema.minimum", "/price")
        );
        assert_eq!(errors[1].rule, "schema.required");
        assert!(errors[1].violations.iter().any(|v| v.rule == KEY_RULE));
    }

    // Proves bad declarations are refused naming what is wrong.
    #[test]
    fn bad_declarations_are_refused() {
        let bad = |name: &str, key: &str, schema: &std::path::Path| {
            Kinds::compile(&SchemaKindSettings {
                name: name.into(),
                schema: schema.into(),
                key: key.into(),
            })
            .unwrap_err()
            .to_string()
        };
        let missing = std::path::Path::new("/nonexistent/schema.json");
        assert!(bad("Bad Name", "/id", missing).contains("name"));
        assert!(bad("ok", "id", missing).contains("JSON pointer"));
        assert!(bad("ok", "/id", missing).contains("read the schema"));
        let dir = std::env::temp_dir().join(format!("kinds-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.json");
        std::fs::write(&f, r#"{"type": 12}"#).unwrap();
        assert!(bad("ok", "/id", &f).contains("not a valid draft 2020-12 schema"));
    }
}

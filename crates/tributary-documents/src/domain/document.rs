//! The document and its wire format (one JSON object per bus message).

use serde::Serialize;
use serde_json::{Map, Value};

/// Largest `PubDate`, `FetchTime` or `FirstFetchTime` accepted: `i64::MAX`,
/// so every value fits a PostgreSQL `BIGINT` / SQLite `INTEGER` and keeps
/// its order there.
pub const MAX_STORABLE: u64 = i64::MAX as u64;

/// One version of a document, or the merged state of all versions of a url.
///
/// On the wire the fields are named `Url, PubDate, FetchTime, Text,
/// FirstFetchTime` (the seed's names, exact case). Serialization writes all
/// five; reading goes through [`parse_update`], which ignores unknown fields
/// (no `deny_unknown_fields`): the seed's Go reader ignored them too, and an
/// upstream that adds a field must not turn every later update into a
/// dead letter.
///
/// A document stands for two versions: the first known one
/// (`first_fetch_time`, `pub_date`) and the latest one (`fetch_time`,
/// `text`); see [`mod@crate::domain::merge`]. `first_fetch_time == 0` means
/// unknown, read as `fetch_time`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Document {
    /// The key: all versions of one url merge into one document.
    pub url: String,
    /// Publication date, from the earliest fetched version.
    pub pub_date: u64,
    /// When this version was fetched; in a merged state, the latest fetch.
    pub fetch_time: u64,
    /// Content, from the latest fetched version.
    pub text: String,
    /// When the document was first fetched; 0 on input means unknown.
    pub first_fetch_time: u64,
}

impl Document {
    /// The first fetch time this document vouches for: `first_fetch_time`
    /// when it is known (> 0) and not after `fetch_time`, else `fetch_time`.
    pub fn first_known_fetch_time(&self) -> u64 {
        if self.first_fetch_time == 0 || self.first_fetch_time > self.fetch_time {
            self.fetch_time
        } else {
            self.first_fetch_time
        }
    }

    /// The same document with `first_fetch_time` filled in
    /// ([`Self::first_known_fetch_time`]); what [`parse_update`] returns and
    /// what a store should write.
    pub fn normalized(mut self) -> Self {
        self.first_fetch_time = self.first_known_fetch_time();
        self
    }
}

/// Why an update can never be applied. Every variant is permanent: retrying
/// the same bytes gives the same error, so the consumer dead-letters the
/// message and moves on. Field errors name the wire field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUpdate {
    /// The bytes are not JSON at all.
    #[error("update is not valid JSON: {0}")]
    Json(String),
    /// Valid JSON, but not an object.
    #[error("update is not a JSON object")]
    NotAnObject,
    /// A required field is absent or `null`.
    #[error("field `{field}` is missing")]
    Missing {
        /// Wire name of the field.
        field: &'static str,
    },
    /// A field holds the wrong JSON type (or a negative or fractional number).
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// Wire name of the field.
        field: &'static str,
        /// What it must be, e.g. "a string".
        expected: &'static str,
    },
    /// `Url` is empty or only whitespace.
    #[error("field `Url` is empty or only whitespace")]
    BlankUrl,
    /// A number above [`MAX_STORABLE`].
    #[error("field `{field}` is {value}, above the storable maximum {max}", max = MAX_STORABLE)]
    TooLarge {
        /// Wire name of the field.
        field: &'static str,
        /// The value sent.
        value: u64,
    },
    /// A string with a NUL character (PostgreSQL `text` cannot store it).
    #[error("field `{field}` contains a NUL character, which cannot be stored")]
    Nul {
        /// Wire name of the field.
        field: &'static str,
    },
    /// `FirstFetchTime` is known but later than `FetchTime`.
    #[error("field `FirstFetchTime` ({first}) is after `FetchTime` ({fetch})")]
    FirstAfterFetch {
        /// The `FirstFetchTime` sent.
        first: u64,
        /// The `FetchTime` sent.
        fetch: u64,
    },
}

impl InvalidUpdate {
    /// Wire name of the offending field, if the error is about one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Json(_) | Self::NotAnObject => None,
            Self::Missing { field }
            | Self::WrongType { field, .. }
            | Self::TooLarge { field, .. }
            | Self::Nul { field } => Some(field),
            Self::BlankUrl => Some("Url"),
            Self::FirstAfterFetch { .. } => Some("FirstFetchTime"),
        }
    }
}

/// Parses one update (a message value) into a [`normalized`] document.
///
/// `Url` (a string with a non-whitespace character, kept as sent) and
/// `FetchTime` are required; `PubDate` (default 0), `Text` (default "") and
/// `FirstFetchTime` (default 0, meaning unknown, filled in with `FetchTime`)
/// are optional. `null` counts as absent. Numbers must be integers in
/// `0..=`[`MAX_STORABLE`]; strings must not contain NUL. Unknown fields are
/// ignored.
///
/// [`normalized`]: Document::normalized
pub fn parse_update(bytes: &[u8]) -> Result<Document, InvalidUpdate> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| InvalidUpdate::Json(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(InvalidUpdate::NotAnObject);
    };
    let url = string_field(&map, "Url")?.ok_or(InvalidUpdate::Missing { field: "Url" })?;
    if url.trim().is_empty() {
        return Err(InvalidUpdate::BlankUrl);
    }
    let fetch_time =
        u64_field(&map, "FetchTime")?.ok_or(InvalidUpdate::Missing { field: "FetchTime" })?;
    let first_fetch_time = u64_field(&map, "FirstFetchTime")?.unwrap_or(0);
    if first_fetch_time > fetch_time {
        return Err(InvalidUpdate::FirstAfterFetch {
            first: first_fetch_time,
            fetch: fetch_time,
        });
    }
    let doc = Document {
        url,
        pub_date: u64_field(&map, "PubDate")?.unwrap_or(0),
        fetch_time,
        text: string_field(&map, "Text")?.unwrap_or_default(),
        first_fetch_time,
    };
    Ok(doc.normalized())
}

fn present<'a>(map: &'a Map<String, Value>, field: &'static str) -> Option<&'a Value> {
    map.get(field).filter(|v| !v.is_null())
}

fn string_field(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, InvalidUpdate> {
    let Some(v) = present(map, field) else {
        return Ok(None);
    };
    let s = v.as_str().ok_or(InvalidUpdate::WrongType {
        field,
        expected: "a string",
    })?;
    if s.contains('\0') {
        return Err(InvalidUpdate::Nul { field });
    }
    Ok(Some(s.to_owned()))
}

fn u64_field(map: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, InvalidUpdate> {
    let Some(v) = present(map, field) else {
        return Ok(None);
    };
    let n = v.as_u64().ok_or(InvalidUpdate::WrongType {
        field,
        expected: "a non-negative integer",
    })?;
    if n > MAX_STORABLE {
        return Err(InvalidUpdate::TooLarge { field, value: n });
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> InvalidUpdate {
        parse_update(json.as_bytes()).expect_err(json)
    }

    #[test]
    fn seed_example_shape() {
        // Proves a seed-shaped update (no FirstFetchTime) parses, FirstFetchTime = FetchTime.
        let json = r#"{"Url":"https://example.com/news/1","PubDate":1717000000,
                       "FetchTime":1717003600,"Text":"Hello"}"#;
        let doc = parse_update(json.as_bytes()).expect("valid update");
        assert_eq!(
            doc,
            Document {
                url: "https://example.com/news/1".into(),
                pub_date: 1_717_000_000,
                fetch_time: 1_717_003_600,
                text: "Hello".into(),
                first_fetch_time: 1_717_003_600,
            }
        );
    }

    #[test]
    fn wire_names_round_trip() {
        // Proves the wire uses exactly the seed's five field names and parses back unchanged.
        let doc = Document {
            url: "u".into(),
            pub_date: 1,
            fetch_time: 3,
            text: "t".into(),
            first_fetch_time: 2,
        };
        let bytes = serde_json::to_vec(&doc).expect("serializes");
        let value: Value = serde_json::from_slice(&bytes).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["FetchTime", "FirstFetchTime", "PubDate", "Text", "Url"]
        );
        assert_eq!(parse_update(&bytes), Ok(doc));
    }

    #[test]
    fn optional_fields_and_unknown_fields() {
        // Proves optional fields may be absent/null, FirstFetchTime 0 is unknown, extras ignored.
        let doc = parse_update(
            br#"{"Url":"u","FetchTime":5,"Text":null,"FirstFetchTime":0,"Extra":[1]}"#,
        )
        .expect("valid update");
        assert_eq!(
            (doc.pub_date, doc.text.as_str(), doc.first_fetch_time),
            (0, "", 5)
        );
    }

    #[test]
    fn errors_name_the_field() {
        // Proves each invalid update is rejected with a message naming the offending field.
        let cases = [
            (r#"{"FetchTime":1}"#, "Url"),
            (r#"{"Url":null,"FetchTime":1}"#, "Url"),
            (r#"{"Url":"","FetchTime":1}"#, "Url"),
            (r#"{"Url":" \t\n","FetchTime":1}"#, "Url"),
            (r#"{"Url":7,"FetchTime":1}"#, "Url"),
            (r#"{"Url":"u"}"#, "FetchTime"),
            (r#"{"Url":"u","FetchTime":"1"}"#, "FetchTime"),
            (r#"{"Url":"u","FetchTime":-1}"#, "FetchTime"),
            (r#"{"Url":"u","FetchTime":1.5}"#, "FetchTime"),
            (
                r#"{"Url":"u","FetchTime":9223372036854775808}"#,
                "FetchTime",
            ),
            (r#"{"Url":"u","FetchTime":1,"PubDate":true}"#, "PubDate"),
            (r#"{"Url":"u","FetchTime":1,"Text":5}"#, "Text"),
            (r#"{"Url":"u","FetchTime":1,"Text":"a\u0000b"}"#, "Text"),
            (
                r#"{"Url":"u","FetchTime":1,"FirstFetchTime":"x"}"#,
                "FirstFetchTime",
            ),
            (
                r#"{"Url":"u","FetchTime":1,"FirstFetchTime":2}"#,
                "FirstFetchTime",
            ),
        ];
        for (json, field) in cases {
            let e = err(json);
            assert_eq!(e.field(), Some(field), "{json}");
            assert!(e.to_string().contains(&format!("`{field}`")), "{json}: {e}");
        }
    }

    #[test]
    fn not_json_or_not_object() {
        // Proves unparseable bytes and non-object JSON are permanent errors with a clear message.
        assert!(err("{\"Url\":")
            .to_string()
            .starts_with("update is not valid JSON"));
        assert_eq!(err("[1,2]"), InvalidUpdate::NotAnObject);
    }
}

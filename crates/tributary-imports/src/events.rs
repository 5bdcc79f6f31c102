//! The import events, as JSON on the bus. Each carries `type` (its name):
//!
//! | type | topic | key | when |
//! |---|---|---|---|
//! | `FileExtractSuccess` | `processedFile` | upload name | an upload is stored (same transaction as its row) |
//! | `FileExtractError` | `importEvents` | upload name | an upload body is refused (syntax, size) |
//! | `ValidationError` | `importEvents` | request id | one bad record (same transaction as its batch) |
//! | `ImportCompleted` | `importEvents` | request id | an upload is processed (same transaction as its final state) |

use serde::{Deserialize, Serialize};

/// `FileExtractSuccess`: an upload is stored and waits for the processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileExtractSuccess {
    /// The upload.
    pub request_id: String,
    /// Record kind, e.g. `company`.
    pub kind: String,
    /// The name given in the upload path.
    pub name: String,
    /// Where the decoded body is: the object store URL and key.
    pub object: String,
    /// The object key relative to the imports prefix (what the processor reads).
    pub key: String,
    /// Decoded body size, bytes.
    pub size: u64,
    /// SHA-256 of the decoded body, hex.
    pub checksum: String,
    /// Records in the body.
    pub records: u64,
}

/// `FileExtractError`: an upload body was refused and nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileExtractError {
    /// The upload.
    pub request_id: String,
    /// Record kind.
    pub kind: String,
    /// The name given in the upload path.
    pub name: String,
    /// 1-based line of the problem (0 when not about a position).
    pub line: u64,
    /// 1-based column, in characters (0 when not about a position).
    pub column: u64,
    /// What was wrong.
    pub reason: String,
}

/// `ValidationError`: one record broke one or more rules (one event per
/// record, every violation listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValidationError {
    /// The upload.
    pub request_id: String,
    /// 0-based index of the record in the body.
    pub record: u64,
    /// 1-based line of the record's opening brace.
    pub line: u64,
    /// JSON pointer of the first broken field (empty: the whole record).
    pub pointer: String,
    /// Name of the first broken rule (see `GET /api/imports/kinds`).
    pub rule: String,
    /// The offending value, truncated to 100 characters.
    pub value: String,
    /// Every violation of the record.
    pub violations: Vec<ViolationView>,
}

/// One broken rule of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ViolationView {
    /// JSON pointer of the field.
    pub pointer: String,
    /// Rule name.
    pub rule: String,
    /// The offending value, truncated.
    pub value: String,
    /// What is wrong, for people.
    pub message: String,
}

/// `ImportCompleted`: an upload was processed to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportCompleted {
    /// The upload.
    pub request_id: String,
    /// Record kind.
    pub kind: String,
    /// The upload name.
    pub name: String,
    /// `completed` or `failed`.
    pub state: String,
    /// Records in the body.
    pub records: u64,
    /// Records loaded (inserted or updated).
    pub loaded: u64,
    /// Records rejected by validation.
    pub rejected: u64,
    /// From the processor's start on the upload to its end, ms.
    pub duration_ms: u64,
    /// Why the upload failed, when it did.
    pub error: Option<String>,
}

/// Event names (the outbox kind and the `type` field).
pub mod kind {
    /// See [`super::FileExtractSuccess`].
    pub const FILE_EXTRACT_SUCCESS: &str = "FileExtractSuccess";
    /// See [`super::FileExtractError`].
    pub const FILE_EXTRACT_ERROR: &str = "FileExtractError";
    /// See [`super::ValidationError`].
    pub const VALIDATION_ERROR: &str = "ValidationError";
    /// See [`super::ImportCompleted`].
    pub const IMPORT_COMPLETED: &str = "ImportCompleted";
}

/// The JSON of `event` with `"type": name` added in front.
pub fn to_json<T: Serialize>(name: &str, event: &T) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("type".into(), serde_json::Value::String(name.into()));
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) {
        map.extend(fields);
    }
    serde_json::to_vec(&serde_json::Value::Object(map)).unwrap_or_default()
}

/// Parses a `FileExtractSuccess` record value; the error says why not.
pub fn parse_file_event(value: &[u8]) -> Result<FileExtractSuccess, String> {
    let v: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("type").and_then(|t| t.as_str()) {
        Some(kind::FILE_EXTRACT_SUCCESS) => {}
        Some(other) => return Err(format!("event type {other:?} is not FileExtractSuccess")),
        None => return Err("no string `type`".into()),
    }
    let event: FileExtractSuccess =
        serde_json::from_value(v).map_err(|e| format!("bad FileExtractSuccess: {e}"))?;
    if event.request_id.trim().is_empty() || event.key.trim().is_empty() {
        return Err("blank request_id or key".into());
    }
    Ok(event)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Proves the file event round-trips with its `type`, and that other
    // shapes are refused with a reason.
    #[test]
    fn file_event_round_trip_and_refusals() {
        let e = FileExtractSuccess {
            request_id: "r1".into(),
            kind: "company".into(),
            name: "n".into(),
            object: "file://x/files/abc".into(),
            key: "files/abc".into(),
            size: 3,
            checksum: "abc".into(),
            records: 1,
        };
        let bytes = to_json(kind::FILE_EXTRACT_SUCCESS, &e);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "FileExtractSuccess");
        assert_eq!(parse_file_event(&bytes).unwrap(), e);
        assert!(parse_file_event(b"nope").unwrap_err().contains("not JSON"));
        let other = to_json(kind::IMPORT_COMPLETED, &e);
        assert!(parse_file_event(&other)
            .unwrap_err()
            .contains("not FileExtractSuccess"));
        assert!(parse_file_event(br#"{"type":"FileExtractSuccess"}"#)
            .unwrap_err()
            .contains("bad FileExtractSuccess"));
    }
}

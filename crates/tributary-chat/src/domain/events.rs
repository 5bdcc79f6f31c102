//! Payloads on the bus (JSON).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Topic of per-user count deltas.
pub const USER_COUNTER_TOPIC: &str = "user-message-counter";
/// Topic of shipped log records.
pub const AUDIT_TOPIC: &str = "audit-create-log";

/// A change of one sender's message count, derived from rows actually
/// inserted or deleted in one committed transaction. Key on the bus: `user`.
///
/// `event_id` is unique per (transaction, user) and survives re-publishing
/// (it is stored in the outbox), so a consumer applies each event once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCountEvent {
    pub event_id: String,
    pub user: String,
    /// Latest display name seen for the user, if any.
    #[serde(default)]
    pub name: Option<String>,
    pub delta: i64,
}

/// One log record. Key on the bus: `service`. `id` makes storing idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub service: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    pub message: String,
    pub created: DateTime<Utc>,
    /// Full tracing target (module path).
    #[serde(default)]
    pub target: String,
    /// The event's other fields, as JSON object text.
    #[serde(default)]
    pub fields: String,
}

/// Severity rank of a level name (case-insensitive): error 4 .. trace 0.
pub fn level_rank(level: &str) -> Option<i32> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Some(4),
        "warn" | "warning" => Some(3),
        "info" => Some(2),
        "debug" => Some(1),
        "trace" => Some(0),
        _ => None,
    }
}

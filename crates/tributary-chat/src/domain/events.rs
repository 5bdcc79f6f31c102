//! Payloads on the bus (JSON).

use serde::{Deserialize, Serialize};

/// Topic of per-user count deltas.
pub const USER_COUNTER_TOPIC: &str = "user-message-counter";
/// Topic of shipped log records (the platform's audit topic).
pub use tributary_runtime::audit::AUDIT_TOPIC;

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

pub use tributary_runtime::audit::{level_rank, AuditEvent};

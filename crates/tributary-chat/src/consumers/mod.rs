//! Bus consumers of the chat system, run by the bus runner (at-least-once):
//! the user counter and the audit store. Both are idempotent.

mod audit;
mod user_counter;

pub use audit::AuditHandler;
pub use user_counter::{
    prune_applied_before, prune_applied_events, run_pruning, UserCounterHandler, APPLIED_IDS_PRUNED,
};

/// Consumer group of the user counter.
pub const USER_COUNTER_GROUP: &str = "chat-user-counter";
/// Consumer group of the audit store.
pub const AUDIT_GROUP: &str = "chat-audit";

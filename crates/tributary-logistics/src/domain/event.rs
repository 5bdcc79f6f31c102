//! Outbox events: what happened to a package, as stored and as published.

use chrono::{DateTime, Utc};

use super::PackageId;

/// What happened. The numbers are the protobuf enum values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A package was created.
    Created = 0,
    /// A package was changed.
    Updated = 1,
    /// A package was removed (payload: its last state).
    Removed = 2,
}

impl EventType {
    /// The value stored in `package_event.event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "Created",
            EventType::Updated => "Updated",
            EventType::Removed => "Removed",
        }
    }

    /// Parses the stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Created" => Some(EventType::Created),
            "Updated" => Some(EventType::Updated),
            "Removed" => Some(EventType::Removed),
            _ => None,
        }
    }
}

/// One row of the outbox as a relay sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Event id; increases per package in commit order.
    pub id: i64,
    /// The package.
    pub package_id: PackageId,
    /// What happened.
    pub event_type: EventType,
    /// The package state as JSON.
    pub payload: String,
    /// Commit time (database clock).
    pub created: DateTime<Utc>,
    /// Failed send rounds so far.
    pub attempts: i32,
}

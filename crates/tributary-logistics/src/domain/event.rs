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
    /// The value stored in shared outbox `kind` column.
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

impl OutboxEvent {
    /// Decodes a row of the shared outbox written by this crate: key = the
    /// package id in decimal, kind = the event type, payload = the package
    /// state as JSON.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] naming what does not decode.
    pub fn from_outbox(raw: &tributary_runtime::outbox::OutboxEvent) -> crate::Result<Self> {
        let corrupt =
            |what: &str| crate::Error::Corrupt(format!("outbox event {}: {what}", raw.id));
        let id: i64 = std::str::from_utf8(&raw.key)
            .ok()
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| corrupt("key is not a package id"))?;
        Ok(OutboxEvent {
            id: raw.id,
            package_id: PackageId::from_db(id),
            event_type: EventType::parse(&raw.kind)
                .ok_or_else(|| corrupt(&format!("event type {:?}", raw.kind)))?,
            payload: String::from_utf8(raw.payload.clone())
                .map_err(|_| corrupt("payload is not UTF-8"))?,
            created: raw.created,
            attempts: raw.attempts,
        })
    }
}

//! Pure types of the chat archive: no I/O here.

pub mod backup_schema;
pub(crate) mod message;

pub use message::{normalize_from_id, Link, Message, MessageDate, MessageKind};

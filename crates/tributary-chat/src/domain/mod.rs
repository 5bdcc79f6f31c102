//! Pure types of the chat archive: no I/O here.

pub mod backup_schema;
pub mod events;
pub mod filter;
pub mod keys;
pub(crate) mod message;

pub use filter::{AuditFilter, MessageFilter, SearchRequest, Sort, SortField};
pub use keys::{chat_key, created_of, user_of};
pub use message::{normalize_from_id, Link, Message, MessageDate, MessageKind};

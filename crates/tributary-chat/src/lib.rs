//! Chat archive: turns Telegram Desktop exports (and our own CSV and
//! Parquet backups) into a stream of [`Message`]s in bounded memory.
//!
//! - [`domain`] holds the pure types: [`Message`], [`MessageDate`], the CSV
//!   backup column layout ([`domain::backup_schema`]).
//! - [`parse`] reads files: JSON (`result.json`, single chat or full account,
//!   streamed message by message), HTML (`messagesN.html`, streamed token by
//!   token), CSV and Parquet backups ([`parse::parquet`] also writes
//!   them), `.zip` archives, and whole directory trees.
//!
//! - [`store`] keeps messages, counts and audit records (PostgreSQL or SQLite),
//!   [`service`] imports, searches, deletes, backs up and restores,
//!   [`consumers`] maintain per-user counts and the audit log from the bus
//!   (every process ships its log records there through
//!   `tributary_runtime::audit`), [`api`] serves REST with an OpenAPI
//!   document and gRPC ([`proto`]), [`cli`] is `tributary chat ...`,
//!   [`app`] has the parts each service runs, and [`system()`] is the
//!   system's contract: its settings, services, CLI, topics and migrations.
//!
//! Entry point: [`parse_path`] walks a file, directory or zip and hands every
//! message to a callback; a broken file is reported as a
//! [`ParseEvent::FileError`] and the walk goes on.

// The hand-written OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod cli;
pub mod consumers;
pub mod domain;
mod error;
pub mod parse;
pub mod proto;
pub mod service;
mod settings;
pub mod store;
mod system;

pub use system::system;

pub use domain::{Link, Message, MessageDate, MessageKind};
pub use error::{Error, Position, Result};
pub use parse::{parse_path, FileError, FileKind, ParseEvent, Summary};
pub use service::ChatService;
pub use settings::{ChatSettings, UserCounterSettings};

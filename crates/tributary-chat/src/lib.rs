//! Chat archive: turns Telegram Desktop exports (and our own CSV backups)
//! into a stream of [`Message`]s in bounded memory.
//!
//! - [`domain`] holds the pure types: [`Message`], [`MessageDate`], the CSV
//!   backup column layout ([`domain::backup_schema`]).
//! - [`parse`] reads files: JSON (`result.json`, single chat or full account,
//!   streamed message by message), HTML (`messagesN.html`, streamed token by
//!   token), CSV backups, `.zip` archives, and whole directory trees.
//!
//! Entry point: [`parse_path`] walks a file, directory or zip and hands every
//! message to a callback; a broken file is reported as a
//! [`ParseEvent::FileError`] and the walk goes on.

pub mod domain;
mod error;
pub mod parse;

pub use domain::{Link, Message, MessageDate, MessageKind};
pub use error::{Error, Position, Result};
pub use parse::{parse_path, FileError, FileKind, ParseEvent, Summary};

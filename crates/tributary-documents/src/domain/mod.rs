//! Pure types and rules: [`document`] (the wire format and its parser),
//! [`mod@merge`] (the merge rule), [`generate`] (synthetic update streams).

pub mod document;
pub mod generate;
pub mod merge;

pub use document::{parse_update, Document, InvalidUpdate, MAX_STORABLE};
pub use generate::{generate_updates, GenParams};
pub use merge::{apply, merge, reference_merge, EmitPolicy, Outcome};

/// The crate's error type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An update that can never be applied (dead-letter it, do not retry).
    #[error(transparent)]
    InvalidUpdate(#[from] InvalidUpdate),
    /// An emit policy name other than `changed` or `always`.
    #[error("unknown emit policy {0:?} (expected \"changed\" or \"always\")")]
    UnknownEmitPolicy(String),
    /// Generator parameters out of range.
    #[error("invalid generator parameters: {0}")]
    InvalidParams(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

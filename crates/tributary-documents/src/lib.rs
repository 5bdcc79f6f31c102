//! Document updates: the pure domain of the document-update executor
//! (`tributary docs ...`), no I/O.
//!
//! Updates of one url arrive duplicated and out of order; this crate says
//! what they mean and how they combine:
//!
//! - [`parse_update`] turns one message value (JSON with the seed's field
//!   names `Url, PubDate, FetchTime, Text, FirstFetchTime`) into a
//!   [`Document`], or a permanent [`InvalidUpdate`] naming the field;
//! - [`merge()`] is the merge rule, a semilattice join (commutative,
//!   associative, idempotent), so any order and any redelivery of the same
//!   updates gives the same document; [`apply`] says whether an update
//!   changed the stored state, and [`EmitPolicy`] whether to emit it;
//!   [`mod@domain::merge`] also holds the equivalent SQL upsert;
//! - [`reference_merge`] folds a whole stream, to check end-to-end runs;
//! - [`generate_updates`] builds a deterministic update stream from a seed
//!   (for `tributary docs produce`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod domain;

pub use domain::{
    apply, generate_updates, merge, parse_update, reference_merge, Document, EmitPolicy, Error,
    GenParams, InvalidUpdate, Outcome, Result,
};

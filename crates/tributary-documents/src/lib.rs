//! Documents (`tributary docs ...`): the document-update executor.
//!
//! Updates of one url arrive duplicated and out of order on
//! `doc-updates-incoming`; the executor merges them into one document per
//! url (a semilattice join, so order and redelivery do not matter), keeps
//! the state in the `documents` table with a cache in front, and emits the
//! documents whose merged state changed to `doc-updates-outgoing` through
//! the shared transactional outbox.
//!
//! | module | what |
//! |---|---|
//! | [`domain`] | pure: wire format and parser, the merge rule (and its SQL form), generator |
//! | [`store`] | the `documents` table: merging upsert, reads, the docs outbox |
//! | [`pipeline`] | `docs-executor`: batches, prior states, one transaction per batch, offsets |
//! | [`api`] | `docs-api`: REST (documents, NDJSON ingest, stats) |
//! | [`cli`] | `tributary docs produce/send/get/list/stats` |
//! | [`settings`] | the `[docs]` section |
//! | [`system`] | the contract: [`system()`] |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod domain;
pub mod metrics;
pub mod pipeline;
pub mod settings;
pub mod store;
pub mod system;

pub use domain::{
    apply, generate_updates, merge, parse_update, reference_merge, Document, EmitPolicy, Error,
    GenParams, InvalidUpdate, Outcome, Result,
};
pub use system::system;

//! Storage ports of Tributary: the SQL database, the object store and the
//! cache. Each port is one handle type whose adapter is picked by the scheme
//! of its URL, so nothing in a service knows which backend it runs on:
//!
//! | port | production | embedded default |
//! |---|---|---|
//! | [`Database`] | `postgres://` / `postgresql://` | `sqlite://path` (or `sqlite::memory:` in tests) |
//! | [`Objects`] | `s3://bucket/prefix` | `file://DIR` |
//! | [`Cache`] | `redis://` | `memory://` |
//!
//! Every handle is cheap to clone (one pool / client per process, shared) and
//! implements [`tributary_platform::health::HealthCheck`] so `/readyz` can ask
//! the real dependency whether it answers.
//!
//! Failures are reported as [`Error`]; a URL in an error message never shows
//! its password.
#![deny(missing_docs)]

mod cache;
mod error;
mod migrate;
mod objects;
mod sql;
pub mod stmt;
mod tls;

pub use cache::{Cache, CacheConfig, CacheKind};
pub use error::{Error, Result};
pub use migrate::{MigrationReport, Migrations};
pub use objects::{ObjectInfo, ObjectWriter, Objects, ObjectsConfig, DEFAULT_PART_SIZE};
pub use sql::{BeginWrite, Database, DatabaseKind, SqlConfig};
pub use tls::install_crypto_provider;

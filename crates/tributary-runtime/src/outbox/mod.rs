//! The one transactional outbox of every system.
//!
//! A system writes its events into `tributary_outbox` in the same
//! transaction as the change they describe ([`enqueue_pg`],
//! [`enqueue_sqlite`]), under its namespace. Its relay service runs a
//! [`Relay`] over an [`OutboxStore`] of that namespace: consumers claim
//! batches under a lease (heartbeat-renewed; a dead relay's events are
//! taken over when its lease expires), producers send them (per key in
//! order, keys concurrently) through the system's encoder, a cleaner
//! deletes what the bus acknowledged and releases failures with backoff.
//! Shutdown drains. See [`relay`] for the guarantees.

mod config;
pub mod relay;
mod store;

pub use config::RelayConfig;
pub use relay::{plain, Encoder, Relay, RelayHealth};
pub use store::{
    enqueue_pg, enqueue_sqlite, NewEvent, OutboxConnection, OutboxError, OutboxEvent, OutboxStore,
    Release, MIGRATIONS,
};

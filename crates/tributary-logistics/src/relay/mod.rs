//! The logistics relay: the shared outbox relay
//! ([`tributary_runtime::outbox::Relay`]) over namespace `logistics`, with
//! the protobuf `PackageEvent` encoder, keyed by package id (decimal).
//! Guarantees (at-least-once, per-package order with any number of relays,
//! leases with heartbeat, drain on shutdown) are the shared relay's.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use tributary_bus::{Bus, Record};
use tributary_runtime::outbox::{self, Encoder};

pub use tributary_runtime::outbox::{RelayConfig, RelayHealth};

use crate::domain::OutboxEvent;
use crate::proto::v1 as pb;
use crate::store::Store;

/// Topic the relay publishes to (seed name).
pub const DEFAULT_TOPIC: &str = "omp-package-events";

/// The relay type (the shared one).
pub type Relay = outbox::Relay;

/// The wire form of an outbox event.
pub fn encode(e: &OutboxEvent) -> Vec<u8> {
    pb::PackageEvent {
        id: u64::try_from(e.id).unwrap_or_default(),
        package_id: e.package_id.as_u64(),
        r#type: e.event_type as i32,
        created: Some(crate::api::grpc::timestamp(e.created)),
        payload: e.payload.clone().into_bytes(),
    }
    .encode_to_vec()
}

/// The bus record of an outbox event: key = package id (decimal).
pub fn record(topic: &str, e: &OutboxEvent) -> Record {
    Record::new(
        topic,
        Bytes::from(e.package_id.to_string()),
        Bytes::from(encode(e)),
    )
}

/// The encoder of the shared relay: a stored event becomes a
/// `PackageEvent` record. A row that does not decode (never written by this
/// crate) is sent as it is stored and logged.
pub fn encoder() -> Encoder {
    Arc::new(
        |topic: &str, raw: &outbox::OutboxEvent| match OutboxEvent::from_outbox(raw) {
            Ok(e) => record(topic, &e),
            Err(err) => {
                tracing::error!(event = raw.id, error = %err, "undecodable logistics outbox row; sent as stored");
                (outbox::plain())(topic, raw)
            }
        },
    )
}

/// A relay of `store`'s events to `bus`.
pub fn relay(store: &Store, bus: Bus, cfg: RelayConfig) -> Relay {
    outbox::Relay::new(store.outbox(), bus, cfg, encoder())
}

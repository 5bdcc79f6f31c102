//! The re-keying step of `shop-recommendations` (when
//! [`crate::settings::ShopSettings::repartitions`]): prompts and filtered
//! products are copied, byte for byte with their headers and event time
//! (as the record's timestamp and in [`super::EVENT_TIME_HEADER`]), to the
//! repartition topics keyed by their normalised join key. Both repartition
//! topics have the same partition count and the bus's key partitioner, so
//! a prompt and the products it may meet land on the same partition number
//! of the two topics, and the join replica owning that partition holds the
//! whole state of those keys (co-partitioning, as Kafka Streams does it).
//!
//! At least once: the runner stores the input offset only after the copy
//! is acknowledged; a crash in between copies the record again, which the
//! join absorbs (a record already in its state changes nothing, a pair
//! already emitted keeps its idempotent key). A record that is not the
//! wire shape is dead-lettered here (`<input topic>.dlq`), so the join
//! reads only valid records.

use bytes::Bytes;
use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::{Bus, Message, Record};

use super::{count_in, count_out, event_time, reject, retry, ConsumerHealth, EVENT_TIME_HEADER};
use crate::domain::{Product, Prompt};

/// Service name (metrics label).
pub const SERVICE: &str = "shop-repartition";

/// The re-keying handler.
pub struct RepartitionHandler {
    bus: Bus,
    prompts_topic: String,
    prompts_out: String,
    products_out: String,
    health: ConsumerHealth,
}

impl std::fmt::Debug for RepartitionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepartitionHandler")
            .field("bus", &self.bus.describe())
            .field("prompts_out", &self.prompts_out)
            .field("products_out", &self.products_out)
            .finish_non_exhaustive()
    }
}

impl RepartitionHandler {
    /// Records of `prompts_topic` are prompts (copied to `prompts_out`),
    /// every other topic's filtered products (copied to `products_out`).
    pub fn new(
        bus: Bus,
        prompts_topic: String,
        prompts_out: String,
        products_out: String,
        health: ConsumerHealth,
    ) -> Self {
        Self {
            bus,
            prompts_topic,
            prompts_out,
            products_out,
            health,
        }
    }
}

#[async_trait::async_trait]
impl Handler for RepartitionHandler {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        count_in(SERVICE);
        let (topic, key) = if msg.topic == self.prompts_topic {
            let p = Prompt::parse(&msg.value).map_err(|e| reject(SERVICE, "prompt", e))?;
            (&self.prompts_out, p.join_key())
        } else {
            let p = Product::parse(&msg.value).map_err(|e| reject(SERVICE, "product", e))?;
            (&self.products_out, p.join_key())
        };
        let t = event_time(msg);
        let mut headers: Vec<_> = msg
            .headers
            .iter()
            .filter(|(n, _)| n != EVENT_TIME_HEADER)
            .cloned()
            .collect();
        headers.push((EVENT_TIME_HEADER.to_owned(), Bytes::from(t.to_string())));
        let record = Record {
            topic: topic.clone(),
            key: Some(Bytes::from(key.as_str().to_owned().into_bytes())),
            value: msg.value.clone(),
            headers,
            timestamp_ms: Some(t),
        };
        let sent = self
            .bus
            .send(record)
            .await
            .map(|_| ())
            .map_err(|e| retry("produce to the repartition topic", e));
        self.health.track(sent)?;
        count_out(SERVICE, 1);
        Ok(())
    }
}

//! Settings of the shop system (`[shop]` in the configuration file,
//! `TRIBUTARY__SHOP__KEY` in the environment).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::JoinConfig;

/// Products as the stores publish them, key = `product_id`.
pub const PRODUCTS_TOPIC: &str = "shop_products";
/// Products that pass the filter, key = `product_id`.
pub const FILTERED_TOPIC: &str = "analytic_products_filtered";
/// Search prompts, key = `id`.
pub const PROMPTS_TOPIC: &str = "analytic_products_find";
/// Recommendations, key = prompt id.
pub const RECOMMENDATIONS_TOPIC: &str = "personal_recom";
/// The filter's control topic (one partition; the latest `filter` value wins).
pub const CONTROL_TOPIC: &str = "shop_filter_control";

/// Whether the join's inputs go through repartition topics
/// ([`ShopSettings::repartition`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Repartition {
    /// On for Kafka, off for the embedded bus.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never (one join replica).
    Off,
}

/// The `[shop]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShopSettings {
    /// Address of the REST API (`shop-api`: ingest, reads, filter control);
    /// the CLI's default `--api`.
    pub http_listen: SocketAddr,
    /// Address of the gRPC API (`shop-api`: filter control, ingest).
    pub grpc_listen: SocketAddr,
    /// Products topic (the emulator and the ingest route produce to it).
    pub products_topic: String,
    /// Filtered products topic (written by `shop-filter`).
    pub filtered_topic: String,
    /// Search prompts topic (the ingest route produces to it).
    pub prompts_topic: String,
    /// Recommendations topic (written by `shop-recommendations`).
    pub recommendations_topic: String,
    /// The filter's control topic (one partition, read from the start by
    /// every filter replica and API; the latest `filter` record wins).
    pub control_topic: String,
    /// Partitions of the data topics when they are created.
    pub partitions: i32,
    /// Products per second of `shop-emulator`; `0` turns it off.
    pub emulator_rate: u32,
    /// Products `shop-emulator` emits before it idles; `0`: no limit.
    pub emulator_count: u64,
    /// Seed of `shop-emulator`; `0`: from the clock (logged).
    pub emulator_seed: u64,
    /// Consumer group of `shop-filter`.
    pub filter_group: String,
    /// Consumer group of `shop-recommendations`.
    pub join_group: String,
    /// Consumer group of `shop-sink`.
    pub sink_group: String,
    /// Join window, ms: a prompt and a product join when their event times
    /// differ by at most this much, either direction.
    pub join_window_ms: i64,
    /// Grace period for late records, ms.
    pub join_grace_ms: i64,
    /// Re-key both join inputs by the join key through repartition topics
    /// (`{join_group}-prompts-repartition`, `{join_group}-products-repartition`)
    /// so any number of join replicas is co-partitioned: `auto` (on for
    /// Kafka, off for the embedded bus, where one process owns every
    /// partition), `on`, `off` (one replica only).
    pub repartition: Repartition,
    /// First retry delay of a record whose side effect failed, ms (doubles
    /// per attempt; the partition waits meanwhile).
    pub retry_base_ms: u64,
    /// Retry delay cap, ms.
    pub retry_max_ms: u64,
    /// Largest `limit` of the read routes (and their default).
    pub page_max: u32,
}

impl Default for ShopSettings {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8097)),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 8098)),
            products_topic: PRODUCTS_TOPIC.into(),
            filtered_topic: FILTERED_TOPIC.into(),
            prompts_topic: PROMPTS_TOPIC.into(),
            recommendations_topic: RECOMMENDATIONS_TOPIC.into(),
            control_topic: CONTROL_TOPIC.into(),
            partitions: 2,
            emulator_rate: 30,
            emulator_count: 0,
            emulator_seed: 0,
            filter_group: "shop-filter".into(),
            join_group: "shop-recommendations".into(),
            sink_group: "shop-sink".into(),
            join_window_ms: JoinConfig::default().window_ms,
            join_grace_ms: JoinConfig::default().grace_ms,
            repartition: Repartition::Auto,
            retry_base_ms: 100,
            retry_max_ms: 10_000,
            page_max: 1000,
        }
    }
}

impl ShopSettings {
    /// The join's window and grace.
    pub fn join(&self) -> JoinConfig {
        JoinConfig {
            window_ms: self.join_window_ms.max(0),
            grace_ms: self.join_grace_ms.max(0),
        }
    }

    /// Whether the join repartitions its inputs on the bus at `bus_url`.
    pub fn repartitions(&self, bus_url: &str) -> bool {
        match self.repartition {
            Repartition::On => true,
            Repartition::Off => false,
            Repartition::Auto => bus_url.starts_with("kafka://"),
        }
    }

    /// The repartition topics of the join: (prompts, products), keyed by
    /// the join key.
    pub fn repartition_topics(&self) -> (String, String) {
        (
            format!("{}-prompts-repartition", self.join_group),
            format!("{}-products-repartition", self.join_group),
        )
    }

    /// The consumer group that re-keys the join's inputs.
    pub fn repartition_group(&self) -> String {
        format!("{}-repartition", self.join_group)
    }

    /// The retry policy of the consumers.
    pub fn backoff(&self) -> tributary_bus::runner::Backoff {
        let base = self.retry_base_ms.max(1);
        tributary_bus::runner::Backoff {
            initial: Duration::from_millis(base),
            max: Duration::from_millis(self.retry_max_ms.max(base)),
            max_retries: None,
        }
    }

    /// The dead-letter topic of `topic` (`<topic>.dlq`).
    pub fn dead_letter_topic(topic: &str) -> String {
        format!("{topic}{}", tributary_bus::runner::DLQ_SUFFIX)
    }
}

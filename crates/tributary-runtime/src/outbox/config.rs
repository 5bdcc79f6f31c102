//! Relay settings (each system embeds them, e.g. `[logistics.relay]`).
//! Defaults from the logistics seed where they make sense: 2 consumers,
//! 8 producers, 5 send attempts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the relay claims, sends and cleans.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Destination topic.
    pub topic: String,
    /// Partitions when the relay creates the topic (an existing topic is kept).
    pub partitions: i32,
    /// Tasks claiming batches from the outbox (seed: 2).
    pub consumers: usize,
    /// Tasks sending claimed batches (seed: 8). Within a batch, keys are
    /// sent concurrently and the events of one key one after another.
    pub producers: usize,
    /// Events per claim. Decision: 100 (the seed's 5 costs one database
    /// round trip per 5 events).
    pub batch_size: i64,
    /// Pause after a claim that found nothing, ms (a full batch is followed
    /// by the next claim at once). Decision: polling, not LISTEN/NOTIFY —
    /// a NOTIFY trigger halved PostgreSQL create throughput in the bench
    /// (pg_notify serializes commits).
    pub poll_interval_ms: u64,
    /// Pause, milliseconds, after a claim that found events but fewer than a
    /// full batch: while events keep coming the next claim follows soon, so
    /// commit -> acknowledged stays low under load; an idle relay still
    /// polls only every `poll_interval_ms`.
    pub busy_poll_interval_ms: u64,
    /// Lease of claimed events, seconds: a relay that dies leaves its events
    /// locked this long, then another relay takes them over. A live relay
    /// renews its leases every third of this.
    pub lease_secs: u64,
    /// Send attempts per event in one round (seed: 5).
    pub send_attempts: u32,
    /// First retry delay, ms; doubles per attempt and per failed round.
    pub backoff_base_ms: u64,
    /// Retry delay cap, ms.
    pub backoff_max_ms: u64,
    /// The cleaner deletes/unlocks when this many results are pending...
    pub cleaner_batch: usize,
    /// ...or this long after the first pending result, ms.
    pub cleaner_interval_ms: u64,
    /// Lease owner name; empty = `<hostname>-<pid>-<random>`.
    pub owner: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            topic: String::new(),
            partitions: 3,
            consumers: 2,
            producers: 8,
            batch_size: 100,
            poll_interval_ms: 20,
            busy_poll_interval_ms: 5,
            lease_secs: 15,
            send_attempts: 5,
            backoff_base_ms: 50,
            backoff_max_ms: 5_000,
            cleaner_batch: 100,
            cleaner_interval_ms: 20,
            owner: String::new(),
        }
    }
}

impl RelayConfig {
    /// The defaults, publishing to `topic`.
    pub fn for_topic(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            ..Self::default()
        }
    }

    /// Delay before retry number `n` (0-based), capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.backoff_base_ms.max(1);
        let ms = base.saturating_mul(1u64 << n.min(20));
        Duration::from_millis(ms.min(self.backoff_max_ms.max(base)))
    }

    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves backoff doubles from the base and stops at the cap.
    #[test]
    fn backoff_doubles_and_caps() {
        let c = RelayConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 1000,
            ..RelayConfig::default()
        };
        assert_eq!(c.backoff(0), Duration::from_millis(100));
        assert_eq!(c.backoff(2), Duration::from_millis(400));
        assert_eq!(c.backoff(10), Duration::from_millis(1000));
        assert_eq!(c.backoff(u32::MAX), Duration::from_millis(1000));
    }
}

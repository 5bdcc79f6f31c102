//! `shop-recommendations`: the stream-stream join of prompts
//! (`analytic_products_find`) with filtered products
//! (`analytic_products_filtered`) on the normalised name, within the
//! window, on event time ([`crate::domain::JoinState`]). Its state lives in
//! the SQL table `shop_join_state` (latest change per changelog key) and is
//! restored from it on start, so a restart loses no join.
//!
//! Order per record (the domain's ordering rule): the matches are produced
//! to `personal_recom` and acknowledged by the bus, then the state changes
//! are committed in one transaction, then the runner stores the input
//! offset. A crash before the state commit replays the record: the state
//! never recorded the pair as emitted, so the match is produced again with
//! the same idempotent key (header `shop.key`, `{prompt_id}:{product_id}`),
//! which the sink dedupes. If producing or committing fails, the in-memory
//! state (already advanced) is discarded and reloaded from the table before
//! the retry, so memory never runs ahead of what is durable.
//!
//! Partitions: with repartition topics (the default on Kafka, see
//! [`super::repartition`]) both inputs arrive keyed by the join key, so the
//! state is split by partition (`part` = the input partition): each replica
//! holds the parts of the partitions it is given, loads a part from the
//! table on its first record, and a rebalance moves a part with its
//! partition. Without them (the embedded bus, where one process owns every
//! partition) the whole state is part 0. Every commit of a part is
//! conditional on the part's version this replica last saw: if another
//! replica committed the part meanwhile (two owners for a moment during a
//! rebalance, or a replica that lost the partition and still has a stale
//! copy), the commit writes nothing, the part is reloaded and the record
//! runs again on the fresh state, so no replica ever overwrites or misses
//! what another one stored. Its matches may then be produced twice, with
//! the same idempotent key.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::Mutex;
use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::{Bus, Message, Record};

use super::{
    count_in, count_out, event_time, now_ms, reject, retry, ConsumerHealth,
    RECOMMENDATION_KEY_HEADER,
};
use crate::domain::{JoinConfig, JoinOutput, JoinState, Product, Prompt};
use crate::metrics as m;
use crate::store::ShopStore;

/// Service name (metrics label).
pub const SERVICE: &str = "shop-recommendations";

/// Conflicting commits of one record in a row before it is retried by the
/// runner (with backoff) instead of at once.
const MAX_CONFLICTS: usize = 8;

/// The state of one part as this replica holds it.
#[derive(Debug)]
struct Part {
    state: JoinState,
    next_seq: i64,
    /// The part's commit version this copy is at.
    version: i64,
    /// Memory may be ahead of the table (a failed record): reload first.
    dirty: bool,
}

/// The join's record handler.
pub struct JoinHandler {
    store: ShopStore,
    bus: Bus,
    prompt_topics: Vec<String>,
    output: String,
    config: JoinConfig,
    /// State split by input partition (else one part, 0).
    by_partition: bool,
    health: ConsumerHealth,
    parts: Mutex<HashMap<i32, Part>>,
}

impl std::fmt::Debug for JoinHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandler")
            .field("bus", &self.bus.describe())
            .field("output", &self.output)
            .field("config", &self.config)
            .field("by_partition", &self.by_partition)
            .finish_non_exhaustive()
    }
}

impl JoinHandler {
    /// A join whose records of `prompt_topics` are prompts and every other
    /// topic's filtered products. `by_partition`: the inputs are keyed by
    /// the join key (repartition topics) and the state is split by
    /// partition; else part 0 holds it all and is restored now.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub async fn open(
        store: ShopStore,
        bus: Bus,
        prompt_topics: Vec<String>,
        output: String,
        config: JoinConfig,
        by_partition: bool,
        health: ConsumerHealth,
    ) -> anyhow::Result<Self> {
        let handler = Self {
            store,
            bus,
            prompt_topics,
            output,
            config,
            by_partition,
            health,
            parts: Mutex::new(HashMap::new()),
        };
        if !by_partition {
            let part = handler.load(0).await?;
            tracing::info!(size = ?part.state.size(), stream_time = ?part.state.stream_time(), "join state restored");
            let mut parts = handler.parts.lock().await;
            parts.insert(0, part);
            gauges(&parts);
        }
        Ok(handler)
    }

    async fn load(&self, part: i32) -> Result<Part, crate::store::StoreError> {
        let stored = self.store.load_join_state(part).await?;
        Ok(Part {
            state: JoinState::restore(self.config, stored.changes),
            next_seq: stored.next_seq,
            version: stored.version,
            dirty: false,
        })
    }

    async fn reload(&self, part: i32, slot: &mut Part) -> Result<(), HandlerError> {
        *slot = self
            .load(part)
            .await
            .map_err(|e| retry("reload the join state", e))?;
        metrics::counter!(m::JOIN_RELOADS).increment(1);
        Ok(())
    }

    /// Produces the matches, then commits the state changes if the part is
    /// still at this copy's version. `Ok(false)`: another replica committed
    /// the part meanwhile (nothing written; reload and run again).
    async fn publish_then_persist(
        &self,
        part: i32,
        slot: &mut Part,
        out: &JoinOutput,
    ) -> Result<bool, HandlerError> {
        let sends: Vec<_> = out
            .matches
            .iter()
            .map(|rec| {
                let value = serde_json::to_vec(rec).unwrap_or_default();
                let record = Record::new(
                    self.output.clone(),
                    Bytes::from(rec.prompt_id.to_string().into_bytes()),
                    Bytes::from(value),
                )
                .header(RECOMMENDATION_KEY_HEADER, rec.key())
                .header(super::EVENT_TIME_HEADER, rec.matched_at.to_string())
                .at(rec.matched_at);
                self.bus.send(record)
            })
            .collect();
        for r in futures::future::join_all(sends).await {
            r.map_err(|e| retry("produce recommendations", e))?;
        }
        let n = out.matches.len() as u64;
        metrics::counter!(m::JOIN_MATCHES).increment(n);
        count_out(SERVICE, n);
        if out.changes.is_empty() {
            return Ok(true);
        }
        let written = self
            .store
            .persist_join_changes(part, &out.changes, slot.next_seq, slot.version)
            .await
            .map_err(|e| retry("commit the join state", e))?;
        if written {
            slot.next_seq = slot
                .next_seq
                .saturating_add(i64::try_from(out.changes.len()).unwrap_or(i64::MAX));
            slot.version += 1;
            slot.dirty = false;
        }
        Ok(written)
    }
}

fn gauges(parts: &HashMap<i32, Part>) {
    let (mut records, mut keys, mut emitted) = (0usize, 0usize, 0usize);
    let mut stream_time: Option<i64> = None;
    for p in parts.values() {
        let size = p.state.size();
        records += size.records;
        keys += size.keys;
        emitted += size.emitted;
        stream_time = stream_time.max(p.state.stream_time());
    }
    metrics::gauge!(m::JOIN_STATE_RECORDS).set(records as f64);
    metrics::gauge!(m::JOIN_STATE_KEYS).set(keys as f64);
    metrics::gauge!(m::JOIN_STATE_EMITTED).set(emitted as f64);
    if let Some(st) = stream_time {
        // The most advanced part: how far event time is behind the clock.
        metrics::gauge!(m::JOIN_WATERMARK_LAG).set((now_ms() - st) as f64 / 1000.0);
    }
}

#[async_trait::async_trait]
impl Handler for JoinHandler {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        count_in(SERVICE);
        let side = if self.prompt_topics.contains(&msg.topic) {
            Side::Prompt(Prompt::parse(&msg.value).map_err(|e| reject(SERVICE, "prompt", e))?)
        } else {
            Side::Product(Box::new(
                Product::parse(&msg.value).map_err(|e| reject(SERVICE, "product", e))?,
            ))
        };
        let t = event_time(msg);
        let part = if self.by_partition { msg.partition } else { 0 };
        let mut parts = self.parts.lock().await;
        let done = self.apply(&mut parts, part, side, t, msg).await;
        gauges(&parts);
        self.health.track(done)
    }
}

enum Side {
    Prompt(Prompt),
    Product(Box<Product>),
}

impl JoinHandler {
    /// Runs one record against its part: loads the part if this replica
    /// has no copy (or a dirty one), joins, publishes, commits; on a
    /// conflicting commit reloads and runs it again.
    async fn apply(
        &self,
        parts: &mut HashMap<i32, Part>,
        part: i32,
        side: Side,
        t: i64,
        msg: &Message,
    ) -> Result<(), HandlerError> {
        for _ in 0..MAX_CONFLICTS {
            let slot = match parts.entry(part) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let loaded = self
                        .load(part)
                        .await
                        .map_err(|e| retry("load the join state", e))?;
                    tracing::info!(part, size = ?loaded.state.size(), "join state part loaded");
                    e.insert(loaded)
                }
            };
            if slot.dirty {
                self.reload(part, slot).await?;
            }
            let out = match &side {
                Side::Prompt(p) => slot.state.on_prompt(p.clone(), t),
                Side::Product(p) => slot.state.on_product((**p).clone(), t),
            };
            if let Some(late) = out.late {
                metrics::counter!(m::JOIN_LATE).increment(1);
                tracing::debug!(topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                    event_time = late.event_time_ms, stream_time = late.stream_time_ms,
                    "record later than the grace period; not joined");
                return Ok(());
            }
            // Memory is now ahead of the table until the commit succeeds.
            slot.dirty = true;
            if self.publish_then_persist(part, slot, &out).await? {
                return Ok(());
            }
            tracing::info!(
                part,
                "join state part changed by another replica; reloading"
            );
        }
        Err(HandlerError::Retryable(format!(
            "join state part {part}: {MAX_CONFLICTS} conflicting commits in a row"
        )))
    }
}

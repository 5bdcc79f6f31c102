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
//! One replica: the state is one table for the whole process (on the
//! embedded bus one process owns every partition anyway). Several replicas
//! on Kafka would need the inputs re-keyed by the join key through
//! repartition topics and the state split by partition; not built yet.

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

#[derive(Debug)]
struct Core {
    state: JoinState,
    next_seq: i64,
    /// Memory may be ahead of the table (a failed record): reload first.
    dirty: bool,
}

/// The join's record handler.
pub struct JoinHandler {
    store: ShopStore,
    bus: Bus,
    prompts_topic: String,
    output: String,
    config: JoinConfig,
    health: ConsumerHealth,
    core: Mutex<Core>,
}

impl std::fmt::Debug for JoinHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandler")
            .field("bus", &self.bus.describe())
            .field("output", &self.output)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JoinHandler {
    /// Restores the state from the table.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub async fn open(
        store: ShopStore,
        bus: Bus,
        prompts_topic: String,
        output: String,
        config: JoinConfig,
        health: ConsumerHealth,
    ) -> anyhow::Result<Self> {
        let stored = store.load_join_state().await?;
        let state = JoinState::restore(config, stored.changes);
        tracing::info!(size = ?state.size(), stream_time = ?state.stream_time(), "join state restored");
        let core = Core {
            state,
            next_seq: stored.next_seq,
            dirty: false,
        };
        gauges(&core.state);
        Ok(Self {
            store,
            bus,
            prompts_topic,
            output,
            config,
            health,
            core: Mutex::new(core),
        })
    }

    async fn reload(&self, core: &mut Core) -> Result<(), HandlerError> {
        let stored = self
            .store
            .load_join_state()
            .await
            .map_err(|e| retry("reload the join state", e))?;
        core.state = JoinState::restore(self.config, stored.changes);
        core.next_seq = stored.next_seq;
        core.dirty = false;
        metrics::counter!(m::JOIN_RELOADS).increment(1);
        Ok(())
    }

    async fn publish_then_persist(
        &self,
        core: &mut Core,
        out: JoinOutput,
    ) -> Result<(), HandlerError> {
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
                .header(super::EVENT_TIME_HEADER, rec.matched_at.to_string());
                self.bus.send(record)
            })
            .collect();
        for r in futures::future::join_all(sends).await {
            r.map_err(|e| retry("produce recommendations", e))?;
        }
        self.store
            .persist_join_changes(&out.changes, core.next_seq)
            .await
            .map_err(|e| retry("commit the join state", e))?;
        core.next_seq = core
            .next_seq
            .saturating_add(i64::try_from(out.changes.len()).unwrap_or(i64::MAX));
        core.dirty = false;
        let n = out.matches.len() as u64;
        metrics::counter!(m::JOIN_MATCHES).increment(n);
        count_out(SERVICE, n);
        Ok(())
    }
}

fn gauges(state: &JoinState) {
    let size = state.size();
    metrics::gauge!(m::JOIN_STATE_RECORDS).set(size.records as f64);
    metrics::gauge!(m::JOIN_STATE_KEYS).set(size.keys as f64);
    metrics::gauge!(m::JOIN_STATE_EMITTED).set(size.emitted as f64);
    if let Some(st) = state.stream_time() {
        metrics::gauge!(m::JOIN_WATERMARK_LAG).set((now_ms() - st) as f64 / 1000.0);
    }
}

#[async_trait::async_trait]
impl Handler for JoinHandler {
    async fn handle(&self, msg: &Message) -> Result<(), HandlerError> {
        count_in(SERVICE);
        enum Side {
            Prompt(Prompt),
            Product(Box<Product>),
        }
        let side = if msg.topic == self.prompts_topic {
            Side::Prompt(Prompt::parse(&msg.value).map_err(|e| reject(SERVICE, "prompt", e))?)
        } else {
            Side::Product(Box::new(
                Product::parse(&msg.value).map_err(|e| reject(SERVICE, "product", e))?,
            ))
        };
        let t = event_time(msg);
        let mut core = self.core.lock().await;
        if core.dirty {
            let reloaded = self.reload(&mut core).await;
            self.health.track(reloaded)?;
        }
        let out = match side {
            Side::Prompt(p) => core.state.on_prompt(p, t),
            Side::Product(p) => core.state.on_product(*p, t),
        };
        if let Some(late) = out.late {
            metrics::counter!(m::JOIN_LATE).increment(1);
            tracing::debug!(topic = %msg.topic, offset = msg.offset, event_time = late.event_time_ms,
                stream_time = late.stream_time_ms, "record later than the grace period; not joined");
            return Ok(());
        }
        core.dirty = true;
        let done = self.publish_then_persist(&mut core, out).await;
        gauges(&core.state);
        self.health.track(done)
    }
}

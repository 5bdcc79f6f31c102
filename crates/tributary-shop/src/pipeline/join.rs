//! `shop-recommendations`: the stream-stream join of prompts
//! (`analytic_products_find`) with filtered products
//! (`analytic_products_filtered`) on the normalised name, within the
//! window, on event time ([`crate::domain::JoinState`]). Its state lives in
//! the SQL table `shop_join_state` (latest change per changelog key) and is
//! restored from it on start, so a restart loses no join.
//!
//! Group commit: a record is joined against the in-memory state at once
//! and its matches are produced at once (not awaited), then the handler
//! hands the runner a completion ([`Handler::handle_deferred`]) and takes
//! the next record. A committer task commits, per part, every record
//! joined since its last commit: it waits until the bus acknowledged that
//! batch's matches, then writes the batch's state changes in one
//! transaction (the last change per entry, multi-row), then completes the
//! batch's records; the runner stores their offsets in order. While one
//! batch commits the next gathers, so a busy join commits hundreds of
//! records per transaction and an idle one commits each record at once.
//!
//! Order (the domain's ordering rule): matches acknowledged, then the
//! state commit, then the offset. A crash before the state commit replays
//! the records: the state never recorded their pairs as emitted, so the
//! matches are produced again with the same idempotent key (header
//! `shop.key`, `{prompt_id}:{product_id}`), which the sink dedupes.
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
//! copy), the commit writes nothing, and the committer reloads the part and
//! joins every uncommitted record of it again, in order, on the fresh
//! state, then commits that; so no replica ever overwrites or misses what
//! another one stored. Its matches may then be produced twice, with the
//! same idempotent key.
//!
//! Failure: when producing or committing fails (or conflicts
//! [`MAX_CONFLICTS`] times in a row), the batch and every record joined
//! after it fail, memory is dropped (the parts reload from the table), and
//! records are refused until the runner has rewound ([`Handler::rewound`]):
//! it redelivers from the last stored offset, so nothing is skipped and no
//! record is joined on a state that is missing an earlier one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::{oneshot, Mutex, Notify};
use tributary_bus::runner::{Ack, Handler, HandlerError};
use tributary_bus::{Bus, Delivery, Message, Record};

use super::{
    count_in, count_out, event_time, now_ms, reject, retry, ConsumerHealth,
    RECOMMENDATION_KEY_HEADER,
};
use crate::domain::{JoinConfig, JoinOutput, JoinState, Product, Prompt, StateChange};
use crate::metrics as m;
use crate::store::{ShopStore, StoredState};

/// Service name (metrics label).
pub const SERVICE: &str = "shop-recommendations";

/// Conflicting commits of one part in a row before the batch fails (and
/// the runner rewinds, with backoff) instead of being joined again at once.
pub const MAX_CONFLICTS: usize = 8;

/// A record's completion: resolved when its batch committed (or failed).
type Done = oneshot::Sender<Result<(), HandlerError>>;

/// A produce of a match, issued (enqueued) and not yet acknowledged.
type Send = BoxFuture<'static, tributary_bus::Result<Delivery>>;

/// One input record, joined in memory, waiting for its commit.
struct Joined {
    side: Side,
    event_time_ms: i64,
    done: Done,
}

/// The state of one part as this replica holds it: what is committed at
/// `version`, plus the uncommitted records of `log` joined onto it.
struct Part {
    state: JoinState,
    /// The part's commit version the committed state is at.
    version: i64,
    /// Number of the first change not committed yet.
    committed_seq: i64,
    /// Joined since the last commit, in order.
    log: Vec<Joined>,
    /// The state changes of `log`, in order.
    changes: Vec<StateChange>,
    /// The produces of `log`'s matches.
    sends: Vec<Send>,
}

/// A part's uncommitted records, taken out to be committed.
struct Batch {
    log: Vec<Joined>,
    changes: Vec<StateChange>,
    sends: Vec<Send>,
    first_seq: i64,
    version: i64,
}

impl Part {
    fn restored(config: JoinConfig, stored: StoredState) -> Self {
        Self {
            state: JoinState::restore(config, stored.changes),
            version: stored.version,
            committed_seq: stored.next_seq,
            log: Vec::new(),
            changes: Vec::new(),
            sends: Vec::new(),
        }
    }

    /// Joins `record` onto the state, issues the produces of its matches,
    /// and appends it to the log.
    fn join(&mut self, shared: &Shared, record: Joined, msg: Option<&Message>) {
        let out = match &record.side {
            Side::Prompt(p) => self.state.on_prompt(p.clone(), record.event_time_ms),
            Side::Product(p) => self.state.on_product((**p).clone(), record.event_time_ms),
        };
        if let Some(late) = out.late {
            metrics::counter!(m::JOIN_LATE).increment(1);
            if let Some(msg) = msg {
                tracing::debug!(topic = %msg.topic, partition = msg.partition, offset = msg.offset,
                    event_time = late.event_time_ms, stream_time = late.stream_time_ms,
                    "record later than the grace period; not joined");
            }
        }
        let JoinOutput {
            matches, changes, ..
        } = out;
        self.sends
            .extend(matches.iter().map(|rec| shared.produce(rec)));
        self.changes.extend(changes);
        self.log.push(record);
    }

    fn take(&mut self) -> Batch {
        Batch {
            log: std::mem::take(&mut self.log),
            changes: std::mem::take(&mut self.changes),
            sends: std::mem::take(&mut self.sends),
            first_seq: self.committed_seq,
            version: self.version,
        }
    }
}

/// What the handler and its committer share.
struct Shared {
    store: ShopStore,
    bus: Bus,
    output: String,
    config: JoinConfig,
    health: ConsumerHealth,
    parts: Mutex<HashMap<i32, Part>>,
    /// A batch failed: refuse records until the runner rewound.
    fenced: AtomicBool,
}

/// The join's record handler.
pub struct JoinHandler {
    shared: Arc<Shared>,
    prompt_topics: Vec<String>,
    /// State split by input partition (else one part, 0).
    by_partition: bool,
    /// Wakes the committer (records to commit, or the handler is gone).
    wake: Arc<Notify>,
}

impl std::fmt::Debug for JoinHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandler")
            .field("bus", &self.shared.bus.describe())
            .field("output", &self.shared.output)
            .field("config", &self.shared.config)
            .field("by_partition", &self.by_partition)
            .finish_non_exhaustive()
    }
}

impl Drop for JoinHandler {
    fn drop(&mut self) {
        // The committer holds only a weak reference: woken, it finds the
        // handler gone and ends.
        self.wake.notify_one();
    }
}

impl JoinHandler {
    /// A join whose records of `prompt_topics` are prompts and every other
    /// topic's filtered products. `by_partition`: the inputs are keyed by
    /// the join key (repartition topics) and the state is split by
    /// partition; else part 0 holds it all and is restored now. Starts the
    /// committer task (on the current Tokio runtime); it ends when the
    /// handler is dropped.
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
        let shared = Arc::new(Shared {
            store,
            bus,
            output,
            config,
            health,
            parts: Mutex::new(HashMap::new()),
            fenced: AtomicBool::new(false),
        });
        if !by_partition {
            let part = Part::restored(config, shared.store.load_join_state(0).await?);
            tracing::info!(size = ?part.state.size(), stream_time = ?part.state.stream_time(), "join state restored");
            let mut parts = shared.parts.lock().await;
            parts.insert(0, part);
            gauges(&parts);
        }
        let wake = Arc::new(Notify::new());
        tokio::spawn(committer(Arc::downgrade(&shared), wake.clone()));
        Ok(Self {
            shared,
            prompt_topics,
            by_partition,
            wake,
        })
    }
}

/// Commits what the handler joined, part by part, until the handler is
/// dropped.
async fn committer(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.commit_all().await;
    }
}

impl Shared {
    /// Issues the produce of one match (enqueued now, acknowledged later).
    fn produce(&self, rec: &crate::domain::Recommendation) -> Send {
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
    }

    /// Commits the parts' uncommitted records, one batch per part at a
    /// time (the parts side by side), until none is left.
    async fn commit_all(&self) {
        loop {
            let waiting: Vec<i32> = self
                .parts
                .lock()
                .await
                .iter()
                .filter(|(_, p)| !p.log.is_empty())
                .map(|(id, _)| *id)
                .collect();
            if waiting.is_empty() {
                return;
            }
            futures::future::join_all(waiting.into_iter().map(|id| self.commit_part(id))).await;
        }
    }

    /// Commits part `id`'s uncommitted records as one batch; on a conflict
    /// joins them again on a fresh copy of the part and commits that.
    async fn commit_part(&self, id: i32) {
        let mut conflicts = 0usize;
        loop {
            let mut batch = {
                let mut parts = self.parts.lock().await;
                match parts.get_mut(&id) {
                    Some(p) if !p.log.is_empty() => p.take(),
                    _ => return,
                }
            };
            let started = std::time::Instant::now();
            let outcome = self.write(id, &mut batch).await;
            tracing::debug!(
                part = id,
                records = batch.log.len(),
                changes = batch.changes.len(),
                seconds = started.elapsed().as_secs_f64(),
                ok = outcome.is_ok(),
                "join batch written"
            );
            let mut parts = self.parts.lock().await;
            let Some(p) = parts.get_mut(&id) else {
                // Only a failure removes a part, and only this task fails batches.
                fail(
                    batch.log,
                    &HandlerError::Retryable("join state part dropped before its commit".into()),
                );
                return;
            };
            match outcome {
                Ok(true) => {
                    if !batch.changes.is_empty() {
                        p.version += 1;
                        p.committed_seq = p
                            .committed_seq
                            .saturating_add(i64::try_from(batch.changes.len()).unwrap_or(i64::MAX));
                    }
                    let _ = self.health.track(Ok(()));
                    for j in batch.log {
                        let _ = j.done.send(Ok(()));
                    }
                    gauges(&parts);
                    return;
                }
                Ok(false) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    tracing::info!(
                        part = id,
                        records = batch.log.len() + p.log.len(),
                        "join state part changed by another replica; reloading and joining its uncommitted records again"
                    );
                    metrics::counter!(m::JOIN_RELOADS).increment(1);
                    let stored = match self.store.load_join_state(id).await {
                        Ok(stored) => stored,
                        Err(e) => {
                            let err = retry("reload the join state", e);
                            self.give_up(&mut parts, id, batch.log, &err);
                            return;
                        }
                    };
                    let again: Vec<Joined> = batch.log.into_iter().chain(p.log.drain(..)).collect();
                    *p = Part::restored(self.config, stored);
                    for j in again {
                        p.join(self, j, None);
                    }
                }
                Ok(false) => {
                    let err = HandlerError::Retryable(format!(
                        "join state part {id}: {MAX_CONFLICTS} conflicting commits in a row"
                    ));
                    self.give_up(&mut parts, id, batch.log, &err);
                    return;
                }
                Err(err) => {
                    self.give_up(&mut parts, id, batch.log, &err);
                    return;
                }
            }
        }
    }

    /// Waits for the batch's matches, then commits its state changes if
    /// the part is still at the batch's version. `Ok(false)`: another
    /// replica committed the part meanwhile (nothing written).
    async fn write(&self, id: i32, batch: &mut Batch) -> Result<bool, HandlerError> {
        let sent = batch.sends.len() as u64;
        let started = std::time::Instant::now();
        for r in futures::future::join_all(batch.sends.drain(..)).await {
            r.map_err(|e| retry("produce recommendations", e))?;
        }
        metrics::counter!(m::JOIN_MATCHES).increment(sent);
        count_out(SERVICE, sent);
        tracing::trace!(
            part = id,
            matches = sent,
            seconds = started.elapsed().as_secs_f64(),
            "join batch's matches acknowledged"
        );
        self.store
            .persist_join_changes(id, &batch.changes, batch.first_seq, batch.version)
            .await
            .map_err(|e| retry("commit the join state", e))
    }

    /// Fails `batch` and everything joined after it on part `id`, drops
    /// the part and refuses records until the runner rewound.
    fn give_up(
        &self,
        parts: &mut HashMap<i32, Part>,
        id: i32,
        batch: Vec<Joined>,
        err: &HandlerError,
    ) {
        tracing::warn!(part = id, error = %err, "join state commit failed; the runner redelivers from the last committed record");
        let _ = self.health.track::<()>(Err(again(err)));
        self.fenced.store(true, Ordering::SeqCst);
        let later = parts.remove(&id).map(|p| p.log).unwrap_or_default();
        fail(batch.into_iter().chain(later), err);
        gauges(parts);
    }
}

/// A copy of `err` (the error type is not `Clone`), always retryable: a
/// failed commit is retried by redelivery.
fn again(err: &HandlerError) -> HandlerError {
    match err {
        HandlerError::Retryable(r) | HandlerError::Permanent(r) => {
            HandlerError::Retryable(r.clone())
        }
    }
}

fn fail(records: impl IntoIterator<Item = Joined>, err: &HandlerError) {
    for j in records {
        let _ = j.done.send(Err(again(err)));
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
        match self.handle_deferred(msg).await? {
            Some(ack) => {
                let r = ack.await;
                if r.is_err() {
                    // The caller retries this record: as a redelivery.
                    self.rewound().await;
                }
                r
            }
            None => Ok(()),
        }
    }

    /// Joins the record in memory and produces its matches now; the
    /// completion resolves when its batch is committed (module docs).
    async fn handle_deferred(&self, msg: &Message) -> Result<Option<Ack>, HandlerError> {
        count_in(SERVICE);
        let side = if self.prompt_topics.contains(&msg.topic) {
            Side::Prompt(Prompt::parse(&msg.value).map_err(|e| reject(SERVICE, "prompt", e))?)
        } else {
            Side::Product(Box::new(
                Product::parse(&msg.value).map_err(|e| reject(SERVICE, "product", e))?,
            ))
        };
        let part = if self.by_partition { msg.partition } else { 0 };
        let (done, completion) = oneshot::channel();
        {
            let mut parts = self.shared.parts.lock().await;
            // Read under the lock the committer sets it under.
            if self.shared.fenced.load(Ordering::SeqCst) {
                // An earlier record's commit failed: this one comes again after the rewind.
                return Ok(Some(Box::pin(async {
                    Err(HandlerError::Retryable(
                        "join: an earlier commit failed; waiting for the redelivery".into(),
                    ))
                })));
            }
            let slot = match parts.entry(part) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let stored = match self.shared.store.load_join_state(part).await {
                        Ok(stored) => stored,
                        Err(e) => {
                            return self
                                .shared
                                .health
                                .track(Err(retry("load the join state", e)))
                        }
                    };
                    let loaded = Part::restored(self.shared.config, stored);
                    tracing::info!(part, size = ?loaded.state.size(), "join state part loaded");
                    e.insert(loaded)
                }
            };
            let record = Joined {
                side,
                event_time_ms: event_time(msg),
                done,
            };
            slot.join(&self.shared, record, Some(msg));
            gauges(&parts);
        }
        self.wake.notify_one();
        Ok(Some(Box::pin(async move {
            completion.await.unwrap_or_else(|_| {
                Err(HandlerError::Retryable(
                    "join stopped before the record's commit".into(),
                ))
            })
        })))
    }

    /// Every completion has resolved: drop the in-memory parts (they
    /// reload from the table on their next record) and take records again.
    async fn rewound(&self) {
        let mut parts = self.shared.parts.lock().await;
        parts.retain(|_, p| !p.log.is_empty());
        for p in parts.values() {
            tracing::warn!(
                records = p.log.len(),
                "join part still has uncommitted records after a rewind; keeping it"
            );
        }
        self.shared.fenced.store(false, Ordering::SeqCst);
        gauges(&parts);
    }
}

enum Side {
    Prompt(Prompt),
    Product(Box<Product>),
}

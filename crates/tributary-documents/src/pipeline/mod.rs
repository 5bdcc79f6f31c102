//! The executor (`docs-executor`): consumer group on the input topic ->
//! parse -> fold per url -> prior state (cache, then one `IN (...)` query)
//! -> one transaction (merging upsert + outbox) -> cache -> offsets.
//!
//! [`Executor::process_batch`] is the whole job for one batch of messages;
//! [`Executor::run`] (in [`run`]) runs it as concurrent stages joined by
//! bounded channels. Guarantees:
//!
//! - an offset is stored and committed only after the state that includes
//!   its update is durable (or, for a poison message, after it is durable on
//!   the dead-letter topic): a crash at any point loses nothing, and the
//!   redelivery changes nothing (the merge is idempotent);
//! - the changed documents go to the outbox in the same transaction as the
//!   state, so a crash between the commit and the produce cannot lose an
//!   output (the `docs-outbox` relay sends it);
//! - the database decides what changed (the upsert merges in SQL and
//!   returns only the rows it changed), so two replicas working on one url
//!   during a rebalance neither lose an update nor emit a change twice;
//! - the cache only ever receives states the database returned after the
//!   commit, so it never holds a state that is not durable. It may lag
//!   behind the database (another replica, a failed cache write); that is
//!   safe because states only grow in the merge order: an update that does
//!   not change a stale prior state cannot change the newer stored state
//!   either, so skipping it is correct.
//! - a cache that fails (Redis stopped, unreachable) is bypassed for
//!   `docs.cache_retry_ms` at a time: the batches read the database alone at
//!   full speed instead of waiting for reconnect attempts, one warning is
//!   logged per outage, and the cache is used again once it answers.

pub mod run;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::dlq_headers;
use tributary_bus::{Bus, Message, Record};
use tributary_storage::Cache;

use crate::domain::{merge, parse_update, Document, EmitPolicy, InvalidUpdate};
use crate::metrics as m;
use crate::settings::DocsSettings;
use crate::store::{DocStore, StoreError};

/// Messages of one batch, parsed.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Valid updates, in message order.
    pub updates: Vec<Document>,
    /// Messages that can never be applied, with the reason.
    pub poison: Vec<(Message, InvalidUpdate)>,
    /// The last message of each partition in the batch: storing these
    /// stores the whole batch.
    pub offsets: Vec<Message>,
    /// Messages in the batch.
    pub messages: usize,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Valid updates.
    pub updates: usize,
    /// Poison messages dead-lettered.
    pub dead_lettered: usize,
    /// Distinct urls of the valid updates.
    pub urls: usize,
    /// Prior states found in the cache.
    pub cache_hits: usize,
    /// The durable states the transaction changed (new urls included).
    pub changed: Vec<Document>,
    /// Documents enqueued to the outbox.
    pub emitted: usize,
}

/// Readiness of the executor: red while batches fail to commit.
#[derive(Clone, Debug, Default)]
pub struct ExecutorHealth {
    failing: Arc<AtomicBool>,
    reason: Arc<Mutex<String>>,
}

impl ExecutorHealth {
    fn fail(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.failing.store(true, Ordering::Relaxed);
    }

    fn ok(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// Whether the last batch attempt failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl tributary_platform::HealthCheck for ExecutorHealth {
    fn name(&self) -> String {
        "docs executor".into()
    }
    async fn check(&self) -> Result<(), String> {
        if self.is_failing() {
            let reason = self.reason.lock().map(|r| r.clone()).unwrap_or_default();
            Err(format!(
                "batches fail to commit and are retried (nothing is committed meanwhile): {reason}"
            ))
        } else {
            Ok(())
        }
    }
}

/// The executor of one process. Cheap to share (`Arc`).
pub struct Executor {
    store: DocStore,
    cache: Option<Cache>,
    bus: Bus,
    settings: Arc<DocsSettings>,
    health: ExecutorHealth,
    /// Messages whose batch is durable (applied or dead-lettered).
    done: AtomicU64,
    /// Prior states found in / missing from the cache, this process.
    hits: AtomicU64,
    misses: AtomicU64,
    /// Set while the cache is bypassed after a failure: until when.
    cache_down: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("store", &self.store)
            .field("cache", &self.cache)
            .field("bus", &self.bus.describe())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor over `store`, the prior-state `cache` (`None`: always
    /// the database), `bus` (input and dead-letter topics) and `settings`.
    pub fn new(
        store: DocStore,
        cache: Option<Cache>,
        bus: Bus,
        settings: Arc<DocsSettings>,
    ) -> Self {
        Self {
            store,
            cache,
            bus,
            settings,
            health: ExecutorHealth::default(),
            done: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            cache_down: Mutex::new(None),
        }
    }

    /// Its readiness check.
    pub fn health(&self) -> ExecutorHealth {
        self.health.clone()
    }

    /// Messages of this process whose batch is durable (state committed,
    /// poison dead-lettered), whether or not their offsets are committed
    /// yet. For progress reports and the benchmark.
    pub fn messages_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Prior-state look-ups of this process answered by the cache, and
    /// those that went to the database (the `cache_hits`/`cache_misses`
    /// counters, readable in process). For the benchmark.
    pub fn cache_lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The store.
    pub fn store(&self) -> &DocStore {
        &self.store
    }

    /// The cache, unless it failed less than `cache_retry_ms` ago.
    fn live_cache(&self) -> Option<&Cache> {
        let cache = self.cache.as_ref()?;
        let down = self.cache_down.lock().map(|d| *d).unwrap_or(None);
        match down {
            Some(until) if Instant::now() < until => None,
            _ => Some(cache),
        }
    }

    /// Records the outcome of a cache call: the first failure of an outage
    /// is logged and starts the bypass; the first success after one ends it.
    fn cache_outcome(&self, result: Result<(), tributary_storage::Error>, what: &str) {
        let Ok(mut down) = self.cache_down.lock() else {
            return;
        };
        match result {
            Ok(()) => {
                if down.take().is_some() {
                    tracing::info!("cache answers again; using it");
                }
            }
            Err(e) => {
                metrics::counter!(m::CACHE_ERRORS).increment(1);
                let cooldown = Duration::from_millis(self.settings.cache_retry_ms);
                if down.is_none() {
                    tracing::warn!(error = %e, ?cooldown,
                        "cache {what} failed; bypassing the cache (the database is authoritative) and trying it again after the cooldown");
                }
                *down = Some(Instant::now() + cooldown);
            }
        }
    }

    /// Parses every message; pure CPU.
    pub fn parse(messages: Vec<Message>) -> Parsed {
        let mut parsed = Parsed {
            messages: messages.len(),
            ..Parsed::default()
        };
        let mut last: BTreeMap<(String, i32), Message> = BTreeMap::new();
        for msg in messages {
            match parse_update(&msg.value) {
                Ok(doc) => parsed.updates.push(doc),
                Err(e) => parsed.poison.push((msg.clone(), e)),
            }
            last.insert((msg.topic.clone(), msg.partition), msg);
        }
        parsed.offsets = last.into_values().collect();
        parsed
    }

    /// Publishes the poison messages to the dead-letter topic (original
    /// key, value and headers, plus `dlq.error`, `dlq.topic`,
    /// `dlq.partition`, `dlq.offset`, `dlq.group`), retrying with backoff
    /// until every one is durable. Returns false when `shutdown` interrupted
    /// it (the batch must then not be stored).
    pub async fn dead_letter(
        &self,
        poison: &[(Message, InvalidUpdate)],
        shutdown: &CancellationToken,
    ) -> bool {
        let mut attempt = 0u32;
        let mut left: Vec<Record> = poison
            .iter()
            .map(|(msg, err)| {
                tracing::warn!(topic = %msg.topic, partition = msg.partition, offset = msg.offset, error = %err,
                    "invalid document update; dead-lettering");
                let mut record = Record {
                    topic: self.settings.dead_letter_topic.clone(),
                    key: msg.key.clone(),
                    value: msg.value.clone(),
                    headers: msg.headers.clone(),
                    // Stamped when dead-lettered: retention counts from then.
                    timestamp_ms: None,
                };
                record = record
                    .header(dlq_headers::ERROR, err.to_string())
                    .header(dlq_headers::TOPIC, msg.topic.clone())
                    .header(dlq_headers::PARTITION, msg.partition.to_string())
                    .header(dlq_headers::OFFSET, msg.offset.to_string())
                    .header(dlq_headers::GROUP, self.settings.group.clone());
                record
            })
            .collect();
        while !left.is_empty() {
            let sends = left.iter().map(|r| self.bus.send(r.clone()));
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            for (r, res) in left.into_iter().zip(results) {
                match res {
                    Ok(_) => metrics::counter!(m::DEAD_LETTERED).increment(1),
                    Err(e) => {
                        tracing::error!(error = %e, topic = %r.topic, "cannot publish to the dead-letter topic; retrying");
                        failed.push(r);
                    }
                }
            }
            left = failed;
            if left.is_empty() {
                break;
            }
            let delay = self.settings.retry_delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
        }
        true
    }

    /// Applies the valid updates of one batch: folds them per url with
    /// [`merge`], reads the prior states (cache first, the misses with one
    /// `IN (...)` query), runs ONE transaction for the urls an update may
    /// change (all of them under [`EmitPolicy::Always`]): the merging upsert
    /// plus the outbox; after the commit puts the returned durable states
    /// (and the prior states read from the database) into the cache.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails: nothing was committed, and
    /// the same batch may simply be applied again. Cache failures are not
    /// errors (a failed read is a miss, and the cache is bypassed for `cache_retry_ms`).
    pub async fn apply(&self, updates: &[Document]) -> Result<BatchReport, StoreError> {
        let mut folded: HashMap<&str, Document> = HashMap::with_capacity(updates.len());
        for u in updates {
            match folded.get_mut(u.url.as_str()) {
                Some(state) => *state = merge(state, u),
                None => {
                    folded.insert(u.url.as_str(), u.clone().normalized());
                }
            }
        }
        let mut report = BatchReport {
            updates: updates.len(),
            urls: folded.len(),
            ..BatchReport::default()
        };
        if folded.is_empty() {
            return Ok(report);
        }
        let mut urls: Vec<&str> = folded.keys().copied().collect();
        urls.sort_unstable();

        // Prior states: cache, then the database for the misses.
        let mut prior: HashMap<String, Document> = HashMap::with_capacity(urls.len());
        if let Some(cache) = self.live_cache() {
            match cache.get_many(&urls).await {
                Ok(values) => {
                    self.cache_outcome(Ok(()), "read");
                    for (url, v) in urls.iter().zip(values) {
                        if let Some(doc) = v.and_then(|b| parse_update(&b).ok()) {
                            if doc.url == *url {
                                prior.insert(doc.url.clone(), doc);
                            }
                        }
                    }
                }
                Err(e) => self.cache_outcome(Err(e), "read"),
            }
        }
        report.cache_hits = prior.len();
        metrics::counter!(m::CACHE_HITS).increment(prior.len() as u64);
        self.hits.fetch_add(prior.len() as u64, Ordering::Relaxed);
        let misses: Vec<&str> = urls
            .iter()
            .copied()
            .filter(|u| !prior.contains_key(*u))
            .collect();
        metrics::counter!(m::CACHE_MISSES).increment(misses.len() as u64);
        self.misses
            .fetch_add(misses.len() as u64, Ordering::Relaxed);
        let from_db = if misses.is_empty() {
            HashMap::new()
        } else {
            self.store.get_many(&misses).await?
        };

        // What may change: skip updates that change nothing of the prior
        // state (safe even when the prior state is stale; see module docs).
        let always = self.settings.emit == EmitPolicy::Always;
        let mut candidates: Vec<Document> = Vec::with_capacity(urls.len());
        for url in &urls {
            let update = &folded[url];
            let known = prior.get(*url).or_else(|| from_db.get(*url));
            let changes = known.is_none_or(|p| merge(p, update) != *p);
            if changes || always {
                candidates.push(update.clone());
            }
        }

        let mut upserted = crate::store::Upserted::default();
        if !candidates.is_empty() {
            let t0 = Instant::now();
            upserted = self.store.upsert(&candidates, self.settings.emit).await?;
            metrics::histogram!(m::COMMIT_SECONDS).record(t0.elapsed().as_secs_f64());
        }

        // After the commit only: the durable states into the cache.
        if let Some(cache) = self.live_cache() {
            let mut fresh: HashMap<&str, &Document> = HashMap::new();
            for (url, doc) in &from_db {
                fresh.insert(url.as_str(), doc);
            }
            for doc in &upserted.changed {
                fresh.insert(doc.url.as_str(), doc);
            }
            let mut entries: Vec<(&str, Bytes)> = Vec::with_capacity(fresh.len());
            for (url, doc) in fresh {
                if let Ok(v) = serde_json::to_vec(doc) {
                    entries.push((url, Bytes::from(v)));
                }
            }
            let written = cache.set_many(&entries).await;
            self.cache_outcome(written, "write");
        }

        metrics::counter!(m::UPDATES_IN).increment(updates.len() as u64);
        metrics::counter!(m::MERGED).increment(upserted.changed.len() as u64);
        metrics::counter!(m::UNCHANGED)
            .increment((folded.len() - upserted.changed.len().min(folded.len())) as u64);
        metrics::counter!(m::EMITTED).increment(upserted.emitted as u64);
        report.emitted = upserted.emitted;
        report.changed = upserted.changed;
        Ok(report)
    }

    /// The whole job of one batch, once: parse, dead-letter the poison
    /// messages, apply the rest. The caller stores the offsets afterwards.
    ///
    /// # Errors
    /// As [`Executor::apply`]; also when shutdown interrupted the
    /// dead-lettering.
    pub async fn process_batch(
        &self,
        messages: Vec<Message>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<BatchReport> {
        let parsed = Self::parse(messages);
        if !self.dead_letter(&parsed.poison, shutdown).await {
            anyhow::bail!("shutdown while dead-lettering");
        }
        let mut report = self.apply(&parsed.updates).await?;
        report.dead_lettered = parsed.poison.len();
        Ok(report)
    }

    /// [`Executor::apply`] retried with backoff until it succeeds (readiness
    /// red meanwhile) or `shutdown` fires (`None`: nothing was committed).
    pub async fn apply_until_durable(
        &self,
        updates: &[Document],
        shutdown: &CancellationToken,
    ) -> Option<BatchReport> {
        let mut attempt = 0u32;
        loop {
            match self.apply(updates).await {
                Ok(report) => {
                    if self.health.is_failing() {
                        tracing::info!(attempt, "batch committed again after failures");
                    }
                    self.health.ok();
                    return Some(report);
                }
                Err(e) => {
                    let delay = self.settings.retry_delay(attempt);
                    attempt = attempt.saturating_add(1);
                    metrics::counter!(m::BATCH_RETRIES).increment(1);
                    tracing::warn!(error = %e, attempt, ?delay, "batch failed; retrying the same batch");
                    self.health.fail(e.to_string());
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

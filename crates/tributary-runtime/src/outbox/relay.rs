//! The outbox relay ("retranslator"): consumers claim batches of outbox
//! events under a lease, producers publish them through the system's
//! [`Encoder`] (the key is the event's key), a cleaner deletes sent events
//! and unlocks failed ones.
//!
//! Guarantees:
//! - at-least-once: an event is deleted only after the bus acknowledged it;
//!   a relay killed at any point leaves its events locked until the lease
//!   expires, then any relay sends them again (duplicates, never losses);
//! - per-key order, with any number of relays: a key is claimed only when
//!   no event of it is leased or backing off, claims take a prefix of a
//!   key's events, and one key's events are sent one after another, the
//!   next only after the previous was acknowledged. When one fails, the
//!   rest of its key waits; other keys go on;
//! - leases are renewed by a heartbeat while the relay lives, so a slow
//!   broker does not make another relay take live work over;
//! - shutdown drains: consumers stop, producers finish their batches, the
//!   cleaner flushes.
//!
//! Metrics (label `namespace`): `tributary_outbox_sent_total`,
//! `tributary_outbox_failed_total`, `tributary_outbox_commit_to_ack_seconds`,
//! `tributary_outbox_lag_seconds`, `tributary_outbox_in_flight`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tributary_bus::{Bus, Record};

use super::config::RelayConfig;
use super::store::{OutboxEvent, OutboxStore, Release};

/// Claimed batches one producer sends at the same time.
const BATCHES_IN_FLIGHT: usize = 16;

/// Most results one cleaner flush deletes or releases.
const MAX_FLUSH: usize = 10_000;

/// Counter: events the bus acknowledged (label `namespace`).
pub const SENT: &str = "tributary_outbox_sent_total";
/// Counter: events whose send round failed (label `namespace`).
pub const FAILED: &str = "tributary_outbox_failed_total";
/// Histogram: seconds from the outbox commit to the bus's acknowledgement.
pub const LATENCY: &str = "tributary_outbox_commit_to_ack_seconds";
/// Gauge: age of the oldest unsent event, seconds.
pub const LAG: &str = "tributary_outbox_lag_seconds";
/// Gauge: events claimed and not yet deleted or released.
pub const IN_FLIGHT: &str = "tributary_outbox_in_flight";

/// Turns a claimed event into the bus record sent to `topic`.
pub type Encoder = Arc<dyn Fn(&str, &OutboxEvent) -> Record + Send + Sync>;

/// The plain encoder: key and payload as written.
pub fn plain() -> Encoder {
    Arc::new(|topic: &str, e: &OutboxEvent| {
        Record::new(
            topic,
            Bytes::copy_from_slice(&e.key),
            Bytes::copy_from_slice(&e.payload),
        )
    })
}

/// Readiness of a relay: red while sends fail (the bus is away or refuses).
#[derive(Clone, Debug, Default)]
pub struct RelayHealth {
    name: String,
    failing: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl tributary_platform::HealthCheck for RelayHealth {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn check(&self) -> Result<(), String> {
        if self.failing.load(Ordering::Relaxed) {
            Err("publishing to the event bus fails; events are kept and retried".into())
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Sent(i64),
    Failed { id: i64, backoff: Duration },
    Untried(i64),
}

/// A relay instance. Several may run at once (in one or many processes).
pub struct Relay {
    store: OutboxStore,
    bus: Bus,
    cfg: RelayConfig,
    encoder: Encoder,
    owner: String,
    health: RelayHealth,
    latency_tap: Option<mpsc::UnboundedSender<Duration>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("owner", &self.owner)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl Relay {
    /// A relay of `store`'s namespace to `bus`, records made by `encoder`
    /// ([`plain`] sends key and payload as written).
    pub fn new(store: OutboxStore, bus: Bus, cfg: RelayConfig, encoder: Encoder) -> Self {
        let owner = if cfg.owner.trim().is_empty() {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "relay".into());
            let rnd = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}-{}-{}", std::process::id(), &rnd[..8])
        } else {
            cfg.owner.clone()
        };
        let health = RelayHealth {
            name: format!("{} outbox relay", store.namespace()),
            failing: Arc::default(),
        };
        Self {
            store,
            bus,
            cfg,
            encoder,
            owner,
            health,
            latency_tap: None,
        }
    }

    /// Reports commit-to-acknowledged latency of every sent event (bench).
    #[must_use]
    pub fn with_latency_tap(mut self, tap: mpsc::UnboundedSender<Duration>) -> Self {
        self.latency_tap = Some(tap);
        self
    }

    /// The lease owner name of this relay.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Its readiness check.
    pub fn health(&self) -> RelayHealth {
        self.health.clone()
    }

    /// Runs until `shutdown` fires, then drains. Dropping the future (a
    /// crash) aborts every task; leases then expire and events are resent.
    ///
    /// # Errors
    /// Never for backend trouble (that is retried and shown on readiness);
    /// only when a task panics.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let me = Arc::new(self);
        tracing::info!(namespace = %me.store.namespace(), owner = %me.owner, topic = %me.cfg.topic, "outbox relay starting");
        me.ensure_topic(&shutdown).await;
        let (events_tx, events_rx) = mpsc::channel::<Vec<OutboxEvent>>(me.cfg.producers.max(1) * 2);
        let events_rx = Arc::new(Mutex::new(events_rx));
        // Bounded: when the cleaner falls behind, producers wait and claims
        // pause, instead of sent events piling up as leased rows (every
        // claim and heartbeat pays for each of them).
        let (results_tx, results_rx) =
            mpsc::channel::<Vec<Outcome>>(me.cfg.producers.max(1) * BATCHES_IN_FLIGHT);

        let mut lag = JoinSet::new();
        let stop_lag = CancellationToken::new();
        lag.spawn(me.clone().lag_loop(stop_lag.clone()));
        lag.spawn(me.clone().heartbeat(stop_lag.clone()));
        let mut cleaner = JoinSet::new();
        cleaner.spawn(me.clone().cleaner(results_rx));
        let mut producers = JoinSet::new();
        for _ in 0..me.cfg.producers.max(1) {
            producers.spawn(me.clone().producer(events_rx.clone(), results_tx.clone()));
        }
        drop(results_tx);
        let mut consumers = JoinSet::new();
        for _ in 0..me.cfg.consumers.max(1) {
            consumers.spawn(me.clone().consumer(events_tx.clone(), shutdown.clone()));
        }
        drop(events_tx);

        // Drain in order: consumers stop claiming, producers finish, cleaner flushes.
        let mut panicked = None;
        for set in [&mut consumers, &mut producers, &mut cleaner] {
            while let Some(r) = set.join_next().await {
                if let Err(e) = r {
                    panicked.get_or_insert(e);
                }
            }
        }
        stop_lag.cancel();
        while lag.join_next().await.is_some() {}
        tracing::info!(owner = %me.owner, "relay drained and stopped");
        match panicked {
            Some(e) => Err(anyhow::anyhow!("relay task panicked: {e}")),
            None => Ok(()),
        }
    }

    async fn ensure_topic(&self, shutdown: &CancellationToken) {
        let mut n = 0;
        loop {
            match self
                .bus
                .create_topic(&self.cfg.topic, self.cfg.partitions)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    self.health.failing.store(true, Ordering::Relaxed);
                    tracing::warn!(topic = %self.cfg.topic, error = %e, "cannot create the relay topic; retrying");
                }
            }
            let delay = self.cfg.backoff(n);
            n = n.saturating_add(1);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn consumer(
        self: Arc<Self>,
        out: mpsc::Sender<Vec<OutboxEvent>>,
        shutdown: CancellationToken,
    ) {
        let idle = Duration::from_millis(self.cfg.poll_interval_ms.max(1));
        let busy = Duration::from_millis(
            self.cfg
                .busy_poll_interval_ms
                .min(self.cfg.poll_interval_ms),
        );
        let mut errors = 0u32;
        while !shutdown.is_cancelled() {
            let pause = match self
                .store
                .claim(&self.owner, self.cfg.lease(), self.cfg.batch_size.max(1))
                .await
            {
                Ok(batch) if batch.is_empty() => {
                    errors = 0;
                    idle
                }
                Ok(batch) => {
                    errors = 0;
                    let full = batch.len() as i64 >= self.cfg.batch_size;
                    metrics::gauge!(IN_FLIGHT, "namespace" => self.store.namespace().to_owned())
                        .increment(batch.len() as f64);
                    tracing::debug!(
                        n = batch.len(),
                        first = batch[0].id,
                        "claimed outbox events"
                    );
                    if out.send(batch).await.is_err() {
                        return;
                    }
                    if full {
                        continue;
                    }
                    busy
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming outbox events failed; retrying");
                    errors = errors.saturating_add(1);
                    self.cfg.backoff(errors)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Takes claimed batches and sends them, up to [`BATCHES_IN_FLIGHT`]
    /// batches at once per producer. Batches are independent: a key is never
    /// in two claimed batches at the same time (its events stay leased until
    /// the cleaner deletes them), so pipelining keeps per-key order.
    async fn producer(
        self: Arc<Self>,
        input: Arc<Mutex<mpsc::Receiver<Vec<OutboxEvent>>>>,
        out: mpsc::Sender<Vec<Outcome>>,
    ) {
        let mut inflight = FuturesUnordered::new();
        let mut open = true;
        loop {
            if !open && inflight.is_empty() {
                return;
            }
            tokio::select! {
                batch = async { input.lock().await.recv().await }, if open && inflight.len() < BATCHES_IN_FLIGHT => {
                    match batch {
                        Some(batch) => inflight.push(self.send_batch(batch)),
                        None => open = false,
                    }
                }
                Some(outcomes) = inflight.next(), if !inflight.is_empty() => {
                    if out.send(outcomes).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Sends one claimed batch: keys concurrently, each key in order.
    async fn send_batch(&self, batch: Vec<OutboxEvent>) -> Vec<Outcome> {
        let mut order: Vec<Vec<OutboxEvent>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for e in batch {
            let i = *index.entry(e.key.clone()).or_insert_with(|| {
                order.push(Vec::new());
                order.len() - 1
            });
            order[i].push(e);
        }
        let chains = order.into_iter().map(|events| self.send_chain(events));
        join_all(chains).await.into_iter().flatten().collect()
    }

    /// Sends one key's events in order; after a failure the rest are untried.
    async fn send_chain(&self, events: Vec<OutboxEvent>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut blocked = false;
        for e in events {
            if blocked {
                outcomes.push(Outcome::Untried(e.id));
                continue;
            }
            if self.send_one(&e).await {
                outcomes.push(Outcome::Sent(e.id));
            } else {
                blocked = true;
                let rounds = u32::try_from(e.attempts.max(0)).unwrap_or(0);
                let backoff = self
                    .cfg
                    .backoff(self.cfg.send_attempts.saturating_add(rounds));
                outcomes.push(Outcome::Failed { id: e.id, backoff });
            }
        }
        outcomes
    }

    async fn send_one(&self, e: &OutboxEvent) -> bool {
        let attempts = self.cfg.send_attempts.max(1);
        for attempt in 0..attempts {
            match self.bus.send((self.encoder)(&self.cfg.topic, e)).await {
                Ok(_) => {
                    self.health.failing.store(false, Ordering::Relaxed);
                    metrics::counter!(SENT, "namespace" => self.store.namespace().to_owned())
                        .increment(1);
                    let latency = (chrono::Utc::now() - e.created)
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!(LATENCY, "namespace" => self.store.namespace().to_owned())
                        .record(latency.as_secs_f64());
                    if let Some(tap) = &self.latency_tap {
                        let _ = tap.send(latency);
                    }
                    return true;
                }
                Err(err) => {
                    self.health.failing.store(true, Ordering::Relaxed);
                    tracing::debug!(event = e.id, attempt, error = %err, "send failed");
                    if attempt + 1 < attempts {
                        tokio::time::sleep(self.cfg.backoff(attempt)).await;
                    } else {
                        metrics::counter!(FAILED, "namespace" => self.store.namespace().to_owned())
                            .increment(1);
                        let level_error = e.attempts >= 3;
                        if level_error {
                            tracing::error!(namespace = %self.store.namespace(), event = e.id, key = %String::from_utf8_lossy(&e.key), rounds = e.attempts + 1, error = %err,
                                "outbox event keeps failing; its key waits, other keys go on");
                        } else {
                            tracing::warn!(namespace = %self.store.namespace(), event = e.id, key = %String::from_utf8_lossy(&e.key), error = %err,
                                "outbox event not sent; retrying later");
                        }
                    }
                }
            }
        }
        false
    }

    /// Deletes sent events and releases the others. Each flush takes every
    /// result already waiting (up to [`MAX_FLUSH`]), so one statement's cost
    /// is shared by as many events as the relay has sent meanwhile: a
    /// cleaner that flushed 100 at a time fell behind on SQLite, and the
    /// sent events stayed leased (73k of them in the 1M-update bench).
    async fn cleaner(self: Arc<Self>, mut input: mpsc::Receiver<Vec<Outcome>>) {
        let interval = Duration::from_millis(self.cfg.cleaner_interval_ms.max(1));
        let mut pending: Vec<Outcome> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                got = input.recv() => match got {
                    Some(batch) => {
                        pending.extend(batch);
                        while pending.len() < MAX_FLUSH {
                            match input.try_recv() {
                                Ok(more) => pending.extend(more),
                                Err(_) => break,
                            }
                        }
                        deadline.get_or_insert_with(|| Instant::now() + interval);
                        if pending.len() < self.cfg.cleaner_batch.max(1) {
                            continue;
                        }
                    }
                    None => {
                        self.flush(std::mem::take(&mut pending)).await;
                        return;
                    }
                },
                () = timer => {}
            }
            self.flush(std::mem::take(&mut pending)).await;
            deadline = None;
        }
    }

    async fn flush(&self, outcomes: Vec<Outcome>) {
        if outcomes.is_empty() {
            return;
        }
        let n = outcomes.len();
        let mut sent = Vec::new();
        let mut release = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Sent(id) => sent.push(id),
                Outcome::Failed { id, backoff } => release.push((id, Release::Failed { backoff })),
                Outcome::Untried(id) => release.push((id, Release::Untried)),
            }
        }
        for attempt in 0..5u32 {
            let res = async {
                self.store.delete_sent(&self.owner, &sent).await?;
                self.store.release(&self.owner, &release).await
            }
            .await;
            match res {
                Ok(()) => break,
                Err(e) if attempt < 4 => {
                    tracing::warn!(error = %e, "cleaner could not update the outbox; retrying");
                    tokio::time::sleep(self.cfg.backoff(attempt)).await;
                }
                Err(e) => {
                    // The leases expire and the events are sent again: duplicates, no loss.
                    tracing::error!(error = %e, n, "cleaner gave up; events will be resent after their lease");
                }
            }
        }
        metrics::gauge!(IN_FLIGHT, "namespace" => self.store.namespace().to_owned())
            .decrement(n as f64);
    }

    /// Renews this relay's leases every third of the lease while it runs
    /// (including the drain). A killed relay stops renewing, so its leases
    /// expire and other relays take its events over.
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let every = self.cfg.lease() / 3;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.store.renew(&self.owner).await {
                tracing::warn!(error = %e, "renewing relay leases failed");
            }
        }
    }

    async fn lag_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match self.store.oldest_unsent_age().await {
                Ok(age) => metrics::gauge!(LAG, "namespace" => self.store.namespace().to_owned())
                    .set(age.unwrap_or_default().as_secs_f64()),
                Err(e) => tracing::debug!(error = %e, "relay lag query failed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

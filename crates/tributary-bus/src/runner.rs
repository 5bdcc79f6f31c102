//! The at-least-once consumer runner every service uses.
//!
//! For each message the handler returns:
//! - `Ok(())` — the side effect is durable; the offset is stored (and
//!   committed in the background, on shutdown and on rebalance);
//! - [`HandlerError::Retryable`] — retried with exponential backoff; the
//!   partition does not move on (messages behind it wait); after
//!   `max_retries`, if set, the message is dead-lettered;
//! - [`HandlerError::Permanent`] — the message goes to `<topic>.dlq` with the
//!   error and its origin in headers, then the partition moves on.
//!
//! A handler may also issue its side effect and hand back its completion
//! instead of waiting for it ([`Handler::handle_deferred`], e.g. a produce
//! whose delivery report is still on its way): the runner goes on with the
//! next messages, up to [`RunnerConfig::max_in_flight`] incomplete, and
//! stores offsets strictly in message order as completions arrive, so an
//! offset is still stored only after its side effect and every earlier
//! one is durable. A completion that fails rewinds: the runner waits for
//! the rest, closes the consumer (committing only what completed) and
//! subscribes again after a backoff, so the failed message and everything
//! after it are delivered again ([`Handler::rewound`] is told first).
//!
//! Every [`LAG_INTERVAL`] the runner asks the consumer for its lag (in a task
//! of its own, beside the consume loop; a handler busy retrying delays the
//! next refresh) and sets [`CONSUMER_LAG`].
//!
//! Shutdown (the token) lets the in-flight message finish, commits, and
//! leaves the group. A crash commits nothing more: what was not committed is
//! delivered again, so handlers must be idempotent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::port::{Consumer, ConsumerOptions, PartitionLag};
use crate::record::{Message, Record};
use crate::{Bus, Result};

/// Suffix of dead-letter topics.
pub const DLQ_SUFFIX: &str = ".dlq";

/// Counter: messages handled, by `topic` and `outcome` ([`OUTCOMES`]).
pub const MESSAGES: &str = "tributary_consumer_messages_total";
/// The `outcome` values of [`MESSAGES`]: handled, or sent to the dead letter.
pub const OUTCOMES: [&str; 2] = ["ok", "dead_letter"];
/// Counter: retries of a failing handler, by `topic`.
pub const RETRIES: &str = "tributary_consumer_retries_total";
/// Histogram: seconds per handled message, by `topic`.
pub const HANDLE_SECONDS: &str = "tributary_consumer_handle_seconds";
/// Gauge: records of a partition the group has not processed yet (log end
/// offset minus the group's position, [`crate::port::Consumer::lag`]), by
/// `group`, `topic` and `partition`; refreshed every [`LAG_INTERVAL`] for the
/// partitions this process consumes (one it no longer owns drops to 0).
pub const CONSUMER_LAG: &str = "tributary_bus_consumer_lag";
/// How often the runner refreshes [`CONSUMER_LAG`].
pub const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Header names on dead-lettered messages.
pub mod dlq_headers {
    /// Why the message was dead-lettered.
    pub const ERROR: &str = "dlq.error";
    /// Topic it came from.
    pub const TOPIC: &str = "dlq.topic";
    /// Partition it came from.
    pub const PARTITION: &str = "dlq.partition";
    /// Offset it had.
    pub const OFFSET: &str = "dlq.offset";
    /// Consumer group that gave up on it.
    pub const GROUP: &str = "dlq.group";
}

/// What went wrong in a handler, and whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A dependency failed (database down, timeout): retry the same message.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The message itself is bad (malformed, violates a rule): dead-letter it.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// The completion of a side effect a handler issued without waiting for it
/// ([`Handler::handle_deferred`]).
pub type Ack = futures::future::BoxFuture<'static, Result<(), HandlerError>>;

/// Processes one message at a time. Must be idempotent.
#[async_trait::async_trait]
pub trait Handler: Send + Sync {
    /// Handles `message`; see [`HandlerError`] for the error contract.
    async fn handle(&self, message: &Message) -> Result<(), HandlerError>;

    /// Like [`Handler::handle`], but may return the completion of a side
    /// effect it issued (in message order) instead of waiting for it; the
    /// runner stores the offset once it and every earlier one resolved
    /// `Ok` (see the module docs). Errors returned here, before any
    /// completion, follow [`HandlerError`]'s contract. Default: `handle`,
    /// nothing left pending.
    async fn handle_deferred(&self, message: &Message) -> Result<Option<Ack>, HandlerError> {
        self.handle(message).await.map(|()| None)
    }

    /// Called after a failed deferred completion made the runner rewind,
    /// once every outstanding completion resolved and before it subscribes
    /// again: what follows is a redelivery from the last stored offsets, so
    /// a handler that keeps state ahead of its completions drops it here.
    /// Default: nothing.
    async fn rewound(&self) {}
}

/// Retry policy.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Dead-letter after this many failed attempts; `None` retries until shutdown.
    pub max_retries: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            max_retries: None,
        }
    }
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Consumer group.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Retry policy for retryable errors (and for dead-letter publishing).
    pub backoff: Backoff,
    /// Consumer options.
    pub consumer: ConsumerOptions,
    /// Most messages whose deferred completion is still outstanding
    /// ([`Handler::handle_deferred`]); the runner waits before taking more.
    pub max_in_flight: usize,
}

impl RunnerConfig {
    /// A runner for `group` on `topics` with default policies.
    pub fn new(group: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group: group.into(),
            topics: topics.iter().map(ToString::to_string).collect(),
            backoff: Backoff::default(),
            consumer: ConsumerOptions::default(),
            max_in_flight: 1024,
        }
    }
}

/// Consumes until `shutdown` is cancelled. Creates the dead-letter topics
/// (one partition each) if missing.
///
/// # Errors
/// When the bus fails in a way that is not transient (subscribe, commit on close).
pub async fn run(
    bus: Bus,
    config: RunnerConfig,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<()> {
    for t in &config.topics {
        bus.create_topic(&format!("{t}{DLQ_SUFFIX}"), 1).await?;
    }
    let mut rewinds: u32 = 0;
    loop {
        let mut consumer = bus
            .subscribe(&config.group, &config.topics, config.consumer.clone())
            .await?;
        tracing::info!(group = %config.group, topics = ?config.topics, bus = %bus.describe(), "consumer started");
        let result = consume(&bus, &config, &*handler, &mut *consumer, &shutdown).await;
        let closed = consumer.close().await;
        tracing::info!(group = %config.group, "consumer stopped; offsets committed");
        match result {
            Ok(Flow::Rewind) if !shutdown.is_cancelled() => {
                closed?;
                handler.rewound().await;
                let delay = config.backoff.delay(rewinds);
                rewinds = rewinds.saturating_add(1);
                tracing::warn!(group = %config.group, ?delay, "a deferred side effect failed; resubscribing to redeliver from the last stored offset");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Ok(_) => return closed,
            Err(e) => return Err(e),
        }
    }
}

/// How [`consume`] ended.
enum Flow {
    /// Shutdown.
    Stop,
    /// A deferred completion failed: subscribe again.
    Rewind,
}

/// A message whose offset waits for its completion (and its predecessors').
type Pending = futures::future::BoxFuture<'static, (Message, Result<(), HandlerError>)>;

/// Waits for the outstanding completions in order, storing each offset
/// until the first failure (none when `ok` is false already: an earlier
/// one failed); returns false when one failed (the rest are awaited too,
/// their offsets not stored).
async fn drain(
    consumer: &mut dyn Consumer,
    pending: &mut futures::stream::FuturesOrdered<Pending>,
    mut ok: bool,
) -> bool {
    use futures::StreamExt as _;
    while let Some((message, result)) = pending.next().await {
        if ok {
            ok = settle(consumer, &message, result);
        }
    }
    ok
}

/// Stores `message`'s offset if its completion succeeded; false if not.
fn settle(
    consumer: &mut dyn Consumer,
    message: &Message,
    result: Result<(), HandlerError>,
) -> bool {
    match result {
        Ok(()) => {
            if let Err(e) = consumer.store(message) {
                // The partition may have been revoked meanwhile: its new
                // owner starts from the last committed offset.
                tracing::debug!(topic = %message.topic, partition = message.partition, offset = message.offset, error = %e, "offset of a completed message not stored");
            }
            true
        }
        Err(e) => {
            tracing::warn!(topic = %message.topic, partition = message.partition, offset = message.offset, error = %e, "deferred side effect failed");
            false
        }
    }
}

/// Metric handles of one topic, looked up once instead of per message.
struct TopicMetrics {
    ok: metrics::Counter,
    dead_letter: metrics::Counter,
    retries: metrics::Counter,
    seconds: metrics::Histogram,
}

impl TopicMetrics {
    fn new(topic: &str) -> Self {
        let t = topic.to_string();
        Self {
            ok: metrics::counter!(MESSAGES, "topic" => t.clone(), "outcome" => OUTCOMES[0]),
            dead_letter: metrics::counter!(MESSAGES, "topic" => t.clone(), "outcome" => OUTCOMES[1]),
            retries: metrics::counter!(RETRIES, "topic" => t.clone()),
            seconds: metrics::histogram!(HANDLE_SECONDS, "topic" => t),
        }
    }
}

async fn consume(
    bus: &Bus,
    config: &RunnerConfig,
    handler: &dyn Handler,
    consumer: &mut dyn Consumer,
    shutdown: &CancellationToken,
) -> Result<Flow> {
    use futures::StreamExt as _;
    let mut pending: futures::stream::FuturesOrdered<Pending> =
        futures::stream::FuturesOrdered::new();
    let max_in_flight = config.max_in_flight.max(1);
    let mut per_topic: std::collections::HashMap<String, TopicMetrics> =
        std::collections::HashMap::new();
    let mut lag = LagGauges::new(&config.group);
    let mut tick = tokio::time::interval(LAG_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asking: Option<tokio::task::JoinHandle<Result<Vec<PartitionLag>>>> = None;
    loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                if let Some(task) = asking.take() {
                    task.abort();
                }
                drain(consumer, &mut pending, true).await;
                return Ok(Flow::Stop);
            }
            Some((done, result)) = pending.next(), if !pending.is_empty() => {
                if !settle(consumer, &done, result) {
                    // Nothing after the failed one may be stored.
                    drain(consumer, &mut pending, false).await;
                    return Ok(Flow::Rewind);
                }
                continue;
            }
            Some(answer) = async { Some(asking.as_mut()?.await) }, if asking.is_some() => {
                asking = None;
                match answer {
                    Ok(Ok(partitions)) => lag.set(&partitions),
                    Ok(Err(e)) => tracing::debug!(group = %config.group, error = %e, "consumer lag unknown this time"),
                    Err(e) => tracing::debug!(group = %config.group, error = %e, "consumer lag task failed"),
                }
                continue;
            }
            _ = tick.tick(), if asking.is_none() => {
                asking = Some(tokio::spawn(consumer.lag()));
                continue;
            }
            m = consumer.recv(), if pending.len() < max_in_flight => m?,
        };
        if !per_topic.contains_key(&message.topic) {
            per_topic.insert(message.topic.clone(), TopicMetrics::new(&message.topic));
        }
        let Some(m) = per_topic.get(&message.topic) else {
            continue;
        };
        match process(bus, config, handler, &message, m, shutdown).await {
            Done::Now if pending.is_empty() => consumer.store(&message)?,
            // Behind outstanding completions: stored in its turn.
            Done::Now => pending.push_back(Box::pin(async move { (message, Ok(())) })),
            Done::Later(ack) => pending.push_back(Box::pin(async move {
                let result = ack.await;
                (message, result)
            })),
            Done::Stopped => {
                // Shutdown interrupted a retry: leave the offset for redelivery.
                drain(consumer, &mut pending, true).await;
                return Ok(Flow::Stop);
            }
        }
    }
}

/// The [`CONSUMER_LAG`] gauges of one group: set for the partitions reported, and
/// back to 0 for those reported before but not now (revoked).
struct LagGauges {
    group: String,
    shown: std::collections::HashSet<(String, i32)>,
}

impl LagGauges {
    fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            shown: std::collections::HashSet::new(),
        }
    }

    fn gauge(&self, topic: &str, partition: i32) -> metrics::Gauge {
        metrics::gauge!(CONSUMER_LAG, "group" => self.group.clone(), "topic" => topic.to_owned(), "partition" => partition.to_string())
    }

    #[allow(clippy::cast_precision_loss)] // lags far below 2^53
    fn set(&mut self, partitions: &[PartitionLag]) {
        let now: std::collections::HashSet<(String, i32)> = partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        for (topic, partition) in self.shown.difference(&now) {
            self.gauge(topic, *partition).set(0.0);
        }
        for p in partitions {
            self.gauge(&p.topic, p.partition).set(p.lag() as f64);
        }
        self.shown = now;
    }
}

/// What [`process`] did with a message.
enum Done {
    /// Handled or dead-lettered: durable now.
    Now,
    /// Handled; durable when this resolves.
    Later(Ack),
    /// Shutdown interrupted it.
    Stopped,
}

/// Handles one message (retrying, dead-lettering) until it is done with.
#[tracing::instrument(
    name = "consume",
    level = "debug",
    skip_all,
    fields(topic = %message.topic, partition = message.partition, offset = message.offset, group = %config.group)
)]
async fn process(
    bus: &Bus,
    config: &RunnerConfig,
    handler: &dyn Handler,
    message: &Message,
    metrics: &TopicMetrics,
    shutdown: &CancellationToken,
) -> Done {
    let started = Instant::now();
    let mut attempt: u32 = 0;
    let mut later = None;
    let outcome = loop {
        match handler.handle_deferred(message).await {
            Ok(ack) => {
                later = ack;
                break &metrics.ok;
            }
            Err(HandlerError::Permanent(reason)) => {
                tracing::warn!(%reason, "permanent failure; dead-lettering");
                if !dead_letter(bus, config, message, &reason, shutdown).await {
                    return Done::Stopped;
                }
                break &metrics.dead_letter;
            }
            Err(HandlerError::Retryable(reason)) => {
                attempt += 1;
                metrics.retries.increment(1);
                if config.backoff.max_retries.is_some_and(|max| attempt > max) {
                    tracing::warn!(%reason, attempt, "retries exhausted; dead-lettering");
                    let reason = format!("retries exhausted after {attempt} attempts: {reason}");
                    if !dead_letter(bus, config, message, &reason, shutdown).await {
                        return Done::Stopped;
                    }
                    break &metrics.dead_letter;
                }
                let delay = config.backoff.delay(attempt - 1);
                tracing::warn!(%reason, attempt, ?delay, "retryable failure; partition waits");
                tokio::select! {
                    () = shutdown.cancelled() => return Done::Stopped,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    outcome.increment(1);
    metrics.seconds.record(started.elapsed().as_secs_f64());
    later.map_or(Done::Now, Done::Later)
}

/// Publishes `message` to its dead-letter topic, retrying until it is durable
/// or shutdown. Returns false on shutdown.
async fn dead_letter(
    bus: &Bus,
    config: &RunnerConfig,
    message: &Message,
    reason: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut record = Record {
        topic: format!("{}{DLQ_SUFFIX}", message.topic),
        key: message.key.clone(),
        value: message.value.clone(),
        headers: message.headers.clone(),
        // Stamped when dead-lettered: retention counts from then.
        timestamp_ms: None,
    };
    record = record
        .header(dlq_headers::ERROR, reason.to_string())
        .header(dlq_headers::TOPIC, message.topic.clone())
        .header(dlq_headers::PARTITION, message.partition.to_string())
        .header(dlq_headers::OFFSET, message.offset.to_string())
        .header(dlq_headers::GROUP, config.group.clone());
    let mut attempt = 0;
    loop {
        match bus.send(record.clone()).await {
            Ok(_) => return true,
            Err(e) => {
                let delay = config.backoff.delay(attempt);
                attempt += 1;
                tracing::error!(error = %e, ?delay, "cannot publish to dead-letter topic; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves backoff doubles from the initial delay and is capped.
    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_retries: None,
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(10), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }
}

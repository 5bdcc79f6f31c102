//! The executor's pipeline: three concurrent stages joined by bounded
//! channels (the seed's consume -> process -> produce; the produce is the
//! outbox relay, a service of its own):
//!
//! 1. **consume** owns the group member: cuts batches (`batch_max`
//!    messages or `batch_wait_ms` after the first), hands them on, and
//!    stores + commits the offsets of every batch the last stage reports
//!    done (so commit is this stage's second job: the consumer is not
//!    shareable);
//! 2. **parse**: parses every message, dead-letters the poison ones (durable
//!    before the batch moves on);
//! 3. **apply**: [`Executor::apply`] (fold, prior state, one transaction,
//!    cache), retried with backoff while the database fails (readiness red,
//!    nothing committed), then reports the batch's offsets back.
//!
//! While one batch commits, the next is parsed and a third is consumed.
//! Shutdown stops consuming, lets the batches in flight finish, stores and
//! commits their offsets and leaves the group; a batch still retrying a
//! failed transaction is given up (it is redelivered).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tributary_bus::{Consumer, ConsumerOptions, Message};

use super::{Executor, Parsed};
use crate::metrics as m;

/// Batches waiting between two stages.
const STAGE_QUEUE: usize = 2;

impl Executor {
    /// Creates the input and dead-letter topics if missing (retrying until
    /// `shutdown`), joins the consumer group, calls `on_ready`, and runs the
    /// pipeline (module docs) until `shutdown`, then drains.
    ///
    /// # Errors
    /// When joining the group fails or the bus fails for good.
    pub async fn run(
        self: Arc<Self>,
        on_ready: impl FnOnce() + Send,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let s = self.settings.clone();
        for topic in [&s.input_topic, &s.dead_letter_topic] {
            let mut attempt = 0u32;
            loop {
                match self.bus.create_topic(topic, s.partitions).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(%topic, error = %e, "cannot create a docs topic; retrying");
                    }
                }
                let delay = s.retry_delay(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
        let mut consumer = self
            .bus
            .subscribe(
                &s.group,
                std::slice::from_ref(&s.input_topic),
                ConsumerOptions::default(),
            )
            .await
            .with_context(|| format!("join consumer group {} on {}", s.group, s.input_topic))?;
        tracing::info!(group = %s.group, topic = %s.input_topic, bus = %self.bus.describe(),
            batch_max = s.batch_max, batch_wait_ms = s.batch_wait_ms, emit = ?s.emit, "docs executor started");
        on_ready();

        let stop = shutdown.child_token();
        let (batch_tx, batch_rx) = mpsc::channel::<Vec<Message>>(STAGE_QUEUE);
        let (parsed_tx, parsed_rx) = mpsc::channel::<Parsed>(STAGE_QUEUE);
        let (ack_tx, mut ack_rx) = mpsc::channel::<Vec<Message>>(STAGE_QUEUE);
        let parse = tokio::spawn(parse_stage(self.clone(), batch_rx, parsed_tx, stop.clone()));
        let apply = tokio::spawn(apply_stage(self.clone(), parsed_rx, ack_tx, stop.clone()));
        let result = self
            .consume_stage(&mut *consumer, batch_tx, &mut ack_rx, &shutdown)
            .await;
        if result.is_err() {
            stop.cancel();
            // Drain reports so the stages can finish.
            while ack_rx.recv().await.is_some() {}
        }
        for (name, task) in [("parse", parse), ("apply", apply)] {
            if let Err(e) = task.await {
                tracing::error!(stage = name, error = %e, "docs executor stage panicked");
            }
        }
        let closed = consumer.close().await.context("leave the consumer group");
        tracing::info!(group = %s.group, "docs executor stopped; offsets committed");
        result.and(closed)
    }

    async fn consume_stage(
        &self,
        consumer: &mut dyn Consumer,
        batch_tx: mpsc::Sender<Vec<Message>>,
        acks: &mut mpsc::Receiver<Vec<Message>>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let max = self.settings.batch_max.max(1);
        let wait = Duration::from_millis(self.settings.batch_wait_ms);
        let mut batch_tx = Some(batch_tx);
        let mut pending: Vec<Message> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut ready: Option<Vec<Message>> = None;
        loop {
            let tx = batch_tx.clone();
            let open = tx.is_some();
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                ack = acks.recv() => match ack {
                    Some(offsets) => {
                        for msg in &offsets {
                            if let Err(e) = consumer.store(msg) {
                                tracing::warn!(error = %e, partition = msg.partition, offset = msg.offset, "cannot store an offset");
                            }
                        }
                        if let Err(e) = consumer.commit().await {
                            tracing::warn!(error = %e, "offset commit failed; committed later");
                        }
                    }
                    // Every stage has finished: drained.
                    None => return Ok(()),
                },
                () = shutdown.cancelled(), if open => {
                    // Uncut messages are not stored: they are redelivered.
                    batch_tx = None;
                    pending.clear();
                    ready = None;
                }
                permit = async {
                    match &tx {
                        Some(t) => t.reserve().await.ok(),
                        None => None,
                    }
                }, if open && ready.is_some() => {
                    if let (Some(permit), Some(batch)) = (permit, ready.take()) {
                        permit.send(batch);
                    }
                }
                got = consumer.recv(), if open && ready.is_none() => {
                    let msg = got.context("consume document updates")?;
                    if pending.is_empty() {
                        deadline = Some(tokio::time::Instant::now() + wait);
                    }
                    pending.push(msg);
                    if pending.len() >= max {
                        ready = Some(std::mem::take(&mut pending));
                        deadline = None;
                    }
                }
                () = timer, if open && ready.is_none() && deadline.is_some() => {
                    ready = Some(std::mem::take(&mut pending));
                    deadline = None;
                }
            }
        }
    }
}

async fn parse_stage(
    ex: Arc<Executor>,
    mut input: mpsc::Receiver<Vec<Message>>,
    output: mpsc::Sender<Parsed>,
    stop: CancellationToken,
) {
    while let Some(batch) = input.recv().await {
        metrics::histogram!(m::BATCH_SIZE).record(batch.len() as f64);
        let parsed = Executor::parse(batch);
        if !ex.dead_letter(&parsed.poison, &stop).await {
            return;
        }
        if output.send(parsed).await.is_err() {
            return;
        }
    }
}

async fn apply_stage(
    ex: Arc<Executor>,
    mut input: mpsc::Receiver<Parsed>,
    acks: mpsc::Sender<Vec<Message>>,
    stop: CancellationToken,
) {
    while let Some(parsed) = input.recv().await {
        let Some(report) = ex.apply_until_durable(&parsed.updates, &stop).await else {
            return;
        };
        tracing::debug!(
            messages = parsed.messages,
            urls = report.urls,
            changed = report.changed.len(),
            emitted = report.emitted,
            dead = parsed.poison.len(),
            "batch committed"
        );
        ex.done
            .fetch_add(parsed.messages as u64, std::sync::atomic::Ordering::Relaxed);
        if acks.send(parsed.offsets).await.is_err() {
            return;
        }
    }
}

//! `user-message-counter` -> per-user counts, and the pruning of the ids
//! of applied events.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::Message;

use crate::domain::events::UserCountEvent;
use crate::settings::UserCounterSettings;
use crate::store::ChatStore;

/// Counter: applied count-event ids deleted by the pruner.
pub const APPLIED_IDS_PRUNED: &str = "tributary_chat_applied_ids_pruned_total";

/// Applies count deltas; an event id seen before is ignored, so
/// redelivery changes nothing.
#[derive(Debug, Clone)]
pub struct UserCounterHandler {
    store: ChatStore,
}

impl UserCounterHandler {
    pub fn new(store: ChatStore) -> Self {
        UserCounterHandler { store }
    }
}

#[async_trait::async_trait]
impl Handler for UserCounterHandler {
    #[tracing::instrument(name = "user_counter", skip_all, fields(topic = %message.topic, partition = message.partition, offset = message.offset))]
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let ev: UserCountEvent = serde_json::from_slice(&message.value)
            .map_err(|e| HandlerError::Permanent(format!("not a user count event: {e}")))?;
        self.store
            .apply_count_event(&ev)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::Retryable(e.to_string()))
    }
}

/// Deletes the ids of events applied before `cutoff`, in batches of
/// `batch` until none is left; returns how many were deleted.
///
/// # Errors
/// [`crate::Error::Sql`]; batches deleted before the failure stay deleted.
pub async fn prune_applied_before(
    store: &ChatStore,
    cutoff: DateTime<Utc>,
    batch: u32,
) -> crate::Result<u64> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let n = store.prune_applied_events(cutoff, batch).await?;
        total += n;
        if n < u64::from(batch) {
            return Ok(total);
        }
        // Let the counter's own writes in between batches.
        tokio::task::yield_now().await;
    }
}

/// The pruning loop of the user counter: every `prune_interval_secs`
/// (first one interval after start) deletes the ids of events applied more
/// than `applied_retention_hours` ago; see [`UserCounterSettings`] for why
/// the retention must exceed any redelivery. A failed run is logged and
/// retried at the next interval. Returns on `shutdown`.
pub async fn prune_applied_events(
    store: ChatStore,
    settings: UserCounterSettings,
    shutdown: CancellationToken,
) {
    let retention = Duration::from_secs(settings.applied_retention_hours.saturating_mul(3600));
    let every = Duration::from_secs(settings.prune_interval_secs.max(1));
    run_pruning(&store, retention, every, settings.prune_batch, &shutdown).await;
}

/// [`prune_applied_events`] with exact durations (tests use milliseconds).
pub async fn run_pruning(
    store: &ChatStore,
    retention: Duration,
    every: Duration,
    batch: u32,
    shutdown: &CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| Utc::now().checked_sub_signed(r))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match prune_applied_before(store, cutoff, batch).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!(APPLIED_IDS_PRUNED).increment(n);
                tracing::debug!(deleted = n, "pruned applied count-event ids");
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning applied count-event ids failed; retrying next interval")
            }
        }
    }
}

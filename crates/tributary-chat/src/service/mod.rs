//! The chat service: import, search, count, delete, users, audit queries,
//! backup and restore, over the [`ChatStore`] and the bus.
//!
//! Count events: every write transaction stores, next to the rows, one
//! [`crate::domain::events::UserCountEvent`] per affected sender in the
//! outbox table (transactional outbox). After commit the service publishes
//! the outbox and deletes what the bus acknowledged; a relay loop retries
//! anything left (bus down, crash between commit and publish). Events may
//! thus be published more than once, never lost; the user consumer applies
//! each `event_id` once (see [`ChatStore::apply_count_event`]).

mod backup;
mod import;
mod paths;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tributary_bus::Bus;
use tributary_storage::Objects;

pub use backup::{BackupFormat, BackupProgress, BackupReport, BackupTarget, RestoreSource};
pub use import::{ImportProgress, ImportReport, ReportedError};
pub use upload::upload_name;

use crate::domain::events::{AUDIT_TOPIC, USER_COUNTER_TOPIC};
use crate::domain::{AuditFilter, Message, MessageFilter, SearchRequest};
use crate::error::{Error, Result};
use crate::settings::ChatSettings;
use crate::store::{AuditRecord, ChatStore, UserCount};

/// The most senders one users answer lists (REST `GET /api/chat/users`, gRPC).
pub const MAX_USERS: u32 = 10_000;

/// The chat service. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    store: ChatStore,
    bus: Bus,
    objects: Option<Objects>,
    settings: ChatSettings,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("bus", &self.inner.bus.describe())
            .finish()
    }
}

impl ChatService {
    /// Builds the service and creates its topics (idempotent).
    ///
    /// # Errors
    /// [`Error::Bus`] when the topics cannot be created.
    pub async fn new(
        store: ChatStore,
        bus: Bus,
        objects: Option<Objects>,
        settings: ChatSettings,
    ) -> Result<Self> {
        let partitions = settings.partitions.max(1);
        bus.create_topic(USER_COUNTER_TOPIC, partitions).await?;
        bus.create_topic(AUDIT_TOPIC, partitions).await?;
        Ok(ChatService {
            inner: Arc::new(Inner {
                store,
                bus,
                objects,
                settings,
            }),
        })
    }

    /// The store underneath (read-only queries, tests).
    pub fn store(&self) -> &ChatStore {
        &self.inner.store
    }

    /// The bus the service publishes on.
    pub fn bus(&self) -> Bus {
        self.inner.bus.clone()
    }

    /// The settings in effect.
    pub fn settings(&self) -> &ChatSettings {
        &self.inner.settings
    }

    /// A page of messages.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a bad request, [`Error::Sql`].
    pub async fn search(&self, req: &SearchRequest) -> Result<Vec<Message>> {
        self.inner.store.search(req).await
    }

    /// How many messages match.
    ///
    /// # Errors
    /// As [`ChatService::search`].
    pub async fn count(&self, filter: &MessageFilter) -> Result<u64> {
        self.inner.store.count(filter).await
    }

    /// Deletes what matches `filter`. An empty filter deletes everything
    /// only with `all = true` (a guard against the seed's bug of deleting
    /// the archive by accident). Count events go out through the outbox
    /// (the `chat-outbox` service).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`], [`Error::Sql`].
    pub async fn delete(&self, filter: &MessageFilter, all: bool) -> Result<u64> {
        if filter.is_empty() && !all {
            return Err(Error::InvalidRequest(
                "an empty filter would delete every message; pass all=true to mean it".into(),
            ));
        }
        let n = self.inner.store.delete(filter).await?;
        Ok(n)
    }

    /// One sender's count, as maintained by the user consumer.
    ///
    /// # Errors
    /// [`Error::Sql`].
    pub async fn user(&self, id: &str) -> Result<UserCount> {
        self.inner.store.user_count(id).await
    }

    /// Senders by count, largest first: the top `limit`, at most
    /// [`MAX_USERS`] (also when `limit` is absent), so no answer grows
    /// with the archive.
    ///
    /// # Errors
    /// [`Error::Sql`].
    pub async fn users(&self, limit: Option<u32>) -> Result<Vec<UserCount>> {
        let limit = limit.map_or(MAX_USERS, |l| l.min(MAX_USERS));
        self.inner.store.top_users(Some(limit)).await
    }

    /// Stored log records.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`], [`Error::Sql`].
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        self.inner.store.query_audit(f).await
    }

    /// Publishes every unsent count event of the chat outbox now (events
    /// leased by a running relay are left to it) and removes the
    /// acknowledged ones; returns how many were published. For tests and
    /// one-shot tools: the `chat-outbox` service relays continuously.
    ///
    /// # Errors
    /// [`Error::Bus`] on the first refused send (acknowledged ones are
    /// removed, the rest are released for the next try); [`Error::Sql`].
    pub async fn publish_outbox(&self) -> Result<u64> {
        let outbox = self.inner.store.outbox();
        let owner = format!("chat-inline-{}", uuid::Uuid::new_v4().simple());
        let encode = tributary_runtime::outbox::plain();
        let topic = self.inner.settings.relay.topic.clone();
        let mut published = 0u64;
        loop {
            let rows = outbox.claim(&owner, Duration::from_secs(30), 500).await?;
            if rows.is_empty() {
                return Ok(published);
            }
            let sends = rows.iter().map(|r| self.inner.bus.send(encode(&topic, r)));
            let results = join_all(sends).await;
            let mut done = Vec::with_capacity(rows.len());
            let mut untried = Vec::new();
            let mut failure = None;
            for (row, res) in rows.iter().zip(results) {
                match res {
                    Ok(_) => done.push(row.id),
                    Err(e) => {
                        untried.push((row.id, tributary_runtime::outbox::Release::Untried));
                        failure = failure.or(Some(e));
                    }
                }
            }
            outbox.delete_sent(&owner, &done).await?;
            outbox.release(&owner, &untried).await?;
            published += done.len() as u64;
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
    }
}

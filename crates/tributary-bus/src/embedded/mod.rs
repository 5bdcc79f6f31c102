//! The embedded bus: an append-only log in a SQLite file, for one process
//! on one machine (`sqlite://PATH`).
//!
//! It keeps the bus semantics of the port — murmur2 key partitioning,
//! per-partition order, headers, consumer groups whose members in this
//! process split the partitions, committed offsets that survive restarts —
//! but it is **not** a Kafka replacement: one process only, no replication.
//!
//! One writer per file: opening the bus for writing takes an exclusive lock
//! on `PATH.lock` (holding the writer's pid) for the life of the bus; a
//! second process that opens the file for writing fails at once with
//! [`Error::Locked`]. Read-only tools open `sqlite://PATH?mode=ro`
//! ([`EmbeddedBus::open_read_only`]): no lock, no produce, no offset
//! commits, and new records are seen by polling.
//!
//! Writes go through one writer task that appends whatever callers have
//! enqueued as one transaction (group commit), so `send` futures resolve
//! once their record is committed. The file uses WAL with
//! `synchronous=NORMAL`: a killed process loses nothing acknowledged; a power
//! loss may lose the last transactions.

mod consumer;
mod housekeeping;
mod lock;
mod store;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, watch};

use crate::partitioner::partition_for_key;
use crate::port::{CleanupPolicy, Consumer, ConsumerOptions, EventBus, TopicConfig};
use crate::record::{Delivery, Record};
use crate::{Error, Result};

/// Housekeeping settings of the embedded bus (`bus.embedded.*`).
///
/// Retention follows Kafka's semantics: it deletes old records whole batches
/// at a time (a batch is what one writer transaction appended to one
/// partition; Kafka deletes segments), whether or not a consumer group has
/// read them; a group whose committed offset was deleted resumes at the
/// earliest remaining offset, as Kafka's `auto.offset.reset=earliest` does.
/// The newest batch of each partition is never deleted or compacted (Kafka
/// keeps its active segment), so offsets keep counting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Records older than this are deleted, on topics with the `delete`
    /// cleanup policy (Kafka's `retention.ms`); `0` keeps them forever.
    /// Default 7 days (Kafka's default).
    pub retention_ms: u64,
    /// Size limit of one topic (all its partitions together, record bytes
    /// as stored); beyond it the oldest batches are deleted. `0` is no limit.
    /// Default 1 GiB. (Kafka's `retention.bytes` is per partition and
    /// unlimited by default; a laptop's disk is the limit here.)
    pub retention_bytes: u64,
    /// How long a tombstone (empty value) of a compacted topic stays after
    /// compaction removed the older records of its key (Kafka's
    /// `delete.retention.ms`). Default 1 day.
    pub delete_retention_ms: u64,
    /// How often retention and compaction run (Kafka's
    /// `log.retention.check.interval.ms`). Default 60 s. Each run reads only
    /// the oldest batches of each partition, and compacts a partition only
    /// when it has grown since its last compaction.
    pub cleanup_interval_ms: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: 1 << 30,
            delete_retention_ms: 24 * 3600 * 1000,
            cleanup_interval_ms: 60_000,
        }
    }
}

/// What one housekeeping run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Batches deleted by retention (time or size).
    pub batches_deleted: u64,
    /// Records removed by compaction (superseded records and expired tombstones).
    pub records_compacted: u64,
}

/// A topic as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub(crate) partitions: i32,
    pub(crate) cleanup: CleanupPolicy,
}

pub(crate) struct WriteReq {
    topic: String,
    partition: i32,
    record: Record,
    timestamp_ms: i64,
    reply: oneshot::Sender<Result<Delivery>>,
}

/// Group membership inside this process.
#[derive(Default)]
pub(crate) struct Group {
    /// member id -> subscribed topics
    members: std::collections::BTreeMap<u64, Vec<String>>,
    generation: u64,
}

pub(crate) struct Shared {
    pub(crate) pool: SqlitePool,
    topics: RwLock<HashMap<String, TopicMeta>>,
    groups: Mutex<HashMap<String, Group>>,
    /// Bumped after every committed append; consumers wait on it.
    pub(crate) log_version: watch::Sender<u64>,
    /// Bumped on every membership change of any group.
    pub(crate) group_version: watch::Sender<u64>,
    next_member: AtomicU64,
    /// Opened with `?mode=ro`: no writer, no lock, no commits.
    pub(crate) read_only: bool,
    /// The URL for errors, password masked.
    pub(crate) safe_url: String,
}

impl Shared {
    /// Re-reads the topic table (a read-only bus sees topics another process creates).
    async fn reload_topics(&self) -> Result<()> {
        let topics = store::load_topics(&self.pool).await?;
        *self
            .topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = topics;
        Ok(())
    }

    pub(crate) fn refuse(&self, what: &'static str) -> Error {
        Error::ReadOnly {
            url: self.safe_url.clone(),
            what,
        }
    }

    pub(crate) fn topic_partitions(&self, topic: &str) -> Option<i32> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
            .map(|t| t.partitions)
    }

    pub(crate) fn topic_meta(&self, topic: &str) -> Option<TopicMeta> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
            .copied()
    }

    /// Every topic (a snapshot).
    pub(crate) fn topic_list(&self) -> Vec<(String, TopicMeta)> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    fn join(&self, group: &str, topics: &[String]) -> u64 {
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let g = groups.entry(group.to_string()).or_default();
        g.members.insert(id, topics.to_vec());
        g.generation += 1;
        self.group_version.send_modify(|v| *v += 1);
        id
    }

    pub(crate) fn leave(&self, group: &str, member: u64) {
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(g) = groups.get_mut(group) {
            if g.members.remove(&member).is_some() {
                g.generation += 1;
                self.group_version.send_modify(|v| *v += 1);
            }
        }
    }

    /// (generation, partitions assigned to `member`): every partition of every
    /// subscribed topic, dealt round-robin over the members subscribed to it,
    /// in member-id order.
    pub(crate) fn assignment(&self, group: &str, member: u64) -> (u64, Vec<(String, i32)>) {
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(g) = groups.get(group) else {
            return (0, Vec::new());
        };
        let mut topics: Vec<&String> = g.members.values().flatten().collect();
        topics.sort();
        topics.dedup();
        let mut mine = Vec::new();
        for t in topics {
            let subscribers: Vec<u64> = g
                .members
                .iter()
                .filter(|(_, ts)| ts.contains(t))
                .map(|(id, _)| *id)
                .collect();
            let n = self.topic_partitions(t).unwrap_or(0);
            for p in 0..n {
                let owner = subscribers[usize::try_from(p).unwrap_or(0) % subscribers.len()];
                if owner == member {
                    mine.push((t.clone(), p));
                }
            }
        }
        (g.generation, mine)
    }
}

/// The embedded bus. Cheap to share behind an `Arc`; one writer per file
/// (see the module docs on the lock).
pub struct EmbeddedBus {
    shared: Arc<Shared>,
    /// `None` when read-only.
    writer: Option<mpsc::UnboundedSender<WriteReq>>,
    /// Asks the writer task for a housekeeping run now.
    housekeep: Option<mpsc::UnboundedSender<oneshot::Sender<Result<Housekeeping>>>>,
    round_robin: AtomicU32,
    safe_url: String,
    /// Set on drop, so a reopen in this process waits for the writer to finish.
    closing: Option<Arc<AtomicBool>>,
}

/// `sqlite://PATH[?params]` -> (PATH, read-only?).
fn parse_url(url: &str, safe_url: &str) -> Result<(String, bool)> {
    let rest = url.strip_prefix("sqlite://").unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::InvalidUrl {
            url: safe_url.to_string(),
            reason: "expected sqlite://PATH".into(),
        });
    }
    let read_only = query.split('&').any(|kv| kv == "mode=ro");
    Ok((path.to_string(), read_only))
}

/// `url` with `mode=ro` added (for [`crate::connect_read_only`]).
pub(crate) fn read_only_url(url: &str) -> String {
    if parse_url(url, "").is_ok_and(|(_, ro)| ro) {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=ro")
    } else {
        format!("{url}?mode=ro")
    }
}

impl EmbeddedBus {
    /// Opens the log at `sqlite://PATH`: for writing (creating the file if
    /// needed, taking the writer lock), or read-only with `?mode=ro`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a malformed URL; [`Error::Locked`] when
    /// another process holds the file for writing; [`Error::Unreachable`] when
    /// the file cannot be created or opened (read-only: does not exist).
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &EmbeddedConfig::default()).await
    }

    /// [`EmbeddedBus::open`] with housekeeping `config` (retention, compaction).
    ///
    /// # Errors
    /// As [`EmbeddedBus::open`].
    pub async fn open_with(url: &str, config: &EmbeddedConfig) -> Result<Self> {
        let safe_url = tributary_platform::url::redact(url);
        let (path, read_only) = parse_url(url, &safe_url)?;
        if read_only {
            Self::open_ro(&path, safe_url).await
        } else {
            Self::open_rw(&path, safe_url, config.clone()).await
        }
    }

    /// Opens the log at `sqlite://PATH` read-only (whether or not the URL
    /// says `?mode=ro`): no writer lock, so it works next to the process
    /// that writes the file; `send`, `create_topic` and offset commits fail
    /// with [`Error::ReadOnly`].
    ///
    /// # Errors
    /// As [`EmbeddedBus::open`]; the file must exist.
    pub async fn open_read_only(url: &str) -> Result<Self> {
        Self::open(&read_only_url(url)).await
    }

    async fn open_rw(path: &str, safe_url: String, config: EmbeddedConfig) -> Result<Self> {
        let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable {
            url: safe_url.clone(),
            reason: e.to_string(),
        };
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| unreachable(&e))?;
            }
        }
        let lock = lock::WriterLock::acquire(std::path::Path::new(path), path).await?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| unreachable(&e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(|e| unreachable(&e))?;
        store::migrate(&pool).await.map_err(|e| unreachable(&e))?;
        let topics = store::load_topics(&pool).await?;
        let next = store::load_next_offsets(&pool).await?;
        let shared = Self::shared(pool, topics, false, safe_url.clone());
        let sizes = store::load_sizes(&shared.pool).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (hk_tx, hk_rx) = mpsc::unbounded_channel();
        let closing = lock.closing();
        let keeper = housekeeping::Keeper::new(config, sizes);
        tokio::spawn(store::writer(shared.clone(), rx, hk_rx, next, keeper, lock));
        Ok(Self {
            shared,
            writer: Some(tx),
            housekeep: Some(hk_tx),
            round_robin: AtomicU32::new(0),
            safe_url,
            closing: Some(closing),
        })
    }

    async fn open_ro(path: &str, safe_url: String) -> Result<Self> {
        let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable {
            url: safe_url.clone(),
            reason: e.to_string(),
        };
        if !std::path::Path::new(path).exists() {
            return Err(unreachable(&format!(
                "no embedded bus at {path} (a read-only open does not create one)"
            )));
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| unreachable(&e))?
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| unreachable(&e))?;
        let topics = store::load_topics(&pool)
            .await
            .map_err(|e| unreachable(&format!("not an embedded bus file: {e}")))?;
        let shared = Self::shared(pool, topics, true, safe_url.clone());
        Ok(Self {
            shared,
            writer: None,
            housekeep: None,
            round_robin: AtomicU32::new(0),
            safe_url,
            closing: None,
        })
    }

    fn shared(
        pool: SqlitePool,
        topics: HashMap<String, TopicMeta>,
        read_only: bool,
        safe_url: String,
    ) -> Arc<Shared> {
        let (log_version, _) = watch::channel(0);
        let (group_version, _) = watch::channel(0);
        Arc::new(Shared {
            pool,
            topics: RwLock::new(topics),
            groups: Mutex::new(HashMap::new()),
            log_version,
            group_version,
            next_member: AtomicU64::new(1),
            read_only,
            safe_url,
        })
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.read_only
    }

    /// Runs retention and compaction now (they also run every
    /// `cleanup_interval_ms`), in the writer task, between appends.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] on a read-only bus; [`Error::Store`] when the file fails.
    pub async fn housekeep(&self) -> Result<Housekeeping> {
        let tx = self
            .housekeep
            .as_ref()
            .ok_or_else(|| self.shared.refuse("run housekeeping"))?;
        let (reply, rx) = oneshot::channel();
        tx.send(reply).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    fn writer(&self, what: &'static str) -> Result<&mpsc::UnboundedSender<WriteReq>> {
        self.writer.as_ref().ok_or_else(|| self.shared.refuse(what))
    }
}

impl Drop for EmbeddedBus {
    fn drop(&mut self) {
        if let Some(c) = &self.closing {
            c.store(true, Ordering::Release);
        }
    }
}

#[async_trait::async_trait]
impl EventBus for EmbeddedBus {
    async fn create_topic_with(&self, topic: &str, config: &TopicConfig) -> Result<()> {
        crate::validate_topic(topic, config.partitions)?;
        if self.shared.read_only {
            return Err(self.shared.refuse("create topics"));
        }
        let cleanup = store::cleanup_name(config.cleanup);
        sqlx::query(
            "INSERT INTO bus_topics(name, partitions, cleanup) VALUES (?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET cleanup = excluded.cleanup
             WHERE excluded.cleanup = 'compact'",
        )
        .bind(topic)
        .bind(config.partitions)
        .bind(cleanup)
        .execute(&self.shared.pool)
        .await?;
        let topics = store::load_topics(&self.shared.pool).await?;
        *self
            .shared
            .topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = topics;
        // Members subscribed before the topic existed get its partitions now.
        self.shared.group_version.send_modify(|v| *v += 1);
        let mut groups = self
            .shared
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in groups.values_mut() {
            g.generation += 1;
        }
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        if self.shared.read_only {
            self.shared.reload_topics().await?;
        }
        self.shared
            .topic_partitions(topic)
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
    }

    fn send(&self, record: Record) -> BoxFuture<'static, Result<Delivery>> {
        let writer = match self.writer("send") {
            Ok(w) => w,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let Some(meta) = self.shared.topic_meta(&record.topic) else {
            return futures::future::ready(Err(Error::UnknownTopic(record.topic))).boxed();
        };
        if meta.cleanup == CleanupPolicy::Compact && record.key.is_none() {
            // As a Kafka broker does: compaction needs a key per record.
            return futures::future::ready(Err(Error::InvalidRecord {
                topic: record.topic,
                reason: "a compacted topic needs a key on every record".into(),
            }))
            .boxed();
        }
        let n = meta.partitions;
        let partition = match &record.key {
            Some(k) => partition_for_key(k, n),
            None => {
                let i = self.round_robin.fetch_add(1, Ordering::Relaxed);
                i32::try_from(i % u32::try_from(n).unwrap_or(1)).unwrap_or(0)
            }
        };
        let (reply, rx) = oneshot::channel();
        let req = WriteReq {
            topic: record.topic.clone(),
            partition,
            timestamp_ms: record.timestamp_ms.unwrap_or_else(now_ms),
            record,
            reply,
        };
        if writer.send(req).is_err() {
            return futures::future::ready(Err(Error::Closed)).boxed();
        }
        async move { rx.await.map_err(|_| Error::Closed)? }.boxed()
    }

    async fn flush(&self, timeout: Duration) -> Result<()> {
        // Read-only: nothing was sent, nothing to wait for.
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        // A marker write resolves after everything enqueued before it.
        let (reply, rx) = oneshot::channel();
        let marker = WriteReq {
            topic: String::new(),
            partition: -1,
            record: Record::new("", "", ""),
            timestamp_ms: 0,
            reply,
        };
        writer.send(marker).map_err(|_| Error::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r.map(|_| ()),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout("embedded bus flush".into())),
        }
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        if self.shared.read_only {
            self.shared.reload_topics().await?;
        }
        let member = self.shared.join(group, topics);
        Ok(Box::new(consumer::EmbeddedConsumer::new(
            self.shared.clone(),
            group.to_string(),
            member,
            options,
        )))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.shared.pool).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.safe_url.clone()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

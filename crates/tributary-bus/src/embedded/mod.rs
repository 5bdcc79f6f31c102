//! The embedded bus: an append-only log in a SQLite file, for one process
//! on one machine (`sqlite://PATH`).
//!
//! It keeps the bus semantics of the port — murmur2 key partitioning,
//! per-partition order, headers, consumer groups whose members in this
//! process split the partitions, committed offsets that survive restarts —
//! but it is **not** a Kafka replacement: one process only (open a file from
//! one process at a time), no replication, and the log is never truncated.
//!
//! Writes go through one writer task that appends whatever callers have
//! enqueued as one transaction (group commit), so `send` futures resolve
//! once their record is committed. The file uses WAL with
//! `synchronous=NORMAL`: a killed process loses nothing acknowledged; a power
//! loss may lose the last transactions.

mod consumer;
mod store;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, watch};

use crate::partitioner::partition_for_key;
use crate::port::{Consumer, ConsumerOptions, EventBus};
use crate::record::{Delivery, Record};
use crate::{Error, Result};

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
    topics: RwLock<HashMap<String, i32>>,
    groups: Mutex<HashMap<String, Group>>,
    /// Bumped after every committed append; consumers wait on it.
    pub(crate) log_version: watch::Sender<u64>,
    /// Bumped on every membership change of any group.
    pub(crate) group_version: watch::Sender<u64>,
    next_member: AtomicU64,
}

impl Shared {
    pub(crate) fn topic_partitions(&self, topic: &str) -> Option<i32> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
            .copied()
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

/// The embedded bus. Cheap to share behind an `Arc`; open one per file per process.
pub struct EmbeddedBus {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<WriteReq>,
    round_robin: AtomicU32,
    safe_url: String,
}

impl EmbeddedBus {
    /// Opens (creating if needed) the log at `sqlite://PATH`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] or [`Error::Unreachable`] when the file cannot be
    /// created or opened.
    pub async fn open(url: &str) -> Result<Self> {
        let safe_url = tributary_platform::url::redact(url);
        let path = url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::InvalidUrl {
                url: safe_url.clone(),
                reason: "expected sqlite://PATH".into(),
            })?;
        let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable {
            url: safe_url.clone(),
            reason: e.to_string(),
        };
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| unreachable(&e))?;
            }
        }
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
        let (log_version, _) = watch::channel(0);
        let (group_version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            pool,
            topics: RwLock::new(topics),
            groups: Mutex::new(HashMap::new()),
            log_version,
            group_version,
            next_member: AtomicU64::new(1),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(store::writer(shared.clone(), rx, next));
        Ok(Self {
            shared,
            writer: tx,
            round_robin: AtomicU32::new(0),
            safe_url,
        })
    }
}

#[async_trait::async_trait]
impl EventBus for EmbeddedBus {
    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        crate::validate_topic(topic, partitions)?;
        sqlx::query("INSERT OR IGNORE INTO bus_topics(name, partitions) VALUES (?, ?)")
            .bind(topic)
            .bind(partitions)
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
        self.shared
            .topic_partitions(topic)
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
    }

    fn send(&self, record: Record) -> BoxFuture<'static, Result<Delivery>> {
        let Some(n) = self.shared.topic_partitions(&record.topic) else {
            return futures::future::ready(Err(Error::UnknownTopic(record.topic))).boxed();
        };
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
            record,
            timestamp_ms: now_ms(),
            reply,
        };
        if self.writer.send(req).is_err() {
            return futures::future::ready(Err(Error::Closed)).boxed();
        }
        async move { rx.await.map_err(|_| Error::Closed)? }.boxed()
    }

    async fn flush(&self, timeout: Duration) -> Result<()> {
        // A marker write resolves after everything enqueued before it.
        let (reply, rx) = oneshot::channel();
        let marker = WriteReq {
            topic: String::new(),
            partition: -1,
            record: Record::new("", "", ""),
            timestamp_ms: 0,
            reply,
        };
        self.writer.send(marker).map_err(|_| Error::Closed)?;
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

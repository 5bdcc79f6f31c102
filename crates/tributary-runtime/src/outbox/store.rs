//! The outbox table `tributary_outbox` on PostgreSQL and SQLite: enqueue in
//! the caller's transaction, and the relay side (claim under a lease,
//! renew, delete sent, release failed) per namespace.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::{QueryBuilder, Row, Sqlite};
use tributary_storage::{BeginWrite, Database, Migrations};

static PG_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static LITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The outbox's own migrations (namespace `outbox`).
pub const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "outbox",
    postgres: &PG_MIGRATIONS,
    sqlite: &LITE_MIGRATIONS,
};

/// Ids per SQLite `DELETE ... IN (...)` statement.
const SQLITE_DELETE_CHUNK: usize = 1000;

/// Serializes relay claims across processes (`pg_advisory_xact_lock`).
const CLAIM_LOCK: i64 = 0x6f75_7462_6f78_636c;

/// Errors of the outbox store.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database failed.
    #[error("outbox: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrating the outbox table failed.
    #[error("outbox: {0}")]
    Storage(#[from] tributary_storage::Error),
    /// A stored value cannot be read back.
    #[error("outbox: corrupt row: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, OutboxError>;

/// One event to write.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// Bus key: events of one key are relayed in the order written.
    pub key: &'a [u8],
    /// System-defined kind, for the system's encoder (may be empty).
    pub kind: &'a str,
    /// The payload (the system's encoder turns it into the record value).
    pub payload: &'a [u8],
}

/// A claimed event.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Event id; increases in commit order.
    pub id: i64,
    /// Bus key.
    pub key: Vec<u8>,
    /// System-defined kind.
    pub kind: String,
    /// Payload as written.
    pub payload: Vec<u8>,
    /// Commit time (database clock).
    pub created: DateTime<Utc>,
    /// Failed send rounds so far.
    pub attempts: i32,
}

/// What a relay gives back for a claimed event it could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Sending failed: count the attempt and wait this long before the next round.
    Failed {
        /// Backoff before the event may be claimed again.
        backoff: Duration,
    },
    /// Not attempted (drain, or an earlier event of its key failed):
    /// unlock without counting an attempt.
    Untried,
}

/// Writes `events` into the outbox of `namespace` inside the caller's
/// PostgreSQL transaction (so the event commits with the change it
/// describes, or not at all).
///
/// # Errors
/// When the insert fails; the caller's transaction should then roll back.
pub async fn enqueue_pg(
    tx: &mut sqlx::PgConnection,
    namespace: &str,
    events: &[NewEvent<'_>],
) -> sqlx::Result<()> {
    // One round trip per chunk: the rows go as arrays and come back out in
    // their order, so ids (the relay order) follow the order written.
    for chunk in events.chunks(ENQUEUE_CHUNK) {
        let keys: Vec<&[u8]> = chunk.iter().map(|e| e.key).collect();
        let kinds: Vec<&str> = chunk.iter().map(|e| e.kind).collect();
        let payloads: Vec<&[u8]> = chunk.iter().map(|e| e.payload).collect();
        sqlx::query(
            "INSERT INTO tributary_outbox (namespace, key, kind, payload) \
             SELECT $1, k, t, p FROM UNNEST($2::bytea[], $3::text[], $4::bytea[]) \
             WITH ORDINALITY AS u(k, t, p, n) ORDER BY n",
        )
        .bind(namespace)
        .bind(keys)
        .bind(kinds)
        .bind(payloads)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Rows per enqueue statement (PostgreSQL arrays; SQLite multi-row VALUES
/// stay far below its bound-parameter limit).
const ENQUEUE_CHUNK: usize = 500;
const SQLITE_ENQUEUE_CHUNK: usize = 100;

/// [`enqueue_pg`] for SQLite (inside the caller's write transaction).
///
/// # Errors
/// When the insert fails; the caller's transaction should then roll back.
pub async fn enqueue_sqlite(
    tx: &mut sqlx::SqliteConnection,
    namespace: &str,
    events: &[NewEvent<'_>],
) -> sqlx::Result<()> {
    let t = now_micros();
    for chunk in events.chunks(SQLITE_ENQUEUE_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO tributary_outbox (namespace, key, kind, payload, created_at, next_attempt_at) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?, ?)"
            });
        }
        // One statement per chunk size: not kept in the statement cache.
        let mut q = sqlx::query(&sql).persistent(false);
        for e in chunk {
            q = q
                .bind(namespace)
                .bind(e.key)
                .bind(e.kind)
                .bind(e.payload)
                .bind(t)
                .bind(t);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// A connection the outbox can be written through inside the caller's
/// transaction, whichever the dialect: `(&mut *tx).enqueue_events(..)` on a
/// PostgreSQL or SQLite transaction. Dispatches to [`enqueue_pg`] /
/// [`enqueue_sqlite`].
pub trait OutboxConnection: Send {
    /// Writes `events` under `namespace`.
    fn enqueue_events<'c>(
        &'c mut self,
        namespace: &'c str,
        events: &'c [NewEvent<'c>],
    ) -> futures::future::BoxFuture<'c, sqlx::Result<()>>;
}

impl OutboxConnection for sqlx::PgConnection {
    fn enqueue_events<'c>(
        &'c mut self,
        namespace: &'c str,
        events: &'c [NewEvent<'c>],
    ) -> futures::future::BoxFuture<'c, sqlx::Result<()>> {
        Box::pin(enqueue_pg(self, namespace, events))
    }
}

impl OutboxConnection for sqlx::SqliteConnection {
    fn enqueue_events<'c>(
        &'c mut self,
        namespace: &'c str,
        events: &'c [NewEvent<'c>],
    ) -> futures::future::BoxFuture<'c, sqlx::Result<()>> {
        Box::pin(enqueue_sqlite(self, namespace, events))
    }
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn time(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| OutboxError::Corrupt(format!("timestamp {v}")))
}

/// The relay side of one namespace's outbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboxStore {
    db: Database,
    namespace: String,
}

impl OutboxStore {
    /// The outbox of `namespace` in `db`; call [`OutboxStore::migrate`] once.
    pub fn new(db: Database, namespace: impl Into<String>) -> Self {
        Self {
            db,
            namespace: namespace.into(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Creates the outbox table if needed (namespace `outbox`, under the
    /// storage crate's migration lock).
    ///
    /// # Errors
    /// When the migration fails.
    pub async fn migrate(&self) -> Result<()> {
        self.db.migrate(&MIGRATIONS).await?;
        Ok(())
    }

    /// Locks up to `limit` events for `owner` with a lease of `lease`, in id
    /// order, keeping per-key order across relays: a key is eligible only
    /// when none of its events is locked by a live lease or waiting out a
    /// backoff, and the claimed events of a key are always a prefix of its
    /// unsent events. Events whose lease expired (a crashed relay) are taken
    /// over. Claims are serialized (PostgreSQL: an advisory transaction lock
    /// plus `FOR UPDATE SKIP LOCKED`; SQLite: one atomic statement of the
    /// single writer).
    ///
    /// # Errors
    /// When the database fails (nothing is claimed then).
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        let ns = self.namespace.as_str();
        let mut events = if let Some(pool) = self.db.as_postgres() {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CLAIM_LOCK)
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(
                // The candidates are the first `limit` events by id whose key
                // is not waiting (a live lease or a backoff). Both halves read
                // partial indexes (migration 0002): `held` (leased or failed
                // rows: the keys that must wait, and expired leases to take
                // over) and `ready` (unleased rows in id order, so the leased
                // head of the queue is not stepped over). Without them every
                // claim scanned the whole backlog: 84 ms per 1000 events at
                // 150k queued, the relay's ceiling.
                // The union of the two halves, each the first `limit` of its
                // kind by id, holds the first `limit` of all: a key's claimed
                // events stay a prefix of its events.
                // `FOR UPDATE` waits, never `SKIP LOCKED`: claims are already
                // serialised by the advisory lock, so a row lock here belongs
                // to the cleaner or the heartbeat, and skipping it would take
                // the key's next event without its head (order broken).
                "WITH held AS MATERIALIZED ( \
                   SELECT h.id, h.key, \
                     (h.status = 'Locked' AND h.locked_at <= now() - make_interval(secs => $2)) AS expired, \
                     ((h.status = 'Locked' AND h.locked_at > now() - make_interval(secs => $2)) \
                       OR (h.status = 'Unlocked' AND h.next_attempt_at > now())) AS waits \
                   FROM tributary_outbox h \
                   WHERE h.namespace = $4 AND (h.status = 'Locked' OR h.attempts > 0)), \
                 blocked AS MATERIALIZED (SELECT DISTINCT key FROM held WHERE waits), \
                 cand AS ( \
                   SELECT e.id FROM tributary_outbox e WHERE e.id IN ( \
                     (SELECT u.id FROM tributary_outbox u \
                      WHERE u.namespace = $4 AND u.status = 'Unlocked' \
                        AND u.key NOT IN (SELECT key FROM blocked) \
                      ORDER BY u.namespace, u.id LIMIT $3) \
                     UNION ALL \
                     (SELECT x.id FROM held x \
                      WHERE x.expired AND x.key NOT IN (SELECT key FROM blocked) \
                      ORDER BY x.id LIMIT $3)) \
                   ORDER BY e.id LIMIT $3 FOR UPDATE) \
                 UPDATE tributary_outbox p SET status = 'Locked', locked_at = now(), locked_by = $1 \
                 FROM cand WHERE p.id = cand.id \
                 RETURNING p.id, p.key, p.kind, p.payload, p.created_at, p.attempts",
            )
            .bind(owner)
            .bind(lease.as_secs_f64())
            .bind(limit)
            .bind(ns)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| {
                    Ok(OutboxEvent {
                        id: r.try_get("id")?,
                        key: r.try_get("key")?,
                        kind: r.try_get("kind")?,
                        payload: r.try_get("payload")?,
                        created: r.try_get("created_at")?,
                        attempts: r.try_get("attempts")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        } else if let Some(pool) = self.db.as_sqlite() {
            let t = now_micros();
            let rows = sqlx::query(
                "UPDATE tributary_outbox SET status = 'Locked', locked_at = ?1, locked_by = ?2 \
                 WHERE id IN ( \
                   SELECT e.id FROM tributary_outbox e \
                   WHERE e.namespace = ?5 AND (e.status = 'Unlocked' OR e.locked_at <= ?3) \
                   AND NOT EXISTS ( \
                     SELECT 1 FROM tributary_outbox b \
                     WHERE b.namespace = e.namespace AND b.key = e.key \
                       AND (b.status = 'Locked' OR b.attempts > 0) AND ( \
                       (b.status = 'Locked' AND b.locked_at > ?3) \
                       OR (b.status = 'Unlocked' AND b.next_attempt_at > ?1))) \
                   ORDER BY e.id LIMIT ?4) \
                 RETURNING id, key, kind, payload, created_at, attempts",
            )
            .bind(t)
            .bind(owner)
            .bind(t - micros(lease))
            .bind(limit)
            .bind(ns)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(OutboxEvent {
                        id: r.try_get("id")?,
                        key: r.try_get("key")?,
                        kind: r.try_get("kind")?,
                        payload: r.try_get("payload")?,
                        created: time(r.try_get("created_at")?)?,
                        attempts: r.try_get("attempts")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Extends every lease `owner` holds (the relay's heartbeat), so a batch
    /// that takes longer than the lease (a slow or absent broker) is not
    /// taken over while its relay is alive. Returns how many were renewed.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn renew(&self, owner: &str) -> Result<u64> {
        let ns = self.namespace.as_str();
        let done = if let Some(pool) = self.db.as_postgres() {
            sqlx::query(
                "UPDATE tributary_outbox SET locked_at = now() \
                 WHERE namespace = $2 AND status = 'Locked' AND locked_by = $1",
            )
            .bind(owner)
            .bind(ns)
            .execute(pool)
            .await?
            .rows_affected()
        } else if let Some(pool) = self.db.as_sqlite() {
            sqlx::query(
                "UPDATE tributary_outbox SET locked_at = ? \
                 WHERE namespace = ? AND status = 'Locked' AND locked_by = ?",
            )
            .bind(now_micros())
            .bind(ns)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        } else {
            0
        };
        Ok(done)
    }

    /// Deletes sent events still leased by `owner`; returns how many.
    ///
    /// # Errors
    /// When the database fails (the events are then resent after their lease).
    pub async fn delete_sent(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = if let Some(pool) = self.db.as_postgres() {
            sqlx::query("DELETE FROM tributary_outbox WHERE id = ANY($1) AND locked_by = $2")
                .bind(ids)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
        } else if let Some(pool) = self.db.as_sqlite() {
            // One short write transaction per SQLITE_DELETE_CHUNK ids (under
            // SQLite's bound-variable limit): the file has one writer at a
            // time, and one transaction over a 10k-event flush held it long
            // enough that a request writer on a loaded machine ran out of
            // its busy timeout. A crash between chunks leaves the rest
            // leased, and they are resent after their lease (at least once).
            let mut done = 0;
            for chunk in ids.chunks(SQLITE_DELETE_CHUNK) {
                let mut tx = pool.begin_write().await?;
                let mut q =
                    QueryBuilder::<Sqlite>::new("DELETE FROM tributary_outbox WHERE locked_by = ");
                q.push_bind(owner).push(" AND id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                sep.push_unseparated(")");
                done += q
                    .build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
            }
            done
        } else {
            0
        };
        Ok(done)
    }

    /// Unlocks events still leased by `owner` so they are claimed again
    /// (after the backoff of a failed one).
    ///
    /// # Errors
    /// When the database fails (the events are then retried after their lease).
    pub async fn release(&self, owner: &str, items: &[(i64, Release)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if let Some(pool) = self.db.as_postgres() {
            let untried: Vec<i64> = items
                .iter()
                .filter(|(_, r)| *r == Release::Untried)
                .map(|(id, _)| *id)
                .collect();
            let mut tx = pool.begin().await?;
            if !untried.is_empty() {
                sqlx::query(
                    "UPDATE tributary_outbox SET status = 'Unlocked', locked_at = NULL, locked_by = NULL \
                     WHERE id = ANY($1) AND locked_by = $2",
                )
                .bind(&untried)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
            }
            for (id, r) in items {
                if let Release::Failed { backoff } = r {
                    sqlx::query(
                        "UPDATE tributary_outbox SET status = 'Unlocked', locked_at = NULL, locked_by = NULL, \
                         attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $3) \
                         WHERE id = $1 AND locked_by = $2",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(backoff.as_secs_f64())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        } else if let Some(pool) = self.db.as_sqlite() {
            let t = now_micros();
            let mut tx = pool.begin_write().await?;
            for (id, r) in items {
                let (attempts, next) = match r {
                    Release::Untried => (0, t),
                    Release::Failed { backoff } => (1, t + micros(*backoff)),
                };
                sqlx::query(
                    "UPDATE tributary_outbox SET status = 'Unlocked', locked_at = NULL, locked_by = NULL, \
                     attempts = attempts + ?3, next_attempt_at = ?4 WHERE id = ?1 AND locked_by = ?2",
                )
                .bind(id)
                .bind(owner)
                .bind(attempts)
                .bind(next)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Age of the oldest event not yet sent (relay lag); `None` when empty.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn oldest_unsent_age(&self) -> Result<Option<Duration>> {
        let ns = self.namespace.as_str();
        let oldest: Option<DateTime<Utc>> = if let Some(pool) = self.db.as_postgres() {
            sqlx::query_scalar("SELECT min(created_at) FROM tributary_outbox WHERE namespace = $1")
                .bind(ns)
                .fetch_one(pool)
                .await?
        } else if let Some(pool) = self.db.as_sqlite() {
            let v: Option<i64> = sqlx::query_scalar(
                "SELECT min(created_at) FROM tributary_outbox WHERE namespace = ?",
            )
            .bind(ns)
            .fetch_one(pool)
            .await?;
            v.map(time).transpose()?
        } else {
            None
        };
        Ok(oldest.map(|t| (Utc::now() - t).to_std().unwrap_or_default()))
    }

    /// Events not yet sent (sent ones are deleted).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn pending(&self) -> Result<i64> {
        let ns = self.namespace.as_str();
        Ok(if let Some(pool) = self.db.as_postgres() {
            sqlx::query_scalar("SELECT COUNT(*) FROM tributary_outbox WHERE namespace = $1")
                .bind(ns)
                .fetch_one(pool)
                .await?
        } else if let Some(pool) = self.db.as_sqlite() {
            sqlx::query_scalar("SELECT COUNT(*) FROM tributary_outbox WHERE namespace = ?")
                .bind(ns)
                .fetch_one(pool)
                .await?
        } else {
            0
        })
    }
}

//! Retention and compaction of the embedded bus, run by the writer task
//! between appends (so they never contend with it for SQLite's write lock).
//!
//! Both follow Kafka: retention deletes whole batches from the start of a
//! partition regardless of consumer groups (a group behind the new start
//! resumes at the earliest remaining offset: `fetch` returns the first batch
//! whose last offset is at or after its position); compaction keeps the
//! latest record per key and rewrites a batch as runs of its surviving,
//! unchanged offsets. The newest batch of every partition is left alone
//! (Kafka's active segment), so the log end never moves back.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sqlx::{Row, SqlitePool};

use super::store::{decode_batch, encode_record};
use super::{EmbeddedConfig, Housekeeping, Shared};
use crate::port::CleanupPolicy;
use crate::record::{Message, Record};
use crate::Result;

/// Batches read per query while looking at the start of a partition.
const PAGE: i64 = 256;

/// Housekeeping state, owned by the writer task.
pub(crate) struct Keeper {
    config: EmbeddedConfig,
    /// Stored record bytes per topic.
    sizes: HashMap<String, i64>,
    /// Per compacted partition: its end offset at the last compaction, and
    /// whether tombstones were kept then (they expire without new writes).
    compacted: HashMap<(String, i32), (i64, bool)>,
}

/// The start of a partition, as housekeeping sees it.
struct BatchInfo {
    rowid: i64,
    last: i64,
    max_ts: i64,
    bytes: i64,
}

impl Keeper {
    pub(crate) fn new(config: EmbeddedConfig, sizes: HashMap<String, i64>) -> Self {
        Self {
            config,
            sizes,
            compacted: HashMap::new(),
        }
    }

    /// Period of the background runs (`0` in the settings: on demand only).
    pub(crate) fn interval(&self) -> Duration {
        match self.config.cleanup_interval_ms {
            0 => Duration::from_secs(365 * 24 * 3600),
            ms => Duration::from_millis(ms),
        }
    }

    /// Counts bytes the writer appended to `topic`.
    pub(crate) fn appended(&mut self, topic: &str, bytes: i64) {
        *self.sizes.entry(topic.to_string()).or_insert(0) += bytes;
    }

    fn freed(&mut self, topic: &str, bytes: i64) {
        if let Some(s) = self.sizes.get_mut(topic) {
            *s = (*s - bytes).max(0);
        }
    }

    /// One pass over every topic. `next`: the log end of every partition.
    pub(crate) async fn run(
        &mut self,
        shared: &Shared,
        next: &HashMap<(String, i32), i64>,
    ) -> Result<Housekeeping> {
        let mut done = Housekeeping::default();
        let now = super::now_ms();
        for (topic, meta) in shared.topic_list() {
            let ends: Vec<(i32, i64)> = (0..meta.partitions)
                .filter_map(|p| next.get(&(topic.clone(), p)).map(|e| (p, *e)))
                .collect();
            match meta.cleanup {
                CleanupPolicy::Compact => {
                    for &(p, end) in &ends {
                        done.records_compacted +=
                            self.compact(&shared.pool, &topic, p, end, now).await?;
                    }
                }
                CleanupPolicy::Delete => {
                    if self.config.retention_ms > 0 {
                        let age = i64::try_from(self.config.retention_ms).unwrap_or(i64::MAX);
                        let cutoff = now.saturating_sub(age);
                        for &(p, end) in &ends {
                            done.batches_deleted +=
                                self.expire(&shared.pool, &topic, p, end, cutoff).await?;
                        }
                    }
                    if self.config.retention_bytes > 0 {
                        done.batches_deleted += self.shrink(&shared.pool, &topic, &ends).await?;
                    }
                }
            }
        }
        if done.batches_deleted > 0 {
            metrics::counter!("tributary_bus_embedded_retention_batches_total")
                .increment(done.batches_deleted);
        }
        if done.records_compacted > 0 {
            metrics::counter!("tributary_bus_embedded_compacted_records_total")
                .increment(done.records_compacted);
        }
        Ok(done)
    }

    /// Time retention of one partition: deletes batches from its start whose
    /// newest record is older than `cutoff`, up to the first younger one.
    async fn expire(
        &mut self,
        pool: &SqlitePool,
        topic: &str,
        partition: i32,
        end: i64,
        cutoff: i64,
    ) -> Result<u64> {
        let mut deleted = 0;
        let mut after = -1;
        loop {
            let rows = oldest(pool, topic, partition, after, PAGE).await?;
            let full = i64::try_from(rows.len()).unwrap_or(0) == PAGE;
            let mut doomed = Vec::new();
            let mut freed = 0;
            let mut stopped = false;
            for r in &rows {
                if r.last >= end - 1 || r.max_ts >= cutoff {
                    stopped = true;
                    break;
                }
                doomed.push(r.rowid);
                freed += r.bytes;
                after = r.last;
            }
            delete(pool, &doomed).await?;
            self.freed(topic, freed);
            deleted += doomed.len() as u64;
            if stopped || !full {
                return Ok(deleted);
            }
        }
    }

    /// Size retention of one topic: deletes its oldest batches (by newest
    /// record, across partitions) until it fits `retention_bytes`.
    async fn shrink(&mut self, pool: &SqlitePool, topic: &str, ends: &[(i32, i64)]) -> Result<u64> {
        let limit = i64::try_from(self.config.retention_bytes).unwrap_or(i64::MAX);
        let mut size = self.sizes.get(topic).copied().unwrap_or(0);
        if size <= limit {
            return Ok(0);
        }
        // Per partition: a page of deletable batches from its start, and
        // the last offset read (to fetch the next page).
        let mut heads: Vec<(i32, i64, VecDeque<BatchInfo>, i64)> = Vec::new();
        for &(p, end) in ends {
            heads.push((p, end, VecDeque::new(), -1));
        }
        let mut doomed = Vec::new();
        while size > limit {
            for (p, end, q, after) in &mut heads {
                if q.is_empty() && *after < *end - 1 {
                    let rows = oldest(pool, topic, *p, *after, PAGE).await?;
                    *after = rows.last().map_or(*end, |r| r.last);
                    q.extend(rows.into_iter().filter(|r| r.last < *end - 1));
                    if q.is_empty() {
                        *after = *end;
                    }
                }
            }
            let Some(pick) = heads
                .iter()
                .enumerate()
                .filter_map(|(i, (_, _, q, _))| q.front().map(|b| (b.max_ts, b.rowid, i)))
                .min()
                .map(|(_, _, i)| i)
            else {
                break; // only newest batches left
            };
            if let Some(b) = heads[pick].2.pop_front() {
                size -= b.bytes;
                self.freed(topic, b.bytes);
                doomed.push(b.rowid);
            }
        }
        for chunk in doomed.chunks(500) {
            delete(pool, chunk).await?;
        }
        Ok(doomed.len() as u64)
    }

    /// Compacts one partition of a compacted topic, when it has grown since
    /// its last compaction or kept tombstones then. Reads the whole partition
    /// (a compacted topic holds about one record per key).
    async fn compact(
        &mut self,
        pool: &SqlitePool,
        topic: &str,
        partition: i32,
        end: i64,
        now: i64,
    ) -> Result<u64> {
        let key = (topic.to_string(), partition);
        if self.compacted.get(&key) == Some(&(end, false)) {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT rowid, base_offset, last_offset, records FROM bus_batches
             WHERE topic = ? AND partition = ? ORDER BY last_offset",
        )
        .bind(topic)
        .bind(partition)
        .fetch_all(pool)
        .await?;
        let mut batches: Vec<(i64, i64, Vec<Message>)> = Vec::with_capacity(rows.len());
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for r in rows {
            let (rowid, base, last): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let records: Vec<u8> = r.get(3);
            let mut msgs = Vec::new();
            decode_batch(
                topic,
                partition,
                base,
                base,
                Bytes::from(records),
                &mut msgs,
            )?;
            for m in &msgs {
                if let Some(k) = &m.key {
                    latest.insert(k.clone(), m.offset);
                }
            }
            batches.push((rowid, last, msgs));
        }
        let tombstone_age = i64::try_from(self.config.delete_retention_ms).unwrap_or(i64::MAX);
        let mut tombstones_kept = false;
        let mut removed = 0u64;
        let mut freed = 0i64;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        for (rowid, last, msgs) in batches {
            if last >= end - 1 {
                continue; // the newest batch: left alone
            }
            let total = msgs.len();
            let survivors: Vec<Message> = msgs
                .into_iter()
                .filter(|m| {
                    let Some(k) = &m.key else { return true };
                    if latest.get(k) != Some(&m.offset) {
                        return false;
                    }
                    if m.value.is_empty() {
                        let expired =
                            m.timestamp_ms.unwrap_or(0) < now.saturating_sub(tombstone_age);
                        tombstones_kept |= !expired;
                        return !expired;
                    }
                    true
                })
                .collect();
            if survivors.len() == total {
                continue;
            }
            removed += (total - survivors.len()) as u64;
            let old_bytes: i64 =
                sqlx::query_scalar("SELECT bytes FROM bus_batches WHERE rowid = ?")
                    .bind(rowid)
                    .fetch_one(&mut *tx)
                    .await?;
            sqlx::query("DELETE FROM bus_batches WHERE rowid = ?")
                .bind(rowid)
                .execute(&mut *tx)
                .await?;
            freed += old_bytes;
            // Rewrite the survivors as runs of consecutive offsets.
            let mut i = 0;
            while i < survivors.len() {
                let mut j = i + 1;
                while j < survivors.len() && survivors[j].offset == survivors[j - 1].offset + 1 {
                    j += 1;
                }
                let run = &survivors[i..j];
                let mut buf = BytesMut::new();
                let mut max_ts = i64::MIN;
                for m in run {
                    let ts = m.timestamp_ms.unwrap_or(0);
                    max_ts = max_ts.max(ts);
                    let rec = Record {
                        topic: m.topic.clone(),
                        key: m.key.clone(),
                        value: m.value.clone(),
                        headers: m.headers.clone(),
                        timestamp_ms: m.timestamp_ms,
                    };
                    encode_record(&mut buf, &rec, ts);
                }
                let bytes = i64::try_from(buf.len()).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO bus_batches(topic, partition, base_offset, last_offset, max_ts, bytes, records)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(topic)
                .bind(partition)
                .bind(run[0].offset)
                .bind(run[run.len() - 1].offset)
                .bind(max_ts)
                .bind(bytes)
                .bind(&buf[..])
                .execute(&mut *tx)
                .await?;
                freed -= bytes;
                i = j;
            }
        }
        tx.commit().await?;
        self.freed(topic, freed);
        self.compacted.insert(key, (end, tombstones_kept));
        Ok(removed)
    }
}

/// Up to `limit` batches of a partition with last offset above `after`, oldest first.
async fn oldest(
    pool: &SqlitePool,
    topic: &str,
    partition: i32,
    after: i64,
    limit: i64,
) -> Result<Vec<BatchInfo>> {
    let rows = sqlx::query(
        "SELECT rowid, last_offset, COALESCE(max_ts, 0), COALESCE(bytes, 0) FROM bus_batches
         WHERE topic = ? AND partition = ? AND last_offset > ? ORDER BY last_offset LIMIT ?",
    )
    .bind(topic)
    .bind(partition)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| BatchInfo {
            rowid: r.get(0),
            last: r.get(1),
            max_ts: r.get(2),
            bytes: r.get(3),
        })
        .collect())
}

async fn delete(pool: &SqlitePool, rowids: &[i64]) -> Result<()> {
    if rowids.is_empty() {
        return Ok(());
    }
    let list = vec!["?"; rowids.len()].join(",");
    let sql = format!("DELETE FROM bus_batches WHERE rowid IN ({list})");
    // One statement per count of ids: not kept in the statement cache.
    let mut q = sqlx::query(&sql).persistent(false);
    for id in rowids {
        q = q.bind(id);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

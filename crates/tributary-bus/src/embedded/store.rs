//! SQLite schema, the group-commit writer, and reads of the embedded bus.
//!
//! Like Kafka's log, records are stored in batches: each row holds the
//! records one writer transaction appended to one partition (offsets
//! `base_offset ..= last_offset`), encoded back to back. That keeps SQLite's
//! per-row cost out of the per-record path.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::housekeeping::Keeper;
use super::{Housekeeping, Shared, TopicMeta, WriteReq};
use crate::port::CleanupPolicy;
use crate::record::{Delivery, Header, Message, Record};
use crate::{Error, Result};

/// Largest number of records appended in one transaction.
const MAX_BATCH: usize = 8192;

pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bus_topics (
             name TEXT PRIMARY KEY,
             partitions INTEGER NOT NULL,
             cleanup TEXT NOT NULL DEFAULT 'delete'
         );
         CREATE TABLE IF NOT EXISTS bus_batches (
             topic TEXT NOT NULL,
             partition INTEGER NOT NULL,
             base_offset INTEGER NOT NULL,
             last_offset INTEGER NOT NULL,
             max_ts INTEGER,
             bytes INTEGER,
             records BLOB NOT NULL
         );
         CREATE UNIQUE INDEX IF NOT EXISTS bus_batches_by_offset
             ON bus_batches (topic, partition, last_offset);
         CREATE TABLE IF NOT EXISTS bus_offsets (
             grp TEXT NOT NULL,
             topic TEXT NOT NULL,
             partition INTEGER NOT NULL,
             next_offset INTEGER NOT NULL,
             PRIMARY KEY (grp, topic, partition)
         ) WITHOUT ROWID;",
    )
    .execute(pool)
    .await?;
    // Files from before retention and compaction: add the columns; their
    // batches count as written now (kept for a full retention period).
    let has = |table: &'static str, column: &'static str| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
            .bind(table)
            .bind(column)
            .fetch_one(pool)
            .await
            .map(|n| n > 0)
    };
    if !has("bus_topics", "cleanup").await? {
        sqlx::raw_sql("ALTER TABLE bus_topics ADD COLUMN cleanup TEXT NOT NULL DEFAULT 'delete'")
            .execute(pool)
            .await?;
    }
    if !has("bus_batches", "max_ts").await? {
        sqlx::raw_sql(
            "ALTER TABLE bus_batches ADD COLUMN max_ts INTEGER;
             ALTER TABLE bus_batches ADD COLUMN bytes INTEGER;",
        )
        .execute(pool)
        .await?;
    }
    sqlx::query(
        "UPDATE bus_batches SET max_ts = ?, bytes = length(records)
         WHERE max_ts IS NULL OR bytes IS NULL",
    )
    .bind(super::now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) fn cleanup_name(c: CleanupPolicy) -> &'static str {
    match c {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    }
}

pub(crate) async fn load_topics(pool: &SqlitePool) -> Result<HashMap<String, TopicMeta>> {
    // A file from before cleanup policies (opened read-only, not migrated) has no column.
    let rows = match sqlx::query("SELECT name, partitions, cleanup FROM bus_topics")
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows,
        Err(_) => {
            sqlx::query("SELECT name, partitions, 'delete' FROM bus_topics")
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let cleanup = if r.get::<String, _>(2) == "compact" {
                CleanupPolicy::Compact
            } else {
                CleanupPolicy::Delete
            };
            (
                r.get::<String, _>(0),
                TopicMeta {
                    partitions: r.get::<i32, _>(1),
                    cleanup,
                },
            )
        })
        .collect())
}

/// Stored record bytes per topic.
pub(crate) async fn load_sizes(pool: &SqlitePool) -> Result<HashMap<String, i64>> {
    let rows = sqlx::query("SELECT topic, COALESCE(SUM(bytes), 0) FROM bus_batches GROUP BY topic")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect())
}

pub(crate) async fn load_next_offsets(pool: &SqlitePool) -> Result<HashMap<(String, i32), i64>> {
    let rows = sqlx::query(
        "SELECT topic, partition, MAX(last_offset) + 1 FROM bus_batches GROUP BY topic, partition",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                (r.get::<String, _>(0), r.get::<i32, _>(1)),
                r.get::<i64, _>(2),
            )
        })
        .collect())
}

/// Appends one record: `ts i64 | key len i32 (-1 = none) | key | value len u32 |
/// value | header count u32 | (name len u32 | name | value len u32 | value)*`.
pub(crate) fn encode_record(out: &mut BytesMut, rec: &Record, ts: i64) {
    out.put_i64_le(ts);
    match &rec.key {
        Some(k) => {
            out.put_i32_le(i32::try_from(k.len()).unwrap_or(i32::MAX));
            out.put_slice(k);
        }
        None => out.put_i32_le(-1),
    }
    put_bytes(out, &rec.value);
    out.put_u32_le(u32::try_from(rec.headers.len()).unwrap_or(u32::MAX));
    for (name, value) in &rec.headers {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value);
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.put_slice(b);
}

/// Decoding failure: the stored batch is corrupt.
fn corrupt(what: &str) -> Error {
    Error::Store(sqlx::Error::Protocol(format!(
        "corrupt record batch: {what}"
    )))
}

fn take_bytes(buf: &mut Bytes, len: usize, what: &str) -> Result<Bytes> {
    if buf.remaining() < len {
        return Err(corrupt(what));
    }
    Ok(buf.split_to(len))
}

fn take_u32(buf: &mut Bytes, what: &str) -> Result<usize> {
    if buf.remaining() < 4 {
        return Err(corrupt(what));
    }
    usize::try_from(buf.get_u32_le()).map_err(|_| corrupt(what))
}

/// Decodes the records of one batch whose offsets are `base..`, keeping those at or after `from`.
pub(crate) fn decode_batch(
    topic: &str,
    partition: i32,
    base: i64,
    from: i64,
    mut buf: Bytes,
    out: &mut Vec<Message>,
) -> Result<()> {
    let mut offset = base;
    while buf.has_remaining() {
        if buf.remaining() < 12 {
            return Err(corrupt("record header"));
        }
        let ts = buf.get_i64_le();
        let key_len = buf.get_i32_le();
        let key = if key_len < 0 {
            None
        } else {
            Some(take_bytes(
                &mut buf,
                usize::try_from(key_len).map_err(|_| corrupt("key"))?,
                "key",
            )?)
        };
        let vlen = take_u32(&mut buf, "value length")?;
        let value = take_bytes(&mut buf, vlen, "value")?;
        let n = take_u32(&mut buf, "header count")?;
        let mut headers: Vec<Header> = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let nl = take_u32(&mut buf, "header name length")?;
            let name = take_bytes(&mut buf, nl, "header name")?;
            let vl = take_u32(&mut buf, "header value length")?;
            let v = take_bytes(&mut buf, vl, "header value")?;
            headers.push((String::from_utf8_lossy(&name).into_owned(), v));
        }
        if offset >= from {
            out.push(Message {
                topic: topic.to_string(),
                partition,
                offset,
                key,
                value,
                headers,
                timestamp_ms: Some(ts),
            });
        }
        offset += 1;
    }
    Ok(())
}

/// One partition's share of a writer transaction.
struct PartitionBatch {
    topic: String,
    partition: i32,
    base: i64,
    count: i64,
    max_ts: i64,
    records: BytesMut,
}

/// The single writer: appends whatever callers have enqueued as one
/// transaction (one batch row per partition), then answers each sender and
/// wakes consumers. Holds the file's writer `lock` until the bus handle is
/// gone and every queued append is done.
pub(crate) async fn writer(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<WriteReq>,
    mut housekeep: mpsc::UnboundedReceiver<oneshot::Sender<Result<Housekeeping>>>,
    mut next: HashMap<(String, i32), i64>,
    mut keeper: Keeper,
    lock: super::lock::WriterLock,
) {
    let _lock = lock;
    let mut reqs: Vec<WriteReq> = Vec::with_capacity(MAX_BATCH);
    let period = keeper.interval();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            Some(reply) = housekeep.recv() => {
                let _ = reply.send(keeper.run(&shared, &next).await);
                continue;
            }
            _ = tick.tick() => {
                match keeper.run(&shared, &next).await {
                    Ok(done) if done != Housekeeping::default() => {
                        tracing::debug!(?done, "embedded bus housekeeping");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "embedded bus housekeeping failed; retried next period"),
                }
                continue;
            }
            r = rx.recv() => match r {
                Some(first) => first,
                None => break,
            },
        };
        reqs.push(first);
        while reqs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => reqs.push(r),
                Err(_) => break,
            }
        }
        let before = next.clone();
        let mut batches: Vec<PartitionBatch> = Vec::new();
        let mut index: HashMap<(String, i32), usize> = HashMap::new();
        let mut replies = Vec::with_capacity(reqs.len());
        for req in reqs.drain(..) {
            if req.partition < 0 {
                // flush marker: answered once everything before it is durable
                replies.push((
                    req.reply,
                    Delivery {
                        partition: -1,
                        offset: -1,
                    },
                ));
                continue;
            }
            let key = (req.topic, req.partition);
            let slot = next.entry(key.clone()).or_insert(0);
            let offset = *slot;
            *slot += 1;
            let i = *index.entry(key.clone()).or_insert_with(|| {
                batches.push(PartitionBatch {
                    topic: key.0.clone(),
                    partition: key.1,
                    base: offset,
                    count: 0,
                    max_ts: i64::MIN,
                    records: BytesMut::new(),
                });
                batches.len() - 1
            });
            let b = &mut batches[i];
            encode_record(&mut b.records, &req.record, req.timestamp_ms);
            b.count += 1;
            b.max_ts = b.max_ts.max(req.timestamp_ms);
            replies.push((
                req.reply,
                Delivery {
                    partition: key.1,
                    offset,
                },
            ));
        }
        match append(&shared.pool, &batches).await {
            Ok(()) => {
                for b in &batches {
                    keeper.appended(&b.topic, i64::try_from(b.records.len()).unwrap_or(i64::MAX));
                }
                for (reply, d) in replies {
                    let _ = reply.send(Ok(d));
                }
                if !batches.is_empty() {
                    shared.log_version.send_modify(|v| *v += 1);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = batches.len(), "embedded bus append failed");
                next = before;
                let msg = e.to_string();
                for (reply, _) in replies {
                    let _ = reply.send(Err(Error::Store(sqlx::Error::Protocol(msg.clone()))));
                }
            }
        }
    }
}

async fn append(pool: &SqlitePool, batches: &[PartitionBatch]) -> Result<(), sqlx::Error> {
    if batches.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for b in batches {
        sqlx::query(
            "INSERT INTO bus_batches(topic, partition, base_offset, last_offset, max_ts, bytes, records)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&b.topic)
        .bind(b.partition)
        .bind(b.base)
        .bind(b.base + b.count - 1)
        .bind(b.max_ts)
        .bind(i64::try_from(b.records.len()).unwrap_or(i64::MAX))
        .bind(&b.records[..])
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Messages of one partition from offset `from` on, from at most `max_batches` batches.
pub(crate) async fn fetch(
    pool: &SqlitePool,
    topic: &str,
    partition: i32,
    from: i64,
    max_batches: i64,
) -> Result<Vec<Message>> {
    let rows = sqlx::query(
        "SELECT base_offset, records FROM bus_batches
         WHERE topic = ? AND partition = ? AND last_offset >= ? ORDER BY last_offset LIMIT ?",
    )
    .bind(topic)
    .bind(partition)
    .bind(from)
    .bind(max_batches)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let base: i64 = r.get(0);
        let records: Vec<u8> = r.get(1);
        decode_batch(topic, partition, base, from, Bytes::from(records), &mut out)?;
    }
    Ok(out)
}

/// The committed next offset of `group` on a partition.
pub(crate) async fn committed(
    pool: &SqlitePool,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT next_offset FROM bus_offsets WHERE grp = ? AND topic = ? AND partition = ?",
    )
    .bind(group)
    .bind(topic)
    .bind(partition)
    .fetch_optional(pool)
    .await?)
}

/// The next offset that will be written on a partition.
pub(crate) async fn end_offset(pool: &SqlitePool, topic: &str, partition: i32) -> Result<i64> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(last_offset) + 1 FROM bus_batches WHERE topic = ? AND partition = ?",
    )
    .bind(topic)
    .bind(partition)
    .fetch_one(pool)
    .await?;
    Ok(v.unwrap_or(0))
}

/// The earliest retained offset and the next offset that will be written on
/// a partition (both 0 while it holds no batch).
pub(crate) async fn watermarks(
    pool: &SqlitePool,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT MIN(base_offset), MAX(last_offset) + 1 FROM bus_batches WHERE topic = ? AND partition = ?",
    )
    .bind(topic)
    .bind(partition)
    .fetch_one(pool)
    .await?;
    let low: Option<i64> = row.get(0);
    let high: Option<i64> = row.get(1);
    Ok((low.unwrap_or(0), high.unwrap_or(0)))
}

/// Commits `offsets` ((topic, partition) -> next offset) for `group`.
///
/// The transaction runs in its own task, so a caller that is cancelled
/// (`recv` dropped by a timeout) never leaves a half-done write transaction
/// holding SQLite's write lock on an idle pooled connection.
pub(crate) async fn commit(
    pool: &SqlitePool,
    group: &str,
    offsets: &HashMap<(String, i32), i64>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let (pool, group, offsets) = (pool.clone(), group.to_string(), offsets.clone());
    tokio::spawn(async move { commit_now(&pool, &group, &offsets).await })
        .await
        .map_err(|e| Error::Timeout(format!("offset commit task: {e}")))?
}

async fn commit_now(
    pool: &SqlitePool,
    group: &str,
    offsets: &HashMap<(String, i32), i64>,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for ((topic, partition), next) in offsets {
        sqlx::query(
            "INSERT INTO bus_offsets(grp, topic, partition, next_offset) VALUES (?, ?, ?, ?)
             ON CONFLICT(grp, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves records (keys, empty keys, headers, timestamps) round-trip through the batch
    // encoding, offsets before `from` are skipped, and corrupt batches are errors, not panics.
    #[test]
    fn batches_round_trip() {
        let recs = vec![
            Record::new("t", "k1", "v1")
                .header("h", "x")
                .header("empty", ""),
            Record {
                topic: "t".into(),
                key: None,
                value: Bytes::new(),
                headers: Vec::new(),
                timestamp_ms: None,
            },
            Record::new("t", "", "v3"),
        ];
        let mut buf = BytesMut::new();
        for (i, r) in recs.iter().enumerate() {
            encode_record(&mut buf, r, 1000 + i as i64);
        }
        let bytes = buf.freeze();
        let mut out = Vec::new();
        decode_batch("t", 2, 10, 10, bytes.clone(), &mut out).expect("decode");
        assert_eq!(out.len(), 3);
        for (i, (m, r)) in out.iter().zip(&recs).enumerate() {
            assert_eq!(m.offset, 10 + i as i64);
            assert_eq!(m.partition, 2);
            assert_eq!(m.key, r.key);
            assert_eq!(m.value, r.value);
            assert_eq!(m.headers, r.headers);
            assert_eq!(m.timestamp_ms, Some(1000 + i as i64));
        }
        let mut tail = Vec::new();
        decode_batch("t", 2, 10, 12, bytes.clone(), &mut tail).expect("decode");
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].offset, 12);
        for cut in 1..bytes.len() {
            let mut v = Vec::new();
            let _ = decode_batch("t", 0, 0, 0, bytes.slice(..cut), &mut v);
        }
        assert!(decode_batch("t", 0, 0, 0, bytes.slice(..5), &mut Vec::new()).is_err());
    }
}

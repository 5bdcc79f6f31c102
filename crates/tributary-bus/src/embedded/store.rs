//! SQLite schema, the group-commit writer, and reads of the embedded bus.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::mpsc;

use super::{Shared, WriteReq};
use crate::record::{Delivery, Header, Message};
use crate::{Error, Result};

/// Largest number of records appended in one transaction.
const MAX_BATCH: usize = 4096;
/// Rows per INSERT statement (7 bound values each; SQLite allows 32766).
const ROWS_PER_STATEMENT: usize = 512;

pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bus_topics (
             name TEXT PRIMARY KEY,
             partitions INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS bus_messages (
             topic TEXT NOT NULL,
             partition INTEGER NOT NULL,
             offset INTEGER NOT NULL,
             key BLOB,
             value BLOB NOT NULL,
             headers BLOB,
             ts INTEGER NOT NULL,
             PRIMARY KEY (topic, partition, offset)
         ) WITHOUT ROWID;
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
    Ok(())
}

pub(crate) async fn load_topics(pool: &SqlitePool) -> Result<HashMap<String, i32>> {
    let rows = sqlx::query("SELECT name, partitions FROM bus_topics")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i32, _>(1)))
        .collect())
}

pub(crate) async fn load_next_offsets(pool: &SqlitePool) -> Result<HashMap<(String, i32), i64>> {
    let rows = sqlx::query(
        "SELECT topic, partition, MAX(offset) + 1 FROM bus_messages GROUP BY topic, partition",
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

/// Headers as `u32 len | name | u32 len | value` repeated; `None` when empty.
fn encode_headers(headers: &[Header]) -> Option<Vec<u8>> {
    if headers.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (k, v) in headers {
        for part in [k.as_bytes(), &v[..]] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Some(out)
}

fn decode_headers(raw: Option<Vec<u8>>) -> Vec<Header> {
    let Some(raw) = raw else { return Vec::new() };
    let mut out = Vec::new();
    let mut rest = &raw[..];
    let take = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        let len = usize::try_from(u32::from_le_bytes(len_bytes)).ok()?;
        let v = rest.get(4..4 + len)?.to_vec();
        *rest = &rest[4 + len..];
        Some(v)
    };
    while !rest.is_empty() {
        let (Some(k), Some(v)) = (take(&mut rest), take(&mut rest)) else {
            break;
        };
        out.push((String::from_utf8_lossy(&k).into_owned(), Bytes::from(v)));
    }
    out
}

/// The single writer: appends everything enqueued so far in one transaction,
/// then answers each sender and wakes consumers.
pub(crate) async fn writer(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<WriteReq>,
    mut next: HashMap<(String, i32), i64>,
) {
    let mut batch: Vec<WriteReq> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let before = next.clone();
        for req in batch.drain(..) {
            if req.partition < 0 {
                // flush marker
                replies.push((req.reply, None));
                continue;
            }
            let slot = next.entry((req.topic.clone(), req.partition)).or_insert(0);
            let offset = *slot;
            *slot += 1;
            replies.push((
                req.reply,
                Some(Delivery {
                    partition: req.partition,
                    offset,
                }),
            ));
            records.push((
                req.topic,
                req.partition,
                offset,
                req.record,
                req.timestamp_ms,
            ));
        }
        let res = append(&shared.pool, &records).await;
        match res {
            Ok(()) => {
                for (reply, d) in replies {
                    let _ = reply.send(Ok(d.unwrap_or(Delivery {
                        partition: -1,
                        offset: -1,
                    })));
                }
                if !records.is_empty() {
                    shared.log_version.send_modify(|v| *v += 1);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = records.len(), "embedded bus append failed");
                next = before;
                let msg = e.to_string();
                for (reply, _) in replies {
                    let _ = reply.send(Err(Error::Store(sqlx::Error::Protocol(msg.clone()))));
                }
            }
        }
    }
}

type Row5 = (String, i32, i64, crate::record::Record, i64);

async fn append(pool: &SqlitePool, records: &[Row5]) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO bus_messages(topic, partition, offset, key, value, headers, ts) ",
        );
        qb.push_values(chunk, |mut b, (topic, partition, offset, rec, ts)| {
            b.push_bind(topic.as_str())
                .push_bind(*partition)
                .push_bind(*offset)
                .push_bind(rec.key.as_ref().map(|k| k.to_vec()))
                .push_bind(rec.value.to_vec())
                .push_bind(encode_headers(&rec.headers))
                .push_bind(*ts);
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Up to `limit` messages of one partition from `from` on.
pub(crate) async fn fetch(
    pool: &SqlitePool,
    topic: &str,
    partition: i32,
    from: i64,
    limit: i64,
) -> Result<Vec<Message>> {
    let rows = sqlx::query(
        "SELECT offset, key, value, headers, ts FROM bus_messages
         WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
    )
    .bind(topic)
    .bind(partition)
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Message {
            topic: topic.to_string(),
            partition,
            offset: r.get(0),
            key: r.get::<Option<Vec<u8>>, _>(1).map(Bytes::from),
            value: Bytes::from(r.get::<Vec<u8>, _>(2)),
            headers: decode_headers(r.get(3)),
            timestamp_ms: Some(r.get(4)),
        })
        .collect())
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
        "SELECT MAX(offset) + 1 FROM bus_messages WHERE topic = ? AND partition = ?",
    )
    .bind(topic)
    .bind(partition)
    .fetch_one(pool)
    .await?;
    Ok(v.unwrap_or(0))
}

/// Commits `offsets` ((topic, partition) -> next offset) for `group`.
pub(crate) async fn commit(
    pool: &SqlitePool,
    group: &str,
    offsets: &HashMap<(String, i32), i64>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
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

    // Proves headers round-trip through their binary encoding, and garbage never panics.
    #[test]
    fn headers_round_trip() {
        let h = vec![
            ("a".to_string(), Bytes::from_static(b"1")),
            ("empty".to_string(), Bytes::new()),
        ];
        assert_eq!(decode_headers(encode_headers(&h)), h);
        assert!(decode_headers(encode_headers(&[])).is_empty());
        let _ = decode_headers(Some(vec![255, 255, 255, 255, 1]));
    }
}

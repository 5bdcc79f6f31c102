//! SQLite dialect of the repository (embedded default, one machine). Times
//! are microseconds since the epoch; SQLite has one writer at a time, so a
//! single `UPDATE ... RETURNING` statement claims atomically.

use std::time::Duration;
use tributary_storage::BeginWrite;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use super::{event_type, payload, Release};
use crate::domain::{EventType, NewPackage, OutboxEvent, Package, PackageId, PackageUpdate, Page};
use crate::{Error, Result};

const COLS: &str = "id, title, material, max_volume, reusable, created_at, updated_at";

fn now() -> i64 {
    Utc::now().timestamp_micros()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn time(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| Error::Corrupt(format!("timestamp {v}")))
}

fn package(row: &SqliteRow) -> Result<Package> {
    let updated: Option<i64> = row.try_get("updated_at")?;
    Ok(Package {
        id: PackageId::from_db(row.try_get("id")?),
        title: row.try_get("title")?,
        material: row.try_get("material")?,
        maximum_volume: row.try_get::<f64, _>("max_volume")? as f32,
        reusable: row.try_get("reusable")?,
        created: time(row.try_get("created_at")?)?,
        updated: updated.map(time).transpose()?,
    })
}

async fn add_event(tx: &mut Transaction<'_, Sqlite>, kind: EventType, p: &Package) -> Result<()> {
    let t = now();
    sqlx::query(
        "INSERT INTO package_event (package_id, event_type, payload, created_at, next_attempt_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(p.id.get())
    .bind(kind.as_str())
    .bind(payload(p)?)
    .bind(t)
    .bind(t)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn create(pool: &SqlitePool, new: &NewPackage) -> Result<Package> {
    let mut tx = pool.begin_write().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO package (title, material, max_volume, reusable, created_at) VALUES (?, ?, ?, ?, ?) RETURNING {COLS}"
    ))
    .bind(new.title.as_str())
    .bind(new.material.as_str())
    .bind(f64::from(new.maximum_volume.get()))
    .bind(new.reusable)
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    let p = package(&row)?;
    add_event(&mut tx, EventType::Created, &p).await?;
    tx.commit().await?;
    Ok(p)
}

pub(super) async fn describe(pool: &SqlitePool, id: PackageId) -> Result<Option<Package>> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM package WHERE id = ?"))
        .bind(id.get())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(package).transpose()
}

pub(super) async fn list(pool: &SqlitePool, page: Page) -> Result<Vec<Package>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM package WHERE id > ? ORDER BY id LIMIT ? OFFSET ?"
    ))
    .bind(page.after_id.unwrap_or(0))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    rows.iter().map(package).collect()
}

pub(super) async fn update(
    pool: &SqlitePool,
    id: PackageId,
    u: &PackageUpdate,
) -> Result<Option<Package>> {
    let mut tx = pool.begin_write().await?;
    let row = sqlx::query(&format!(
        "UPDATE package SET title = COALESCE(?2, title), material = COALESCE(?3, material), \
         max_volume = COALESCE(?4, max_volume), reusable = COALESCE(?5, reusable), updated_at = ?6 \
         WHERE id = ?1 RETURNING {COLS}"
    ))
    .bind(id.get())
    .bind(u.title.as_ref().map(|t| t.as_str()))
    .bind(u.material.as_ref().map(|m| m.as_str()))
    .bind(u.maximum_volume.map(|v| f64::from(v.get())))
    .bind(u.reusable)
    .bind(now())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let p = package(&row)?;
    add_event(&mut tx, EventType::Updated, &p).await?;
    tx.commit().await?;
    Ok(Some(p))
}

pub(super) async fn remove(pool: &SqlitePool, id: PackageId) -> Result<Option<Package>> {
    let mut tx = pool.begin_write().await?;
    let row = sqlx::query(&format!(
        "DELETE FROM package WHERE id = ? RETURNING {COLS}"
    ))
    .bind(id.get())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let p = package(&row)?;
    add_event(&mut tx, EventType::Removed, &p).await?;
    tx.commit().await?;
    Ok(Some(p))
}

pub(super) async fn claim(
    pool: &SqlitePool,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<OutboxEvent>> {
    let t = now();
    let rows = sqlx::query(
        "UPDATE package_event SET status = 'Locked', locked_at = ?1, locked_by = ?2 \
         WHERE id IN ( \
           SELECT e.id FROM package_event e \
           WHERE NOT EXISTS ( \
             SELECT 1 FROM package_event b WHERE b.package_id = e.package_id AND ( \
               (b.status = 'Locked' AND b.locked_at > ?3) \
               OR (b.status = 'Unlocked' AND b.next_attempt_at > ?1))) \
           ORDER BY e.id LIMIT ?4) \
         RETURNING id, package_id, event_type, payload, created_at, attempts",
    )
    .bind(t)
    .bind(owner)
    .bind(t - micros(lease))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEvent {
                id: r.try_get("id")?,
                package_id: PackageId::from_db(r.try_get("package_id")?),
                event_type: event_type(r.try_get("event_type")?)?,
                payload: r.try_get("payload")?,
                created: time(r.try_get("created_at")?)?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

pub(super) async fn renew(pool: &SqlitePool, owner: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE package_event SET locked_at = ? WHERE status = 'Locked' AND locked_by = ?",
    )
    .bind(now())
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_sent(pool: &SqlitePool, owner: &str, ids: &[i64]) -> Result<u64> {
    let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM package_event WHERE locked_by = ");
    q.push_bind(owner).push(" AND id IN (");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(")");
    Ok(q.build().execute(pool).await?.rows_affected())
}

pub(super) async fn release(
    pool: &SqlitePool,
    owner: &str,
    items: &[(i64, Release)],
) -> Result<()> {
    let t = now();
    let mut tx = pool.begin_write().await?;
    for (id, r) in items {
        let (attempts, next) = match r {
            Release::Untried => (0, t),
            Release::Failed { backoff } => (1, t + micros(*backoff)),
        };
        sqlx::query(
            "UPDATE package_event SET status = 'Unlocked', locked_at = NULL, locked_by = NULL, \
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
    Ok(())
}

pub(super) async fn oldest_unsent(pool: &SqlitePool) -> Result<Option<DateTime<Utc>>> {
    let v: Option<i64> = sqlx::query_scalar("SELECT min(created_at) FROM package_event")
        .fetch_one(pool)
        .await?;
    v.map(time).transpose()
}

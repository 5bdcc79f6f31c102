//! PostgreSQL dialect of the repository.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{event_type, payload, Release};
use crate::domain::{EventType, NewPackage, OutboxEvent, Package, PackageId, PackageUpdate, Page};
use crate::Result;

const COLS: &str = "id, title, material, max_volume, reusable, created_at, updated_at";
/// Serializes relay claims across processes (`pg_advisory_xact_lock`).
const CLAIM_LOCK: i64 = 0x6c6f_6769_7374_6963;

fn package(row: &PgRow) -> Result<Package> {
    Ok(Package {
        id: PackageId::from_db(row.try_get("id")?),
        title: row.try_get("title")?,
        material: row.try_get("material")?,
        maximum_volume: row.try_get("max_volume")?,
        reusable: row.try_get("reusable")?,
        created: row.try_get("created_at")?,
        updated: row.try_get("updated_at")?,
    })
}

async fn add_event(tx: &mut Transaction<'_, Postgres>, kind: EventType, p: &Package) -> Result<()> {
    sqlx::query(
        "INSERT INTO package_event (package_id, event_type, payload) VALUES ($1, $2, $3::jsonb)",
    )
    .bind(p.id.get())
    .bind(kind.as_str())
    .bind(payload(p)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn create(pool: &PgPool, new: &NewPackage) -> Result<Package> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO package (title, material, max_volume, reusable) VALUES ($1, $2, $3, $4) RETURNING {COLS}"
    ))
    .bind(new.title.as_str())
    .bind(new.material.as_str())
    .bind(new.maximum_volume.get())
    .bind(new.reusable)
    .fetch_one(&mut *tx)
    .await?;
    let p = package(&row)?;
    add_event(&mut tx, EventType::Created, &p).await?;
    tx.commit().await?;
    Ok(p)
}

pub(super) async fn describe(pool: &PgPool, id: PackageId) -> Result<Option<Package>> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM package WHERE id = $1"))
        .bind(id.get())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(package).transpose()
}

pub(super) async fn list(pool: &PgPool, page: Page) -> Result<Vec<Package>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM package WHERE id > $1 ORDER BY id LIMIT $2 OFFSET $3"
    ))
    .bind(page.after_id.unwrap_or(0))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    rows.iter().map(package).collect()
}

pub(super) async fn update(
    pool: &PgPool,
    id: PackageId,
    u: &PackageUpdate,
) -> Result<Option<Package>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "UPDATE package SET title = COALESCE($2, title), material = COALESCE($3, material), \
         max_volume = COALESCE($4, max_volume), reusable = COALESCE($5, reusable), updated_at = now() \
         WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id.get())
    .bind(u.title.as_ref().map(|t| t.as_str()))
    .bind(u.material.as_ref().map(|m| m.as_str()))
    .bind(u.maximum_volume.map(|v| v.get()))
    .bind(u.reusable)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let p = package(&row)?;
    add_event(&mut tx, EventType::Updated, &p).await?;
    tx.commit().await?;
    Ok(Some(p))
}

pub(super) async fn remove(pool: &PgPool, id: PackageId) -> Result<Option<Package>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "DELETE FROM package WHERE id = $1 RETURNING {COLS}"
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
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<OutboxEvent>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "WITH cand AS ( \
           SELECT e.id FROM package_event e \
           WHERE NOT EXISTS ( \
             SELECT 1 FROM package_event b WHERE b.package_id = e.package_id AND ( \
               (b.status = 'Locked' AND b.locked_at > now() - make_interval(secs => $2)) \
               OR (b.status = 'Unlocked' AND b.next_attempt_at > now()))) \
           ORDER BY e.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         UPDATE package_event p SET status = 'Locked', locked_at = now(), locked_by = $1 \
         FROM cand WHERE p.id = cand.id \
         RETURNING p.id, p.package_id, p.event_type, p.payload::text AS payload, p.created_at, p.attempts",
    )
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEvent {
                id: r.try_get("id")?,
                package_id: PackageId::from_db(r.try_get("package_id")?),
                event_type: event_type(r.try_get("event_type")?)?,
                payload: r.try_get("payload")?,
                created: r.try_get("created_at")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

pub(super) async fn renew(pool: &PgPool, owner: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE package_event SET locked_at = now() WHERE status = 'Locked' AND locked_by = $1",
    )
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_sent(pool: &PgPool, owner: &str, ids: &[i64]) -> Result<u64> {
    let done = sqlx::query("DELETE FROM package_event WHERE id = ANY($1) AND locked_by = $2")
        .bind(ids)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn release(pool: &PgPool, owner: &str, items: &[(i64, Release)]) -> Result<()> {
    let untried: Vec<i64> = items
        .iter()
        .filter(|(_, r)| *r == Release::Untried)
        .map(|(id, _)| *id)
        .collect();
    let mut tx = pool.begin().await?;
    if !untried.is_empty() {
        sqlx::query(
            "UPDATE package_event SET status = 'Unlocked', locked_at = NULL, locked_by = NULL \
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
                "UPDATE package_event SET status = 'Unlocked', locked_at = NULL, locked_by = NULL, \
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
    Ok(())
}

pub(super) async fn oldest_unsent(pool: &PgPool) -> Result<Option<DateTime<Utc>>> {
    Ok(
        sqlx::query_scalar("SELECT min(created_at) FROM package_event")
            .fetch_one(pool)
            .await?,
    )
}

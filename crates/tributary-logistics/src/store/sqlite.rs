//! SQLite dialect of the repository (embedded default, one machine). Times
//! are microseconds since the epoch; SQLite has one writer at a time, so a
//! single `UPDATE ... RETURNING` statement claims atomically.

use tributary_storage::BeginWrite;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::add_event;
use crate::domain::{EventType, NewPackage, Package, PackageId, PackageUpdate, Page};
use crate::{Error, Result};

const COLS: &str = "id, title, material, max_volume, reusable, created_at, updated_at";

fn now() -> i64 {
    Utc::now().timestamp_micros()
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
    add_event(&mut *tx, EventType::Created, &p).await?;
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
    add_event(&mut *tx, EventType::Updated, &p).await?;
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
    add_event(&mut *tx, EventType::Removed, &p).await?;
    tx.commit().await?;
    Ok(Some(p))
}

//! PostgreSQL dialect of the repository.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::add_event;
use crate::domain::{EventType, NewPackage, Package, PackageId, PackageUpdate, Page};
use crate::Result;

const COLS: &str = "id, title, material, max_volume, reusable, created_at, updated_at";

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
    add_event(&mut *tx, EventType::Created, &p).await?;
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
    add_event(&mut *tx, EventType::Updated, &p).await?;
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
    add_event(&mut *tx, EventType::Removed, &p).await?;
    tx.commit().await?;
    Ok(Some(p))
}

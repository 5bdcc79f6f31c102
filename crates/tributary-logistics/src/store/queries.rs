//! The package queries, written once for both dialects with the storage
//! crate's toolkit: SQL text with `$N` placeholders in argument order
//! ([`Stmt::sql_for`] turns them into `?` for SQLite) and one body per query
//! run on either pool by [`on_pool!`]. What the dialects store differently
//! is named in [`Columns`] (times: `TIMESTAMPTZ` vs microseconds since the
//! epoch; `max_volume`: `REAL` as f32 vs f64) and [`PackageRow`].
//!
//! Times are taken from the service's clock on both dialects, so a package
//! reads the same whichever database it is in.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Row, SqlitePool};
use tributary_storage::stmt::{Pool, Stmt};
use tributary_storage::{on_pool, BeginWrite};

use super::add_event;
use crate::domain::{EventType, NewPackage, Package, PackageId, PackageUpdate, Page};
use crate::{Error, Result};

const COLS: &str = "id, title, material, max_volume, reusable, created_at, updated_at";

/// How a pool's dialect stores the package columns that differ.
trait Columns {
    /// The bound type of a time column.
    type Time;
    /// The bound type of `max_volume`.
    type Volume;
    /// Now, as this dialect stores it.
    fn now(&self) -> Self::Time;
    /// A volume, as this dialect stores it.
    fn volume(&self, v: f32) -> Self::Volume;
}

impl Columns for PgPool {
    type Time = DateTime<Utc>;
    type Volume = f32;
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn volume(&self, v: f32) -> f32 {
        v
    }
}

impl Columns for SqlitePool {
    type Time = i64;
    type Volume = f64;
    fn now(&self) -> i64 {
        Utc::now().timestamp_micros()
    }
    fn volume(&self, v: f32) -> f64 {
        f64::from(v)
    }
}

/// A `package` row of either dialect.
trait PackageRow {
    fn package(&self) -> Result<Package>;
}

impl PackageRow for PgRow {
    fn package(&self) -> Result<Package> {
        Ok(Package {
            id: PackageId::from_db(self.try_get("id")?),
            title: self.try_get("title")?,
            material: self.try_get("material")?,
            maximum_volume: self.try_get("max_volume")?,
            reusable: self.try_get("reusable")?,
            created: self.try_get("created_at")?,
            updated: self.try_get("updated_at")?,
        })
    }
}

impl PackageRow for SqliteRow {
    fn package(&self) -> Result<Package> {
        let updated: Option<i64> = self.try_get("updated_at")?;
        Ok(Package {
            id: PackageId::from_db(self.try_get("id")?),
            title: self.try_get("title")?,
            material: self.try_get("material")?,
            maximum_volume: self.try_get::<f64, _>("max_volume")? as f32,
            reusable: self.try_get("reusable")?,
            created: time(self.try_get("created_at")?)?,
            updated: updated.map(time).transpose()?,
        })
    }
}

fn time(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| Error::Corrupt(format!("timestamp {v}")))
}

pub(super) async fn create(pool: Pool, new: &NewPackage) -> Result<Package> {
    let stmt = Stmt::new(&format!(
        "INSERT INTO package (title, material, max_volume, reusable, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLS}"
    ));
    on_pool!(pool, p => {
        let mut tx = p.begin_write().await?;
        let row = sqlx::query(stmt.sql_for(&p))
            .bind(new.title.as_str())
            .bind(new.material.as_str())
            .bind(p.volume(new.maximum_volume.get()))
            .bind(new.reusable)
            .bind(p.now())
            .fetch_one(&mut *tx)
            .await?;
        let pkg = row.package()?;
        add_event(&mut *tx, EventType::Created, &pkg).await?;
        tx.commit().await?;
        Ok(pkg)
    })
}

pub(super) async fn describe(pool: Pool, id: PackageId) -> Result<Option<Package>> {
    let stmt = Stmt::new(&format!("SELECT {COLS} FROM package WHERE id = $1"));
    on_pool!(pool, p => {
        let row = sqlx::query(stmt.sql_for(&p))
            .bind(id.get())
            .fetch_optional(&p)
            .await?;
        row.as_ref().map(PackageRow::package).transpose()
    })
}

pub(super) async fn list(pool: Pool, page: Page) -> Result<Vec<Package>> {
    let stmt = Stmt::new(&format!(
        "SELECT {COLS} FROM package WHERE id > $1 ORDER BY id LIMIT $2 OFFSET $3"
    ));
    on_pool!(pool, p => {
        let rows = sqlx::query(stmt.sql_for(&p))
            .bind(page.after_id.unwrap_or(0))
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(&p)
            .await?;
        rows.iter().map(PackageRow::package).collect()
    })
}

pub(super) async fn update(
    pool: Pool,
    id: PackageId,
    u: &PackageUpdate,
) -> Result<Option<Package>> {
    let stmt = Stmt::new(&format!(
        "UPDATE package SET title = COALESCE($1, title), material = COALESCE($2, material), \
         max_volume = COALESCE($3, max_volume), reusable = COALESCE($4, reusable), updated_at = $5 \
         WHERE id = $6 RETURNING {COLS}"
    ));
    on_pool!(pool, p => {
        let mut tx = p.begin_write().await?;
        let row = sqlx::query(stmt.sql_for(&p))
            .bind(u.title.as_ref().map(|t| t.as_str()))
            .bind(u.material.as_ref().map(|m| m.as_str()))
            .bind(u.maximum_volume.map(|v| p.volume(v.get())))
            .bind(u.reusable)
            .bind(p.now())
            .bind(id.get())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let pkg = row.package()?;
        add_event(&mut *tx, EventType::Updated, &pkg).await?;
        tx.commit().await?;
        Ok(Some(pkg))
    })
}

pub(super) async fn remove(pool: Pool, id: PackageId) -> Result<Option<Package>> {
    let stmt = Stmt::new(&format!(
        "DELETE FROM package WHERE id = $1 RETURNING {COLS}"
    ));
    on_pool!(pool, p => {
        let mut tx = p.begin_write().await?;
        let row = sqlx::query(stmt.sql_for(&p))
            .bind(id.get())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let pkg = row.package()?;
        add_event(&mut *tx, EventType::Removed, &pkg).await?;
        tx.commit().await?;
        Ok(Some(pkg))
    })
}

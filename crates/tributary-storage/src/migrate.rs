//! Migrations per system namespace, applied under a lock on both dialects.
//!
//! Every system owns one namespace (its name: `chat`, `logistics`, ...) and
//! ships one migration folder per dialect. Applied migrations are recorded
//! in one history table, `tributary_migrations (namespace, version, ...)`,
//! so two systems can never collide on a version number and none of them has
//! to ignore the others' rows.
//!
//! Locking, so any number of services and processes may migrate at once:
//! - PostgreSQL: the whole set of one namespace runs in one transaction that
//!   first takes `pg_advisory_xact_lock` (one key for every namespace, so
//!   even the history table's creation is serialised);
//! - SQLite: the whole set runs in one `BEGIN IMMEDIATE` transaction, which
//!   holds the file's write lock, shared by every connection and process.
//!
//! Inside the lock the pending migrations are read again, so the second
//! process to get the lock finds nothing left to do. A migration that fails
//! rolls back the whole set of that call (DDL is transactional on both
//! dialects) and the error names the namespace and the version.
//!
//! Databases written by earlier releases recorded their migrations in
//! sqlx's `_sqlx_migrations` table; a migration found there with the same
//! checksum is adopted into the new history instead of being run again.

use sqlx::migrate::Migrator;
use sqlx::{Connection, Row};

use crate::sql::Database;
use crate::{Error, Result};

/// Lock key of `pg_advisory_xact_lock` for migrations ("tribmigr").
const PG_LOCK_KEY: i64 = 0x7472_6962_6d69_6772;

const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS tributary_migrations (
    namespace TEXT NOT NULL,
    version BIGINT NOT NULL,
    description TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (namespace, version)
)";

/// The migrations of one system, one [`Migrator`] per dialect, under the
/// system's namespace:
///
/// ```ignore
/// static PG: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
/// static LITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
/// db.migrate(&Migrations { namespace: "chat", postgres: &PG, sqlite: &LITE }).await?;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Migrations<'a> {
    /// The owning system's name; versions are unique within it only.
    pub namespace: &'a str,
    /// Applied when the database is PostgreSQL.
    pub postgres: &'a Migrator,
    /// Applied when the database is SQLite.
    pub sqlite: &'a Migrator,
}

/// What one [`Database::migrate`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions run now.
    pub applied: Vec<i64>,
    /// Versions found in the legacy `_sqlx_migrations` table and recorded
    /// without running them.
    pub adopted: Vec<i64>,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn failed(ns: &str, version: i64, e: &sqlx::Error) -> Error {
    Error::Migration {
        namespace: ns.to_string(),
        version,
        reason: crate::error::one_line(e),
    }
}

/// The statements that differ between the dialects (placeholders, catalog).
struct Dialect {
    select_done: &'static str,
    legacy_probe: &'static str,
    select_legacy: &'static str,
    insert: &'static str,
}

const PG: Dialect = Dialect {
    select_done: "SELECT version, checksum FROM tributary_migrations WHERE namespace = $1",
    legacy_probe: "SELECT COUNT(*) FROM information_schema.tables \
        WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()",
    select_legacy: "SELECT checksum FROM _sqlx_migrations WHERE version = $1 AND success",
    insert:
        "INSERT INTO tributary_migrations (namespace, version, description, checksum, applied_at) \
        VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
};

const LITE: Dialect = Dialect {
    select_done: "SELECT version, checksum FROM tributary_migrations WHERE namespace = ?",
    legacy_probe:
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    select_legacy: "SELECT checksum FROM _sqlx_migrations WHERE version = ? AND success",
    insert:
        "INSERT INTO tributary_migrations (namespace, version, description, checksum, applied_at) \
        VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP)",
};

// One body for both dialects: the transaction types differ, the steps do not.
macro_rules! run_locked {
    ($tx:expr, $ns:expr, $migrator:expr, $d:expr) => {{
        let tx = $tx;
        let ns: &str = $ns;
        let d: &Dialect = $d;
        sqlx::Executor::execute(&mut *tx, CREATE_HISTORY)
            .await
            .map_err(|e| failed(ns, 0, &e))?;
        let done: Vec<(i64, String)> = sqlx::query(d.select_done)
            .bind(ns)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| failed(ns, 0, &e))?
            .into_iter()
            .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            .collect();
        let legacy_rows: Result<i64, sqlx::Error> =
            sqlx::query_scalar(d.legacy_probe).fetch_one(&mut *tx).await;
        let legacy = matches!(legacy_rows, Ok(n) if n > 0);
        let mut report = MigrationReport::default();
        for m in $migrator.iter() {
            if m.migration_type.is_down_migration() {
                continue;
            }
            let checksum = hex(&m.checksum);
            if let Some((_, have)) = done.iter().find(|(v, _)| *v == m.version) {
                if *have != checksum {
                    return Err(Error::Migration {
                        namespace: ns.to_string(),
                        version: m.version,
                        reason: "it was changed after it was applied (checksum mismatch)".into(),
                    });
                }
                continue;
            }
            let mut adopted = false;
            if legacy {
                let row: Option<Vec<u8>> = sqlx::query_scalar(d.select_legacy)
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| failed(ns, m.version, &e))?;
                adopted = row.as_deref() == Some(&m.checksum[..]);
            }
            if !adopted {
                // A plain `&str` runs as a simple query: several statements allowed.
                sqlx::Executor::execute(&mut *tx, &*m.sql)
                    .await
                    .map_err(|e| failed(ns, m.version, &e))?;
            }
            sqlx::query(d.insert)
                .bind(ns)
                .bind(m.version)
                .bind(m.description.as_ref())
                .bind(&checksum)
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(ns, m.version, &e))?;
            if adopted {
                report.adopted.push(m.version);
            } else {
                report.applied.push(m.version);
            }
        }
        report
    }};
}

async fn run_pg(
    conn: &mut sqlx::PgConnection,
    ns: &str,
    migrator: &Migrator,
) -> Result<MigrationReport> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    Ok(run_locked!(conn, ns, migrator, &PG))
}

async fn run_lite(
    conn: &mut sqlx::SqliteConnection,
    ns: &str,
    migrator: &Migrator,
) -> Result<MigrationReport> {
    Ok(run_locked!(conn, ns, migrator, &LITE))
}

impl Database {
    /// Applies the migrations of this dialect in `migrations.namespace` that
    /// are not applied yet, under the lock described in the module docs.
    /// Running it again is a no-op; any number of services and processes may
    /// run it at once.
    ///
    /// # Errors
    /// [`Error::Migration`] naming the namespace and version when a
    /// migration fails (the whole call is rolled back) or an applied
    /// migration was changed after it ran; [`Error::Sql`] when no
    /// connection or lock can be had.
    pub async fn migrate(&self, migrations: &Migrations<'_>) -> Result<MigrationReport> {
        let ns = migrations.namespace;
        let report = if let Some(pool) = self.as_postgres() {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let report = run_pg(&mut tx, ns, migrations.postgres).await?;
            tx.commit().await?;
            report
        } else if let Some(pool) = self.as_sqlite() {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let report = run_lite(&mut tx, ns, migrations.sqlite).await?;
            tx.commit().await?;
            report
        } else {
            MigrationReport::default()
        };
        if !report.applied.is_empty() || !report.adopted.is_empty() {
            tracing::info!(namespace = ns, applied = ?report.applied, adopted = ?report.adopted,
                "database migrations applied");
        }
        Ok(report)
    }
}

//! The SQL database port: one connection pool per process, PostgreSQL in
//! production, a SQLite file on one machine.
//!
//! The port does not hide SQL. Both dialects run the same schema ideas, but a
//! system crate ships one migration folder per dialect (`migrations/postgres`,
//! `migrations/sqlite`, embedded with [`sqlx::migrate!`]) and, where the
//! dialects differ, matches on [`Database::kind`] or uses
//! [`Database::as_postgres`] / [`Database::as_sqlite`].
//!
//! Failure: [`Database::connect`] fails with one line naming the URL (without
//! its password) when the URL is malformed or no connection can be made within
//! [`SqlConfig::acquire_timeout`]. Later, a query fails with [`Error::Sql`]
//! when the server is gone; the pool reconnects on the next use by itself.
//! Dropping a query future cancels it; an open transaction that is dropped is
//! rolled back.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tributary_platform::url::{redact, scheme};

use crate::error::one_line;
use crate::{Error, Result};

const PORT: &str = "sql";
const EXPECTED: &str = "postgres://, postgresql://, sqlite://PATH or sqlite::memory:";

/// Pool settings shared by both adapters.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// Largest number of open connections of this process. For SQLite files
    /// writers still take turns (one writer at a time, WAL mode); an in-memory
    /// SQLite database always uses one connection.
    pub max_connections: u32,
    /// How long [`Database::connect`] and every later acquire wait for a
    /// connection before failing (default 5 s).
    pub acquire_timeout: Duration,
    /// SQLite only: how long a statement waits for another writer's lock
    /// before failing with "database is locked" (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Which SQL dialect a [`Database`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseKind {
    /// PostgreSQL (production).
    Postgres,
    /// SQLite (embedded default, one machine).
    Sqlite,
}

impl std::fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Sqlite => "sqlite",
        })
    }
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A handle to the process's SQL connection pool. Cloning is cheap and shares
/// the pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    url: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("kind", &self.kind())
            .field("url", &self.url)
            .finish()
    }
}

impl Database {
    /// Opens a pool for `url` and makes one connection to prove the server
    /// answers.
    ///
    /// * `postgres://` / `postgresql://` — a PostgreSQL pool.
    /// * `sqlite://PATH` — a SQLite file, created with its parent directories
    ///   when missing; WAL journal, foreign keys on, busy timeout from `config`.
    /// * `sqlite::memory:` — a private in-memory SQLite database (tests).
    ///
    /// # Errors
    /// [`Error::UnsupportedScheme`] / [`Error::InvalidUrl`] for a bad URL,
    /// [`Error::Connect`] when no connection is made within
    /// [`SqlConfig::acquire_timeout`], [`Error::Io`] when the SQLite directory
    /// cannot be created. Every message names the URL without its password.
    pub async fn connect(url: &str, config: &SqlConfig) -> Result<Self> {
        let redacted = redact(url);
        let is_sqlite = url.to_ascii_lowercase().starts_with("sqlite:");
        let pool = match (is_sqlite, scheme(url).as_deref()) {
            (true, _) => Pool::Sqlite(connect_sqlite(url, &redacted, config).await?),
            (false, Some("postgres" | "postgresql")) => {
                Pool::Postgres(connect_postgres(url, &redacted, config).await?)
            }
            _ => {
                return Err(Error::UnsupportedScheme {
                    port: PORT,
                    url: redacted,
                    expected: EXPECTED,
                })
            }
        };
        let db = Self {
            pool,
            url: redacted,
        };
        tracing::info!(url = %db.url, kind = %db.kind(), "database connected");
        Ok(db)
    }

    /// The dialect of this database.
    pub fn kind(&self) -> DatabaseKind {
        match self.pool {
            Pool::Postgres(_) => DatabaseKind::Postgres,
            Pool::Sqlite(_) => DatabaseKind::Sqlite,
        }
    }

    /// The URL this pool was opened with, password masked (for logs).
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL pool, or `None` on SQLite.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, or `None` on PostgreSQL.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            Pool::Postgres(_) => None,
        }
    }

    /// Runs `SELECT 1`.
    ///
    /// # Errors
    /// [`Error::Sql`] when no connection can be acquired or the query fails.
    pub async fn ping(&self) -> Result<()> {
        match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
            Pool::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }

    /// Closes every connection; waits for checked-out connections to return.
    /// Other clones of this handle fail afterwards with [`Error::Sql`].
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

#[async_trait::async_trait]
impl tributary_platform::health::HealthCheck for Database {
    fn name(&self) -> String {
        PORT.to_string()
    }

    /// `SELECT 1` on a pooled connection; fails with the one-line cause.
    async fn check(&self) -> Result<(), String> {
        self.ping()
            .await
            .map_err(|e| format!("{} ({}): {e}", self.kind(), self.url))
    }
}

async fn connect_postgres(url: &str, redacted: &str, config: &SqlConfig) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
        port: PORT,
        url: redacted.to_string(),
        reason: one_line(&e),
    })?;
    PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| connect_error(e, redacted, config))
}

async fn connect_sqlite(url: &str, redacted: &str, config: &SqlConfig) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
        port: PORT,
        url: redacted.to_string(),
        reason: one_line(&e),
    })?;
    let lower = url.to_ascii_lowercase();
    let in_memory = lower.contains(":memory:") || lower.contains("mode=memory");
    if !in_memory {
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                create_dir(dir)?;
            }
        }
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(config.busy_timeout);
    let mut pool = SqlitePoolOptions::new().acquire_timeout(config.acquire_timeout);
    pool = if in_memory {
        // An in-memory database lives as long as one connection to it: keep
        // exactly one, forever.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(config.max_connections.max(1))
    };
    // Two processes opening a new file at once: one of them may get
    // SQLITE_BUSY from the journal-mode switch, which no busy handler waits
    // out. Retry that (only that) within the acquire timeout.
    let started = std::time::Instant::now();
    loop {
        match pool.clone().connect_with(options.clone()).await {
            Err(e) if is_busy(&e) && started.elapsed() < config.acquire_timeout => {
                tracing::debug!(url = %redacted, "SQLite file busy while opening; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map_err(|e| connect_error(e, redacted, config)),
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "5" || c == "6")
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn connect_error(e: sqlx::Error, redacted: &str, config: &SqlConfig) -> Error {
    let reason = match e {
        sqlx::Error::PoolTimedOut => format!(
            "no connection within {:?} (server unreachable or refusing connections)",
            config.acquire_timeout
        ),
        other => one_line(&other),
    };
    Error::Connect {
        port: PORT,
        url: redacted.to_string(),
        reason,
    }
}

/// Starts a transaction that is going to write.
///
/// On SQLite this is `BEGIN IMMEDIATE`, which takes the write lock up front
/// (waiting up to the busy timeout). A plain deferred `BEGIN` that reads
/// first and writes later fails at once with "database is locked"
/// (`SQLITE_BUSY_SNAPSHOT`, which no busy timeout can wait out) whenever
/// another connection committed in between. On PostgreSQL it is a plain `BEGIN`.
pub trait BeginWrite {
    /// The driver.
    type Db: sqlx::Database;
    /// Begins the write transaction.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

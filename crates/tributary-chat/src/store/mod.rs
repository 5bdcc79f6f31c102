//! The chat archive's tables, on PostgreSQL or SQLite through the storage
//! port's [`Database`]: messages (with a full-text index), the outbox of
//! count events, per-user counts, applied event ids, and the audit log.
//!
//! Failure: every method returns [`Error::Sql`] when the database fails;
//! a method that writes does so in one transaction, so a failure (or a
//! dropped future) leaves nothing half-written.

mod audit;
mod messages;
pub(crate) mod sql;
mod users;

use sqlx::migrate::Migrator;
use tributary_storage::{Database, Migrations};

pub use audit::AuditRecord;
pub use messages::{InsertOutcome, OUTBOX_NAMESPACE};
pub use users::UserCount;

use crate::error::{Error, Result};
use sql::Pool;

static PG_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static LITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The chat migrations of both dialects (namespace `chat`).
pub const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "chat",
    postgres: &PG_MIGRATIONS,
    sqlite: &LITE_MIGRATIONS,
};

/// The chat archive's tables in one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ChatStore {
    pool: Pool,
    db: Database,
}

impl ChatStore {
    /// The chat outbox (namespace `chat`) of this database.
    pub fn outbox(&self) -> tributary_runtime::outbox::OutboxStore {
        tributary_runtime::outbox::OutboxStore::new(self.db.clone(), OUTBOX_NAMESPACE)
    }

    /// Wraps `db` and applies the chat migrations of its dialect.
    ///
    /// # Errors
    /// [`Error::Storage`] when a migration fails.
    pub async fn open(db: &Database) -> Result<Self> {
        // The shared outbox first: a chat migration moves older releases'
        // unsent events into it.
        tributary_runtime::outbox::OutboxStore::new(db.clone(), OUTBOX_NAMESPACE)
            .migrate()
            .await?;
        db.migrate(&MIGRATIONS).await?;
        let pool = match (db.as_postgres(), db.as_sqlite()) {
            (Some(p), _) => Pool::Pg(p.clone()),
            (None, Some(p)) => Pool::Lite(p.clone()),
            (None, None) => {
                return Err(Error::InvalidRequest(
                    "the database is neither PostgreSQL nor SQLite".into(),
                ))
            }
        };
        Ok(ChatStore {
            pool,
            db: db.clone(),
        })
    }
}

//! The package repository: one type over PostgreSQL and SQLite. Every write
//! stores its row change and its outbox event in ONE transaction; the relay
//! side claims, deletes and releases outbox events under a lease.
//!
//! Failure: every method returns [`Error::Sql`] when the database fails; a
//! dropped future rolls its transaction back, so a write is all or nothing.

mod queries;

use std::time::Duration;

use sqlx::migrate::Migrator;
use tributary_runtime::outbox::{NewEvent, OutboxConnection, OutboxError, OutboxStore};
use tributary_storage::{Database, Migrations};

use crate::domain::{NewPackage, OutboxEvent, Package, PackageId, PackageUpdate, Page};
use crate::{Error, Result};

/// The logistics migrations of both dialects, in the `logistics` namespace.
static PG_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static LITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The logistics migrations (namespace `logistics`).
pub const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "logistics",
    postgres: &PG_MIGRATIONS,
    sqlite: &LITE_MIGRATIONS,
};

pub use tributary_runtime::outbox::Release;

/// The outbox namespace of this system.
pub const OUTBOX_NAMESPACE: &str = "logistics";

/// The repository. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Wraps a connected database; call [`Store::migrate`] once before use.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database handle (for readiness checks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The shared outbox of namespace `logistics`.
    pub fn outbox(&self) -> OutboxStore {
        OutboxStore::new(self.db.clone(), OUTBOX_NAMESPACE)
    }

    /// Applies the shared outbox's migrations, then this crate's (the
    /// latter move unsent events of older releases into the shared outbox).
    pub async fn migrate(&self) -> Result<()> {
        self.outbox().migrate().await.map_err(outbox_error)?;
        self.db.migrate(&MIGRATIONS).await?;
        Ok(())
    }

    /// Stores a new package and its `Created` event.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn create(&self, new: &NewPackage) -> Result<Package> {
        queries::create(self.db.pool(), new).await
    }

    /// One package; [`Error::NotFound`] when absent.
    #[tracing::instrument(skip(self), fields(id = %id), err(level = "debug"))]
    pub async fn describe(&self, id: PackageId) -> Result<Package> {
        let found = queries::describe(self.db.pool(), id).await?;
        found.ok_or(Error::NotFound)
    }

    /// A page of packages ordered by id.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn list(&self, page: Page) -> Result<Vec<Package>> {
        queries::list(self.db.pool(), page).await
    }

    /// Applies `update` and stores an `Updated` event; [`Error::NotFound`]
    /// (and nothing written) when absent.
    #[tracing::instrument(skip(self, update), fields(id = %id), err(level = "debug"))]
    pub async fn update(&self, id: PackageId, update: &PackageUpdate) -> Result<Package> {
        let found = queries::update(self.db.pool(), id, update).await?;
        found.ok_or(Error::NotFound)
    }

    /// Deletes a package and stores a `Removed` event carrying its last
    /// state; [`Error::NotFound`] (and nothing written) when absent.
    #[tracing::instrument(skip(self), fields(id = %id), err(level = "debug"))]
    pub async fn remove(&self, id: PackageId) -> Result<Package> {
        let found = queries::remove(self.db.pool(), id).await?;
        found.ok_or(Error::NotFound)
    }

    /// Claims up to `limit` events of the logistics outbox for `owner`
    /// (see [`OutboxStore::claim`]: per-package order across relays, leases).
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        let raw = self
            .outbox()
            .claim(owner, lease, limit)
            .await
            .map_err(outbox_error)?;
        raw.iter().map(OutboxEvent::from_outbox).collect()
    }

    /// Extends every lease `owner` holds; returns how many were renewed.
    pub async fn renew(&self, owner: &str) -> Result<u64> {
        self.outbox().renew(owner).await.map_err(outbox_error)
    }

    /// Deletes sent events still leased by `owner`; returns how many.
    pub async fn delete_sent(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        self.outbox()
            .delete_sent(owner, ids)
            .await
            .map_err(outbox_error)
    }

    /// Unlocks events still leased by `owner` so they are claimed again.
    pub async fn release(&self, owner: &str, items: &[(i64, Release)]) -> Result<()> {
        self.outbox()
            .release(owner, items)
            .await
            .map_err(outbox_error)
    }

    /// Age of the oldest event not yet sent (relay lag); `None` when the outbox is empty.
    pub async fn oldest_unsent_age(&self) -> Result<Option<Duration>> {
        self.outbox()
            .oldest_unsent_age()
            .await
            .map_err(outbox_error)
    }

    /// Unsent events of the logistics outbox (sent events are deleted).
    pub async fn pending_events(&self) -> Result<i64> {
        self.outbox().pending().await.map_err(outbox_error)
    }
}

fn outbox_error(e: OutboxError) -> Error {
    match e {
        OutboxError::Sql(e) => Error::from(e),
        other => Error::Corrupt(other.to_string()),
    }
}

/// Writes the event of a change into the shared outbox, inside the change's
/// transaction (either dialect): key = package id, kind = event type,
/// payload = the package state as JSON.
async fn add_event(
    tx: &mut dyn OutboxConnection,
    kind: crate::domain::EventType,
    p: &Package,
) -> Result<()> {
    let key = p.id.to_string();
    let payload = payload(p)?;
    tx.enqueue_events(
        OUTBOX_NAMESPACE,
        &[NewEvent {
            key: key.as_bytes(),
            kind: kind.as_str(),
            payload: payload.as_bytes(),
        }],
    )
    .await?;
    Ok(())
}

fn payload(p: &Package) -> Result<String> {
    serde_json::to_string(p).map_err(|e| Error::Corrupt(format!("encode package: {e}")))
}

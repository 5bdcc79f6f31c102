//! The package repository: one type over PostgreSQL and SQLite. Every write
//! stores its row change and its outbox event in ONE transaction; the relay
//! side claims, deletes and releases outbox events under a lease.
//!
//! Failure: every method returns [`Error::Sql`] when the database fails; a
//! dropped future rolls its transaction back, so a write is all or nothing.

mod postgres;
mod sqlite;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
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

/// What a relay gives back for a claimed event it could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Sending failed: count the attempt and wait this long before the next round.
    Failed {
        /// Backoff before the event may be claimed again.
        backoff: Duration,
    },
    /// Not attempted (drain, or an earlier event of its package failed):
    /// unlock without counting an attempt.
    Untried,
}

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

    /// Applies this crate's migrations for the database's dialect.
    pub async fn migrate(&self) -> Result<()> {
        self.db.migrate(&MIGRATIONS).await?;
        Ok(())
    }

    /// Stores a new package and its `Created` event.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn create(&self, new: &NewPackage) -> Result<Package> {
        match self.pools() {
            Pools::Pg(p) => postgres::create(p, new).await,
            Pools::Lite(p) => sqlite::create(p, new).await,
        }
    }

    /// One package; [`Error::NotFound`] when absent.
    #[tracing::instrument(skip(self), fields(id = %id), err(level = "debug"))]
    pub async fn describe(&self, id: PackageId) -> Result<Package> {
        let found = match self.pools() {
            Pools::Pg(p) => postgres::describe(p, id).await?,
            Pools::Lite(p) => sqlite::describe(p, id).await?,
        };
        found.ok_or(Error::NotFound)
    }

    /// A page of packages ordered by id.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn list(&self, page: Page) -> Result<Vec<Package>> {
        match self.pools() {
            Pools::Pg(p) => postgres::list(p, page).await,
            Pools::Lite(p) => sqlite::list(p, page).await,
        }
    }

    /// Applies `update` and stores an `Updated` event; [`Error::NotFound`]
    /// (and nothing written) when absent.
    #[tracing::instrument(skip(self, update), fields(id = %id), err(level = "debug"))]
    pub async fn update(&self, id: PackageId, update: &PackageUpdate) -> Result<Package> {
        let found = match self.pools() {
            Pools::Pg(p) => postgres::update(p, id, update).await?,
            Pools::Lite(p) => sqlite::update(p, id, update).await?,
        };
        found.ok_or(Error::NotFound)
    }

    /// Deletes a package and stores a `Removed` event carrying its last
    /// state; [`Error::NotFound`] (and nothing written) when absent.
    #[tracing::instrument(skip(self), fields(id = %id), err(level = "debug"))]
    pub async fn remove(&self, id: PackageId) -> Result<Package> {
        let found = match self.pools() {
            Pools::Pg(p) => postgres::remove(p, id).await?,
            Pools::Lite(p) => sqlite::remove(p, id).await?,
        };
        found.ok_or(Error::NotFound)
    }

    /// Locks up to `limit` events for `owner` with a lease of `lease`, in id
    /// order, keeping per-package order across relays: a package is eligible
    /// only when none of its events is locked by a live lease or waiting out
    /// a backoff, and the claimed events of a package are always a prefix of
    /// its unsent events. Events whose lease expired (a crashed relay) are
    /// taken over. Claims are serialized (PostgreSQL: an advisory transaction
    /// lock plus `FOR UPDATE SKIP LOCKED`; SQLite: one atomic statement of
    /// the single writer).
    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        let mut events = match self.pools() {
            Pools::Pg(p) => postgres::claim(p, owner, lease, limit).await?,
            Pools::Lite(p) => sqlite::claim(p, owner, lease, limit).await?,
        };
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Extends every lease `owner` holds (the relay's heartbeat), so a batch
    /// that takes longer than the lease (a slow or absent broker) is not
    /// taken over while its relay is alive. Returns how many were renewed.
    pub async fn renew(&self, owner: &str) -> Result<u64> {
        match self.pools() {
            Pools::Pg(p) => postgres::renew(p, owner).await,
            Pools::Lite(p) => sqlite::renew(p, owner).await,
        }
    }

    /// Deletes sent events still leased by `owner`; returns how many.
    pub async fn delete_sent(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        match self.pools() {
            Pools::Pg(p) => postgres::delete_sent(p, owner, ids).await,
            Pools::Lite(p) => sqlite::delete_sent(p, owner, ids).await,
        }
    }

    /// Unlocks events still leased by `owner` so they are claimed again.
    pub async fn release(&self, owner: &str, items: &[(i64, Release)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        match self.pools() {
            Pools::Pg(p) => postgres::release(p, owner, items).await,
            Pools::Lite(p) => sqlite::release(p, owner, items).await,
        }
    }

    /// Age of the oldest event not yet sent (relay lag); `None` when the outbox is empty.
    pub async fn oldest_unsent_age(&self) -> Result<Option<Duration>> {
        let oldest: Option<DateTime<Utc>> = match self.pools() {
            Pools::Pg(p) => postgres::oldest_unsent(p).await?,
            Pools::Lite(p) => sqlite::oldest_unsent(p).await?,
        };
        Ok(oldest.map(|t| (Utc::now() - t).to_std().unwrap_or_default()))
    }

    /// Rows in `package_event` (sent events are deleted, so: the unsent ones).
    pub async fn pending_events(&self) -> Result<i64> {
        let q = "SELECT COUNT(*) FROM package_event";
        Ok(match self.pools() {
            Pools::Pg(p) => sqlx::query_scalar(q).fetch_one(p).await?,
            Pools::Lite(p) => sqlx::query_scalar(q).fetch_one(p).await?,
        })
    }

    fn pools(&self) -> Pools<'_> {
        match (self.db.as_postgres(), self.db.as_sqlite()) {
            (Some(p), _) => Pools::Pg(p),
            (None, Some(p)) => Pools::Lite(p),
            (None, None) => unreachable!("a Database is either PostgreSQL or SQLite"),
        }
    }
}

enum Pools<'a> {
    Pg(&'a sqlx::PgPool),
    Lite(&'a sqlx::SqlitePool),
}

fn payload(p: &Package) -> Result<String> {
    serde_json::to_string(p).map_err(|e| Error::Corrupt(format!("encode package: {e}")))
}

fn event_type(s: &str) -> Result<crate::domain::EventType> {
    crate::domain::EventType::parse(s).ok_or_else(|| Error::Corrupt(format!("event type {s:?}")))
}

//! The `documents` table on PostgreSQL or SQLite, and the shared outbox
//! the merged documents travel through (namespace `docs`).
//!
//! The upsert applies the merge rule in SQL (the statement of
//! [`mod@crate::domain::merge`]): a row is written only when the update
//! wins on either side, and the merged row is returned, so two executors
//! writing the same url at once (a rebalance) can never lose an update and
//! the database itself says whether the state changed.
//!
//! Failure: every method returns [`StoreError`] when the database fails;
//! [`DocStore::upsert`] writes in one transaction, so a failure (or a
//! dropped future) leaves nothing half-written.

use std::collections::{HashMap, HashSet};

use sqlx::migrate::Migrator;
use sqlx::Row as _;
use tributary_runtime::outbox::{NewEvent, OutboxConnection as _, OutboxStore};
use tributary_storage::stmt::{Arg, Dialect, Pool, Stmt};
use tributary_storage::{bind_args, on_pool, BeginWrite as _, Database, Migrations};

use crate::domain::{Document, EmitPolicy};

static PG_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static LITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The documents migrations of both dialects (namespace `docs`).
pub const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "docs",
    postgres: &PG_MIGRATIONS,
    sqlite: &LITE_MIGRATIONS,
};

/// The outbox namespace of this system.
pub const OUTBOX_NAMESPACE: &str = "docs";
/// The `kind` of merged documents in the shared outbox.
pub const OUTBOX_KIND: &str = "Document";

/// Rows per statement (six parameters each; far below both dialects'
/// parameter limits). A larger batch runs several statements in the same
/// transaction.
const ROWS_PER_STATEMENT: usize = 2000;

const COLUMNS: &str = "url, pub_date, fetch_time, text, first_fetch_time";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (retry: the backend may come back).
    #[error("documents store: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrating failed.
    #[error("documents store: {0}")]
    Storage(#[from] tributary_storage::Error),
    /// The outbox failed.
    #[error("documents store: {0}")]
    Outbox(#[from] tributary_runtime::outbox::OutboxError),
    /// A stored value cannot be read back (negative number).
    #[error("documents store: corrupt row: {0}")]
    Corrupt(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What one [`DocStore::upsert`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    /// The merged rows the database changed (new urls included), as
    /// committed: the durable state of those urls.
    pub changed: Vec<Document>,
    /// Documents written to the outbox (the changed ones, plus under
    /// [`EmitPolicy::Always`] the unchanged ones' stored state).
    pub emitted: usize,
}

/// The documents table and the docs outbox in one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DocStore {
    pool: Pool,
    db: Database,
}

impl DocStore {
    /// Wraps `db` and applies the outbox's and the documents' migrations
    /// (under the storage crate's lock: services may start together).
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn open(db: &Database) -> Result<Self> {
        OutboxStore::new(db.clone(), OUTBOX_NAMESPACE)
            .migrate()
            .await?;
        db.migrate(&MIGRATIONS).await?;
        Ok(Self {
            pool: db.pool(),
            db: db.clone(),
        })
    }

    /// The docs outbox (relay side).
    pub fn outbox(&self) -> OutboxStore {
        OutboxStore::new(self.db.clone(), OUTBOX_NAMESPACE)
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The stored state of each of `urls` that exists, with one
    /// `SELECT ... WHERE url IN (...)` (per [`ROWS_PER_STATEMENT`] urls).
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn get_many(&self, urls: &[&str]) -> Result<HashMap<String, Document>> {
        let mut out = HashMap::with_capacity(urls.len());
        for chunk in urls.chunks(ROWS_PER_STATEMENT) {
            let mut s = Stmt::new(&format!("SELECT {COLUMNS} FROM documents WHERE url IN "));
            s.list(chunk.iter().map(|u| Arg::Text(Some((*u).to_owned()))));
            let docs = on_pool!(&self.pool, pool => {
                let rows = bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args).fetch_all(pool).await?;
                rows.iter().map(|r| row_to_doc(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)).collect::<Result<Vec<_>>>()?
            });
            out.extend(docs.into_iter().map(|d| (d.url.clone(), d)));
        }
        Ok(out)
    }

    /// The stored state of `url`.
    ///
    /// # Errors
    /// As [`DocStore::get_many`].
    pub async fn get(&self, url: &str) -> Result<Option<Document>> {
        Ok(self.get_many(&[url]).await?.remove(url))
    }

    /// Up to `limit` documents whose url is after `after` (byte order), in
    /// url order: a keyset page.
    ///
    /// # Errors
    /// As [`DocStore::get_many`].
    pub async fn list(&self, after: Option<&str>, limit: u32) -> Result<Vec<Document>> {
        let mut s = Stmt::new(&format!("SELECT {COLUMNS} FROM documents"));
        if let Some(after) = after {
            s.push(" WHERE url > ")
                .arg(Arg::Text(Some(after.to_owned())));
        }
        s.push(" ORDER BY url LIMIT ")
            .arg(Arg::I64(Some(i64::from(limit))));
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args).fetch_all(pool).await?;
            rows.iter().map(|r| row_to_doc(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)).collect::<Result<Vec<_>>>()
        })
    }

    /// Number of documents.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn count(&self) -> Result<u64> {
        let n: i64 = on_pool!(&self.pool, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM documents").fetch_one(pool).await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Merges `docs` (normalized, each url at most once: pre-merge a batch
    /// per url) into the table in ONE transaction: the upsert applies the
    /// merge rule in SQL and returns the rows it changed; in the same
    /// transaction the changed documents (under [`EmitPolicy::Always`] also
    /// the unchanged ones' stored state) go to the docs outbox, key = url,
    /// payload = the document in the wire shape.
    ///
    /// # Errors
    /// [`StoreError::Sql`] (nothing is written then), [`StoreError::Corrupt`].
    pub async fn upsert(&self, docs: &[Document], emit: EmitPolicy) -> Result<Upserted> {
        if docs.is_empty() {
            return Ok(Upserted::default());
        }
        let dialect = self.pool.dialect();
        let now = now_micros();
        let stmts: Vec<Stmt> = docs
            .chunks(ROWS_PER_STATEMENT)
            .map(|c| upsert_stmt(c, dialect, now))
            .collect::<Result<_>>()?;
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let mut changed = Vec::new();
            for s in &stmts {
                let rows = bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args)
                    .fetch_all(&mut *tx)
                    .await?;
                for r in &rows {
                    changed.push(row_to_doc(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)?);
                }
            }
            let mut out: Vec<&Document> = changed.iter().collect();
            let mut unchanged_states = Vec::new();
            if emit == EmitPolicy::Always {
                let done: HashSet<&str> = changed.iter().map(|d| d.url.as_str()).collect();
                let rest: Vec<&str> = docs.iter().map(|d| d.url.as_str()).filter(|u| !done.contains(u)).collect();
                for chunk in rest.chunks(ROWS_PER_STATEMENT) {
                    let mut s = Stmt::new(&format!("SELECT {COLUMNS} FROM documents WHERE url IN "));
                    s.list(chunk.iter().map(|u| Arg::Text(Some((*u).to_owned()))));
                    let rows = bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args).fetch_all(&mut *tx).await?;
                    for r in &rows {
                        unchanged_states.push(row_to_doc(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)?);
                    }
                }
                out.extend(unchanged_states.iter());
            }
            let payloads: Vec<Vec<u8>> = out
                .iter()
                .map(|d| serde_json::to_vec(d).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect::<Result<_>>()?;
            let events: Vec<NewEvent<'_>> = out
                .iter()
                .zip(&payloads)
                .map(|(d, p)| NewEvent { key: d.url.as_bytes(), kind: OUTBOX_KIND, payload: p })
                .collect();
            if !events.is_empty() {
                (*tx).enqueue_events(OUTBOX_NAMESPACE, &events).await?;
            }
            tx.commit().await?;
            let emitted = events.len();
            Ok(Upserted { changed, emitted })
        })
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn stored(v: u64, field: &str) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("{field} {v} above the storable maximum")))
}

fn row_to_doc(
    url: String,
    pub_date: i64,
    fetch_time: i64,
    text: String,
    first_fetch_time: i64,
) -> Result<Document> {
    let num = |v: i64, field: &str| {
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{field} {v} of {url:?}")))
    };
    Ok(Document {
        pub_date: num(pub_date, "pub_date")?,
        fetch_time: num(fetch_time, "fetch_time")?,
        first_fetch_time: num(first_fetch_time, "first_fetch_time")?,
        text,
        url,
    })
}

/// The merging upsert of `docs` (see [`mod@crate::domain::merge`]).
fn upsert_stmt(docs: &[Document], dialect: Dialect, now_micros: i64) -> Result<Stmt> {
    let mut s = Stmt::new(&format!(
        "INSERT INTO documents ({COLUMNS}, updated_at) VALUES "
    ));
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            s.push(", ");
        }
        let d = d.clone().normalized();
        s.push("(")
            .arg(Arg::Text(Some(d.url.clone())))
            .push(", ")
            .arg(Arg::I64(Some(stored(d.pub_date, "PubDate")?)))
            .push(", ")
            .arg(Arg::I64(Some(stored(d.fetch_time, "FetchTime")?)))
            .push(", ")
            .arg(Arg::Text(Some(d.text.clone())))
            .push(", ")
            .arg(Arg::I64(Some(stored(
                d.first_fetch_time,
                "FirstFetchTime",
            )?)))
            .push(", ");
        match dialect {
            Dialect::Postgres => s.push("now())"),
            Dialect::Sqlite => s.arg(Arg::I64(Some(now_micros))).push(")"),
        };
    }
    let (c, max, min) = match dialect {
        Dialect::Postgres => (" COLLATE \"C\"", "GREATEST", "LEAST"),
        Dialect::Sqlite => ("", "max", "min"),
    };
    let latest_wins = format!(
        "(excluded.fetch_time > documents.fetch_time \
          OR (excluded.fetch_time = documents.fetch_time \
              AND excluded.text{c} > documents.text{c}))"
    );
    let first_wins = "(excluded.first_fetch_time < documents.first_fetch_time \
          OR (excluded.first_fetch_time = documents.first_fetch_time \
              AND excluded.pub_date < documents.pub_date))";
    s.push(&format!(
        " ON CONFLICT (url) DO UPDATE SET \
           text = CASE WHEN {latest_wins} THEN excluded.text ELSE documents.text END, \
           fetch_time = {max}(documents.fetch_time, excluded.fetch_time), \
           pub_date = CASE WHEN {first_wins} THEN excluded.pub_date ELSE documents.pub_date END, \
           first_fetch_time = {min}(documents.first_fetch_time, excluded.first_fetch_time), \
           updated_at = excluded.updated_at \
         WHERE {latest_wins} OR {first_wins} \
         RETURNING {COLUMNS}"
    ));
    Ok(s)
}

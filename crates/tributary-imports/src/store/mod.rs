//! The imports tables on PostgreSQL or SQLite (namespace `imports`) and
//! the outbox the import events travel through.
//!
//! - `imports_uploads`: one row per upload, its state and counts; the
//!   api writes `received`, then `stored` (or `failed`) together with its
//!   event; the processor writes `processing`, a checkpoint per batch and
//!   `completed` (or `failed`) together with `ImportCompleted`;
//! - `imports_errors`: every rejected record, keyed by (upload, record);
//! - `imports_companies`: the `company` kind, natural key `permalink`
//!   (see [`companies`]).
//!
//! Failure: every method returns [`StoreError`]; the writing ones run in
//! one transaction, so a failure (or a dropped future) leaves nothing
//! half-written.

pub mod companies;
pub mod records;

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::Row as _;
use tributary_runtime::outbox::{NewEvent, OutboxConnection as _, OutboxStore};
use tributary_storage::stmt::{Arg, Pool, Stmt};
use tributary_storage::{bind_args, on_pool, BeginWrite as _, Database, Migrations};

use crate::events::{self, FileExtractError, FileExtractSuccess, ImportCompleted};

pub use companies::{CompanyQuery, CompanyRow, CompanyView};
pub use records::{RecordQuery, RecordRow, RecordView};

static PG_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static LITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The imports migrations of both dialects (namespace `imports`).
pub const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "imports",
    postgres: &PG_MIGRATIONS,
    sqlite: &LITE_MIGRATIONS,
};

/// The outbox namespace of this system.
pub const OUTBOX_NAMESPACE: &str = "imports";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (retry: the backend may come back).
    #[error("imports store: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrating failed.
    #[error("imports store: {0}")]
    Storage(#[from] tributary_storage::Error),
    /// The outbox failed.
    #[error("imports store: {0}")]
    Outbox(#[from] tributary_runtime::outbox::OutboxError),
    /// A stored value cannot be read back.
    #[error("imports store: corrupt row: {0}")]
    Corrupt(String),
}

/// This module's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The states of an upload.
pub mod state {
    /// The request arrived; its body is streaming.
    pub const RECEIVED: &str = "received";
    /// The body is stored and announced; waiting for the processor.
    pub const STORED: &str = "stored";
    /// The processor is loading it.
    pub const PROCESSING: &str = "processing";
    /// Every record was loaded or rejected.
    pub const COMPLETED: &str = "completed";
    /// Refused (syntax, size) or not processable (object gone, unknown kind).
    pub const FAILED: &str = "failed";
}

/// One upload as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    /// Its id (the answer of the upload request).
    pub request_id: String,
    /// Record kind.
    pub kind: String,
    /// The name given in the upload path.
    pub name: String,
    /// See [`state`].
    pub state: String,
    /// SHA-256 of the decoded body, hex (once stored).
    pub checksum: Option<String>,
    /// Object key of the body (once stored).
    pub object_key: Option<String>,
    /// Decoded body size, bytes.
    pub size: u64,
    /// Records in the body.
    pub records: u64,
    /// Records the processor has handled (its checkpoint).
    pub processed: u64,
    /// Records loaded.
    pub loaded: u64,
    /// Records rejected.
    pub rejected: u64,
    /// The earlier upload of the same bytes, for a duplicate.
    pub duplicate_of: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Times, ms since the epoch.
    pub received_at: i64,
    /// When the body was stored.
    pub stored_at: Option<i64>,
    /// When the processor started on it.
    pub started_at: Option<i64>,
    /// When it completed or failed.
    pub completed_at: Option<i64>,
}

/// One rejected record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RecordError {
    /// 0-based record index in the body.
    pub record: u64,
    /// 1-based line of the record's opening brace.
    pub line: u64,
    /// JSON pointer of the first broken field.
    pub pointer: String,
    /// First broken rule.
    pub rule: String,
    /// The offending value, truncated.
    pub value: String,
    /// What is wrong.
    pub message: String,
    /// Every violation of the record.
    pub violations: Vec<events::ViolationView>,
}

/// What [`UploadStore::store_upload`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored and announced (`FileExtractSuccess` in the outbox);
    /// `resumes` names an earlier upload of the same bytes that never
    /// completed (this one carries its work on).
    New {
        /// The earlier, unfinished upload of the same bytes.
        resumes: Option<String>,
    },
    /// The same bytes of the same kind were already imported by this
    /// upload; nothing was announced.
    Duplicate(Box<Upload>),
}

/// What [`UploadStore::reprocess`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reprocess {
    /// Announced again; the processor takes it from the start.
    Queued,
    /// No such upload.
    NotFound,
    /// A duplicate: reprocess the upload it names instead.
    Duplicate(String),
    /// The body was refused, so nothing is stored to process.
    NoBody,
    /// Not finished (its state), so it is being processed already.
    Busy(String),
}

/// A batch the processor loads in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// Valid company rows (each permalink at most once).
    pub companies: Vec<CompanyRow>,
    /// Valid rows of a schema kind (each key at most once).
    pub records: Vec<RecordRow>,
    /// Rejected records.
    pub errors: Vec<RecordError>,
    /// Valid records of the batch (duplicates of a permalink included).
    pub valid: u64,
    /// The checkpoint before this batch.
    pub from: u64,
    /// The checkpoint after it.
    pub to: u64,
}

/// The imports tables and outbox in one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UploadStore {
    pool: Pool,
    db: Database,
}

const UPLOAD_COLUMNS: &str = "request_id, kind, name, state, checksum, object_key, size, records, \
    processed, loaded, rejected, duplicate_of, error, received_at, stored_at, started_at, completed_at";

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn count(v: i64, field: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{field} = {v}")))
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn text(v: &str) -> Arg {
    Arg::Text(Some(v.to_owned()))
}

macro_rules! upload_from_row {
    ($r:expr) => {{
        let r = $r;
        Upload {
            request_id: r.try_get(0)?,
            kind: r.try_get(1)?,
            name: r.try_get(2)?,
            state: r.try_get(3)?,
            checksum: r.try_get(4)?,
            object_key: r.try_get(5)?,
            size: count(r.try_get(6)?, "size")?,
            records: count(r.try_get(7)?, "records")?,
            processed: count(r.try_get(8)?, "processed")?,
            loaded: count(r.try_get(9)?, "loaded")?,
            rejected: count(r.try_get(10)?, "rejected")?,
            duplicate_of: r.try_get(11)?,
            error: r.try_get(12)?,
            received_at: r.try_get(13)?,
            stored_at: r.try_get(14)?,
            started_at: r.try_get(15)?,
            completed_at: r.try_get(16)?,
        }
    }};
}

macro_rules! error_from_row {
    ($r:expr) => {{
        let r = $r;
        let violations: String = r.try_get(7)?;
        RecordError {
            record: count(r.try_get(0)?, "record")?,
            line: count(r.try_get(1)?, "line")?,
            pointer: r.try_get(2)?,
            rule: r.try_get(3)?,
            value: r.try_get(4)?,
            message: r.try_get(5)?,
            violations: serde_json::from_str(&violations)
                .map_err(|e| StoreError::Corrupt(format!("violations: {e}")))?,
        }
    }};
}

impl UploadStore {
    /// Wraps `db` and applies the outbox's and the imports' migrations
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

    /// The imports outbox (relay side).
    pub fn outbox(&self) -> OutboxStore {
        OutboxStore::new(self.db.clone(), OUTBOX_NAMESPACE)
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Records a new upload in state `received`.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn insert_received(&self, request_id: &str, kind: &str, name: &str) -> Result<()> {
        let mut s = Stmt::new(
            "INSERT INTO imports_uploads (request_id, kind, name, state, received_at) VALUES (",
        );
        s.arg(text(request_id))
            .push(", ")
            .arg(text(kind))
            .push(", ")
            .arg(text(name))
            .push(", ")
            .arg(text(state::RECEIVED))
            .push(", ")
            .arg(Arg::I64(Some(now_ms())))
            .push(")");
        on_pool!(&self.pool, pool => {
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?;
        });
        Ok(())
    }

    /// Marks a refused upload `failed` and writes its `FileExtractError`
    /// (key = name) in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::Sql`] (nothing is written then).
    pub async fn refuse_upload(&self, event: &FileExtractError) -> Result<()> {
        let payload = events::to_json(events::kind::FILE_EXTRACT_ERROR, event);
        let mut s = Stmt::new("UPDATE imports_uploads SET state = ");
        s.arg(text(state::FAILED))
            .push(", error = ")
            .arg(text(&event.reason))
            .push(", completed_at = ")
            .arg(Arg::I64(Some(now_ms())))
            .push(" WHERE request_id = ")
            .arg(text(&event.request_id));
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(&mut *tx).await?;
            let ev = [NewEvent { key: event.name.as_bytes(), kind: events::kind::FILE_EXTRACT_ERROR, payload: &payload }];
            (*tx).enqueue_events(OUTBOX_NAMESPACE, &ev).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Marks a request that failed before its body was judged (object
    /// store away) `failed`, without an event.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn abandon_upload(&self, request_id: &str, reason: &str) -> Result<()> {
        let mut s = Stmt::new("UPDATE imports_uploads SET state = ");
        s.arg(text(state::FAILED))
            .push(", error = ")
            .arg(text(reason))
            .push(", completed_at = ")
            .arg(Arg::I64(Some(now_ms())))
            .push(" WHERE request_id = ")
            .arg(text(request_id));
        on_pool!(&self.pool, pool => {
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?;
        });
        Ok(())
    }

    /// After the body is in the object store under `event.key`: in ONE
    /// transaction, looks for an earlier upload of the same kind and
    /// checksum. One that `completed` makes this a duplicate (this row
    /// becomes `completed` with its counts and `duplicate_of`; no event);
    /// otherwise this row becomes `stored` and `FileExtractSuccess` (key =
    /// name) goes to the outbox.
    ///
    /// # Errors
    /// [`StoreError::Sql`] (nothing is written then).
    pub async fn store_upload(&self, event: &FileExtractSuccess) -> Result<Stored> {
        let payload = events::to_json(events::kind::FILE_EXTRACT_SUCCESS, event);
        let mut find = Stmt::new(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM imports_uploads WHERE kind = "
        ));
        find.arg(text(&event.kind))
            .push(" AND checksum = ")
            .arg(text(&event.checksum))
            .push(" AND request_id <> ")
            .arg(text(&event.request_id))
            .push(" AND duplicate_of IS NULL ORDER BY received_at, request_id");
        let now = now_ms();
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let rows = bind_args!(sqlx::query(find.sql_for(pool)), find.args).fetch_all(&mut *tx).await?;
            let mut earlier = Vec::with_capacity(rows.len());
            for r in &rows {
                earlier.push(upload_from_row!(r));
            }
            let done = earlier.iter().find(|u| u.state == state::COMPLETED).cloned();
            let mut s = Stmt::new("UPDATE imports_uploads SET checksum = ");
            s.arg(text(&event.checksum))
                .push(", object_key = ").arg(text(&event.key))
                .push(", size = ").arg(Arg::I64(Some(signed(event.size))))
                .push(", records = ").arg(Arg::I64(Some(signed(event.records))))
                .push(", stored_at = ").arg(Arg::I64(Some(now)));
            let outcome = if let Some(first) = done {
                s.push(", state = ").arg(text(state::COMPLETED))
                    .push(", processed = ").arg(Arg::I64(Some(signed(first.processed))))
                    .push(", loaded = ").arg(Arg::I64(Some(signed(first.loaded))))
                    .push(", rejected = ").arg(Arg::I64(Some(signed(first.rejected))))
                    .push(", duplicate_of = ").arg(text(&first.request_id))
                    .push(", completed_at = ").arg(Arg::I64(Some(now)));
                Stored::Duplicate(Box::new(first))
            } else {
                s.push(", state = ").arg(text(state::STORED));
                let resumes = earlier
                    .iter()
                    .find(|u| u.state != state::FAILED && u.state != state::RECEIVED)
                    .map(|u| u.request_id.clone());
                Stored::New { resumes }
            };
            s.push(" WHERE request_id = ").arg(text(&event.request_id));
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(&mut *tx).await?;
            if matches!(outcome, Stored::New { .. }) {
                let ev = [NewEvent { key: event.name.as_bytes(), kind: events::kind::FILE_EXTRACT_SUCCESS, payload: &payload }];
                (*tx).enqueue_events(OUTBOX_NAMESPACE, &ev).await?;
            }
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// The upload `request_id`, if it exists.
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn get(&self, request_id: &str) -> Result<Option<Upload>> {
        let mut s = Stmt::new(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM imports_uploads WHERE request_id = "
        ));
        s.arg(text(request_id));
        on_pool!(&self.pool, pool => {
            let row = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(Some(upload_from_row!(&r))),
                None => Ok(None),
            }
        })
    }

    /// The most recent uploads first (received time, then id descending),
    /// up to `limit`; with `before = (ms, id)` (the last of the previous
    /// page) only those after it in that order, so uploads received in the
    /// same millisecond are neither skipped nor repeated.
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn recent(&self, before: Option<(i64, &str)>, limit: u32) -> Result<Vec<Upload>> {
        let mut s = Stmt::new(&format!("SELECT {UPLOAD_COLUMNS} FROM imports_uploads"));
        if let Some((ms, id)) = before {
            s.push(" WHERE received_at < ")
                .arg(Arg::I64(Some(ms)))
                .push(" OR (received_at = ")
                .arg(Arg::I64(Some(ms)))
                .push(" AND request_id < ")
                .arg(text(id))
                .push(")");
        }
        s.push(" ORDER BY received_at DESC, request_id DESC LIMIT ")
            .arg(Arg::I64(Some(i64::from(limit))));
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(upload_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The rejected records of an upload in record order, after record
    /// `after` when given, up to `limit`.
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn errors(
        &self,
        request_id: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<RecordError>> {
        let mut s = Stmt::new(
            "SELECT record, line, pointer, rule, value, message, request_id, violations \
             FROM imports_errors WHERE request_id = ",
        );
        s.arg(text(request_id));
        if let Some(a) = after {
            s.push(" AND record > ").arg(Arg::I64(Some(signed(a))));
        }
        s.push(" ORDER BY record LIMIT ")
            .arg(Arg::I64(Some(i64::from(limit))));
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(error_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Deletes an upload's row and its errors (loaded records stay: they
    /// belong to the table, and a later upload of them updates them).
    /// Returns the deleted upload.
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn delete(&self, request_id: &str) -> Result<Option<Upload>> {
        let Some(upload) = self.get(request_id).await? else {
            return Ok(None);
        };
        let mut errs = Stmt::new("DELETE FROM imports_errors WHERE request_id = ");
        errs.arg(text(request_id));
        let mut row = Stmt::new("DELETE FROM imports_uploads WHERE request_id = ");
        row.arg(text(request_id));
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            bind_args!(sqlx::query(errs.sql_for(pool)), errs.args).execute(&mut *tx).await?;
            bind_args!(sqlx::query(row.sql_for(pool)), row.args).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(Some(upload))
    }

    /// Sends a finished upload through the processor again: in ONE
    /// transaction its errors are deleted, its counts and checkpoint reset,
    /// its state set back to `stored` and a new `FileExtractSuccess` (key =
    /// name) written to the outbox. Loads are upserts, so the table ends as
    /// after the first run. Only a `completed` or `failed` upload with a
    /// stored body that is not a duplicate qualifies.
    ///
    /// # Errors
    /// [`Reprocess`] says why an upload does not qualify;
    /// [`StoreError::Sql`] (nothing is written then).
    pub async fn reprocess(&self, request_id: &str, object_url: &str) -> Result<Reprocess> {
        let Some(u) = self.get(request_id).await? else {
            return Ok(Reprocess::NotFound);
        };
        if let Some(first) = &u.duplicate_of {
            return Ok(Reprocess::Duplicate(first.clone()));
        }
        let (Some(key), Some(checksum)) = (u.object_key.clone(), u.checksum.clone()) else {
            return Ok(Reprocess::NoBody);
        };
        if u.state != state::COMPLETED && u.state != state::FAILED {
            return Ok(Reprocess::Busy(u.state));
        }
        let event = FileExtractSuccess {
            request_id: u.request_id.clone(),
            kind: u.kind.clone(),
            name: u.name.clone(),
            object: format!("{}/{key}", object_url.trim_end_matches('/')),
            key,
            size: u.size,
            checksum,
            records: u.records,
        };
        let payload = events::to_json(events::kind::FILE_EXTRACT_SUCCESS, &event);
        let mut errs = Stmt::new("DELETE FROM imports_errors WHERE request_id = ");
        errs.arg(text(request_id));
        let mut s = Stmt::new("UPDATE imports_uploads SET state = ");
        s.arg(text(state::STORED))
            .push(", processed = 0, loaded = 0, rejected = 0, error = NULL, started_at = NULL, completed_at = NULL WHERE request_id = ")
            .arg(text(request_id))
            .push(" AND state = ")
            .arg(text(&u.state));
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let n = bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(Reprocess::Busy("changed meanwhile".into()));
            }
            bind_args!(sqlx::query(errs.sql_for(pool)), errs.args).execute(&mut *tx).await?;
            let ev = [NewEvent { key: u.name.as_bytes(), kind: events::kind::FILE_EXTRACT_SUCCESS, payload: &payload }];
            (*tx).enqueue_events(OUTBOX_NAMESPACE, &ev).await?;
            tx.commit().await?;
        });
        Ok(Reprocess::Queued)
    }

    /// Whether another upload still refers to the object `key`.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn object_in_use(&self, key: &str) -> Result<bool> {
        let mut s = Stmt::new("SELECT COUNT(*) FROM imports_uploads WHERE object_key = ");
        s.arg(text(key));
        let n: i64 = on_pool!(&self.pool, pool => {
            bind_args!(sqlx::query_scalar(s.sql_for(pool)), s.args).fetch_one(pool).await?
        });
        Ok(n > 0)
    }

    /// The processor takes the upload: `processing` (its first start time
    /// kept). Returns the upload as it is now, or `None` when it does not
    /// exist. A `completed` or `failed` upload is returned unchanged.
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn start_processing(&self, request_id: &str) -> Result<Option<Upload>> {
        let mut s = Stmt::new("UPDATE imports_uploads SET state = ");
        s.arg(text(state::PROCESSING))
            .push(", started_at = COALESCE(started_at, ")
            .arg(Arg::I64(Some(now_ms())))
            .push(") WHERE request_id = ")
            .arg(text(request_id))
            .push(" AND state IN (")
            .arg(text(state::STORED))
            .push(", ")
            .arg(text(state::PROCESSING))
            .push(")");
        on_pool!(&self.pool, pool => {
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?;
        });
        self.get(request_id).await
    }

    /// Loads one batch in ONE transaction: the company rows (upsert by
    /// permalink), the rejected records, one `ValidationError` per rejected
    /// record into the outbox (key = request id), and the checkpoint and
    /// counts of the upload, which must still be at `batch.from` (else
    /// another run of the same upload got ahead: nothing is written and
    /// `false` returned).
    ///
    /// # Errors
    /// [`StoreError::Sql`] (nothing is written then).
    pub async fn load_batch(&self, request_id: &str, batch: &Batch) -> Result<bool> {
        let payloads: Vec<Vec<u8>> = batch
            .errors
            .iter()
            .map(|e| {
                let first = e.violations.first();
                events::to_json(
                    events::kind::VALIDATION_ERROR,
                    &events::ValidationError {
                        request_id: request_id.to_owned(),
                        record: e.record,
                        line: e.line,
                        pointer: first.map(|v| v.pointer.clone()).unwrap_or_default(),
                        rule: first.map(|v| v.rule.clone()).unwrap_or_default(),
                        value: first.map(|v| v.value.clone()).unwrap_or_default(),
                        violations: e.violations.clone(),
                    },
                )
            })
            .collect();
        let mut errs: Vec<Stmt> = Vec::new();
        for chunk in batch.errors.chunks(500) {
            let mut s = Stmt::new(
                "INSERT INTO imports_errors (request_id, record, line, pointer, rule, value, message, violations) VALUES ",
            );
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    s.push(", ");
                }
                let violations = serde_json::to_string(&e.violations)
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                s.list([
                    text(request_id),
                    Arg::I64(Some(signed(e.record))),
                    Arg::I64(Some(signed(e.line))),
                    text(&e.pointer),
                    text(&e.rule),
                    text(&e.value),
                    text(&e.message),
                    Arg::Text(Some(violations)),
                ]);
            }
            s.push(" ON CONFLICT (request_id, record) DO NOTHING");
            errs.push(s);
        }
        let rejected = batch.errors.len() as u64;
        let mut progress = Stmt::new("UPDATE imports_uploads SET processed = ");
        progress
            .arg(Arg::I64(Some(signed(batch.to))))
            .push(", loaded = loaded + ")
            .arg(Arg::I64(Some(signed(batch.valid))))
            .push(", rejected = rejected + ")
            .arg(Arg::I64(Some(signed(rejected))))
            .push(" WHERE request_id = ")
            .arg(text(request_id))
            .push(" AND processed = ")
            .arg(Arg::I64(Some(signed(batch.from))))
            .push(" AND state = ")
            .arg(text(state::PROCESSING));
        let loaded_at = now_ms();
        match &self.pool {
            Pool::Pg(pool) => {
                let mut tx = pool.begin().await?;
                let n = bind_args!(sqlx::query(&progress.sql), progress.args)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                companies::upsert_pg(&mut tx, &batch.companies, loaded_at).await?;
                for s in records::upsert_stmts(
                    &batch.records,
                    tributary_storage::stmt::Dialect::Postgres,
                    loaded_at,
                ) {
                    bind_args!(sqlx::query(&s.sql).persistent(false), s.args)
                        .execute(&mut *tx)
                        .await?;
                }
                for s in &errs {
                    bind_args!(sqlx::query(&s.sql).persistent(false), s.args)
                        .execute(&mut *tx)
                        .await?;
                }
                enqueue_validation(&mut *tx, request_id, &payloads).await?;
                tx.commit().await?;
            }
            Pool::Lite(pool) => {
                let mut tx = pool.begin_write().await?;
                let n = bind_args!(sqlx::query(progress.sql_for(pool)), progress.args)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let rows = companies::upsert_stmts(&batch.companies, loaded_at)
                    .into_iter()
                    .chain(records::upsert_stmts(
                        &batch.records,
                        tributary_storage::stmt::Dialect::Sqlite,
                        loaded_at,
                    ));
                // Multi-row statements of varying row counts: not kept in the
                // connection's statement cache (each size would stay prepared,
                // a large program apiece: the SQLite 10x import grew to 300 MB).
                for s in rows {
                    bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args)
                        .execute(&mut *tx)
                        .await?;
                }
                for s in &errs {
                    bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args)
                        .execute(&mut *tx)
                        .await?;
                }
                enqueue_validation(&mut *tx, request_id, &payloads).await?;
                tx.commit().await?;
            }
        }
        Ok(true)
    }

    /// Ends an upload: `completed` (or `failed` with `error`) and its
    /// `ImportCompleted` (key = request id) in ONE transaction. Returns the
    /// event written, or `None` when the upload was already finished (a
    /// redelivery) and nothing was written.
    ///
    /// # Errors
    /// [`StoreError::Sql`] (nothing is written then), [`StoreError::Corrupt`].
    pub async fn finish(
        &self,
        request_id: &str,
        error: Option<&str>,
    ) -> Result<Option<ImportCompleted>> {
        let now = now_ms();
        let new_state = if error.is_some() {
            state::FAILED
        } else {
            state::COMPLETED
        };
        let mut get = Stmt::new(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM imports_uploads WHERE request_id = "
        ));
        get.arg(text(request_id));
        let mut s = Stmt::new("UPDATE imports_uploads SET state = ");
        s.arg(text(new_state))
            .push(", error = ")
            .arg(Arg::Text(error.map(str::to_owned)))
            .push(", completed_at = ")
            .arg(Arg::I64(Some(now)))
            .push(" WHERE request_id = ")
            .arg(text(request_id))
            .push(" AND state NOT IN (")
            .arg(text(state::COMPLETED))
            .push(", ")
            .arg(text(state::FAILED))
            .push(")");
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let n = bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let row = bind_args!(sqlx::query(get.sql_for(pool)), get.args).fetch_one(&mut *tx).await?;
            let u = upload_from_row!(&row);
            let started = u.started_at.unwrap_or(now);
            let event = ImportCompleted {
                request_id: u.request_id.clone(),
                kind: u.kind.clone(),
                name: u.name.clone(),
                state: new_state.to_owned(),
                records: u.records,
                loaded: u.loaded,
                rejected: u.rejected,
                duration_ms: u64::try_from(now - started).unwrap_or(0),
                error: error.map(str::to_owned),
            };
            let payload = events::to_json(events::kind::IMPORT_COMPLETED, &event);
            let ev = [NewEvent { key: request_id.as_bytes(), kind: events::kind::IMPORT_COMPLETED, payload: &payload }];
            (*tx).enqueue_events(OUTBOX_NAMESPACE, &ev).await?;
            tx.commit().await?;
            Ok(Some(event))
        })
    }

    /// Up to `limit` companies in permalink order (see [`CompanyQuery`]).
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn companies(&self, q: &CompanyQuery) -> Result<Vec<CompanyView>> {
        companies::query(&self.pool, q).await
    }

    /// Up to `limit` records of a schema kind in key order (see [`RecordQuery`]).
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn records(&self, q: &RecordQuery) -> Result<Vec<RecordView>> {
        records::query(&self.pool, q).await
    }

    /// Number of loaded companies.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn company_count(&self) -> Result<u64> {
        let n: i64 = on_pool!(&self.pool, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM imports_companies").fetch_one(pool).await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

async fn enqueue_validation<C: tributary_runtime::outbox::OutboxConnection + ?Sized>(
    conn: &mut C,
    request_id: &str,
    payloads: &[Vec<u8>],
) -> Result<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    let events: Vec<NewEvent<'_>> = payloads
        .iter()
        .map(|p| NewEvent {
            key: request_id.as_bytes(),
            kind: events::kind::VALIDATION_ERROR,
            payload: p,
        })
        .collect();
    conn.enqueue_events(OUTBOX_NAMESPACE, &events).await?;
    Ok(())
}

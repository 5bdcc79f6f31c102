//! The `imports_records` table: records of the kinds declared by a JSON
//! Schema, one row per (kind, natural key) with the whole document
//! (`jsonb` on PostgreSQL). Loads are multi-row upserts by (kind, key) in
//! the batch's transaction, so a redelivered upload never duplicates a row.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row as _;
use tributary_storage::stmt::{Arg, Dialect, Pool, Stmt};
use tributary_storage::{bind_args, on_pool};

use super::{count, Result, StoreError};

/// Rows per statement (six parameters each).
const ROWS_PER_STATEMENT: usize = 1000;

/// One record ready to load.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    /// Its kind.
    pub kind: String,
    /// Its natural key.
    pub key: String,
    /// The document, JSON text (NUL characters replaced).
    pub document: String,
    /// The upload it came from.
    pub request_id: String,
    /// Its record index there.
    pub record: u64,
}

impl RecordRow {
    /// The row of `doc` (record `record` of upload `request_id`).
    pub fn new(kind: &str, key: String, doc: &Value, request_id: &str, record: u64) -> Self {
        let mut doc = doc.clone();
        let mut json = doc.to_string();
        if json.contains("\\u0000") {
            super::companies::scrub(&mut doc);
            json = doc.to_string();
        }
        RecordRow {
            kind: kind.to_owned(),
            key: key.replace('\0', "\u{FFFD}"),
            document: json,
            request_id: request_id.to_owned(),
            record,
        }
    }
}

/// The upserts of `rows` (each (kind, key) at most once) for `dialect`.
pub fn upsert_stmts(rows: &[RecordRow], dialect: Dialect, loaded_at: i64) -> Vec<Stmt> {
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut s = Stmt::new(
                "INSERT INTO imports_records (kind, key, document, request_id, record, loaded_at) VALUES ",
            );
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    s.push(", ");
                }
                s.push("(")
                    .arg(Arg::Text(Some(r.kind.clone())))
                    .push(", ")
                    .arg(Arg::Text(Some(r.key.clone())))
                    .push(", ");
                match dialect {
                    Dialect::Postgres => s
                        .push("CAST(")
                        .arg(Arg::Text(Some(r.document.clone())))
                        .push(" AS jsonb)"),
                    Dialect::Sqlite => s.arg(Arg::Text(Some(r.document.clone()))),
                };
                s.push(", ")
                    .arg(Arg::Text(Some(r.request_id.clone())))
                    .push(", ")
                    .arg(Arg::I64(Some(i64::try_from(r.record).unwrap_or(i64::MAX))))
                    .push(", ")
                    .arg(Arg::I64(Some(loaded_at)))
                    .push(")");
            }
            s.push(
                " ON CONFLICT (kind, key) DO UPDATE SET document = excluded.document, \
                 request_id = excluded.request_id, record = excluded.record, loaded_at = excluded.loaded_at",
            );
            s
        })
        .collect()
}

/// A records query: one kind, keyset page by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// The kind (a schema kind; `company` records are at `/api/imports/companies`).
    pub kind: String,
    /// Page size (default `imports.page_default`, at most `imports.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Keyset: keys after this one.
    pub after: Option<String>,
}

/// One loaded record of a schema kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordView {
    /// Its kind.
    pub kind: String,
    /// Its natural key.
    pub key: String,
    /// The upload that wrote it last.
    pub request_id: String,
    /// Its record index there.
    pub record: u64,
    /// The document.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// Runs `q` with `limit` already checked.
pub(super) async fn query(pool: &Pool, q: &RecordQuery) -> Result<Vec<RecordView>> {
    let doc = match pool {
        Pool::Pg(_) => "document::text",
        Pool::Lite(_) => "document",
    };
    let mut s = Stmt::new(&format!(
        "SELECT kind, key, request_id, record, {doc} FROM imports_records WHERE kind = "
    ));
    s.arg(Arg::Text(Some(q.kind.clone())));
    if let Some(after) = &q.after {
        s.push(" AND key > ").arg(Arg::Text(Some(after.clone())));
    }
    s.push(" ORDER BY key LIMIT ")
        .arg(Arg::I64(Some(i64::from(q.limit.unwrap_or(100)))));
    on_pool!(pool, pool => {
        let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let text: String = r.try_get(4)?;
            out.push(RecordView {
                kind: r.try_get(0)?,
                key: r.try_get(1)?,
                request_id: r.try_get(2)?,
                record: count(r.try_get(3)?, "record")?,
                document: serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("document: {e}")))?,
            });
        }
        Ok(out)
    })
}

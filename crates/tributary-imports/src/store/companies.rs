//! The `imports_companies` table: the typed columns of [`Company`] plus
//! the whole document (`jsonb` on PostgreSQL), natural key `permalink`.
//!
//! Loads are upserts by permalink (a later upload of a company updates it;
//! each row records the upload and record it came from), so a redelivered
//! or re-processed upload never duplicates a row. PostgreSQL: `COPY` (text
//! format) into a session-temporary staging table, then one
//! `INSERT ... SELECT ... ON CONFLICT` merge per batch. SQLite: multi-row
//! `INSERT ... ON CONFLICT` statements in the batch's transaction.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row as _;
use tributary_storage::stmt::{Arg, Pool, Stmt};
use tributary_storage::{bind_args, on_pool};

use super::{count, Result, StoreError};
use crate::domain::company::Company;

/// Columns written by a load, in order.
const COLUMNS: [&str; 17] = [
    "permalink",
    "name",
    "category_code",
    "founded",
    "employees",
    "money_raised_minor",
    "money_currency",
    "homepage_url",
    "twitter_username",
    "email_address",
    "offices",
    "created_at",
    "updated_at",
    "document",
    "request_id",
    "record",
    "loaded_at",
];

/// SQLite rows per statement (17 parameters each).
const ROWS_PER_STATEMENT: usize = 500;

/// One company ready to load.
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyRow {
    /// Natural key.
    pub permalink: String,
    /// Name.
    pub name: String,
    /// Category.
    pub category_code: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub founded: Option<String>,
    /// Head count.
    pub employees: Option<i64>,
    /// Total money raised in minor units of `money_currency`.
    pub money_raised_minor: Option<i64>,
    /// ISO currency of the money raised.
    pub money_currency: Option<String>,
    /// Home page.
    pub homepage_url: Option<String>,
    /// Twitter handle.
    pub twitter_username: Option<String>,
    /// Contact email.
    pub email_address: Option<String>,
    /// Number of offices.
    pub offices: i32,
    /// Created, ms since the epoch.
    pub created_at: Option<i64>,
    /// Updated, ms since the epoch.
    pub updated_at: Option<i64>,
    /// The whole document, JSON text (NUL characters replaced: PostgreSQL
    /// text and `jsonb` cannot hold them).
    pub document: String,
    /// The upload it came from.
    pub request_id: String,
    /// Its record index in that upload.
    pub record: i64,
}

fn no_nul(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(no_nul)
}

/// Replaces NUL characters in every string and key of `v`.
pub(super) fn scrub(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = no_nul(s),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    scrub(&mut v);
                    map.insert(no_nul(&k), v);
                }
            } else {
                map.values_mut().for_each(scrub);
            }
        }
        _ => {}
    }
}

impl CompanyRow {
    /// The row of a validated company from record `record` of upload
    /// `request_id`.
    pub fn new(c: Company, request_id: &str, record: u64) -> Self {
        let founded = c.founded.map(|d| match (d.month, d.day) {
            (Some(m), Some(day)) => format!("{:04}-{m:02}-{day:02}", d.year),
            (Some(m), None) => format!("{:04}-{m:02}", d.year),
            _ => format!("{:04}", d.year),
        });
        let mut document = c.document;
        let mut json = document.to_string();
        if json.contains("\\u0000") {
            scrub(&mut document);
            json = document.to_string();
        }
        CompanyRow {
            permalink: no_nul(&c.permalink),
            name: no_nul(&c.name),
            category_code: opt(&c.category_code),
            founded,
            employees: c
                .number_of_employees
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            money_raised_minor: c.total_money_raised.as_ref().map(|m| m.minor),
            money_currency: c.total_money_raised.map(|m| no_nul(&m.currency)),
            homepage_url: opt(&c.homepage_url),
            twitter_username: opt(&c.twitter_username),
            email_address: opt(&c.email_address),
            offices: i32::try_from(c.offices).unwrap_or(i32::MAX),
            created_at: c.created_at.map(|t| t.timestamp_millis()),
            updated_at: c.updated_at.map(|t| t.timestamp_millis()),
            document: json,
            request_id: request_id.to_owned(),
            record: i64::try_from(record).unwrap_or(i64::MAX),
        }
    }

    fn args(&self, loaded_at: i64) -> [Arg; 17] {
        [
            Arg::Text(Some(self.permalink.clone())),
            Arg::Text(Some(self.name.clone())),
            Arg::Text(self.category_code.clone()),
            Arg::Text(self.founded.clone()),
            Arg::I64(self.employees),
            Arg::I64(self.money_raised_minor),
            Arg::Text(self.money_currency.clone()),
            Arg::Text(self.homepage_url.clone()),
            Arg::Text(self.twitter_username.clone()),
            Arg::Text(self.email_address.clone()),
            Arg::I32(Some(self.offices)),
            Arg::I64(self.created_at),
            Arg::I64(self.updated_at),
            Arg::Text(Some(self.document.clone())),
            Arg::Text(Some(self.request_id.clone())),
            Arg::I64(Some(self.record)),
            Arg::I64(Some(loaded_at)),
        ]
    }
}

fn on_conflict() -> String {
    let set: Vec<String> = COLUMNS
        .iter()
        .skip(1)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(" ON CONFLICT (permalink) DO UPDATE SET {}", set.join(", "))
}

/// The SQLite (or any dialect's) multi-row upserts of `rows` (each
/// permalink at most once).
pub fn upsert_stmts(rows: &[CompanyRow], loaded_at: i64) -> Vec<Stmt> {
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut s = Stmt::new(&format!(
                "INSERT INTO imports_companies ({}) VALUES ",
                COLUMNS.join(", ")
            ));
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    s.push(", ");
                }
                s.list(r.args(loaded_at));
            }
            s.push(&on_conflict());
            s
        })
        .collect()
}

/// Appends `v` to a COPY text-format line, escaped.
fn copy_field(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(v) = v else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for b in v.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn copy_num(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// The COPY text body of `rows`.
pub fn copy_text(rows: &[CompanyRow], loaded_at: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.document.len() + 256).sum());
    for r in rows {
        copy_field(&mut out, Some(&r.permalink));
        out.push(b'\t');
        copy_field(&mut out, Some(&r.name));
        out.push(b'\t');
        copy_field(&mut out, r.category_code.as_deref());
        out.push(b'\t');
        copy_field(&mut out, r.founded.as_deref());
        out.push(b'\t');
        copy_num(&mut out, r.employees);
        out.push(b'\t');
        copy_num(&mut out, r.money_raised_minor);
        out.push(b'\t');
        copy_field(&mut out, r.money_currency.as_deref());
        out.push(b'\t');
        copy_field(&mut out, r.homepage_url.as_deref());
        out.push(b'\t');
        copy_field(&mut out, r.twitter_username.as_deref());
        out.push(b'\t');
        copy_field(&mut out, r.email_address.as_deref());
        out.push(b'\t');
        copy_num(&mut out, Some(i64::from(r.offices)));
        out.push(b'\t');
        copy_num(&mut out, r.created_at);
        out.push(b'\t');
        copy_num(&mut out, r.updated_at);
        out.push(b'\t');
        copy_field(&mut out, Some(&r.document));
        out.push(b'\t');
        copy_field(&mut out, Some(&r.request_id));
        out.push(b'\t');
        copy_num(&mut out, Some(r.record));
        out.push(b'\t');
        copy_num(&mut out, Some(loaded_at));
        out.push(b'\n');
    }
    out
}

/// PostgreSQL: `COPY` of `rows` into the session's staging table, then
/// one merge statement, inside the caller's transaction.
///
/// # Errors
/// [`StoreError::Sql`].
pub async fn upsert_pg(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: &[CompanyRow],
    loaded_at: i64,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols = COLUMNS.join(", ");
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS imports_company_stage \
         (LIKE imports_companies INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    )
    .execute(&mut **tx)
    .await?;
    let mut copy = (**tx)
        .copy_in_raw(&format!(
            "COPY imports_company_stage ({cols}) FROM STDIN (FORMAT text)"
        ))
        .await?;
    let body = copy_text(rows, loaded_at);
    for chunk in body.chunks(1024 * 1024) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    sqlx::query(&format!(
        "INSERT INTO imports_companies ({cols}) SELECT {cols} FROM imports_company_stage{}",
        on_conflict()
    ))
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM imports_company_stage")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A companies query: name substring (case-insensitive), keyset page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompanyQuery {
    /// Substring of the name, case-insensitive (ASCII).
    pub name: Option<String>,
    /// Page size (default `imports.page_default`, at most `imports.page_max`).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Keyset: permalinks after this one.
    pub after: Option<String>,
}

/// One loaded company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompanyView {
    /// Natural key.
    pub permalink: String,
    /// Name.
    pub name: String,
    /// Category.
    pub category_code: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub founded: Option<String>,
    /// Head count.
    pub employees: Option<i64>,
    /// Total money raised, minor units of `money_currency`.
    pub money_raised_minor: Option<i64>,
    /// ISO currency.
    pub money_currency: Option<String>,
    /// Home page.
    pub homepage_url: Option<String>,
    /// Twitter handle.
    pub twitter_username: Option<String>,
    /// Contact email.
    pub email_address: Option<String>,
    /// Number of offices.
    pub offices: i32,
    /// Created, ms since the epoch.
    pub created_at: Option<i64>,
    /// Updated, ms since the epoch.
    pub updated_at: Option<i64>,
    /// The upload that wrote this row last.
    pub request_id: String,
    /// Its record index there.
    pub record: u64,
    /// The whole document as uploaded.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// Runs `q` with `limit` already checked.
pub(super) async fn query(pool: &Pool, q: &CompanyQuery) -> Result<Vec<CompanyView>> {
    let doc = match pool {
        Pool::Pg(_) => "document::text",
        Pool::Lite(_) => "document",
    };
    let mut s = Stmt::new(&format!(
        "SELECT permalink, name, category_code, founded, employees, money_raised_minor, \
         money_currency, homepage_url, twitter_username, email_address, offices, created_at, \
         updated_at, request_id, record, {doc} FROM imports_companies WHERE 1 = 1"
    ));
    if let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) {
        let escaped = name
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        s.push(" AND lower(name) LIKE ")
            .arg(Arg::Text(Some(format!("%{escaped}%"))))
            .push(" ESCAPE '\\'");
    }
    if let Some(after) = &q.after {
        s.push(" AND permalink > ")
            .arg(Arg::Text(Some(after.clone())));
    }
    s.push(" ORDER BY permalink LIMIT ")
        .arg(Arg::I64(Some(i64::from(q.limit.unwrap_or(100)))));
    on_pool!(pool, pool => {
        let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let text: String = r.try_get(15)?;
            out.push(CompanyView {
                permalink: r.try_get(0)?,
                name: r.try_get(1)?,
                category_code: r.try_get(2)?,
                founded: r.try_get(3)?,
                employees: r.try_get(4)?,
                money_raised_minor: r.try_get(5)?,
                money_currency: r.try_get(6)?,
                homepage_url: r.try_get(7)?,
                twitter_username: r.try_get(8)?,
                email_address: r.try_get(9)?,
                offices: r.try_get(10)?,
                created_at: r.try_get(11)?,
                updated_at: r.try_get(12)?,
                request_id: r.try_get(13)?,
                record: count(r.try_get(14)?, "record")?,
                document: serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("document: {e}")))?,
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves COPY text escapes backslash, tab and newlines and writes NULL
    // as \N, one line per row.
    #[test]
    fn copy_text_escapes() {
        let row = CompanyRow {
            permalink: "a".into(),
            name: "x\ty\\z\n".into(),
            category_code: None,
            founded: Some("2005-10".into()),
            employees: Some(3),
            money_raised_minor: None,
            money_currency: None,
            homepage_url: None,
            twitter_username: None,
            email_address: None,
            offices: 1,
            created_at: None,
            updated_at: None,
            document: "{\"a\":\"b\\\\n\"}".into(),
            request_id: "r".into(),
            record: 7,
        };
        let text = String::from_utf8(copy_text(&[row], 9)).unwrap_or_default();
        assert_eq!(
            text,
            "a\tx\\ty\\\\z\\n\t\\N\t2005-10\t3\t\\N\t\\N\t\\N\t\\N\t\\N\t1\t\\N\t\\N\t{\"a\":\"b\\\\\\\\n\"}\tr\t7\t9\n"
        );
    }

    // Proves NUL characters leave strings and keys of the document.
    #[test]
    fn scrub_replaces_nul() {
        let mut v = serde_json::json!({"a\u{0}": ["x\u{0}y", {"b": "\u{0}"}]});
        scrub(&mut v);
        assert!(!v.to_string().contains("\\u0000"), "{v}");
    }
}

//! The shop tables on PostgreSQL or SQLite (namespace `shop`): what the
//! sink upserts (products, filtered products, recommendations) and the
//! join state of `shop-recommendations`.
//!
//! Failure: every method returns [`StoreError`] when the database fails;
//! the writes of one call are one transaction, so a failure (or a dropped
//! future) leaves nothing half-written.

use sqlx::migrate::Migrator;
use sqlx::Row as _;
use tributary_storage::stmt::{Arg, Pool, Stmt};
use tributary_storage::{bind_args, on_pool, BeginWrite as _, Database, Migrations};

use crate::domain::{Product, Recommendation, StateChange};

static PG_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static LITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The shop migrations of both dialects (namespace `shop`).
pub const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "shop",
    postgres: &PG_MIGRATIONS,
    sqlite: &LITE_MIGRATIONS,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (retry: the backend may come back).
    #[error("shop store: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrating failed.
    #[error("shop store: {0}")]
    Storage(#[from] tributary_storage::Error),
    /// A stored document cannot be read back.
    #[error("shop store: corrupt row: {0}")]
    Corrupt(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which product table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductTable {
    /// `shop_products`: every valid product of the products topic.
    All,
    /// `shop_filtered_products`: the filtered topic.
    Filtered,
}

impl ProductTable {
    fn name(self) -> &'static str {
        match self {
            Self::All => "shop_products",
            Self::Filtered => "shop_filtered_products",
        }
    }
}

/// Row counts of the sink's tables.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct Counts {
    /// Rows of `shop_products`.
    pub products: u64,
    /// Rows of `shop_filtered_products`.
    pub filtered: u64,
    /// Rows of `shop_recommendations` (distinct prompt x product pairs).
    pub recommendations: u64,
}

/// The join state as stored: changes in replay order, and the next `seq`.
#[derive(Debug, Clone, Default)]
pub struct StoredState {
    /// The latest change per changelog key, in `seq` order.
    pub changes: Vec<StateChange>,
    /// The `seq` for the next change.
    pub next_seq: i64,
    /// The part's commit version (see [`ShopStore::persist_join_changes`]).
    pub version: i64,
}

/// The shop tables in one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShopStore {
    pool: Pool,
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `text` as a LIKE pattern matching it anywhere, lowercased, with `%`,
/// `_` and `\` escaped (`ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl ShopStore {
    /// Wraps `db` and applies the shop migrations (under the storage
    /// crate's lock: services may start together).
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn open(db: &Database) -> Result<Self> {
        db.migrate(&MIGRATIONS).await?;
        Ok(Self { pool: db.pool() })
    }

    /// Inserts or replaces `product` in `table` (last write per id wins).
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn upsert_product(
        &self,
        table: ProductTable,
        product: &Product,
        event_time_ms: i64,
    ) -> Result<()> {
        let t = table.name();
        let mut s = Stmt::new(&format!(
            "INSERT INTO {t} (product_id, name, store_id, doc, event_time_ms) VALUES "
        ));
        s.list([
            Arg::Text(Some(product.product_id.clone())),
            Arg::Text(Some(product.name.clone())),
            Arg::Text(Some(product.store_id.clone())),
            Arg::Text(Some(json(product)?)),
            Arg::I64(Some(event_time_ms)),
        ]);
        s.push(
            " ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, \
             store_id = excluded.store_id, doc = excluded.doc, event_time_ms = excluded.event_time_ms",
        );
        on_pool!(&self.pool, pool => {
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?;
        });
        Ok(())
    }

    /// Inserts `rec` unless its key ([`Recommendation::key`]) is there
    /// already (a redelivery). Returns whether it was new.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn upsert_recommendation(&self, rec: &Recommendation) -> Result<bool> {
        let mut s = Stmt::new(
            "INSERT INTO shop_recommendations (rec_key, prompt_id, user_id, find, product_id, \
             product_name, matched_at, doc) VALUES ",
        );
        s.list([
            Arg::Text(Some(rec.key())),
            Arg::Text(Some(rec.prompt_id.to_string())),
            Arg::Text(Some(rec.user_id.clone())),
            Arg::Text(Some(rec.find.clone())),
            Arg::Text(Some(rec.product.product_id.clone())),
            Arg::Text(Some(rec.product.name.clone())),
            Arg::I64(Some(rec.matched_at)),
            Arg::Text(Some(json(rec)?)),
        ]);
        s.push(" ON CONFLICT (rec_key) DO NOTHING");
        let n = on_pool!(&self.pool, pool => {
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?.rows_affected()
        });
        Ok(n > 0)
    }

    /// Up to `limit` products of `table` whose name contains `name`
    /// (case-insensitive; all without `name`), in product id order.
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn products(
        &self,
        table: ProductTable,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Product>> {
        let mut s = Stmt::new(&format!("SELECT doc FROM {}", table.name()));
        if let Some(name) = name {
            s.push(" WHERE LOWER(name) LIKE ")
                .arg(Arg::Text(Some(contains_pattern(name))))
                .push(" ESCAPE '\\'");
        }
        s.push(" ORDER BY product_id LIMIT ")
            .arg(Arg::I64(Some(i64::from(limit))));
        let docs: Vec<String> = on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()?
        });
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Up to `limit` recommendations for `user_id`, oldest match first
    /// (then by key).
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn recommendations(&self, user_id: &str, limit: u32) -> Result<Vec<Recommendation>> {
        let mut s = Stmt::new("SELECT doc FROM shop_recommendations WHERE user_id = ");
        s.arg(Arg::Text(Some(user_id.to_owned())))
            .push(" ORDER BY matched_at, rec_key LIMIT ")
            .arg(Arg::I64(Some(i64::from(limit))));
        let docs: Vec<String> = on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()?
        });
        docs.iter()
            .map(|d| {
                Recommendation::parse(d.as_bytes()).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Every recommendation key (`prompt_id:product_id`), in order.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn recommendation_keys(&self) -> Result<Vec<String>> {
        Ok(on_pool!(&self.pool, pool => {
            sqlx::query_scalar("SELECT rec_key FROM shop_recommendations ORDER BY rec_key")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Row counts of the three sink tables.
    ///
    /// # Errors
    /// [`StoreError::Sql`].
    pub async fn counts(&self) -> Result<Counts> {
        let (a, b, c): (i64, i64, i64) = on_pool!(&self.pool, pool => {
            let a = sqlx::query_scalar("SELECT COUNT(*) FROM shop_products").fetch_one(pool).await?;
            let b = sqlx::query_scalar("SELECT COUNT(*) FROM shop_filtered_products").fetch_one(pool).await?;
            let c = sqlx::query_scalar("SELECT COUNT(*) FROM shop_recommendations").fetch_one(pool).await?;
            (a, b, c)
        });
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Counts {
            products: n(a),
            filtered: n(b),
            recommendations: n(c),
        })
    }

    /// The stored join state of partition `part`: the latest change per
    /// changelog key, in the order they were written, and the part's
    /// commit version (created at 0 for a new part).
    ///
    /// # Errors
    /// [`StoreError::Sql`], [`StoreError::Corrupt`].
    pub async fn load_join_state(&self, part: i32) -> Result<StoredState> {
        let (rows, version): (Vec<(i64, String)>, i64) = on_pool!(&self.pool, pool => {
            let mut s = Stmt::new("INSERT INTO shop_join_versions (part, version) VALUES ");
            s.list([Arg::I32(Some(part)), Arg::I64(Some(0))]);
            s.push(" ON CONFLICT (part) DO NOTHING");
            bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?;
            let mut s = Stmt::new("SELECT seq, change FROM shop_join_state WHERE part = ");
            s.arg(Arg::I32(Some(part)));
            s.push(" ORDER BY seq");
            let rows = bind_args!(sqlx::query_as(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut s = Stmt::new("SELECT version FROM shop_join_versions WHERE part = ");
            s.arg(Arg::I32(Some(part)));
            let (version,): (i64,) = bind_args!(sqlx::query_as(s.sql_for(pool)), s.args)
                .fetch_one(pool)
                .await?;
            (rows, version)
        });
        let next_seq = rows.last().map_or(0, |(s, _)| s + 1);
        let changes = rows
            .iter()
            .map(|(_, c)| serde_json::from_str(c).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<_>>()?;
        Ok(StoredState {
            changes,
            next_seq,
            version,
        })
    }

    /// Persists `changes` of partition `part` in one transaction, numbered
    /// from `first_seq`: a put replaces the row of its changelog key, an
    /// evict deletes it. Only the last change per key is written (the
    /// table keeps one row per key), in multi-row statements, so a batch of
    /// many records costs a few statements. The commit is conditional on the part still being
    /// at `version` (what this replica loaded or last committed): `Ok(false)`
    /// and nothing written when another writer committed the part meanwhile,
    /// `Ok(true)` when written (the part is then at `version + 1`).
    ///
    /// # Errors
    /// [`StoreError::Sql`] (nothing is written then).
    pub async fn persist_join_changes(
        &self,
        part: i32,
        changes: &[StateChange],
        first_seq: i64,
        version: i64,
    ) -> Result<bool> {
        if changes.is_empty() {
            return Ok(true);
        }
        let part_arg = || Arg::I32(Some(part));
        let mut claim =
            Stmt::new("UPDATE shop_join_versions SET version = version + 1 WHERE part = ");
        claim.arg(part_arg());
        claim.push(" AND version = ");
        claim.arg(Arg::I64(Some(version)));
        let stmts = join_change_statements(part, changes, first_seq)?;
        let written = on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed = bind_args!(sqlx::query(claim.sql_for(pool)), claim.args)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if claimed == 1 {
                // Multi-row, of varying sizes: kept out of the statement cache.
                for s in &stmts {
                    bind_args!(sqlx::query(s.sql_for(pool)).persistent(false), s.args)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                true
            } else {
                tx.rollback().await?;
                false
            }
        });
        Ok(written)
    }
}

/// Rows per multi-row statement of [`join_change_statements`] (4
/// parameters each: far below either dialect's parameter limit).
const JOIN_ROWS_PER_STATEMENT: usize = 250;

/// The statements that write `changes` (numbered from `first_seq`) to
/// `shop_join_state`: the last change per changelog key, puts as multi-row
/// upserts, evicts as `DELETE ... IN (...)`. Keys are distinct, so no
/// statement touches a row twice.
fn join_change_statements(part: i32, changes: &[StateChange], first_seq: i64) -> Result<Vec<Stmt>> {
    let mut last: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        last.insert(c.changelog_key(), i);
    }
    let mut kept: Vec<(usize, String)> = last.into_iter().map(|(k, i)| (i, k)).collect();
    kept.sort_unstable_by_key(|(i, _)| *i);
    let (evicts, puts): (Vec<_>, Vec<_>) = kept
        .into_iter()
        .partition(|(i, _)| changes[*i].is_tombstone());
    let mut stmts = Vec::new();
    for chunk in evicts.chunks(JOIN_ROWS_PER_STATEMENT) {
        let mut s = Stmt::new("DELETE FROM shop_join_state WHERE part = ");
        s.arg(Arg::I32(Some(part)));
        s.push(" AND entry_key IN ");
        s.list(chunk.iter().map(|(_, k)| Arg::Text(Some(k.clone()))));
        stmts.push(s);
    }
    for chunk in puts.chunks(JOIN_ROWS_PER_STATEMENT) {
        let mut s = Stmt::new("INSERT INTO shop_join_state (part, entry_key, seq, change) VALUES ");
        for (n, (i, key)) in chunk.iter().enumerate() {
            if n > 0 {
                s.push(", ");
            }
            let seq = first_seq.saturating_add(i64::try_from(*i).unwrap_or(i64::MAX));
            s.list([
                Arg::I32(Some(part)),
                Arg::Text(Some(key.clone())),
                Arg::I64(Some(seq)),
                Arg::Text(Some(json(&changes[*i])?)),
            ]);
        }
        s.push(" ON CONFLICT (part, entry_key) DO UPDATE SET seq = excluded.seq, change = excluded.change");
        stmts.push(s);
    }
    Ok(stmts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves LIKE wildcards typed by a user are matched literally.
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(contains_pattern("iPhone"), "%iphone%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}

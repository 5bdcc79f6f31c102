//! The user service's tables: counts and the ids of applied events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tributary_storage::BeginWrite;

use super::sql::{bind_args, on_pool, Arg, Stmt};
use super::ChatStore;
use crate::domain::events::UserCountEvent;
use crate::error::Result;

/// One sender's message count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserCount {
    /// Sender key (`user123`, `name:Alice`).
    pub id: String,
    /// Latest display name seen.
    pub name: Option<String>,
    pub count: i64,
}

impl ChatStore {
    /// Applies a count event exactly once: the event id and the new count
    /// are written in one transaction, and an id seen before changes
    /// nothing. Returns whether the event was new.
    ///
    /// # Errors
    /// [`crate::Error::Sql`]; nothing is applied then (retry is safe).
    pub async fn apply_count_event(&self, ev: &UserCountEvent) -> Result<bool> {
        let mut mark = Stmt::new("INSERT INTO chat_applied_events (event_id, applied_at) VALUES ");
        mark.list([
            Arg::Text(Some(ev.event_id.clone())),
            Arg::I64(Some(Self::now_ms())),
        ])
        .push(" ON CONFLICT (event_id) DO NOTHING");
        let mut up = Stmt::new("INSERT INTO chat_user_counts (user_key, user_name, count) VALUES ");
        up.list([
            Arg::Text(Some(ev.user.clone())),
            Arg::Text(ev.name.clone()),
            Arg::I64(Some(ev.delta)),
        ])
        .push(
            " ON CONFLICT (user_key) DO UPDATE SET count = chat_user_counts.count + excluded.count, \
             user_name = COALESCE(excluded.user_name, chat_user_counts.user_name)",
        );
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let fresh = bind_args!(sqlx::query(mark.sql_for(pool)), mark.args)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if fresh {
                bind_args!(sqlx::query(up.sql_for(pool)), up.args).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(fresh)
        })
    }

    /// Forgets up to `batch` ids of count events applied before
    /// `applied_before` (oldest first) and returns how many were deleted.
    /// An event delivered again after its id is gone would be applied
    /// twice, so callers keep ids longer than any redelivery can take
    /// (see [`crate::consumers::prune_applied_events`]).
    ///
    /// # Errors
    /// [`crate::Error::Sql`]; nothing is deleted then.
    pub async fn prune_applied_events(
        &self,
        applied_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64> {
        let mut s = Stmt::new(
            "DELETE FROM chat_applied_events WHERE event_id IN \
             (SELECT event_id FROM chat_applied_events WHERE applied_at < ",
        );
        s.arg(Arg::I64(Some(applied_before.timestamp_millis())))
            .push(" ORDER BY applied_at LIMIT ")
            .arg(Arg::I64(Some(i64::from(batch.max(1)))))
            .push(")");
        on_pool!(&self.pool, pool => {
            Ok(bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?.rows_affected())
        })
    }

    /// How many applied-event ids are kept (for metrics and tests).
    ///
    /// # Errors
    /// [`crate::Error::Sql`].
    pub async fn applied_event_ids(&self) -> Result<i64> {
        let s = Stmt::new("SELECT COUNT(*) FROM chat_applied_events");
        on_pool!(&self.pool, pool => {
            let row = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_one(pool).await?;
            Ok(row.try_get(0)?)
        })
    }

    /// The count of one sender (0 when unknown).
    ///
    /// # Errors
    /// [`crate::Error::Sql`].
    pub async fn user_count(&self, user: &str) -> Result<UserCount> {
        let mut s =
            Stmt::new("SELECT user_key, user_name, count FROM chat_user_counts WHERE user_key = ");
        s.arg(Arg::Text(Some(user.to_owned())));
        on_pool!(&self.pool, pool => {
            let row = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_optional(pool).await?;
            Ok(match row {
                Some(r) => UserCount { id: r.try_get(0)?, name: r.try_get(1)?, count: r.try_get(2)? },
                None => UserCount { id: user.to_owned(), name: None, count: 0 },
            })
        })
    }

    /// Senders with a non-zero count, largest first (ties by id), at most
    /// `limit` (all when `None`).
    ///
    /// # Errors
    /// [`crate::Error::Sql`].
    pub async fn top_users(&self, limit: Option<u32>) -> Result<Vec<UserCount>> {
        let mut s = Stmt::new(
            "SELECT user_key, user_name, count FROM chat_user_counts WHERE count <> 0 \
             ORDER BY count DESC, user_key",
        );
        if let Some(l) = limit {
            s.push(" LIMIT ").arg(Arg::I64(Some(i64::from(l))));
        }
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(UserCount { id: r.try_get(0)?, name: r.try_get(1)?, count: r.try_get(2)? });
            }
            Ok(out)
        })
    }
}

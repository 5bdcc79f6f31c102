//! The audit service's table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::sql::{bind_args, on_pool, Arg, Stmt};
use super::ChatStore;
use crate::domain::events::{level_rank, AuditEvent};
use crate::domain::filter::{DEFAULT_TAKE, MAX_TAKE};
use crate::domain::AuditFilter;
use crate::error::{Error, Result};

/// One stored log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: String,
    pub service: String,
    pub level: String,
    pub message: String,
    pub target: String,
    /// Other fields of the event, JSON object text.
    pub fields: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: DateTime<Utc>,
}

impl ChatStore {
    /// Stores a record; a record with a known id is ignored (redelivery).
    ///
    /// # Errors
    /// [`crate::Error::Sql`].
    pub async fn insert_audit(&self, ev: &AuditEvent) -> Result<bool> {
        let mut s = Stmt::new(
            "INSERT INTO chat_audit_log (id, service, level, level_rank, message, target, fields, created_ms) VALUES ",
        );
        s.list([
            Arg::Text(Some(ev.id.clone())),
            Arg::Text(Some(ev.service.clone())),
            Arg::Text(Some(ev.level.to_ascii_uppercase())),
            Arg::I32(Some(level_rank(&ev.level).unwrap_or(2))),
            Arg::Text(Some(ev.message.clone())),
            Arg::Text(Some(ev.target.clone())),
            Arg::Text(Some(ev.fields.clone())),
            Arg::I64(Some(ev.created.timestamp_millis())),
        ])
        .push(" ON CONFLICT (id) DO NOTHING");
        on_pool!(&self.pool, pool => {
            let n = bind_args!(sqlx::query(s.sql_for(pool)), s.args).execute(pool).await?.rows_affected();
            Ok(n == 1)
        })
    }

    /// Records matching `f`, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an unknown level or bad page size,
    /// [`crate::Error::Sql`].
    pub async fn query_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let take = match f.take {
            None => DEFAULT_TAKE,
            Some(t) if (1..=MAX_TAKE).contains(&t) => t,
            Some(t) => {
                return Err(Error::InvalidRequest(format!(
                    "take must be 1..={MAX_TAKE}, got {t}"
                )))
            }
        };
        let mut s = Stmt::new(
            "SELECT id, service, level, message, target, fields, created_ms FROM chat_audit_log WHERE 1=1",
        );
        if let Some(service) = &f.service {
            s.push(" AND service = ")
                .arg(Arg::Text(Some(service.clone())));
        }
        if let Some(level) = &f.level {
            let rank = level_rank(level)
                .ok_or_else(|| Error::InvalidRequest(format!("unknown level {level:?}")))?;
            s.push(" AND level_rank >= ").arg(Arg::I32(Some(rank)));
        }
        if let Some(from) = f.from {
            s.push(" AND created_ms >= ")
                .arg(Arg::I64(Some(from.timestamp_millis())));
        }
        if let Some(to) = f.to {
            s.push(" AND created_ms <= ")
                .arg(Arg::I64(Some(to.timestamp_millis())));
        }
        s.push(" ORDER BY created_ms DESC, id LIMIT ")
            .arg(Arg::I64(Some(i64::from(take))))
            .push(" OFFSET ")
            .arg(Arg::I64(Some(i64::try_from(f.skip).unwrap_or(i64::MAX))));
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let ms: i64 = r.try_get(6)?;
                out.push(AuditRecord {
                    id: r.try_get(0)?,
                    service: r.try_get(1)?,
                    level: r.try_get(2)?,
                    message: r.try_get(3)?,
                    target: r.try_get(4)?,
                    fields: r.try_get(5)?,
                    created: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
                });
            }
            Ok(out)
        })
    }
}

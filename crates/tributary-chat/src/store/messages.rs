//! Messages: batched idempotent insert, search, count, delete, keyset scan;
//! and the outbox the count events travel through.

use std::collections::HashMap;
use tributary_runtime::outbox::{NewEvent, OutboxConnection as _};
use tributary_storage::BeginWrite;

use chrono::{NaiveDateTime, Utc};
use futures::TryStreamExt;
use sqlx::Row;

use super::sql::{bind_args, on_pool, Arg, Dialect, Stmt};
use super::ChatStore;
use crate::domain::backup_schema::DATE_FORMAT;
use crate::domain::events::UserCountEvent;
use crate::domain::filter::fts_terms;
use crate::domain::{
    chat_key, created_of, user_of, Link, Message, MessageDate, MessageFilter, MessageKind,
    SearchRequest, SortField,
};
use crate::error::Result;

/// Columns written per message, in order.
const COLUMNS: &str = "chat_key, message_id, chat_id, chat_name, kind, created, date_local, \
     date_offset, edited_local, edited_offset, from_name, from_id, forwarded_from, reply_to, \
     via_bot, text, links, media_type, action, actor, actor_id, user_key, user_name";

/// Columns read back into a [`Message`].
const SELECT: &str = "SELECT m.chat_id, m.chat_name, m.message_id, m.kind, m.date_local, \
     m.date_offset, m.edited_local, m.edited_offset, m.from_name, m.from_id, m.forwarded_from, \
     m.reply_to, m.via_bot, m.text, m.links, m.media_type, m.action, m.actor, m.actor_id \
     FROM chat_messages m";

/// What one committed batch changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Rows actually inserted (duplicates are not counted).
    pub inserted: u64,
    /// Count events written to the outbox with the rows.
    pub events: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LinkCell {
    text: String,
    href: String,
}

fn date_args(d: &Option<MessageDate>) -> (Arg, Arg) {
    (
        Arg::Text(d.map(|d| d.local.format(DATE_FORMAT).to_string())),
        Arg::I32(d.and_then(|d| d.offset_seconds)),
    )
}

fn message_args(m: &Message) -> Vec<Arg> {
    let (date, date_off) = date_args(&m.date);
    let (edited, edited_off) = date_args(&m.edited);
    let links = if m.links.is_empty() {
        None
    } else {
        let cells: Vec<LinkCell> = m
            .links
            .iter()
            .map(|l| LinkCell {
                text: l.text.clone(),
                href: l.href.clone(),
            })
            .collect();
        serde_json::to_string(&cells).ok()
    };
    let user = user_of(m);
    vec![
        Arg::Text(Some(chat_key(m))),
        Arg::I64(Some(m.id)),
        Arg::I64(m.chat_id),
        Arg::Text(Some(m.chat_name.clone())),
        Arg::Text(Some(m.kind.as_str().to_owned())),
        Arg::I64(created_of(m).map(|c| c.timestamp())),
        date,
        date_off,
        edited,
        edited_off,
        Arg::Text(m.from.clone()),
        Arg::Text(m.from_id.clone()),
        Arg::Text(m.forwarded_from.clone()),
        Arg::I64(m.reply_to),
        Arg::Text(m.via_bot.clone()),
        Arg::Text(Some(m.text.clone())),
        Arg::Text(links),
        Arg::Text(m.media_type.clone()),
        Arg::Text(m.action.clone()),
        Arg::Text(m.actor.clone()),
        Arg::Text(m.actor_id.clone()),
        Arg::Text(user.as_ref().map(|u| u.0.clone())),
        Arg::Text(user.and_then(|u| u.1)),
    ]
}

fn parse_date(local: Option<String>, offset: Option<i32>) -> Option<MessageDate> {
    let local = NaiveDateTime::parse_from_str(local.as_deref()?, DATE_FORMAT).ok()?;
    Some(match offset {
        Some(o) => MessageDate::with_offset(local, o).unwrap_or(MessageDate::naive(local)),
        None => MessageDate::naive(local),
    })
}

/// Reads one row of [`SELECT`] (any dialect).
macro_rules! row_to_message {
    ($row:expr) => {{
        let row = $row;
        let links: Option<String> = row.try_get(14)?;
        let links = links
            .and_then(|l| serde_json::from_str::<Vec<LinkCell>>(&l).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|l| Link {
                text: l.text,
                href: l.href,
            })
            .collect();
        let kind: String = row.try_get(3)?;
        Message {
            chat_id: row.try_get(0)?,
            chat_name: row.try_get(1)?,
            id: row.try_get(2)?,
            kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Message),
            date: parse_date(row.try_get(4)?, row.try_get(5)?),
            edited: parse_date(row.try_get(6)?, row.try_get(7)?),
            from: row.try_get(8)?,
            from_id: row.try_get(9)?,
            forwarded_from: row.try_get(10)?,
            reply_to: row.try_get(11)?,
            via_bot: row.try_get(12)?,
            text: row.try_get(13)?,
            links,
            media_type: row.try_get(15)?,
            action: row.try_get(16)?,
            actor: row.try_get(17)?,
            actor_id: row.try_get(18)?,
        }
    }};
}

/// Appends ` WHERE ...` for `f`.
fn push_filter(s: &mut Stmt, f: &MessageFilter, dialect: Dialect) {
    s.push(" WHERE 1=1");
    if let Some(id) = f.id {
        s.push(" AND m.message_id = ").arg(Arg::I64(Some(id)));
    }
    if let Some(min) = f.min_created {
        // Stored with second precision: round a fractional bound inwards.
        let secs = min.timestamp() + i64::from(min.timestamp_subsec_nanos() > 0);
        s.push(" AND m.created >= ").arg(Arg::I64(Some(secs)));
    }
    if let Some(max) = f.max_created {
        s.push(" AND m.created <= ")
            .arg(Arg::I64(Some(max.timestamp())));
    }
    if let Some(text) = &f.text {
        match dialect {
            Dialect::Postgres => s.push(" AND strpos(m.text, "),
            Dialect::Sqlite => s.push(" AND instr(m.text, "),
        };
        s.arg(Arg::Text(Some(text.clone()))).push(") > 0");
    }
    if let Some(q) = &f.query {
        let terms = fts_terms(q);
        match dialect {
            Dialect::Postgres => {
                s.push(" AND to_tsvector('simple', m.text) @@ plainto_tsquery('simple', ")
                    .arg(Arg::Text(Some(terms.join(" "))))
                    .push(")");
            }
            Dialect::Sqlite => {
                // Each term quoted: FTS5 syntax in user input stays literal.
                let fts: Vec<String> = terms
                    .iter()
                    .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                    .collect();
                s.push(" AND m.seq IN (SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH ")
                    .arg(Arg::Text(Some(fts.join(" "))))
                    .push(")");
            }
        }
    }
    if !f.user_ids.is_empty() {
        s.push(" AND m.user_key IN ")
            .list(f.user_ids.iter().map(|u| Arg::Text(Some(u.clone()))));
    }
    if !f.chat_ids.is_empty() {
        s.push(" AND (m.chat_id IN ")
            .list(f.chat_ids.iter().map(|c| Arg::I64(Some(*c))))
            .push(" OR m.chat_key IN (SELECT chat_key FROM chat_chats WHERE chat_id IN ")
            .list(f.chat_ids.iter().map(|c| Arg::I64(Some(*c))))
            .push("))");
    }
    if !f.chat_names.is_empty() {
        s.push(" AND m.chat_key IN ").list(
            f.chat_names
                .iter()
                .map(|n| Arg::Text(Some(format!("name:{}", n.trim())))),
        );
    }
}

fn push_order(s: &mut Stmt, req: &SearchRequest, dialect: Dialect) {
    let collate = match dialect {
        // Byte order on both backends, whatever the server's locale.
        Dialect::Postgres => " COLLATE \"C\"",
        Dialect::Sqlite => "",
    };
    s.push(" ORDER BY ");
    for sort in &req.sorts {
        let (col, text) = match sort.field {
            SortField::Created => ("m.created", false),
            SortField::Id => ("m.message_id", false),
            SortField::Chat => ("m.chat_key", true),
            SortField::User => ("m.user_key", true),
        };
        s.push(col);
        if text {
            s.push(collate);
        }
        s.push(if sort.desc {
            " DESC NULLS LAST, "
        } else {
            " ASC NULLS FIRST, "
        });
    }
    s.push("m.chat_key");
    s.push(collate);
    s.push(", m.message_id");
}

fn outbox_rows(deltas: HashMap<String, (Option<String>, i64)>) -> Vec<(String, String)> {
    deltas
        .into_iter()
        .filter(|(_, (_, d))| *d != 0)
        .filter_map(|(user, (name, delta))| {
            let ev = UserCountEvent {
                event_id: uuid::Uuid::new_v4().to_string(),
                user: user.clone(),
                name,
                delta,
            };
            serde_json::to_string(&ev).ok().map(|p| (user, p))
        })
        .collect()
}

/// The outbox namespace of this system.
pub const OUTBOX_NAMESPACE: &str = "chat";

/// The `kind` of count events in the shared outbox.
const COUNT_EVENT_KIND: &str = "UserCountEvent";

fn new_events(rows: &[(String, String)]) -> Vec<NewEvent<'_>> {
    rows.iter()
        .map(|(key, payload)| NewEvent {
            key: key.as_bytes(),
            kind: COUNT_EVENT_KIND,
            payload: payload.as_bytes(),
        })
        .collect()
}

impl ChatStore {
    /// Inserts `batch` in one transaction, skipping messages whose (chat,
    /// id) is stored already, and writes one count event per sender of the
    /// rows actually inserted to the outbox in the same transaction.
    ///
    /// # Errors
    /// [`crate::Error::Sql`]; nothing is written then.
    pub async fn insert_batch(&self, batch: &[Message]) -> Result<InsertOutcome> {
        if batch.is_empty() {
            return Ok(InsertOutcome::default());
        }
        // Chats of the batch, one row per key (an upsert may not touch a row twice).
        let mut chats: Vec<(String, String, Option<i64>)> = Vec::new();
        for m in batch {
            let key = chat_key(m);
            match chats.iter_mut().find(|c| c.0 == key) {
                Some(c) => c.2 = c.2.or(m.chat_id),
                None => chats.push((key, m.chat_name.trim().to_owned(), m.chat_id)),
            }
        }
        let mut chat_stmt =
            Stmt::new("INSERT INTO chat_chats (chat_key, chat_name, chat_id) VALUES ");
        for (i, (key, name, id)) in chats.iter().enumerate() {
            if i > 0 {
                chat_stmt.push(", ");
            }
            chat_stmt.list([
                Arg::Text(Some(key.clone())),
                Arg::Text(Some(name.clone())),
                Arg::I64(*id),
            ]);
        }
        chat_stmt.push(
            " ON CONFLICT (chat_key) DO UPDATE SET chat_id = COALESCE(chat_chats.chat_id, excluded.chat_id)",
        );
        let mut ins = Stmt::new(&format!("INSERT INTO chat_messages ({COLUMNS}) VALUES "));
        for (i, m) in batch.iter().enumerate() {
            if i > 0 {
                ins.push(", ");
            }
            ins.list(message_args(m));
        }
        ins.push(" ON CONFLICT (chat_key, message_id) DO NOTHING RETURNING user_key, user_name");

        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            bind_args!(sqlx::query(chat_stmt.sql_for(pool)), chat_stmt.args)
                .execute(&mut *tx)
                .await?;
            let rows = bind_args!(sqlx::query(ins.sql_for(pool)), ins.args)
                .fetch_all(&mut *tx)
                .await?;
            let inserted = rows.len() as u64;
            let mut deltas: HashMap<String, (Option<String>, i64)> = HashMap::new();
            for row in rows {
                let user: Option<String> = row.try_get(0)?;
                let name: Option<String> = row.try_get(1)?;
                if let Some(user) = user {
                    let e = deltas.entry(user).or_insert((None, 0));
                    e.1 += 1;
                    if name.is_some() {
                        e.0 = name;
                    }
                }
            }
            let events = outbox_rows(deltas);
            if !events.is_empty() {
                (*tx).enqueue_events(OUTBOX_NAMESPACE, &new_events(&events)).await?;
            }
            tx.commit().await?;
            Ok(InsertOutcome { inserted, events: events.len() as u64 })
        })
    }

    /// A page of messages matching the request, in its order.
    ///
    /// # Errors
    /// [`crate::Error::InvalidRequest`] for a bad filter or page size,
    /// [`crate::Error::Sql`].
    pub async fn search(&self, req: &SearchRequest) -> Result<Vec<Message>> {
        req.filter.validate()?;
        let take = req.take()?;
        let dialect = self.pool.dialect();
        let mut s = Stmt::new(SELECT);
        push_filter(&mut s, &req.filter, dialect);
        push_order(&mut s, req, dialect);
        s.push(" LIMIT ")
            .arg(Arg::I64(Some(i64::from(take))))
            .push(" OFFSET ")
            .arg(Arg::I64(Some(i64::try_from(req.skip).unwrap_or(i64::MAX))));
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(row_to_message!(row));
            }
            Ok(out)
        })
    }

    /// Up to `limit` messages matching `filter` whose (chat key, id) comes
    /// after `after`, in (chat key, id) order: a keyset page for streaming
    /// exports. Returns the messages and the key of the last one.
    ///
    /// # Errors
    /// As [`ChatStore::search`].
    pub async fn scan(
        &self,
        filter: &MessageFilter,
        after: Option<&(String, i64)>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        filter.validate()?;
        let dialect = self.pool.dialect();
        let mut s = Stmt::new(SELECT);
        push_filter(&mut s, filter, dialect);
        if let Some((key, id)) = after {
            s.push(" AND (m.chat_key, m.message_id) > (")
                .arg(Arg::Text(Some(key.clone())))
                .push(", ")
                .arg(Arg::I64(Some(*id)))
                .push(")");
        }
        s.push(" ORDER BY m.chat_key, m.message_id LIMIT ")
            .arg(Arg::I64(Some(i64::from(limit))));
        on_pool!(&self.pool, pool => {
            let rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(row_to_message!(row));
            }
            Ok(out)
        })
    }

    /// How many messages match `filter`.
    ///
    /// # Errors
    /// As [`ChatStore::search`].
    pub async fn count(&self, filter: &MessageFilter) -> Result<u64> {
        filter.validate()?;
        let mut s = Stmt::new("SELECT COUNT(*) FROM chat_messages m");
        push_filter(&mut s, filter, self.pool.dialect());
        on_pool!(&self.pool, pool => {
            let n: i64 = bind_args!(sqlx::query_scalar(s.sql_for(pool)), s.args).fetch_one(pool).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// Deletes the messages matching `filter` and, in the same transaction,
    /// writes the negative count events for the rows actually deleted.
    /// Returns the number deleted.
    ///
    /// # Errors
    /// As [`ChatStore::search`]; nothing is deleted then.
    pub async fn delete(&self, filter: &MessageFilter) -> Result<u64> {
        filter.validate()?;
        let mut s = Stmt::new("DELETE FROM chat_messages AS m");
        push_filter(&mut s, filter, self.pool.dialect());
        s.push(" RETURNING user_key, user_name");
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let mut deleted = 0u64;
            let mut deltas: HashMap<String, (Option<String>, i64)> = HashMap::new();
            {
                let mut rows = bind_args!(sqlx::query(s.sql_for(pool)), s.args).fetch(&mut *tx);
                while let Some(row) = rows.try_next().await? {
                    deleted += 1;
                    let user: Option<String> = row.try_get(0)?;
                    let name: Option<String> = row.try_get(1)?;
                    if let Some(user) = user {
                        let e = deltas.entry(user).or_insert((None, 0));
                        e.1 -= 1;
                        if name.is_some() {
                            e.0 = name;
                        }
                    }
                }
            }
            let events = outbox_rows(deltas);
            if !events.is_empty() {
                (*tx).enqueue_events(OUTBOX_NAMESPACE, &new_events(&events)).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// Per-sender counts computed from the messages themselves (the truth
    /// the user service's counts must equal), largest first.
    ///
    /// # Errors
    /// [`crate::Error::Sql`].
    pub async fn archive_user_counts(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT user_key, COUNT(*) FROM chat_messages WHERE user_key IS NOT NULL \
                   GROUP BY user_key ORDER BY 2 DESC, 1";
        on_pool!(&self.pool, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?));
            }
            Ok(out)
        })
    }

    /// Current time in ms (helper for tables that record it).
    pub(crate) fn now_ms() -> i64 {
        Utc::now().timestamp_millis()
    }
}

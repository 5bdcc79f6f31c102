//! What a search, count, delete or backup selects, and in which order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest page a search returns.
pub const MAX_TAKE: u32 = 10_000;
/// Page size when `take` is not given.
pub const DEFAULT_TAKE: u32 = 100;

/// Selects messages. Every field that is set must hold (AND); an empty
/// list or `None` does not restrict. Unlike the seed, `max_created` works
/// without `min_created`, and delete honours the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MessageFilter {
    /// Telegram message id (unique only within one chat).
    pub id: Option<i64>,
    /// Sent at or after this instant (see [`super::keys::created_of`]).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub min_created: Option<DateTime<Utc>>,
    /// Sent at or before this instant.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub max_created: Option<DateTime<Utc>>,
    /// Case-sensitive substring of the text.
    pub text: Option<String>,
    /// Full-text query: every word must occur (PostgreSQL `simple`
    /// tsvector, SQLite FTS5 `unicode61`; no stemming on either).
    pub query: Option<String>,
    /// Sender keys (`user123`, `channel5`, or `name:Alice` for senders
    /// known only by name, as in HTML exports).
    pub user_ids: Vec<String>,
    /// Telegram chat ids. A chat imported only from HTML matches once a
    /// JSON export of it (which carries the id) was imported too.
    pub chat_ids: Vec<i64>,
    /// Chat names (exact).
    pub chat_names: Vec<String>,
}

impl MessageFilter {
    /// True when nothing is restricted (selects the whole archive).
    pub fn is_empty(&self) -> bool {
        self == &MessageFilter::default()
    }

    /// Rejects filters that can only be mistakes (min after max, empty
    /// full-text query).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if let (Some(a), Some(b)) = (self.min_created, self.max_created) {
            if a > b {
                return Err(Error::InvalidRequest(format!(
                    "min_created {a} is after max_created {b}"
                )));
            }
        }
        if let Some(q) = &self.query {
            if fts_terms(q).is_empty() {
                return Err(Error::InvalidRequest(
                    "query has no words to search for".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The words of a full-text query, as the backends tokenize them: runs of
/// letters and digits.
pub fn fts_terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Sortable fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Send time (messages without a date sort first ascending).
    Created,
    /// Telegram message id.
    Id,
    /// Chat key.
    Chat,
    /// Sender key.
    User,
}

/// One sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    pub field: SortField,
    /// Descending when true.
    #[serde(default)]
    pub desc: bool,
}

/// A page of a search. Ties are always broken by (chat, message id), so
/// paging with `skip` is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SearchRequest {
    pub filter: MessageFilter,
    /// Sort keys, most significant first.
    pub sorts: Vec<Sort>,
    /// Page size, 1..=[`MAX_TAKE`]; [`DEFAULT_TAKE`] when absent.
    #[schema(minimum = 1, maximum = 10000)]
    pub take: Option<u32>,
    /// Messages to skip.
    pub skip: u64,
}

impl SearchRequest {
    /// The effective page size.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when `take` is 0 or above [`MAX_TAKE`].
    pub fn take(&self) -> Result<u32> {
        match self.take {
            None => Ok(DEFAULT_TAKE),
            Some(t) if (1..=MAX_TAKE).contains(&t) => Ok(t),
            Some(t) => Err(Error::InvalidRequest(format!(
                "take must be 1..={MAX_TAKE}, got {t}"
            ))),
        }
    }
}

/// Which audit records a query selects (the query string of
/// `GET /api/chat/audit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, default)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Service (the crate that logged, e.g. `tributary_chat`).
    pub service: Option<String>,
    /// Minimum severity: `error` > `warn` > `info` > `debug` > `trace`.
    pub level: Option<String>,
    /// Logged at or after.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<DateTime<Utc>>,
    /// Logged at or before.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<DateTime<Utc>>,
    /// Page size (default 100, at most 10,000), newest first.
    #[param(minimum = 1, maximum = 10000)]
    pub take: Option<u32>,
    /// Records to skip.
    pub skip: u64,
}

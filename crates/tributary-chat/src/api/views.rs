//! JSON shapes of the REST API.

use serde::{Deserialize, Serialize};

use crate::domain::backup_schema::DATE_FORMAT;
use crate::domain::{chat_key, created_of, user_of, Message};

/// A link inside a message's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkView {
    pub text: String,
    pub href: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Chat key (identity with `id`): `name:<chat name>` or `id:<chat id>`.
    pub chat: String,
    pub chat_id: Option<i64>,
    pub chat_name: String,
    pub id: i64,
    /// `message` or `service`.
    #[schema(examples("message", "service"))]
    pub kind: String,
    /// Send time as written in the export (local, `YYYY-MM-DDTHH:MM:SS`).
    pub date: Option<String>,
    /// UTC offset of `date` in seconds, when known.
    pub date_offset: Option<i32>,
    /// Send time as an instant (a zone-less date is taken as UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    pub edited: Option<String>,
    pub edited_offset: Option<i32>,
    pub from: Option<String>,
    pub from_id: Option<String>,
    /// Sender key the user counts use.
    pub user: Option<String>,
    pub forwarded_from: Option<String>,
    pub reply_to: Option<i64>,
    pub via_bot: Option<String>,
    pub text: String,
    pub links: Vec<LinkView>,
    pub media_type: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub actor_id: Option<String>,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            chat: chat_key(m),
            chat_id: m.chat_id,
            chat_name: m.chat_name.clone(),
            id: m.id,
            kind: m.kind.as_str().to_owned(),
            date: m.date.map(|d| d.local.format(DATE_FORMAT).to_string()),
            date_offset: m.date.and_then(|d| d.offset_seconds),
            created: created_of(m),
            edited: m.edited.map(|d| d.local.format(DATE_FORMAT).to_string()),
            edited_offset: m.edited.and_then(|d| d.offset_seconds),
            from: m.from.clone(),
            from_id: m.from_id.clone(),
            user: user_of(m).map(|u| u.0),
            forwarded_from: m.forwarded_from.clone(),
            reply_to: m.reply_to,
            via_bot: m.via_bot.clone(),
            text: m.text.clone(),
            links: m
                .links
                .iter()
                .map(|l| LinkView {
                    text: l.text.clone(),
                    href: l.href.clone(),
                })
                .collect(),
            media_type: m.media_type.clone(),
            action: m.action.clone(),
            actor: m.actor.clone(),
            actor_id: m.actor_id.clone(),
        }
    }
}

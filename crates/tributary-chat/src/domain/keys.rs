//! Identity rules: which chat and which sender a message belongs to.

use chrono::{DateTime, Utc};

use super::{Message, MessageKind};

/// The chat a message is stored under; with the message id it is the
/// message's identity.
///
/// Decision: HTML exports carry no chat id, only the chat's name in the page
/// header, while JSON exports carry both. To make a JSON and an HTML export
/// of the same chat collide (one copy), the key is the chat **name**
/// (trimmed): `name:<name>`. Only a chat without a name falls back to its id
/// (`id:<id>`), and a chat with neither to `unknown`. The price: two
/// different chats with the same name in one archive share a key, and
/// messages with equal ids collide (the first import wins). The Telegram
/// chat id is still stored and searchable ([`super::MessageFilter::chat_ids`]).
pub fn chat_key(m: &Message) -> String {
    let name = m.chat_name.trim();
    if !name.is_empty() {
        format!("name:{name}")
    } else if let Some(id) = m.chat_id {
        format!("id:{id}")
    } else {
        "unknown".to_owned()
    }
}

/// The sender a message counts for, with a display name.
///
/// Decision: only regular messages count (service notices such as "joined"
/// are not messages a person wrote). The key is the normalized `from_id`
/// (`user123`) when the export has it; HTML exports have no ids, so their
/// senders are keyed by name (`name:Alice`). A message with no sender at all
/// counts for nobody.
pub fn user_of(m: &Message) -> Option<(String, Option<String>)> {
    if m.kind != MessageKind::Message {
        return None;
    }
    match (&m.from_id, &m.from) {
        (Some(id), name) => Some((id.clone(), name.clone())),
        (None, Some(name)) => Some((format!("name:{name}"), Some(name.clone()))),
        (None, None) => None,
    }
}

/// The instant a message was sent, used by `min_created`/`max_created` and
/// sorting. Decision: a date without a zone (old exports) is taken as UTC.
pub fn created_of(m: &Message) -> Option<DateTime<Utc>> {
    let d = m.date?;
    d.utc().or_else(|| Some(d.local.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves JSON (id + name) and HTML (name only) messages of one chat get one key.
    #[test]
    fn json_and_html_share_a_chat_key() {
        let mut json = Message::new("Family ", 1, MessageKind::Message);
        json.chat_id = Some(42);
        let html = Message::new("Family", 1, MessageKind::Message);
        assert_eq!(chat_key(&json), chat_key(&html));
        let mut unnamed = Message::new("", 1, MessageKind::Message);
        unnamed.chat_id = Some(7);
        assert_eq!(chat_key(&unnamed), "id:7");
    }

    // Proves service messages count for nobody and HTML senders are keyed by name.
    #[test]
    fn user_keys() {
        let mut m = Message::new("c", 1, MessageKind::Message);
        m.from = Some("Alice".into());
        assert_eq!(user_of(&m).map(|u| u.0), Some("name:Alice".into()));
        m.from_id = Some("user1".into());
        assert_eq!(user_of(&m).map(|u| u.0), Some("user1".into()));
        m.kind = MessageKind::Service;
        assert_eq!(user_of(&m), None);
    }
}

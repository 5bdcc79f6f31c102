//! Column layout of our own CSV backup (what `ExportToDir{CSV}` writes and
//! what import reads back).
//!
//! Format: RFC 4180 (comma separator, `"` quoting, CRLF or LF line ends),
//! UTF-8, one header row equal to [`COLUMNS`] in this order, then one
//! record per message. Every [`Message`] field has a column:
//!
//! | column | content |
//! |---|---|
//! | `chat_id` | integer, empty if unknown |
//! | `chat_name` | text |
//! | `message_id` | integer, required |
//! | `kind` | `message` or `service` |
//! | `date` | local time `YYYY-MM-DDTHH:MM:SS`, empty if unknown |
//! | `date_offset` | `+HH:MM`/`-HH:MM`, empty if the zone is unknown |
//! | `edited`, `edited_offset` | same as `date`, `date_offset` |
//! | `from`, `from_id`, `forwarded_from` | text, empty if absent |
//! | `reply_to` | integer, empty if absent |
//! | `via_bot`, `text` | text (`text` keeps its line breaks) |
//! | `links` | JSON array of `{"text":..,"href":..}`, empty if none |
//! | `media_type`, `action`, `actor`, `actor_id` | text, empty if absent |
//!
//! An empty cell means "absent" (the parsers normalize empty strings to
//! absent as well, so nothing is lost).

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::message::{format_offset, parse_offset};
use super::{Link, Message, MessageDate, MessageKind};

/// The header row, in order.
pub const COLUMNS: [&str; 19] = [
    "chat_id",
    "chat_name",
    "message_id",
    "kind",
    "date",
    "date_offset",
    "edited",
    "edited_offset",
    "from",
    "from_id",
    "forwarded_from",
    "reply_to",
    "via_bot",
    "text",
    "links",
    "media_type",
    "action",
    "actor",
    "actor_id",
];

/// Local-time format of the `date` and `edited` columns.
pub const DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

#[derive(Serialize, Deserialize)]
struct LinkCell {
    text: String,
    href: String,
}

/// Renders a message as one backup record (cells in [`COLUMNS`] order).
pub fn to_record(m: &Message) -> Vec<String> {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let date = |d: &Option<MessageDate>| {
        d.map(|d| d.local.format(DATE_FORMAT).to_string())
            .unwrap_or_default()
    };
    let offset = |d: &Option<MessageDate>| {
        d.and_then(|d| d.offset_seconds)
            .map(format_offset)
            .unwrap_or_default()
    };
    let links = if m.links.is_empty() {
        String::new()
    } else {
        let cells: Vec<LinkCell> = m
            .links
            .iter()
            .map(|l| LinkCell {
                text: l.text.clone(),
                href: l.href.clone(),
            })
            .collect();
        // Serializing plain strings into JSON cannot fail.
        serde_json::to_string(&cells).unwrap_or_default()
    };
    vec![
        m.chat_id.map(|v| v.to_string()).unwrap_or_default(),
        m.chat_name.clone(),
        m.id.to_string(),
        m.kind.as_str().to_owned(),
        date(&m.date),
        offset(&m.date),
        date(&m.edited),
        offset(&m.edited),
        opt(&m.from),
        opt(&m.from_id),
        opt(&m.forwarded_from),
        m.reply_to.map(|v| v.to_string()).unwrap_or_default(),
        opt(&m.via_bot),
        m.text.clone(),
        links,
        opt(&m.media_type),
        opt(&m.action),
        opt(&m.actor),
        opt(&m.actor_id),
    ]
}

/// Parses one backup record (cells in [`COLUMNS`] order). The error is a
/// human-readable reason naming the column.
pub fn from_record<S: AsRef<str>>(cells: &[S]) -> Result<Message, String> {
    if cells.len() != COLUMNS.len() {
        return Err(format!(
            "expected {} columns, found {}",
            COLUMNS.len(),
            cells.len()
        ));
    }
    let cell = |i: usize| cells[i].as_ref();
    let opt = |i: usize| {
        let s = cell(i);
        (!s.is_empty()).then(|| s.to_owned())
    };
    let int = |i: usize| -> Result<Option<i64>, String> {
        let s = cell(i).trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("column {}: not an integer: {s:?}", COLUMNS[i]))
    };
    let date = |i: usize| -> Result<Option<MessageDate>, String> {
        let s = cell(i).trim();
        if s.is_empty() {
            return Ok(None);
        }
        let local = NaiveDateTime::parse_from_str(s, DATE_FORMAT)
            .map_err(|e| format!("column {}: bad date {s:?}: {e}", COLUMNS[i]))?;
        let off = cell(i + 1).trim();
        if off.is_empty() {
            return Ok(Some(MessageDate::naive(local)));
        }
        let secs = parse_offset(off)
            .ok_or_else(|| format!("column {}: bad offset {off:?}", COLUMNS[i + 1]))?;
        MessageDate::with_offset(local, secs)
            .map(Some)
            .ok_or_else(|| format!("column {}: offset out of range", COLUMNS[i + 1]))
    };
    let id = int(2)?.ok_or_else(|| "column message_id: empty".to_owned())?;
    let kind = MessageKind::parse(cell(3))
        .ok_or_else(|| format!("column kind: expected message|service, got {:?}", cell(3)))?;
    let links = if cell(14).trim().is_empty() {
        Vec::new()
    } else {
        let parsed: Vec<LinkCell> = serde_json::from_str(cell(14))
            .map_err(|e| format!("column links: not a JSON list of links: {e}"))?;
        parsed
            .into_iter()
            .map(|l| Link {
                text: l.text,
                href: l.href,
            })
            .collect()
    };
    Ok(Message {
        chat_id: int(0)?,
        chat_name: cell(1).to_owned(),
        id,
        kind,
        date: date(4)?,
        edited: date(6)?,
        from: opt(8),
        from_id: opt(9),
        forwarded_from: opt(10),
        reply_to: int(11)?,
        via_bot: opt(12),
        text: cell(13).to_owned(),
        links,
        media_type: opt(15),
        action: opt(16),
        actor: opt(17),
        actor_id: opt(18),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a fully populated message survives to_record/from_record.
    #[test]
    fn record_roundtrip() {
        let local = NaiveDateTime::parse_from_str("2021-01-11T14:22:33", DATE_FORMAT)
            .expect("valid literal");
        let mut m = Message::new("Chat, \"quoted\"", 5, MessageKind::Message);
        m.chat_id = Some(-100);
        m.date = MessageDate::with_offset(local, -3600);
        m.edited = Some(MessageDate::naive(local));
        m.from = Some("Alice".into());
        m.from_id = Some("user1".into());
        m.reply_to = Some(4);
        m.text = "line1\nline2, \"x\"".into();
        m.links = vec![Link {
            text: "t".into(),
            href: "https://e.x/?a=1&b=2".into(),
        }];
        m.media_type = Some("photo".into());
        let back = from_record(&to_record(&m)).expect("roundtrip");
        assert_eq!(back, m);
    }

    // Proves a record with a bad column is rejected with the column named.
    #[test]
    fn bad_cells_are_named() {
        let mut cells = to_record(&Message::new("c", 1, MessageKind::Message));
        cells[11] = "x".into();
        let err = from_record(&cells).expect_err("bad reply_to");
        assert!(err.contains("reply_to"), "{err}");
    }
}

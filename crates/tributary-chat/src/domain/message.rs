//! One chat message as parsed from any input format.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// Whether a message was written by someone or is a service notice
/// ("Alice pinned a message", "Bob joined the group", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Message,
    Service,
}

impl MessageKind {
    /// The name used by Telegram's JSON and by our backups.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Service => "service",
        }
    }

    /// Parses `"message"` / `"service"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "message" => Some(MessageKind::Message),
            "service" => Some(MessageKind::Service),
            _ => None,
        }
    }
}

/// A timestamp as Telegram Desktop wrote it: the wall-clock time of the
/// exporting machine, plus the UTC offset when the export carries it.
///
/// Decision: we keep the local time exactly as written and the offset as a
/// separate, optional part, instead of converting to UTC, because old
/// exports (JSON before 2022 without `date_unixtime`, old HTML without
/// `UTC+HH:MM`) have no zone at all and must not be silently shifted. When
/// the offset is known, [`MessageDate::utc`] gives the instant. For JSON with
/// `date_unixtime` the offset is derived as `date - date_unixtime`, so JSON
/// and HTML exports of the same chat yield equal values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageDate {
    /// Local wall-clock time as written in the export.
    pub local: NaiveDateTime,
    /// Offset of `local` from UTC in seconds (`local = utc + offset`); `None`
    /// when the export does not say (old exports).
    pub offset_seconds: Option<i32>,
}

impl MessageDate {
    /// A date without a known zone.
    pub fn naive(local: NaiveDateTime) -> Self {
        MessageDate {
            local,
            offset_seconds: None,
        }
    }

    /// A date with its UTC offset; `None` if the offset is out of range
    /// (more than a day either way).
    pub fn with_offset(local: NaiveDateTime, offset_seconds: i32) -> Option<Self> {
        FixedOffset::east_opt(offset_seconds)?;
        Some(MessageDate {
            local,
            offset_seconds: Some(offset_seconds),
        })
    }

    /// Builds from the local time and the epoch seconds the export gave for
    /// the same instant (JSON `date` + `date_unixtime`). Falls back to a
    /// zone-less date if the two disagree by a day or more.
    pub fn from_local_and_unix(local: NaiveDateTime, unix: i64) -> Self {
        let diff = local.and_utc().timestamp().saturating_sub(unix);
        i32::try_from(diff)
            .ok()
            .and_then(|d| Self::with_offset(local, d))
            .unwrap_or(Self::naive(local))
    }

    /// The instant in UTC, when the offset is known.
    pub fn utc(&self) -> Option<DateTime<Utc>> {
        let offset = FixedOffset::east_opt(self.offset_seconds?)?;
        offset
            .from_local_datetime(&self.local)
            .single()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The offset formatted as `+HH:MM` / `-HH:MM`.
    pub fn offset_string(&self) -> Option<String> {
        self.offset_seconds.map(format_offset)
    }
}

/// Formats seconds east of UTC as `+HH:MM` (seconds are dropped).
pub(crate) fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// Parses `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH` into seconds east of UTC.
pub(crate) fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.is_empty() || digits.len() > 4 {
        return None;
    }
    let (h, m) = if digits.len() <= 2 {
        (digits.parse::<i32>().ok()?, 0)
    } else {
        let (h, m) = digits.split_at(digits.len() - 2);
        (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?)
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// A link inside a message's text: the visible text and where it points.
///
/// Decision: the text of a message is kept plain (line breaks as `\n`), and
/// links are kept beside it as (text, href) pairs, in order. Other
/// formatting (bold, code, mentions without a URL, hashtags) is dropped to
/// plain text. JSON `link` entities (a bare URL) get `href = text`, `email`
/// gets `mailto:`, `phone` gets `tel:`, `text_link` its `href`, `mention`
/// `https://t.me/<name>`. HTML anchors with an empty or `#` href are not
/// links.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    pub text: String,
    pub href: String,
}

/// One message of one chat, in any input format.
///
/// Absent values are `None` (empty strings are normalized to `None`, the
/// way Telegram's writer omits empty values). What each format can carry:
/// HTML has no chat id, user ids, edit dates, actions or actors, and no
/// dates for service messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Telegram's chat id (JSON); `None` for HTML exports, which do not
    /// carry it — then the chat is known by `chat_name` only.
    pub chat_id: Option<i64>,
    /// Chat name (JSON `name`, HTML page header). Empty if unknown.
    pub chat_name: String,
    /// Telegram's message id, unique within one chat.
    pub id: i64,
    pub kind: MessageKind,
    /// When it was sent; `None` only where the format has no date (HTML
    /// service messages).
    pub date: Option<MessageDate>,
    /// When it was last edited (JSON only).
    pub edited: Option<MessageDate>,
    /// Sender's display name (JSON `from`, HTML `from_name`, inherited by
    /// "joined" HTML messages).
    pub from: Option<String>,
    /// Sender id normalized to `user123` / `channel123` / `chat123` (old
    /// exports' bare numbers become `user<N>`); see [`normalize_from_id`].
    pub from_id: Option<String>,
    /// Name of the original author of a forwarded message.
    pub forwarded_from: Option<String>,
    /// Id of the message this one replies to (same chat).
    pub reply_to: Option<i64>,
    /// `@username` of the inline bot the message was sent via.
    pub via_bot: Option<String>,
    /// Plain text, line breaks kept as `\n`.
    pub text: String,
    /// Links inside `text`, in order.
    pub links: Vec<Link>,
    /// Media kind: `photo`, `video_file`, `animation`, `sticker`,
    /// `voice_message`, `audio_file`, `video_message`, `file`, `location`,
    /// `contact`, `poll`, `game`, `invoice`.
    pub media_type: Option<String>,
    /// Service messages: Telegram's action name (`pin_message`,
    /// `invite_members`, ...). JSON only.
    pub action: Option<String>,
    /// Service messages: who did it (JSON `actor`).
    pub actor: Option<String>,
    /// Service messages: the actor's id, normalized like `from_id`.
    pub actor_id: Option<String>,
}

impl Message {
    /// An empty message of the given chat, id and kind; the rest unset.
    pub fn new(chat_name: impl Into<String>, id: i64, kind: MessageKind) -> Self {
        Message {
            chat_id: None,
            chat_name: chat_name.into(),
            id,
            kind,
            date: None,
            edited: None,
            from: None,
            from_id: None,
            forwarded_from: None,
            reply_to: None,
            via_bot: None,
            text: String::new(),
            links: Vec::new(),
            media_type: None,
            action: None,
            actor: None,
            actor_id: None,
        }
    }
}

/// Normalizes a sender id: `"user123"`, `"channel5"`, `"chat7"` stay as they
/// are; a bare number (exports older than 2021 wrote `from_id: 123`) becomes
/// `"user123"` — old exports only wrote user ids there. Anything else is
/// kept verbatim; empty becomes `None`.
pub fn normalize_from_id(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("user{raw}"));
    }
    Some(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves offsets format and parse back, including negative ones.
    #[test]
    fn offset_roundtrip() {
        for s in [0, 3 * 3600, -(5 * 3600 + 30 * 60), 14 * 3600] {
            assert_eq!(parse_offset(&format_offset(s)), Some(s));
        }
        assert_eq!(parse_offset("+0300"), Some(10800));
        assert_eq!(parse_offset("x"), None);
        assert_eq!(parse_offset("+99:00"), None);
    }

    // Proves a JSON date plus unixtime yields the offset and the UTC instant.
    #[test]
    fn local_and_unix_give_offset() {
        let local = NaiveDateTime::parse_from_str("2021-01-11 14:22:33", "%Y-%m-%d %H:%M:%S")
            .expect("valid literal");
        let d = MessageDate::from_local_and_unix(local, 1_610_364_153);
        assert_eq!(d.offset_seconds, Some(3 * 3600));
        assert_eq!(d.utc().map(|u| u.timestamp()), Some(1_610_364_153));
    }

    // Proves numeric sender ids from old exports get the `user` prefix.
    #[test]
    fn from_id_normalization() {
        assert_eq!(normalize_from_id("123").as_deref(), Some("user123"));
        assert_eq!(normalize_from_id("channel9").as_deref(), Some("channel9"));
        assert_eq!(normalize_from_id(""), None);
    }
}

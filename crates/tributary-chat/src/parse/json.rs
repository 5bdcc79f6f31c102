//! Streaming reader of Telegram Desktop's `result.json`.
//!
//! The document is walked with serde visitors, never held whole: the root
//! object (single chat `{name, type, id, messages}` or full account
//! `{..., chats: {list: [...]}, left_chats: {list: [...]}}`) is visited key
//! by key, each chat's `messages` array element by element, and each
//! message is handed to the sink as soon as it is read. Unknown keys
//! (`personal_information`, `contacts`, `text_entities`, ...) are skipped
//! without being stored. Peak memory is one message plus the reader's
//! buffer.
//!
//! Every message field is read leniently (any JSON value is accepted and
//! judged afterwards), so a message with odd values is skipped and reported
//! on its own, while a syntax error stops the file with its line and column.
//!
//! Decision: chat `name`/`id` are taken as known when the `messages` key is
//! reached; Telegram always writes them first. A file that puts them after
//! `messages` yields messages with an empty chat name / no chat id rather
//! than buffering the array.

use std::fmt;
use std::io::Read;

use chrono::NaiveDateTime;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Sink;
use crate::domain::{normalize_from_id, Link, Message, MessageDate, MessageKind};
use crate::error::{Error, Position, Result};

/// Local-time format of JSON `date` / `edited`.
pub const JSON_DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Parses one JSON export from `reader` into `sink`.
pub(crate) fn parse_json<R: Read>(reader: R, sink: &mut Sink<'_>) -> Result<()> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let seed = ChatSeed {
        sink,
        top_level: true,
    };
    seed.deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(json_error)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Json {
        position: Position::LineColumn {
            line: e.line() as u64,
            column: e.column() as u64,
        },
        reason: e.to_string(),
    }
}

#[derive(Default, Clone)]
struct ChatInfo {
    id: Option<i64>,
    name: String,
}

/// Visits a chat object; at top level also the full-account sections.
struct ChatSeed<'s, 'a> {
    sink: &'s mut Sink<'a>,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for ChatSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChatSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Telegram export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut chat = ChatInfo::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_str() {
                "name" => {
                    chat.name = map
                        .next_value::<Scalar>()?
                        .into_string()
                        .unwrap_or_default()
                }
                "id" => chat.id = map.next_value::<Scalar>()?.as_i64(),
                "messages" => map.next_value_seed(MessagesSeed {
                    sink: &mut *self.sink,
                    chat: &chat,
                })?,
                "chats" | "left_chats" if self.top_level => map.next_value_seed(SectionSeed {
                    sink: &mut *self.sink,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A map key, owned (keys are short).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Key)
    }
}

/// `{"about": ..., "list": [chat, ...]}`.
struct SectionSeed<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de> DeserializeSeed<'de> for SectionSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SectionSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chats section object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 == "list" {
                map.next_value_seed(ChatListSeed {
                    sink: &mut *self.sink,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    // Anything but an object (e.g. null) carries no chats.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct ChatListSeed<'s, 'a> {
    sink: &'s mut Sink<'a>,
}

impl<'de> DeserializeSeed<'de> for ChatListSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChatListSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of chats")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ChatSeed {
                sink: &mut *self.sink,
                top_level: false,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct MessagesSeed<'s, 'a, 'c> {
    sink: &'s mut Sink<'a>,
    chat: &'c ChatInfo,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<RawMessage>()? {
            let index = self.sink.seen();
            match raw.into_message(self.chat) {
                Ok(m) => self.sink.message(m),
                Err((id, reason)) => self.sink.skip(Position::Message { index, id }, reason),
            }
        }
        Ok(())
    }
}

/// Any JSON value, reduced to what a message field can use.
#[derive(Debug, Default, Clone, PartialEq)]
enum Scalar {
    #[default]
    Absent,
    Null,
    Str(String),
    Int(i64),
    /// A float, bool, big number, array or object: present but unusable.
    Other,
}

impl Scalar {
    fn into_string(self) -> Option<String> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            Scalar::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn is_present(&self) -> bool {
        !matches!(self, Scalar::Absent | Scalar::Null)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map(Scalar::Int).unwrap_or(Scalar::Other))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `text`: a string, or an array of strings and `{type, text, href?}`.
#[derive(Debug, Default)]
struct RawText {
    text: String,
    links: Vec<Link>,
}

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of text parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText {
                    text: v.to_owned(),
                    links: Vec::new(),
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawText, E> {
                Ok(RawText {
                    text: v,
                    links: Vec::new(),
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawText::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawText, A::Error> {
                let mut out = RawText::default();
                while let Some(part) = seq.next_element::<TextPart>()? {
                    let Some(text) = part.text.into_string() else {
                        continue;
                    };
                    if let Some(href) =
                        entity_href(part.kind.as_deref(), part.href.as_deref(), &text)
                    {
                        out.links.push(Link {
                            text: text.clone(),
                            href,
                        });
                    }
                    out.text.push_str(&text);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of a `text` array.
#[derive(Debug, Default)]
struct TextPart {
    kind: Option<String>,
    text: Scalar,
    href: Option<String>,
}

impl<'de> Deserialize<'de> for TextPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextPart;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a text entity")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextPart, E> {
                Ok(TextPart {
                    text: Scalar::Str(v.to_owned()),
                    ..TextPart::default()
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<TextPart, E> {
                Ok(TextPart {
                    text: Scalar::Str(v),
                    ..TextPart::default()
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextPart, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TextPart::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextPart, A::Error> {
                let mut part = TextPart::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key.0.as_str() {
                        "type" => part.kind = map.next_value::<Scalar>()?.into_string(),
                        "text" => part.text = map.next_value::<Scalar>()?,
                        "href" => part.href = map.next_value::<Scalar>()?.into_string(),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(part)
            }
        }
        d.deserialize_any(V)
    }
}

/// The href a text entity links to, mirroring what the HTML export writes
/// (see [`Link`]); `None` for formatting-only entities.
fn entity_href(kind: Option<&str>, href: Option<&str>, text: &str) -> Option<String> {
    match kind? {
        "link" => Some(text.to_owned()),
        "text_link" => href.map(str::to_owned),
        "email" => Some(format!("mailto:{text}")),
        "phone" => Some(format!("tel:{text}")),
        "mention" => Some(format!("https://t.me/{}", text.trim_start_matches('@'))),
        _ => None,
    }
}

/// One message object with every field read leniently.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMessage {
    id: Scalar,
    #[serde(rename = "type")]
    kind: Scalar,
    date: Scalar,
    date_unixtime: Scalar,
    edited: Scalar,
    edited_unixtime: Scalar,
    from: Scalar,
    from_id: Scalar,
    forwarded_from: Scalar,
    reply_to_message_id: Scalar,
    via_bot: Scalar,
    text: RawText,
    media_type: Scalar,
    photo: Scalar,
    file: Scalar,
    poll: Scalar,
    location_information: Scalar,
    contact_information: Scalar,
    game_title: Scalar,
    invoice_information: Scalar,
    action: Scalar,
    actor: Scalar,
    actor_id: Scalar,
}

type Rejection = (Option<i64>, String);

impl RawMessage {
    fn into_message(self, chat: &ChatInfo) -> Result<Message, Rejection> {
        let id = self.id.as_i64();
        let Some(id) = id else {
            return Err((None, format!("message has no integer id ({:?})", self.id)));
        };
        let reject = |reason: String| (Some(id), reason);
        let kind = match &self.kind {
            Scalar::Absent | Scalar::Null => MessageKind::Message,
            Scalar::Str(s) => MessageKind::parse(s)
                .ok_or_else(|| reject(format!("unknown message type {s:?}")))?,
            other => return Err(reject(format!("message type is not a string ({other:?})"))),
        };
        let date =
            json_date(&self.date, &self.date_unixtime).map_err(|r| reject(format!("date: {r}")))?;
        let edited = json_date(&self.edited, &self.edited_unixtime)
            .map_err(|r| reject(format!("edited: {r}")))?;
        let media_type = self.media_type.into_string().or_else(|| {
            [
                (&self.photo, "photo"),
                (&self.file, "file"),
                (&self.poll, "poll"),
                (&self.location_information, "location"),
                (&self.contact_information, "contact"),
                (&self.game_title, "game"),
                (&self.invoice_information, "invoice"),
            ]
            .into_iter()
            .find(|(field, _)| field.is_present())
            .map(|(_, name)| name.to_owned())
        });
        Ok(Message {
            chat_id: chat.id,
            chat_name: chat.name.clone(),
            id,
            kind,
            date,
            edited,
            from: self.from.into_string(),
            from_id: self
                .from_id
                .into_string()
                .and_then(|s| normalize_from_id(&s)),
            forwarded_from: self.forwarded_from.into_string(),
            reply_to: self.reply_to_message_id.as_i64(),
            via_bot: self.via_bot.into_string(),
            text: self.text.text,
            links: self.text.links,
            media_type,
            action: self.action.into_string(),
            actor: self.actor.into_string(),
            actor_id: self
                .actor_id
                .into_string()
                .and_then(|s| normalize_from_id(&s)),
        })
    }
}

/// Combines `date` (local, no zone) and `date_unixtime` (epoch seconds, a
/// string in real exports) into a [`MessageDate`].
fn json_date(local: &Scalar, unix: &Scalar) -> Result<Option<MessageDate>, String> {
    let unix_secs = match unix {
        Scalar::Absent | Scalar::Null => None,
        s => Some(s.as_i64().ok_or_else(|| format!("bad unixtime {s:?}"))?),
    };
    let local = match local {
        Scalar::Absent | Scalar::Null => None,
        Scalar::Str(s) => Some(
            NaiveDateTime::parse_from_str(s, JSON_DATE_FORMAT)
                .map_err(|e| format!("bad local time {s:?}: {e}"))?,
        ),
        other => return Err(format!("local time is not a string ({other:?})")),
    };
    Ok(match (local, unix_secs) {
        (Some(l), Some(u)) => Some(MessageDate::from_local_and_unix(l, u)),
        (Some(l), None) => Some(MessageDate::naive(l)),
        (None, Some(u)) => chrono::DateTime::from_timestamp(u, 0)
            .and_then(|utc| MessageDate::with_offset(utc.naive_utc(), 0)),
        (None, None) => None,
    })
}

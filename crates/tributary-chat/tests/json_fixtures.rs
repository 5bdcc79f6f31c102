//! Parsing hand-written `result.json` fixtures (spec "Input formats: JSON").

mod common;

use chrono::NaiveDateTime;
use common::{collect, fixture};
use tributary_chat::{Link, MessageKind, Position};

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").expect("test literal")
}

// Proves a single-chat export yields every message with chat id/name, both
// text shapes, links, reply, edit, forward, media, via-bot and service
// fields, and that a message without an id is skipped and reported alone.
#[test]
fn single_chat_export() {
    let c = collect(&fixture("json/single_chat/result.json"));
    let ids: Vec<i64> = c.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    assert!(c
        .messages
        .iter()
        .all(|m| m.chat_id == Some(1_234_567_890) && m.chat_name == "Rust Club"));
    assert_eq!(c.summary.files, 1);
    assert_eq!(c.summary.messages, 7);
    assert_eq!(c.summary.messages_skipped, 1);
    assert_eq!(c.errors.len(), 1);
    assert_eq!(
        c.errors[0].position,
        Position::Message { index: 5, id: None }
    );

    let create = &c.messages[0];
    assert_eq!(create.kind, MessageKind::Service);
    assert_eq!(create.action.as_deref(), Some("create_group"));
    assert_eq!(create.actor.as_deref(), Some("Alice"));
    assert_eq!(create.actor_id.as_deref(), Some("user111"));
    let d = create.date.expect("dated");
    assert_eq!(d.local, local("2023-03-01T10:00:00"));
    assert_eq!(d.offset_seconds, Some(3 * 3600));

    let hello = &c.messages[1];
    assert_eq!(hello.text, "Hello & welcome!\nSecond line \"quoted\"");
    assert_eq!(hello.from.as_deref(), Some("Alice"));
    assert_eq!(hello.from_id.as_deref(), Some("user111"));

    let links = &c.messages[2];
    assert_eq!(
        links.text,
        "See https://www.rust-lang.org and the book, ask @alice now #rust"
    );
    assert_eq!(
        links.links,
        vec![
            Link {
                text: "https://www.rust-lang.org".into(),
                href: "https://www.rust-lang.org".into()
            },
            Link {
                text: "the book".into(),
                href: "https://doc.rust-lang.org/book/".into()
            },
            Link {
                text: "@alice".into(),
                href: "https://t.me/alice".into()
            },
        ]
    );
    assert_eq!(links.reply_to, Some(2));
    assert_eq!(
        links.edited.map(|e| e.local),
        Some(local("2023-03-01T10:05:00"))
    );
    assert_eq!(links.edited.and_then(|e| e.offset_seconds), Some(3 * 3600));

    let fwd = &c.messages[3];
    assert_eq!(fwd.forwarded_from.as_deref(), Some("Rust News"));
    assert_eq!(fwd.media_type.as_deref(), Some("photo"));

    let gif = &c.messages[4];
    assert_eq!(gif.from, None, "null sender stays absent");
    assert_eq!(gif.from_id.as_deref(), Some("user333"));
    assert_eq!(gif.via_bot.as_deref(), Some("@gif"));
    assert_eq!(gif.media_type.as_deref(), Some("animation"));
    assert_eq!(gif.text, "");

    assert_eq!(c.messages[5].action.as_deref(), Some("pin_message"));
    assert_eq!(c.messages[6].from_id.as_deref(), Some("channel444"));
    assert_eq!(c.messages[6].media_type.as_deref(), Some("sticker"));
}

// Proves the full-account shape reads chats.list and left_chats.list (and
// skips personal data, contacts and other sections) with each chat's id.
#[test]
fn full_account_export() {
    let c = collect(&fixture("json/full_account/result.json"));
    let got: Vec<(Option<i64>, &str, i64)> = c
        .messages
        .iter()
        .map(|m| (m.chat_id, m.chat_name.as_str(), m.id))
        .collect();
    assert_eq!(
        got,
        [
            (Some(222), "Bob", 10),
            (Some(222), "Bob", 11),
            (Some(111), "Saved Messages", 10),
            (Some(9_876_543_210), "Old Channel", 500),
        ]
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let left = &c.messages[3];
    assert_eq!(left.date.and_then(|d| d.offset_seconds), Some(-5 * 3600));
    assert_eq!(left.from_id.as_deref(), Some("channel9876543210"));
}

// Proves old exports (no date_unixtime, numeric from_id/actor_id) parse:
// the date stays local without an offset and ids get the `user` prefix.
#[test]
fn old_export_without_unixtime() {
    let c = collect(&fixture("json/old_export/result.json"));
    assert_eq!(c.messages.len(), 3);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let svc = &c.messages[0];
    assert_eq!(svc.actor_id.as_deref(), Some("user555"));
    let m = &c.messages[1];
    assert_eq!(m.date.map(|d| d.local), Some(local("2019-05-04T18:31:00")));
    assert_eq!(m.date.and_then(|d| d.offset_seconds), None);
    assert_eq!(m.date.and_then(|d| d.utc()), None);
    assert_eq!(m.from_id.as_deref(), Some("user555"));
    assert_eq!(m.text, "Mail me at dave@example.com or call +15550100");
    assert_eq!(
        m.links,
        vec![
            Link {
                text: "dave@example.com".into(),
                href: "mailto:dave@example.com".into()
            },
            Link {
                text: "+15550100".into(),
                href: "tel:+15550100".into()
            },
        ]
    );
    assert_eq!(
        c.messages[2].edited.map(|d| d.local),
        Some(local("2019-05-04T18:40:00"))
    );
}

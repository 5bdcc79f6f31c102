//! Parsing hand-written HTML export fixtures (spec "Input formats: HTML").

mod common;

use chrono::NaiveDateTime;
use common::{collect, fixture};
use tributary_chat::{Link, Message, MessageKind};

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").expect("test literal")
}

fn by_id(msgs: &[Message], id: i64) -> &Message {
    msgs.iter().find(|m| m.id == id).expect("message present")
}

// Proves a two-page HTML export is read in page order with the chat name
// from the header, date separators dropped, joined messages inheriting the
// sender (and its bot), forwards (also joined ones) keeping the original
// author, replies (same and other page), media, service text, entities
// decoded, `<br>` as newlines and links kept.
#[test]
fn multi_page_export() {
    let c = collect(&fixture("html/single_chat"));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let ids: Vec<i64> = c.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(c.summary.files, 2);
    assert!(c
        .messages
        .iter()
        .all(|m| m.chat_name == "Rust Club & Friends" && m.chat_id.is_none()));

    let create = by_id(&c.messages, 1);
    assert_eq!(create.kind, MessageKind::Service);
    assert_eq!(
        create.text,
        "Alice created group «Rust Club & Friends» with members Bob"
    );
    assert_eq!(create.date, None, "service messages carry no date in HTML");

    let hello = by_id(&c.messages, 2);
    assert_eq!(hello.kind, MessageKind::Message);
    assert_eq!(hello.from.as_deref(), Some("Alice"));
    assert_eq!(
        hello.text,
        "Hello & welcome!\nSecond line \"quoted\" 'single'"
    );
    let d = hello.date.expect("dated");
    assert_eq!(d.local, local("2023-03-01T10:01:05"));
    assert_eq!(d.offset_seconds, Some(3 * 3600));

    let joined = by_id(&c.messages, 3);
    assert_eq!(joined.from.as_deref(), Some("Alice"));
    assert_eq!(
        joined.text,
        "See https://www.rust-lang.org and the book, ask @alice now #rust"
    );
    assert_eq!(
        joined.links,
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

    let reply = by_id(&c.messages, 4);
    assert_eq!(
        (reply.from.as_deref(), reply.reply_to),
        (Some("Bob"), Some(2))
    );
    assert_eq!(reply.text, "Thanks!");

    let fwd = by_id(&c.messages, 5);
    assert_eq!(fwd.from.as_deref(), Some("Bob"));
    assert_eq!(fwd.forwarded_from.as_deref(), Some("Rust News"));
    assert_eq!(fwd.media_type.as_deref(), Some("photo"));
    assert_eq!(fwd.text, "Release notes");
    assert_eq!(
        fwd.date.map(|d| d.local),
        Some(local("2023-03-01T10:03:00"))
    );

    let fwd2 = by_id(&c.messages, 6);
    assert_eq!(fwd2.forwarded_from.as_deref(), Some("Rust News"));
    assert_eq!(fwd2.text, "More notes");

    assert_eq!(by_id(&c.messages, 7).text, "Alice pinned this message");

    let gif = by_id(&c.messages, 8);
    assert_eq!(gif.from.as_deref(), Some("Deleted Account"));
    assert_eq!(gif.via_bot.as_deref(), Some("@gif"));
    assert_eq!(gif.media_type.as_deref(), Some("animation"));
    assert_eq!(gif.text, "");
    assert_eq!(
        gif.date.and_then(|d| d.offset_seconds),
        Some(-(5 * 3600 + 30 * 60))
    );

    let joined2 = by_id(&c.messages, 9);
    assert_eq!(joined2.from.as_deref(), Some("Deleted Account"));
    assert_eq!(joined2.via_bot.as_deref(), Some("@gif"));

    let voice = by_id(&c.messages, 10);
    assert_eq!(voice.reply_to, Some(3), "reply into another page");
    assert_eq!(voice.media_type.as_deref(), Some("voice_message"));
    assert_eq!(voice.text, "line one\n\nline three  ");
}

// Proves old HTML exports (date title without `UTC+HH:MM`) keep the local
// time with no offset, and mailto:/tel: anchors are links.
#[test]
fn old_export_without_offset() {
    let c = collect(&fixture("html/old_export/messages.html"));
    assert_eq!(c.messages.len(), 1);
    let m = &c.messages[0];
    assert_eq!(m.chat_name, "Old Friends");
    assert_eq!(m.date.map(|d| d.local), Some(local("2019-05-04T18:31:00")));
    assert_eq!(m.date.and_then(|d| d.offset_seconds), None);
    assert_eq!(m.links.len(), 2);
    assert_eq!(m.links[1].href, "tel:+15550100");
}

// Proves the full-account layout `chats/chat_NNN/messagesN.html` is walked
// chat by chat with each page's header as chat name, that "joined" never
// leaks across pages, and that other export pages and media are ignored.
#[test]
fn full_account_layout() {
    let c = collect(&fixture("html/full_account"));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let got: Vec<(&str, i64, Option<&str>)> = c
        .messages
        .iter()
        .map(|m| (m.chat_name.as_str(), m.id, m.from.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("Bob", 10, Some("Alice")),
            ("Bob", 11, Some("Bob")),
            ("Saved Messages", 10, Some("Alice")),
            ("Saved Messages", 12, Some("Alice")),
            ("Saved Messages", 13, Some("Alice")),
        ]
    );
    assert_eq!(c.summary.files, 3);
    assert_eq!(
        c.summary.files_ignored, 4,
        "export_results, lists/chats, css, photo"
    );
}

//! Property tests: random messages rendered by the test writer into JSON,
//! HTML and CSV (and by the backup encoder into Parquet) parse back to the
//! same messages; random and truncated input never panics.

mod common;

use chrono::{DateTime, NaiveDateTime};
use common::writer::{csv_backup, html_export, json_export};
use common::{collect, collect_reader};
use proptest::prelude::*;
use tributary_chat::{Link, Message, MessageDate, MessageKind};

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z&<>'\"][A-Za-z0-9 &<>'\"é]{0,12}[A-Za-z0-9]".prop_map(|s| s.trim().to_owned())
}

fn date() -> impl Strategy<Value = MessageDate> {
    (
        1_400_000_000i64..1_900_000_000,
        prop::option::of(-48i32..=56),
    )
        .prop_map(|(secs, q)| {
            let local: NaiveDateTime = DateTime::from_timestamp(secs, 0)
                .map(|d| d.naive_utc())
                .unwrap_or_default();
            match q {
                Some(q) => {
                    MessageDate::with_offset(local, q * 900).unwrap_or(MessageDate::naive(local))
                }
                None => MessageDate::naive(local),
            }
        })
}

/// Text as plain/link segments; plain text may hold line breaks, spaces and
/// characters HTML must escape.
fn text() -> impl Strategy<Value = (String, Vec<Link>)> {
    let plain = "[a-z \n&<>\"'#@é😀]{0,10}";
    let link = ("[a-zA-Z][a-z &é]{0,6}", "[a-z]{1,8}").prop_map(|(t, h)| Link {
        text: t,
        href: format!("https://{h}.example/?a=1&b=\"2\""),
    });
    prop::collection::vec((plain, prop::option::of(link)), 0..4).prop_map(|parts| {
        let mut text = String::new();
        let mut links = Vec::new();
        for (p, l) in parts {
            text.push_str(&p);
            if let Some(l) = l {
                text.push_str(&l.text);
                links.push(l);
            }
        }
        (text, links)
    })
}

fn media() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec![
        "photo",
        "video_file",
        "animation",
        "sticker",
        "voice_message",
        "audio_file",
        "video_message",
        "file",
        "location",
        "contact",
        "poll",
        "game",
        "invoice",
    ]))
    .prop_map(|m| m.map(str::to_owned))
}

prop_compose! {
    fn message()(
        service in prop::bool::weighted(0.15),
        from in prop::sample::select(vec!["Alice", "Bob", "Carol <&>"]),
        from_num in 1u32..1000,
        date in date(),
        edited in prop::option::of(date()),
        forwarded in prop::option::of(name()),
        reply in prop::option::of(1i64..1000),
        via in prop::option::of("@[a-z]{1,6}bot"),
        (text, links) in text(),
        media in media(),
        action in prop::sample::select(vec!["pin_message", "invite_members", "create_group"]),
    ) -> Message {
        let mut m = Message::new("", 0, MessageKind::Message);
        m.date = Some(date);
        if service {
            m.kind = MessageKind::Service;
            m.action = Some(action.to_owned());
            m.actor = Some(from.to_owned());
            m.actor_id = Some(format!("user{from_num}"));
        } else {
            m.edited = edited;
            m.from = Some(from.to_owned());
            m.from_id = Some(format!("user{from_num}"));
            m.forwarded_from = forwarded;
            m.reply_to = reply;
            m.via_bot = via;
            m.text = text;
            m.links = links;
            m.media_type = media;
        }
        m
    }
}

fn chat() -> impl Strategy<Value = (String, i64, Vec<Message>)> {
    (
        name(),
        -1_000_000i64..1_000_000,
        prop::collection::vec(message(), 0..25),
    )
        .prop_map(|(chat, chat_id, mut msgs)| {
            for (i, m) in msgs.iter_mut().enumerate() {
                m.id = i as i64 + 1;
                m.chat_name = chat.clone();
                m.chat_id = Some(chat_id);
            }
            (chat, chat_id, msgs)
        })
}

/// What an HTML export can carry of a message.
fn html_view(m: &Message) -> Message {
    let mut v = Message::new(m.chat_name.clone(), m.id, m.kind);
    if m.kind == MessageKind::Message {
        v.date = m.date;
        v.from = m.from.clone();
        v.forwarded_from = m.forwarded_from.clone();
        v.reply_to = m.reply_to;
        v.via_bot = m.via_bot.clone();
        v.text = m.text.clone();
        v.links = m.links.clone();
        v.media_type = m.media_type.clone();
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Proves every field survives a JSON export round trip.
    #[test]
    fn json_roundtrip((chat, chat_id, msgs) in chat()) {
        let json = json_export(&chat, chat_id, &msgs);
        let c = collect_reader("result.json", json.as_bytes());
        prop_assert!(c.errors.is_empty(), "{:?}", c.errors);
        prop_assert_eq!(c.messages, msgs);
    }

    // Proves everything HTML can carry survives an HTML export split over
    // pages (joined senders, forwards, links, escapes, line breaks).
    #[test]
    fn html_roundtrip((chat, _id, msgs) in chat(), per_page in 1usize..8) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in html_export(&chat, &msgs, per_page) {
            std::fs::write(dir.path().join(name), content).expect("write page");
        }
        let c = collect(dir.path());
        prop_assert!(c.errors.is_empty(), "{:?}", c.errors);
        let got: Vec<Message> = c.messages.iter().map(html_view).collect();
        let want: Vec<Message> = msgs
            .iter()
            .map(|m| {
                let mut v = html_view(m);
                v.chat_id = None;
                v
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    // Proves every field survives our CSV backup round trip.
    #[test]
    fn csv_roundtrip((_chat, _id, msgs) in chat()) {
        let csv = csv_backup(&msgs);
        let c = collect_reader("backup.csv", csv.as_bytes());
        prop_assert!(c.errors.is_empty(), "{:?}", c.errors);
        prop_assert_eq!(c.messages, msgs);
    }

    // Proves every field survives our Parquet backup round trip, with the
    // messages split into row groups at random points.
    #[test]
    fn parquet_roundtrip((_chat, _id, msgs) in chat(), split in 1usize..10) {
        let mut enc = tributary_chat::parse::parquet::ParquetBackupEncoder::new()
            .expect("encoder");
        let mut bytes = Vec::new();
        for batch in msgs.chunks(split) {
            bytes.extend(enc.row_group(batch).expect("row group"));
        }
        bytes.extend(enc.finish().expect("footer"));
        let c = collect_reader("backup.parquet", &bytes);
        prop_assert!(c.errors.is_empty(), "{:?}", c.errors);
        prop_assert_eq!(c.messages, msgs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Proves arbitrary bytes never panic any parser and the counts add up.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        for name in ["result.json", "messages.html", "backup.csv"] {
            let mut input = bytes.clone();
            if name == "backup.csv" {
                let mut h = tributary_chat::domain::backup_schema::COLUMNS.join(",").into_bytes();
                h.push(b'\n');
                h.extend_from_slice(&input);
                input = h;
            }
            let c = collect_reader(name, &input);
            prop_assert_eq!(c.messages.len() as u64, c.summary.messages);
            prop_assert_eq!(c.summary.files + c.summary.files_failed + c.summary.files_ignored, 1);
        }
    }

    // Proves truncated or byte-flipped valid exports never panic and only
    // ever deliver messages that are in the original.
    #[test]
    fn damaged_exports_never_panic(
        (chat, chat_id, msgs) in chat(),
        cut in 0.0f64..1.0,
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..4),
    ) {
        let json = json_export(&chat, chat_id, &msgs).into_bytes();
        let html = html_export(&chat, &msgs, 50).remove(0).1.into_bytes();
        let csv = csv_backup(&msgs).into_bytes();
        for (name, full) in [("result.json", json), ("messages.html", html), ("backup.csv", csv)] {
            let mut data = full[..(full.len() as f64 * cut) as usize].to_vec();
            let len = data.len();
            for (at, b) in &flips {
                if len > 0 {
                    data[((len as f64 * at) as usize).min(len - 1)] = *b;
                }
            }
            let c = collect_reader(name, &data);
            prop_assert_eq!(c.messages.len() as u64, c.summary.messages);
            if flips.is_empty() {
                for m in &c.messages {
                    prop_assert!(msgs.iter().any(|o| o.id == m.id), "unknown id {}", m.id);
                }
            }
        }
    }
}

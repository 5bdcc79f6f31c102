//! The sample chat the service and gRPC scenarios import: known senders,
//! dates and words, so every filter has a predictable answer.
#![allow(dead_code)]

use chrono::{DateTime, NaiveDateTime};
use tributary_chat::{Message, MessageDate, MessageKind};

/// Epoch seconds of message 0.
pub const BASE: i64 = 1_600_000_000;

/// `secs` (UTC) as a date written at UTC+03:00, as Telegram writes it.
pub fn date(secs: i64) -> MessageDate {
    let utc = DateTime::from_timestamp(secs, 0)
        .expect("valid")
        .naive_utc();
    let local: NaiveDateTime = utc + chrono::Duration::hours(3);
    MessageDate::with_offset(local, 3 * 3600).expect("offset")
}

/// `n` messages of one chat from three senders (`user1..3`), one hour
/// apart; every fifth is a service message; even ones mention rust, odd
/// ones golang.
pub fn chat(name: &str, chat_id: i64, n: i64) -> Vec<Message> {
    let who = ["Alice", "Bob", "Carol"];
    (1..=n)
        .map(|i| {
            let mut m = Message::new(name, i, MessageKind::Message);
            m.chat_id = Some(chat_id);
            m.date = Some(date(BASE + i * 3600));
            if i % 5 == 0 {
                m.kind = MessageKind::Service;
                m.action = Some("pin_message".into());
                m.actor = Some("Alice".into());
                m.actor_id = Some("user1".into());
                return m;
            }
            let w = (i % 3) as usize;
            m.from = Some(who[w].into());
            m.from_id = Some(format!("user{}", w + 1));
            m.text = format!(
                "message {i} about {} topic",
                if i % 2 == 0 { "rust" } else { "golang" }
            );
            m
        })
        .collect()
}

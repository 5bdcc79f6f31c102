//! Parse-throughput bench: generates a synthetic single-chat export of N
//! messages as JSON (`result.json`) and HTML (`messagesN.html`, 1,000 per
//! page, like Telegram), then parses each and prints messages/s, MB/s and
//! the peak RSS of the parse (VmHWM, reset before each run).
//!
//! cargo run --release -p tributary-chat --example chat_bench -- \
//!     --messages 1000000 --dir /tmp/chat-bench [--keep]

#[path = "../tests/common/writer.rs"]
mod writer;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::DateTime;
use tributary_chat::{parse_path, Link, Message, MessageDate, MessageKind, ParseEvent};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: [&str; 16] = [
    "hello",
    "rust",
    "stream",
    "parser",
    "memory",
    "чат",
    "export",
    "message",
    "&",
    "<tag>",
    "\"quote\"",
    "it's",
    "data",
    "😀",
    "telegram",
    "archive",
];
const NAMES: [&str; 5] = ["Alice", "Bob", "Carol", "Dave", "Eve"];

fn gen_message(rng: &mut Rng, id: i64) -> Message {
    let mut m = Message::new("Bench Chat", id, MessageKind::Message);
    m.chat_id = Some(777);
    let secs = 1_600_000_000 + id * 37;
    let local = DateTime::from_timestamp(secs + 3 * 3600, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default();
    m.date = MessageDate::with_offset(local, 3 * 3600);
    if rng.below(20) == 0 {
        m.kind = MessageKind::Service;
        m.action = Some("pin_message".into());
        m.actor = Some("Alice".into());
        m.actor_id = Some("user1".into());
        return m;
    }
    let who = rng.below(NAMES.len() as u64) as usize;
    m.from = Some(NAMES[who].into());
    m.from_id = Some(format!("user{}", who + 1));
    if rng.below(10) == 0 {
        m.reply_to = Some(1 + rng.below(id as u64) as i64);
    }
    if rng.below(15) == 0 {
        m.forwarded_from = Some("News Channel".into());
    }
    if rng.below(8) == 0 {
        m.media_type =
            Some(["photo", "sticker", "voice_message", "file"][rng.below(4) as usize].into());
    }
    let words = 3 + rng.below(30);
    let mut text = String::new();
    for i in 0..words {
        if i > 0 {
            text.push(if rng.below(12) == 0 { '\n' } else { ' ' });
        }
        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    if rng.below(6) == 0 {
        text.push_str(" see docs");
        m.links.push(Link {
            text: "docs".into(),
            href: "https://docs.rs/?q=a&b=1".into(),
        });
    }
    m.text = text;
    m
}

fn generate(dir: &Path, n: u64) -> std::io::Result<()> {
    let json_dir = dir.join("json");
    let html_dir = dir.join("html");
    std::fs::create_dir_all(&json_dir)?;
    std::fs::create_dir_all(&html_dir)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let json = BufWriter::with_capacity(1 << 20, File::create(json_dir.join("result.json"))?);
    let mut jw = writer::JsonWriter::begin(json, "Bench Chat", 777)?;
    let mut page: Option<BufWriter<File>> = None;
    let mut prev: Option<Message> = None;
    for i in 0..n {
        let m = gen_message(&mut rng, i as i64 + 1);
        jw.message(&m)?;
        if i % 1000 == 0 {
            if let Some(mut p) = page.take() {
                p.write_all(writer::HTML_PAGE_END.as_bytes())?;
                p.flush()?;
            }
            let name = if i == 0 {
                "messages.html".to_owned()
            } else {
                format!("messages{}.html", i / 1000 + 1)
            };
            let mut p = BufWriter::with_capacity(1 << 16, File::create(html_dir.join(name))?);
            p.write_all(writer::html_page_start("Bench Chat").as_bytes())?;
            page = Some(p);
            prev = None;
        }
        if let Some(p) = page.as_mut() {
            p.write_all(writer::html_message(&m, prev.as_ref()).as_bytes())?;
        }
        prev = Some(m);
    }
    if let Some(mut p) = page.take() {
        p.write_all(writer::HTML_PAGE_END.as_bytes())?;
        p.flush()?;
    }
    jw.end()?.flush()
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        dir_size(&path)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak() {
    // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn bench(label: &str, path: &Path) -> Result<(), tributary_chat::Error> {
    let bytes = dir_size(path);
    reset_peak();
    let rss_before = status_kb("VmRSS:").unwrap_or(0);
    let start = Instant::now();
    let mut text_bytes = 0u64;
    let mut errors = 0u64;
    let summary = parse_path(path, &mut |e| match e {
        ParseEvent::Message(m) => text_bytes += m.text.len() as u64,
        ParseEvent::FileError(f) => {
            errors += 1;
            if errors <= 5 {
                eprintln!("{}: {}: {}", f.file, f.position, f.reason);
            }
        }
        ParseEvent::FileStart { .. } => {}
    })?;
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:").unwrap_or(0);
    println!(
        "{label:5} {:>10} msgs {:>5} files {:>8.1} MB in {secs:>6.2}s: {:>9.0} msg/s {:>7.1} MB/s, \
         peak RSS {:.1} MB (before {:.1} MB), errors {errors}, text {} MB",
        summary.messages,
        summary.files,
        bytes as f64 / 1e6,
        summary.messages as f64 / secs,
        bytes as f64 / 1e6 / secs,
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        text_bytes / 1_000_000,
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n: u64 = 100_000;
    let mut dir = PathBuf::from("/tmp/tributary-chat-bench");
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => n = args.next().ok_or("--messages N")?.parse()?,
            "--dir" => dir = PathBuf::from(args.next().ok_or("--dir PATH")?),
            "--keep" => keep = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let gen_start = Instant::now();
    generate(&dir, n)?;
    println!(
        "generated {n} messages in {:.1}s under {}",
        gen_start.elapsed().as_secs_f64(),
        dir.display()
    );
    bench("json", &dir.join("json"))?;
    bench("html", &dir.join("html"))?;
    if !keep {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

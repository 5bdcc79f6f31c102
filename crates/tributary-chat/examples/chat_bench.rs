//! Parse-throughput bench: generates a synthetic single-chat export of N
//! messages as JSON (`result.json`) and HTML (`messagesN.html`, 1,000 per
//! page, like Telegram), then parses each and prints messages/s, MB/s and
//! the peak RSS of the parse (VmHWM, reset before each run).
//!
//! cargo run --release -p tributary-chat --example chat_bench -- \
//!     --messages 1000000 --dir /tmp/chat-bench [--keep] [--chatpack]
//!
//! `--chatpack` also parses the same `result.json`, in the same run, with
//! the `chatpack` Python package (PyPI, Rust core; `pip install chatpack`),
//! timing only its parse call inside the Python process, and checks that
//! every message chatpack returns is among ours (by sender and text), and
//! counts what it dropped by kind.

#[path = "../tests/common/writer.rs"]
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
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

/// What one parse saw, for the chatpack comparison: (sender, text) ->
/// how many messages, and how many messages of each kind.
#[derive(Default)]
struct Seen {
    by_content: HashMap<(String, String), u32>,
    service: u64,
    empty_text: u64,
    total: u64,
}

fn bench(
    label: &str,
    path: &Path,
    mut seen: Option<&mut Seen>,
) -> Result<f64, tributary_chat::Error> {
    let bytes = dir_size(path);
    reset_peak();
    let rss_before = status_kb("VmRSS:").unwrap_or(0);
    let start = Instant::now();
    let mut text_bytes = 0u64;
    let mut errors = 0u64;
    let summary = parse_path(path, &mut |e| match e {
        ParseEvent::Message(m) => {
            text_bytes += m.text.len() as u64;
            if let Some(seen) = seen.as_deref_mut() {
                seen.total += 1;
                if m.kind == MessageKind::Service {
                    seen.service += 1;
                } else if m.text.is_empty() {
                    seen.empty_text += 1;
                }
                let sender = m
                    .from
                    .clone()
                    .or_else(|| m.actor.clone())
                    .unwrap_or_default();
                *seen.by_content.entry((sender, m.text)).or_default() += 1;
            }
        }
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
    Ok(summary.messages as f64 / secs)
}

/// The Python side of `--chatpack`: times `chatpack.parse_telegram(path)`
/// alone, then (untimed) writes every returned message as one JSON line.
const CHATPACK_SCRIPT: &str = r#"
import json, resource, sys, time
import chatpack
path, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
msgs = chatpack.parse_telegram(path)
secs = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with open(out, "w", encoding="utf-8") as f:
    for m in msgs:
        f.write(json.dumps([m.sender, m.content], ensure_ascii=False) + "\n")
print(json.dumps({"messages": len(msgs), "secs": secs, "peak_mb": peak_mb, "version": chatpack.__version__}))
"#;

fn chatpack(
    json_file: &Path,
    ours: &mut Seen,
    ours_rate: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let out = json_file.with_extension("chatpack.jsonl");
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(CHATPACK_SCRIPT)
        .arg(json_file)
        .arg(&out)
        .output()?;
    if !run.status.success() {
        return Err(format!(
            "chatpack run failed (pip install chatpack): {}",
            String::from_utf8_lossy(&run.stderr).trim()
        )
        .into());
    }
    let stats: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let n = stats["messages"].as_u64().unwrap_or(0);
    let secs = stats["secs"].as_f64().unwrap_or(f64::NAN);
    let bytes = std::fs::metadata(json_file)?.len() as f64;
    let rate = n as f64 / secs;
    println!(
        "chatpack {} on the same result.json: {n:>10} msgs in {secs:>6.2}s: {rate:>9.0} msg/s \
         {:>7.1} MB/s (file bytes / parse time), peak RSS {:.1} MB",
        stats["version"].as_str().unwrap_or("?"),
        bytes / 1e6 / secs,
        stats["peak_mb"].as_f64().unwrap_or(0.0),
    );
    // Every message chatpack kept must be one of ours.
    let mut missing = 0u64;
    for line in BufReader::new(File::open(&out)?).lines() {
        let (sender, text): (String, String) = serde_json::from_str(&line?)?;
        match ours.by_content.get_mut(&(sender, text)) {
            Some(c) if *c > 0 => *c -= 1,
            _ => missing += 1,
        }
    }
    std::fs::remove_file(&out)?;
    println!(
        "ours kept {} messages, chatpack {n}: chatpack dropped {} (our file has {} service and {} \
         media-only/empty-text messages); chatpack messages not among ours: {missing}",
        ours.total,
        ours.total.saturating_sub(n),
        ours.service,
        ours.empty_text,
    );
    let ours_secs = ours.total as f64 / ours_rate;
    println!(
        "same file: ours {ours_secs:.2}s, chatpack {secs:.2}s -> ours is {:.2}x {} (messages/s: \
         ours {ours_rate:.0}, chatpack {rate:.0})",
        if ours_secs <= secs {
            secs / ours_secs
        } else {
            ours_secs / secs
        },
        if ours_secs <= secs {
            "faster"
        } else {
            "slower"
        },
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n: u64 = 100_000;
    let mut dir = PathBuf::from("/tmp/tributary-chat-bench");
    let mut keep = false;
    let mut compare = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => n = args.next().ok_or("--messages N")?.parse()?,
            "--dir" => dir = PathBuf::from(args.next().ok_or("--dir PATH")?),
            "--keep" => keep = true,
            "--chatpack" => compare = true,
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
    let mut seen = Seen::default();
    let json_rate = bench("json", &dir.join("json"), None)?;
    bench("html", &dir.join("html"), None)?;
    if compare {
        // Untimed second pass that remembers what we parsed.
        bench("json*", &dir.join("json"), Some(&mut seen))?;
        chatpack(&dir.join("json").join("result.json"), &mut seen, json_rate)?;
    }
    if !keep {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

//! Import and export throughput of the chat service: generates a
//! single-chat JSON export of N messages, imports it into SQLite (and
//! PostgreSQL when `--postgres URL` is given) through `ChatService` with the
//! embedded bus, then backs the archive up to CSV, printing messages/s.
//!
//! cargo run --release -p tributary-chat --example chat_import_bench -- \
//!     --messages 1000000 [--postgres postgres://postgres@127.0.0.1:5432/postgres]

#[path = "../tests/common/writer.rs"]
mod writer;

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Instant;

use chrono::DateTime;
use tributary_chat::app::{self, Backends};
use tributary_chat::domain::MessageFilter;
use tributary_chat::service::BackupTarget;
use tributary_chat::{ChatSettings, Message, MessageDate, MessageKind};
use tributary_storage::{Database, SqlConfig};

const NAMES: [&str; 5] = ["Alice", "Bob", "Carol", "Dave", "Eve"];

fn message(id: i64) -> Message {
    let mut m = Message::new("Bench Chat", id, MessageKind::Message);
    m.chat_id = Some(777);
    let secs = 1_600_000_000 + id * 37;
    let local = DateTime::from_timestamp(secs + 3 * 3600, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default();
    m.date = MessageDate::with_offset(local, 3 * 3600);
    let who = (id % 5) as usize;
    m.from = Some(NAMES[who].into());
    m.from_id = Some(format!("user{}", who + 1));
    m.text = format!(
        "message {id} about rust streams and telegram exports, number {}",
        id * 7919 % 1000
    );
    m
}

fn generate(path: &Path, n: i64) -> std::io::Result<()> {
    let out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut w = writer::JsonWriter::begin(out, "Bench Chat", 777)?;
    for id in 1..=n {
        w.message(&message(id))?;
    }
    w.end()?;
    Ok(())
}

async fn bench(label: &str, db_url: &str, export: &Path, dir: &Path, n: i64) -> anyhow::Result<()> {
    let db = Database::connect(db_url, &SqlConfig::default()).await?;
    let bus_url = format!("sqlite://{}", dir.join(format!("bus-{label}.db")).display());
    let bus = tributary_bus::connect(&bus_url, &Default::default()).await?;
    let svc = app::build(
        &Backends {
            db,
            bus,
            objects: None,
        },
        &ChatSettings::default(),
    )
    .await?;
    let start = Instant::now();
    let report = svc.import(export, &|_| {}).await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:8} import {:>9} msgs ({} new) in {secs:>7.2}s: {:>8.0} msg/s",
        report.parsed,
        report.inserted,
        report.parsed as f64 / secs
    );
    let start = Instant::now();
    let again = svc.import(export, &|_| {}).await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:8} re-import (all duplicates, {} new) in {secs:>7.2}s: {:>8.0} msg/s",
        again.inserted,
        again.parsed as f64 / secs
    );
    let start = Instant::now();
    let backup = svc
        .backup(
            &MessageFilter::default(),
            &BackupTarget::Dir(dir.join(format!("backup-{label}"))),
            &|_| {},
        )
        .await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:8} CSV export {:>9} msgs, {:.1} MB in {secs:>7.2}s: {:>8.0} msg/s, {:.1} MB/s",
        backup.messages,
        backup.bytes as f64 / 1e6,
        backup.messages as f64 / secs,
        backup.bytes as f64 / 1e6 / secs
    );
    anyhow::ensure!(
        backup.messages == n as u64,
        "exported {} of {n}",
        backup.messages
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut n: i64 = 100_000;
    let mut postgres: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => {
                n = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--messages N"))?
                    .parse()?
            }
            "--postgres" => postgres = args.next(),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let dir = tempfile::tempdir()?;
    let export = dir.path().join("result.json");
    let start = Instant::now();
    generate(&export, n)?;
    let size = std::fs::metadata(&export)?.len();
    println!(
        "generated {n} messages ({:.1} MB JSON) in {:.1}s",
        size as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    let sqlite = format!("sqlite://{}", dir.path().join("chat.db").display());
    bench("sqlite", &sqlite, &export, dir.path(), n).await?;
    if let Some(base) = postgres {
        let url = fresh_db(&base).await?;
        bench("postgres", &url, &export, dir.path(), n).await?;
    }
    Ok(())
}

async fn fresh_db(base: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("chat_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let root = base.rsplit_once('/').map(|(a, _)| a).unwrap_or(base);
    Ok(format!("{root}/{name}"))
}

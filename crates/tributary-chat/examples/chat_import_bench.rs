//! Import and export throughput of the chat service: generates a
//! single-chat JSON export of N messages, imports it into SQLite (and
//! PostgreSQL when `--postgres URL` is given) through `ChatService` with the
//! embedded bus, backs the archive up to CSV and to Parquet (messages/s,
//! MB/s, file size), parses both backup files without a database, and
//! restores the Parquet backup into a fresh database (import throughput).
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
use tributary_chat::service::{BackupFormat, BackupTarget, ChatService, RestoreSource};
use tributary_chat::{parse_path, ChatSettings, Message, MessageDate, MessageKind, ParseEvent};
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

async fn service(label: &str, db_url: &str, dir: &Path) -> anyhow::Result<ChatService> {
    let db = Database::connect(db_url, &SqlConfig::default()).await?;
    let bus_url = format!("sqlite://{}", dir.join(format!("bus-{label}.db")).display());
    let bus = tributary_bus::connect(&bus_url, &Default::default()).await?;
    app::build(
        &Backends {
            db,
            bus,
            objects: None,
        },
        &ChatSettings::default(),
    )
    .await
}

/// Parses one backup file without a database; returns (messages, seconds).
fn parse_only(path: &Path) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let mut failed = 0u64;
    let summary = parse_path(path, &mut |e| {
        if let ParseEvent::FileError(_) = e {
            failed += 1;
        }
    })?;
    anyhow::ensure!(failed == 0, "{failed} problems parsing {}", path.display());
    Ok((summary.messages, start.elapsed().as_secs_f64()))
}

async fn bench(
    label: &str,
    db_url: &str,
    restore_url: &str,
    export: &Path,
    dir: &Path,
    n: i64,
) -> anyhow::Result<()> {
    let svc = service(label, db_url, dir).await?;
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
    let mut files = Vec::new();
    for (name, format) in [
        ("CSV", BackupFormat::Csv),
        ("Parquet", BackupFormat::Parquet),
    ] {
        let start = Instant::now();
        let backup = svc
            .backup(
                &MessageFilter::default(),
                &BackupTarget::Dir(dir.join(format!("backup-{label}"))),
                format,
                &|_| {},
            )
            .await?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label:8} {name:7} export {:>9} msgs in {secs:>7.2}s: {:>8.0} msg/s, {:>6.1} MB/s, file {:.1} MB",
            backup.messages,
            backup.messages as f64 / secs,
            backup.bytes as f64 / 1e6 / secs,
            backup.bytes as f64 / 1e6
        );
        anyhow::ensure!(
            backup.messages == n as u64,
            "exported {} of {n}",
            backup.messages
        );
        files.push((
            name,
            std::path::PathBuf::from(backup.location),
            backup.bytes,
        ));
    }
    for (name, path, bytes) in &files {
        let path = path.clone();
        let (msgs, secs) = tokio::task::spawn_blocking(move || parse_only(&path)).await??;
        println!(
            "{label:8} {name:7} backup parse only {msgs:>9} msgs in {secs:>7.2}s: {:>8.0} msg/s, {:>6.1} MB/s",
            msgs as f64 / secs,
            *bytes as f64 / 1e6 / secs
        );
    }
    if let Some((_, parquet, _)) = files.iter().find(|f| f.0 == "Parquet") {
        let fresh = service(&format!("{label}-restore"), restore_url, dir).await?;
        let start = Instant::now();
        let report = fresh
            .restore(&RestoreSource::Path(parquet.clone()), &|_| {})
            .await?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label:8} Parquet restore into an empty archive {:>9} msgs ({} new) in {secs:>7.2}s: {:>8.0} msg/s",
            report.parsed,
            report.inserted,
            report.parsed as f64 / secs
        );
        anyhow::ensure!(
            report.inserted == n as u64,
            "restored {} of {n}",
            report.inserted
        );
    }
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
    let sqlite_restore = format!("sqlite://{}", dir.path().join("restore.db").display());
    bench("sqlite", &sqlite, &sqlite_restore, &export, dir.path(), n).await?;
    if let Some(base) = postgres {
        let url = fresh_db(&base).await?;
        let restore = fresh_db(&base).await?;
        bench("postgres", &url, &restore, &export, dir.path(), n).await?;
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

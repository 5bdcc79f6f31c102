//! `tributary bench imports`: loading one generated companies file (the
//! `companies.json` shape, NDJSON) into a database, four ways in one run:
//!
//! - (a) `psql \copy` of every line into a one-column `jsonb` table: the
//!   floor (no validation, no typed columns, no events);
//! - (b) dlt (PyPI), postgres destination, loading the same file the way
//!   its docs show (a resource yielding the parsed records) — run as
//!   `PYTHON SCRIPT` when `--dlt-python` is set;
//! - (c) ours: this binary spawned as `serve imports-api imports-processor
//!   imports-outbox` on PostgreSQL + Kafka + S3, the file uploaded over
//!   HTTP (streamed from disk), timed from the upload's start until its
//!   status says `completed`;
//! - (d) the same on the embedded stack (SQLite + embedded bus + file
//!   objects): the SQLite figures.
//!
//! (a), (b) and (c) share one fresh database on the given PostgreSQL
//! server, dropped afterwards. Every run is checked: the row count of its
//! table (and for ours the upload's counts) must match the file, so a fast
//! wrong answer cannot pass as a figure. Peak RSS is the child process
//! tree's (`VmHWM`/`VmRSS` polled from /proc): psql's (the server backend
//! doing the COPY is not counted), dlt's Python processes', and for ours
//! the server process's.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use indicatif::ProgressBar;
use serde_json::Value;
use tributary_imports::api::{CompanyPage, UploadAnswer, UploadStatus};
use tributary_imports::generate::{self, SplitMix64};
use tributary_storage::{Objects, ObjectsConfig};

use crate::bench::{bar, tempdir, unique};
use crate::cli::ImportsBenchArgs;

/// The memory target for the 10x file, bytes.
const RSS_TARGET: u64 = 200 * 1024 * 1024;

/// What the generated file holds.
struct Generated {
    path: PathBuf,
    records: u64,
    invalid: u64,
    bytes: u64,
    /// Distinct permalinks of the valid records: the rows of ours.
    valid_permalinks: u64,
    /// Distinct permalinks of all records.
    permalinks: u64,
}

/// One measured run.
struct Run {
    name: &'static str,
    records: u64,
    bytes: u64,
    seconds: f64,
    peak_rss: u64,
    note: String,
}

impl Run {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
    fn print(&self) {
        println!(
            "{:<44} {:>8.2} s {:>8.1} MB/s {:>9.0} records/s  peak RSS {:>7.1} MB  {}",
            self.name,
            self.seconds,
            self.bytes as f64 / 1e6 / self.seconds.max(1e-9),
            self.records_per_s(),
            mb(self.peak_rss),
            self.note
        );
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub async fn imports(args: ImportsBenchArgs) -> anyhow::Result<()> {
    ensure!(
        (0.0..=1.0).contains(&args.invalid),
        "--invalid: a share in 0.0..=1.0, got {}",
        args.invalid
    );
    ensure!(args.scale > 0.0, "--scale must be positive");
    let records = (args.records as f64 * args.scale).round() as u64;
    let own_dir = args.dir.is_none();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => tempdir()?.join(unique("imports")),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let gen = generate_file(&dir, args.seed, records, args.invalid, args.overview_bytes)?;
    println!(
        "bench imports: {} records ({} invalid, {} distinct permalinks), {:.1} MB of NDJSON \
         (companies shape, seed {}, overview ~{} B), {}",
        gen.records,
        gen.invalid,
        gen.permalinks,
        gen.bytes as f64 / 1e6,
        args.seed,
        args.overview_bytes,
        gen.path.display()
    );

    let exe = std::env::current_exe().context("find this binary")?;
    let mut copy = None;
    let mut dlt_run = None;
    let mut ours_pg = None;
    if let Some(server) = &args.sql {
        let name = format!(
            "impbench_{}_{}",
            std::process::id(),
            unique("").trim_matches('-')
        );
        let db = with_database(server, &name)?;
        psql(&args.psql, server, &format!("CREATE DATABASE {name}"))?;
        println!("database {name} created on the PostgreSQL server (dropped at the end)");
        let result = async {
            let r = psql_copy(&args.psql, &db, &gen)?;
            r.print();
            copy = Some(r);
            match &args.dlt_python {
                Some(python) => {
                    let r = dlt(python, &args.dlt_script, &args.psql, &db, &dir, &gen)?;
                    r.print();
                    dlt_run = Some(r);
                }
                None => println!("(no --dlt-python: skipping b) dlt)"),
            }
            match &args.kafka {
                Some(kafka) => {
                    let stack = pg_stack(&db, kafka, &args, &dir)?;
                    let r = ours(
                        "c) ours: PostgreSQL + Kafka + S3, to completed",
                        &exe,
                        &stack,
                        &gen,
                        &args,
                    )
                    .await;
                    stack.cleanup().await;
                    let r = r?;
                    r.print();
                    ours_pg = Some(r);
                }
                None => println!("(no --kafka URL: skipping c) ours on PostgreSQL)"),
            }
            anyhow::Ok(())
        }
        .await;
        if args.keep {
            println!("kept database {name}");
        } else if let Err(e) = psql(
            &args.psql,
            server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ) {
            eprintln!("warning: drop database {name}: {e:#}");
        }
        result?;
    } else {
        println!("(no --sql PostgreSQL URL: skipping a), b) and c))");
    }

    let mut ours_lite = None;
    if args.no_sqlite {
        println!("(--no-sqlite: skipping d) ours on the embedded stack)");
    } else {
        let stack = embedded_stack(&dir.join(unique("embedded")))?;
        let r = ours(
            "d) ours: SQLite + embedded bus + file objects",
            &exe,
            &stack,
            &gen,
            &args,
        )
        .await;
        stack.cleanup().await;
        let r = r?;
        r.print();
        ours_lite = Some(r);
    }

    if let (Some(c), Some(b)) = (&ours_pg, &dlt_run) {
        let x = c.records_per_s() / b.records_per_s();
        println!(
            "ratio c/b (ours / dlt):         {x:>6.2}x  (target >= 10x: {})",
            verdict(x >= 10.0)
        );
    }
    if let (Some(c), Some(a)) = (&ours_pg, &copy) {
        let x = c.records_per_s() / a.records_per_s();
        println!(
            "ratio c/a (ours / psql \\copy):  {x:>6.2}x  (target >= 0.5x: {})",
            verdict(x >= 0.5)
        );
    }
    for r in [&ours_pg, &ours_lite].into_iter().flatten() {
        println!(
            "peak RSS {} {:.1} MB on the {}x file (target < 200 MB for the 10x file{})",
            &r.name[..2],
            mb(r.peak_rss),
            args.scale,
            if args.scale >= 10.0 {
                format!(": {}", verdict(r.peak_rss < RSS_TARGET))
            } else {
                String::new()
            }
        );
    }
    if own_dir && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
        // The per-process temporary directory, when nothing else is in it.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Writes `records` generated companies as NDJSON (not timed). The
/// generator's `overview` is one short sentence; the real data set's are
/// long HTML texts, so each record gets a deterministic HTML overview of
/// about `overview_bytes` (0..2x, paragraphs separated by newlines, with
/// quotes, entities and non-ASCII text) to reach the real file's size.
fn generate_file(
    dir: &Path,
    seed: u64,
    records: u64,
    invalid: f64,
    overview_bytes: usize,
) -> anyhow::Result<Generated> {
    let path = dir.join(format!("companies-{records}.ndjson"));
    let file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let pb = bar(records, "generate the file");
    let (mut bytes, mut bad) = (0u64, 0u64);
    let mut valid = HashSet::new();
    let mut all = HashSet::new();
    for (index, g) in (0u64..).zip(generate::companies(seed, records as usize, invalid)) {
        let mut doc = g.doc;
        if overview_bytes > 0 {
            let mut r = SplitMix64::new(seed ^ 0x0E7E_4F1E ^ index.wrapping_mul(0x9E37_79B9));
            let text = overview(&mut r, &doc, overview_bytes);
            doc["overview"] = Value::String(text);
        }
        let permalink = doc["permalink"].as_str().unwrap_or_default().to_owned();
        if g.broken.is_some() {
            bad += 1;
        } else {
            valid.insert(permalink.clone());
        }
        all.insert(permalink);
        let line = serde_json::to_vec(&doc)?;
        w.write_all(&line)?;
        w.write_all(b"\n")?;
        bytes += line.len() as u64 + 1;
        pb.inc(1);
    }
    w.flush()?;
    pb.finish_and_clear();
    Ok(Generated {
        path,
        records,
        invalid: bad,
        bytes,
        valid_permalinks: valid.len() as u64,
        permalinks: all.len() as u64,
    })
}

/// An HTML overview of about `mean` bytes (uniform in 0..2x).
fn overview(r: &mut SplitMix64, doc: &Value, mean: usize) -> String {
    const WORDS: &[&str] = &[
        "platform",
        "social",
        "media",
        "audiences",
        "users",
        "content",
        "network",
        "mobile",
        "advertisers",
        "search",
        "\"community\"",
        "data",
        "analytics",
        "cloud",
        "publishers",
        "&amp;",
        "software",
        "services",
        "résumé",
        "café",
        "marketplace",
        "customers",
        "enterprise",
        "video",
        "games",
        "Zürich-based",
        "open-source",
        "developers",
    ];
    let name = doc["name"].as_str().unwrap_or("The company");
    let target = r.below(2 * mean as u64 + 1) as usize;
    let mut out = format!("<p>{name} is a company that");
    while out.len() < target {
        out.push(' ');
        out.push_str(r.pick::<&str>(WORDS));
        if r.chance(0.08) {
            out.push_str(".</p>\n<p>");
            out.push_str(name);
        }
    }
    out.push_str(".</p>");
    out
}

/// `url` with its database (path) replaced by `name`.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let Some((scheme, rest)) = base.split_once("://") else {
        bail!("--sql: a postgres:// URL, got {url:?}");
    };
    ensure!(
        scheme == "postgres" || scheme == "postgresql",
        "--sql: a postgres:// URL, got scheme {scheme:?}"
    );
    let authority = rest.split('/').next().unwrap_or_default();
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

/// Runs one SQL statement or backslash command with psql; its output
/// (tuples only, unaligned), trimmed.
fn psql(psql: &Path, url: &str, command: &str) -> anyhow::Result<String> {
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            command,
        ])
        .output()
        .with_context(|| format!("run {}", psql.display()))?;
    if !out.status.success() {
        bail!(
            "psql -c {command:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn count(psql_bin: &Path, url: &str, sql: &str) -> anyhow::Result<u64> {
    let text = psql(psql_bin, url, sql)?;
    text.parse()
        .with_context(|| format!("{sql}: not a count: {text:?}"))
}

/// Waits for `child`, returning its wall time; stdout is read while it runs.
fn run_watched(mut child: Child, label: &str) -> anyhow::Result<(f64, u64, String, bool)> {
    let started = Instant::now();
    let watch = Watch::start(child.id(), true);
    let pb = ProgressBar::new_spinner();
    pb.set_message(label.to_owned());
    pb.enable_steady_tick(Duration::from_millis(200));
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = watch.finish();
    pb.finish_and_clear();
    Ok((seconds, peak, stdout, status.success()))
}

/// (a) `psql \copy` of every line into `bench_copy (doc jsonb)`.
fn psql_copy(psql_bin: &Path, db: &str, gen: &Generated) -> anyhow::Result<Run> {
    psql(psql_bin, db, "CREATE TABLE bench_copy (doc jsonb NOT NULL)")?;
    let file = gen.path.to_string_lossy();
    ensure!(
        !file.contains('\''),
        "the file path must not contain a quote"
    );
    // CSV with quote and delimiter bytes that JSON text cannot hold (a JSON
    // writer escapes every control character), so each line is one field
    // taken as is; text format would eat the JSON's backslash escapes.
    let copy = format!(
        "\\copy bench_copy (doc) FROM '{file}' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
    );
    let child = Command::new(psql_bin)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", &copy])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("run {}", psql_bin.display()))?;
    let (seconds, peak, _, ok) = run_watched(child, "a) psql \\copy")?;
    ensure!(ok, "psql \\copy failed");
    let rows = count(psql_bin, db, "SELECT count(*) FROM bench_copy")?;
    let distinct = count(
        psql_bin,
        db,
        "SELECT count(DISTINCT doc->>'permalink') FROM bench_copy",
    )?;
    ensure!(
        rows == gen.records && distinct == gen.permalinks,
        "\\copy loaded {rows} rows ({distinct} distinct permalinks), the file has {} ({})",
        gen.records,
        gen.permalinks
    );
    Ok(Run {
        name: "a) psql \\copy into one jsonb column",
        records: gen.records,
        bytes: gen.bytes,
        seconds,
        peak_rss: peak,
        note: format!("{rows} rows, {distinct} distinct permalinks; psql's RSS, not the backend's"),
    })
}

/// (b) dlt, as a child process; its script prints one JSON object with
/// `seconds` (extract + normalize + load) and the phases.
fn dlt(
    python: &Path,
    script: &Path,
    psql_bin: &Path,
    db: &str,
    dir: &Path,
    gen: &Generated,
) -> anyhow::Result<Run> {
    let dataset = "impbench_dlt";
    let pipelines = dir.join(unique("dlt-pipelines"));
    let log = dir.join("dlt.log");
    let db_dlt = db.replacen("postgres://", "postgresql://", 1);
    let child = Command::new(python)
        .arg(script)
        .arg("--file")
        .arg(&gen.path)
        .args([
            "--postgres",
            &db_dlt,
            "--dataset",
            dataset,
            "--pipelines-dir",
        ])
        .arg(&pipelines)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("run {} {}", python.display(), script.display()))?;
    let (wall, peak, stdout, ok) = run_watched(child, "b) dlt")?;
    let _ = std::fs::remove_dir_all(&pipelines);
    if !ok {
        bail!(
            "dlt script failed; the end of its log {}:\n{}",
            log.display(),
            tail(&log, 30)
        );
    }
    let v: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}"))
        .with_context(|| format!("dlt script output {stdout:?}"))?;
    let rows = count(
        psql_bin,
        db,
        &format!("SELECT count(*) FROM {dataset}.companies"),
    )?;
    ensure!(
        rows == gen.records,
        "dlt loaded {rows} rows into {dataset}.companies, the file has {}",
        gen.records
    );
    let tables = count(
        psql_bin,
        db,
        &format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{dataset}' \
             AND table_name LIKE 'companies%'"
        ),
    )?;
    let phase = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Run {
        name: "b) dlt: postgres destination",
        records: gen.records,
        bytes: gen.bytes,
        seconds: v["seconds"].as_f64().unwrap_or(wall),
        peak_rss: peak,
        note: format!(
            "{rows} rows in companies (+{} child tables); extract {:.1} s, normalize {:.1} s, \
             load {:.1} s; {wall:.2} s with interpreter start",
            tables.saturating_sub(1),
            phase("extract"),
            phase("normalize"),
            phase("load"),
        ),
    })
}

/// Backends of one run of ours, as the server's environment.
struct Stack {
    env: Vec<(String, String)>,
    data_dir: PathBuf,
    /// The S3 objects to remove afterwards.
    objects: Option<ObjectsConfig>,
}

impl Stack {
    async fn cleanup(&self) {
        if let Some(config) = &self.objects {
            if let Ok(objects) = Objects::open(config) {
                for o in objects.list("").await.unwrap_or_default() {
                    let _ = objects.delete(&o.key).await;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn pg_stack(db: &str, kafka: &str, args: &ImportsBenchArgs, dir: &Path) -> anyhow::Result<Stack> {
    let data_dir = dir.join(unique("pg-run"));
    std::fs::create_dir_all(&data_dir)?;
    let mut env = vec![
        ("TRIBUTARY__SQL__URL".to_owned(), db.to_owned()),
        ("TRIBUTARY__BUS__URL".to_owned(), kafka.to_owned()),
        (
            "TRIBUTARY__IMPORTS__FILES_TOPIC".to_owned(),
            unique("bench-imports-files"),
        ),
        (
            "TRIBUTARY__IMPORTS__RELAY__TOPIC".to_owned(),
            unique("bench-imports-events"),
        ),
        (
            "TRIBUTARY__IMPORTS__GROUP".to_owned(),
            unique("bench-imports"),
        ),
    ];
    let objects = match &args.s3 {
        Some(endpoint) => {
            let config = ObjectsConfig {
                url: format!("s3://{}/{}", args.s3_bucket, unique("bench-imports")),
                endpoint: Some(endpoint.clone()),
                region: Some(args.s3_region.clone()),
                access_key_id: args.s3_access_key_id.clone(),
                secret_access_key: args.s3_secret_access_key.clone(),
                allow_http: endpoint.starts_with("http://"),
            };
            env.extend([
                ("TRIBUTARY__OBJECTS__URL".to_owned(), config.url.clone()),
                ("TRIBUTARY__OBJECTS__ENDPOINT".to_owned(), endpoint.clone()),
                (
                    "TRIBUTARY__OBJECTS__REGION".to_owned(),
                    args.s3_region.clone(),
                ),
                (
                    "TRIBUTARY__OBJECTS__ALLOW_HTTP".to_owned(),
                    config.allow_http.to_string(),
                ),
            ]);
            if let Some(k) = &args.s3_access_key_id {
                env.push(("TRIBUTARY__OBJECTS__ACCESS_KEY_ID".to_owned(), k.clone()));
            }
            if let Some(s) = &args.s3_secret_access_key {
                env.push((
                    "TRIBUTARY__OBJECTS__SECRET_ACCESS_KEY".to_owned(),
                    s.clone(),
                ));
            }
            Some(config)
        }
        None => {
            println!("(no --s3 endpoint: c) stores the upload in a local directory)");
            env.push((
                "TRIBUTARY__OBJECTS__URL".to_owned(),
                format!("file://{}", data_dir.join("objects").display()),
            ));
            None
        }
    };
    Ok(Stack {
        env,
        data_dir,
        objects,
    })
}

fn embedded_stack(data_dir: &Path) -> anyhow::Result<Stack> {
    std::fs::create_dir_all(data_dir)?;
    let env = vec![
        (
            "TRIBUTARY__SQL__URL".to_owned(),
            format!("sqlite://{}", data_dir.join("imports.db").display()),
        ),
        (
            "TRIBUTARY__BUS__URL".to_owned(),
            format!("sqlite://{}", data_dir.join("bus.db").display()),
        ),
        (
            "TRIBUTARY__OBJECTS__URL".to_owned(),
            format!("file://{}", data_dir.join("objects").display()),
        ),
    ];
    Ok(Stack {
        env,
        data_dir: data_dir.to_owned(),
        objects: None,
    })
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race remains).
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The spawned server; SIGKILLed when dropped before [`Server::stop`].
struct Server {
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then up to 30 s for a graceful exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// (c)/(d): the real services in a child process; the file uploaded over
/// HTTP, streamed from disk; done when the upload's status is `completed`.
async fn ours(
    name: &'static str,
    exe: &Path,
    stack: &Stack,
    gen: &Generated,
    args: &ImportsBenchArgs,
) -> anyhow::Result<Run> {
    let api = free_addr()?;
    let admin = free_addr()?;
    let log = stack.data_dir.join("server.log");
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY__") || k == "TRIBUTARY_CONFIG" {
            cmd.env_remove(k);
        }
    }
    cmd.args([
        "serve",
        "imports-api",
        "imports-processor",
        "imports-outbox",
    ])
    .envs(stack.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    .env("TRIBUTARY__DATA_DIR", stack.data_dir.join("data"))
    .env("TRIBUTARY__AUDIT__ENABLED", "false")
    .env("TRIBUTARY__ADMIN__LISTEN", admin.to_string())
    .env("TRIBUTARY__IMPORTS__HTTP_LISTEN", api.to_string())
    .env(
        "TRIBUTARY__IMPORTS__MAX_BODY_BYTES",
        (gen.bytes * 2).max(1 << 30).to_string(),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log)?);
    if let Some(b) = args.batch_size {
        cmd.env("TRIBUTARY__IMPORTS__BATCH_SIZE", b.to_string());
    }
    let mut server = Server {
        child: Some(
            cmd.spawn()
                .with_context(|| format!("spawn {}", exe.display()))?,
        ),
        log,
    };
    let http = tributary_runtime::client::http_client()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(format!("http://{admin}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if let Some(st) = server.exited() {
            bail!(
                "{name}: the server exited with {st} before ready:\n{}",
                tail(&server.log, 30)
            );
        }
        ensure!(
            Instant::now() < deadline,
            "{name}: not ready in 120 s:\n{}",
            tail(&server.log, 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let watch = Watch::start(server.pid(), false);
    let base = format!("http://{api}/api/imports");
    let pb = bar(gen.records, &name[..2]);
    let started = Instant::now();
    let answer = upload(&http, &base, &gen.path).await;
    let answered = started.elapsed().as_secs_f64();
    let answer = match answer {
        Ok(a) => a,
        Err(e) => bail!("{name}: {e:#}\n{}", tail(&server.log, 30)),
    };
    ensure!(
        answer.duplicate_of.is_none(),
        "{name}: the upload is a duplicate of {:?} (not a fresh database?)",
        answer.duplicate_of
    );
    let status = loop {
        let s: UploadStatus = http
            .get(format!("{base}/uploads/{}", answer.request_id))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        pb.set_position(s.processed);
        if s.state == "completed" || s.state == "failed" {
            break s;
        }
        if let Some(st) = server.exited() {
            bail!(
                "{name}: the server exited with {st}:\n{}",
                tail(&server.log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak = watch.finish();
    pb.finish_and_clear();
    let rows = company_count(&http, &base).await;
    server.stop();
    let rows = rows?;
    ensure!(
        status.state == "completed",
        "{name}: the upload ended {}: {:?}",
        status.state,
        status.error
    );
    ensure!(
        status.records == gen.records
            && status.loaded == gen.records - gen.invalid
            && status.rejected == gen.invalid,
        "{name}: the upload counted {} records, {} loaded, {} rejected; the file has {} ({} invalid)",
        status.records,
        status.loaded,
        status.rejected,
        gen.records,
        gen.invalid
    );
    ensure!(
        rows == gen.valid_permalinks,
        "{name}: {rows} companies in the table, the file has {} distinct valid permalinks",
        gen.valid_permalinks
    );
    Ok(Run {
        name,
        records: gen.records,
        bytes: gen.bytes,
        seconds,
        peak_rss: peak,
        note: format!(
            "upload answered after {answered:.2} s; {} loaded, {} rejected, {rows} companies \
             (one per permalink); server process RSS",
            status.loaded, status.rejected
        ),
    })
}

/// Companies in the table, paged through `GET /companies` (not timed).
async fn company_count(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let mut n = 0u64;
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("limit", "1000".to_owned())];
        if let Some(a) = &after {
            q.push(("after", a.clone()));
        }
        let page: CompanyPage = http
            .get(format!("{base}/companies"))
            .query(&q)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        n += page.companies.len() as u64;
        match page.next_after {
            Some(a) => after = Some(a),
            None => return Ok(n),
        }
    }
}

/// POSTs the file, streamed from disk in chunks.
async fn upload(http: &reqwest::Client, base: &str, file: &Path) -> anyhow::Result<UploadAnswer> {
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("open {}", file.display()))?;
    let len = f.metadata().await?.len();
    let resp = http
        .post(format!("{base}/import/company/{}", unique("bench")))
        .header("content-type", "application/json")
        .header("content-length", len)
        .body(tributary_runtime::client::file_body(f, |_| {}))
        .send()
        .await
        .context("upload the file")?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("upload answered {status}: {text}");
    }
    Ok(resp.json().await?)
}

/// Peak resident memory of a process (and, with `tree`, its descendants
/// summed), polled from /proc on a thread.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Watch {
    fn start(pid: u32, tree: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                let last = flag.load(Ordering::Relaxed);
                peak = peak.max(sample(pid, tree));
                if last {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(if tree { 50 } else { 20 }));
            }
        });
        Self { stop, thread }
    }

    /// Stops polling after one last sample; the peak in bytes.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// Bytes: max(the root's VmHWM, the tree's summed VmRSS) now.
fn sample(root: u32, tree: bool) -> u64 {
    let (root_hwm, root_rss) = status_kb(root);
    if !tree {
        return root_hwm * 1024;
    }
    let mut pids = vec![root];
    let mut sum = root_rss;
    let mut procs = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                procs.push((pid, ppid));
            }
        }
    }
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for &(pid, ppid) in &procs {
            if ppid == parent && !pids.contains(&pid) {
                pids.push(pid);
                sum += status_kb(pid).1;
            }
        }
        i += 1;
    }
    root_hwm.max(sum) * 1024
}

/// (VmHWM, VmRSS) of `pid` in kB (0 when gone).
fn status_kb(pid: u32) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The parent pid from /proc/PID/stat (the field after the `)` of comm).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    // Proves the database of a PostgreSQL URL is replaced, the query kept.
    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x").unwrap(),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://u:p@h", "x").unwrap(),
            "postgresql://u:p@h/x"
        );
        assert!(with_database("sqlite://a.db", "x").is_err());
    }

    // Proves the overview has the asked mean size and the text escapes JSON must keep.
    #[test]
    fn overview_is_long_html_with_escapes() {
        let doc = json!({"name": "Wetpaint"});
        let mut r = SplitMix64::new(1);
        let texts: Vec<String> = (0..200).map(|_| overview(&mut r, &doc, 1000)).collect();
        let mean = texts.iter().map(String::len).sum::<usize>() / texts.len();
        assert!((800..1200).contains(&mean), "{mean}");
        let all = texts.concat();
        assert!(all.contains('\n') && all.contains('"') && all.contains('é'));
    }

    // Proves the watcher sees this process's memory.
    #[test]
    fn watch_reads_proc() {
        let w = Watch::start(std::process::id(), true);
        assert!(w.finish() > 1024 * 1024);
    }
}

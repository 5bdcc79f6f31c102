//! `tributary imports ...`: a client of the imports REST API (it talks to
//! a running `tributary up` / `tributary serve imports-api`). Every
//! command prints text, or with `--json` one JSON object per line.
//! Progress of `upload` and `generate` goes to stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tributary_runtime::client::{file_body, Api};

use crate::api::{
    CompanyPage, Deleted, ErrorPage, KindView, UploadAnswer, UploadPage, UploadStatus,
};
use crate::domain::generate;

/// `tributary imports`: the imports system's client.
#[derive(Debug, Args)]
pub struct Command {
    /// Base URL of the imports API (default: `http://` + `imports.http_listen`).
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub action: Action,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Upload files (streamed from disk); prints each request id.
    Upload {
        /// Files: one JSON object, an array of objects, or NDJSON; `.gz`
        /// files are sent with `Content-Encoding: gzip`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Record kind.
        #[arg(long, default_value = "company")]
        kind: String,
        /// Upload name (the event key); default: the file name.
        #[arg(long)]
        name: Option<String>,
        /// Follow each upload to `completed` (exit non-zero when one fails).
        #[arg(long)]
        wait: bool,
        /// With `--wait`: rejected records fail the command too.
        #[arg(long)]
        strict: bool,
        /// With `--wait`: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// An upload's status (`state`, `records`, `loaded`, `rejected`, first errors).
    Status {
        /// The request id.
        id: String,
    },
    /// An upload's rejected records, one per line.
    Errors {
        /// The request id.
        id: String,
        /// Errors to print at most.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Recent uploads, most recent first.
    List {
        /// Uploads to print.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Record kinds and their rules.
    Kinds,
    /// Loaded companies in permalink order.
    Companies {
        /// Name substring (case-insensitive).
        #[arg(long)]
        name: Option<String>,
        /// Companies to print at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this permalink.
        #[arg(long)]
        after: Option<String>,
        /// Print only the number of matching companies.
        #[arg(long)]
        count: bool,
    },
    /// Process a finished upload again (from the start; loads are upserts).
    Reprocess {
        /// The request id.
        id: String,
        /// Follow it to `completed` (exit non-zero when it fails).
        #[arg(long)]
        wait: bool,
    },
    /// Delete an upload's status and errors (needs an admin token).
    Delete {
        /// The request id.
        id: String,
    },
    /// Write a companies-shaped file (no server needed).
    Generate {
        /// Records.
        #[arg(long, default_value_t = 1000)]
        records: usize,
        /// Share of invalid records (0.0..=1.0).
        #[arg(long, default_value_t = 0.05)]
        invalid: f64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// A JSON array instead of NDJSON.
        #[arg(long)]
        array: bool,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// The imports API and the commands' calls to it.
struct Client {
    api: Api,
}

impl Client {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.api.get(path, query).await
    }

    async fn upload(
        &self,
        file: &Path,
        kind: &str,
        name: &str,
        json: bool,
    ) -> anyhow::Result<UploadAnswer> {
        let f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("open {}", file.display()))?;
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        let bar = if json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(file.display().to_string());
            bar
        };
        let progress = bar.clone();
        let mut req = self
            .api
            .http()
            .post(self.api.url(&format!(
                "/api/imports/import/{}/{}",
                encode(kind),
                encode(name)
            )))
            .header("content-type", "application/json")
            .header("content-length", len)
            .body(file_body(f, move |n| progress.inc(n)));
        if file.extension().is_some_and(|e| e == "gz") {
            req = req.header("content-encoding", "gzip");
        }
        let answer = self
            .api
            .call(req)
            .await
            .with_context(|| format!("upload {}", file.display()));
        bar.finish_and_clear();
        answer
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn status_line(s: &UploadStatus) -> String {
    let mut line = format!(
        "{}  {}  {}/{}  {}  records {}  loaded {}  rejected {}",
        s.request_id, s.state, s.kind, s.name, s.size, s.records, s.loaded, s.rejected
    );
    if let Some(d) = &s.duplicate_of {
        line.push_str(&format!("  duplicate of {d}"));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!("  error: {e}"));
    }
    line
}

async fn wait_for(client: &Client, id: &str, timeout: Duration) -> anyhow::Result<UploadStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let s: UploadStatus = client
            .get(&format!("/api/imports/uploads/{}", encode(id)), &[])
            .await?;
        if s.state == "completed" || s.state == "failed" {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("upload {id} still {} after {timeout:?}", s.state);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `cmd` against the API at `default_api` unless `--api` says otherwise.
///
/// # Errors
/// When the API cannot be reached or answers an error, a file cannot be
/// read, or (with `--wait`) an upload failed.
pub async fn run(cmd: Command, default_api: String) -> anyhow::Result<()> {
    let client = Client {
        api: Api::new("imports", &cmd.api.clone().unwrap_or(default_api))?,
    };
    let json = cmd.json;
    match cmd.action {
        Action::Upload {
            files,
            kind,
            name,
            wait,
            strict,
            timeout_secs,
        } => {
            let mut failed = Vec::new();
            for file in &files {
                let name = name.clone().unwrap_or_else(|| {
                    file.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "upload".into())
                });
                let answer = client.upload(file, &kind, &name, json).await?;
                if !wait {
                    if json {
                        print_json(&answer)?;
                    } else if let Some(d) = &answer.duplicate_of {
                        println!(
                            "{}: {} (duplicate of {d})",
                            file.display(),
                            answer.request_id
                        );
                    } else {
                        println!(
                            "{}: {}  {} records  sha256 {}",
                            file.display(),
                            answer.request_id,
                            answer.records,
                            answer.checksum
                        );
                    }
                    continue;
                }
                let status = wait_for(
                    &client,
                    &answer.request_id,
                    Duration::from_secs(timeout_secs),
                )
                .await?;
                if json {
                    print_json(&status)?;
                } else {
                    println!("{}: {}", file.display(), status_line(&status));
                }
                if status.state == "failed" || (strict && status.rejected > 0) {
                    failed.push(format!("{} ({})", file.display(), status.request_id));
                }
            }
            if !failed.is_empty() {
                bail!(
                    "{} upload(s) {}: {}",
                    failed.len(),
                    if strict {
                        "failed or had rejected records"
                    } else {
                        "failed"
                    },
                    failed.join(", ")
                );
            }
        }
        Action::Status { id } => {
            let s: UploadStatus = client
                .get(&format!("/api/imports/uploads/{}", encode(&id)), &[])
                .await?;
            if json {
                print_json(&s)?;
            } else {
                println!("{}", status_line(&s));
                for e in &s.errors {
                    println!(
                        "  record {} line {}: {} {} {:?}",
                        e.record, e.line, e.rule, e.pointer, e.value
                    );
                }
            }
        }
        Action::Errors { id, limit } => {
            let mut after: Option<u64> = None;
            let mut printed = 0usize;
            while printed < limit {
                let mut q = vec![("limit", (limit - printed).min(1000).to_string())];
                if let Some(a) = after {
                    q.push(("after", a.to_string()));
                }
                let page: ErrorPage = client
                    .get(&format!("/api/imports/uploads/{}/errors", encode(&id)), &q)
                    .await?;
                for e in &page.errors {
                    if json {
                        print_json(e)?;
                    } else {
                        println!(
                            "record {} line {}: {} {} {:?}: {}",
                            e.record, e.line, e.rule, e.pointer, e.value, e.message
                        );
                    }
                }
                printed += page.errors.len();
                match page.next_after {
                    Some(a) => after = Some(a),
                    None => break,
                }
            }
        }
        Action::List { limit } => {
            let page: UploadPage = client
                .get("/api/imports/uploads", &[("limit", limit.to_string())])
                .await?;
            for s in &page.uploads {
                if json {
                    print_json(s)?;
                } else {
                    println!("{}", status_line(s));
                }
            }
        }
        Action::Kinds => {
            let kinds: Vec<KindView> = client.get("/api/imports/kinds", &[]).await?;
            for k in &kinds {
                if json {
                    print_json(k)?;
                } else {
                    println!("{} (natural key {})", k.kind, k.natural_key);
                    for r in &k.rules {
                        println!("  {:28} {}", r.name, r.description);
                    }
                }
            }
        }
        Action::Companies {
            name,
            limit,
            after,
            count,
        } => {
            let mut after = after;
            let mut seen = 0usize;
            loop {
                let want = if count {
                    1000
                } else {
                    (limit - seen).min(1000)
                };
                if want == 0 {
                    break;
                }
                let mut q = vec![("limit", want.to_string())];
                if let Some(n) = &name {
                    q.push(("name", n.clone()));
                }
                if let Some(a) = &after {
                    q.push(("after", a.clone()));
                }
                let page: CompanyPage = client.get("/api/imports/companies", &q).await?;
                seen += page.companies.len();
                if !count {
                    for c in &page.companies {
                        if json {
                            print_json(c)?;
                        } else {
                            println!(
                                "{:30} {:40} {:12} {}",
                                c.permalink,
                                c.name,
                                c.category_code.as_deref().unwrap_or("-"),
                                c.founded.as_deref().unwrap_or("-")
                            );
                        }
                    }
                }
                match page.next_after {
                    Some(a) => after = Some(a),
                    None => break,
                }
            }
            if count {
                if json {
                    print_json(&serde_json::json!({ "companies": seen }))?;
                } else {
                    println!("{seen}");
                }
            }
        }
        Action::Reprocess { id, wait } => {
            let api = &client.api;
            let mut s: UploadStatus = api
                .call(
                    api.http()
                        .post(api.url(&format!("/api/imports/uploads/{}/reprocess", encode(&id)))),
                )
                .await?;
            if wait {
                s = wait_for(&client, &id, Duration::from_secs(3600)).await?;
            }
            if json {
                print_json(&s)?;
            } else {
                println!("{}", status_line(&s));
            }
            if wait && s.state == "failed" {
                bail!("upload {id} failed: {}", s.error.unwrap_or_default());
            }
        }
        Action::Delete { id } => {
            let api = &client.api;
            let d: Deleted = api
                .call(
                    api.http()
                        .delete(api.url(&format!("/api/imports/uploads/{}", encode(&id)))),
                )
                .await?;
            if json {
                print_json(&d)?;
            } else {
                println!(
                    "deleted {}{}",
                    d.request_id,
                    if d.object_removed {
                        " and its stored body"
                    } else {
                        ""
                    }
                );
            }
        }
        Action::Generate {
            records,
            invalid,
            out,
            array,
            seed,
        } => {
            if !(0.0..=1.0).contains(&invalid) {
                bail!("--invalid: a share in 0.0..=1.0, got {invalid}");
            }
            let file =
                std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let bar = if json {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(records as u64)
            };
            let mut broken = 0usize;
            let mut bytes = 0u64;
            if array {
                w.write_all(b"[\n")?;
            }
            for (i, g) in generate::companies(seed, records, invalid).enumerate() {
                if g.broken.is_some() {
                    broken += 1;
                }
                let line = serde_json::to_vec(&g.doc)?;
                if array && i > 0 {
                    w.write_all(b",\n")?;
                }
                w.write_all(&line)?;
                if !array {
                    w.write_all(b"\n")?;
                }
                bytes += line.len() as u64 + 1;
                bar.inc(1);
            }
            if array {
                w.write_all(b"\n]\n")?;
            }
            w.flush()?;
            bar.finish_and_clear();
            let summary = serde_json::json!({
                "file": out.display().to_string(),
                "records": records,
                "invalid": broken,
                "bytes": bytes,
            });
            if json {
                print_json(&summary)?;
            } else {
                println!(
                    "{}: {records} records ({broken} invalid), {bytes} bytes",
                    out.display()
                );
            }
        }
    }
    Ok(())
}

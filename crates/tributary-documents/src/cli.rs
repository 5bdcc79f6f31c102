//! `tributary docs ...`: a client of the docs REST API (it talks to a
//! running `tributary up` / `tributary serve docs-api`; it never opens the
//! bus itself, so it works against one laptop and a cluster alike).
//! Progress of `produce` and `send` goes to stderr.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tributary_runtime::client::Api;

use crate::api::{Accepted, DocumentPage, Stats};
use crate::domain::{generate_updates, reference_merge, GenParams};

/// Lines per ingest request, at most.
const CHUNK_LINES: usize = 2000;
/// Bytes per ingest request, at most (below the API's body limit).
const CHUNK_BYTES: usize = 1024 * 1024;

/// `tributary docs`: the documents system's client.
#[derive(Debug, Args)]
pub struct Command {
    /// Base URL of the docs API (default: `http://` + `docs.http_listen`).
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
    /// Generate an update stream and send it through the API.
    Produce {
        /// Distinct urls.
        #[arg(long, default_value_t = 1000)]
        urls: usize,
        /// Updates in total, duplicates included.
        #[arg(long, default_value_t = 10_000)]
        updates: usize,
        /// Fraction of the updates that are exact copies (0.0..=1.0).
        #[arg(long, default_value_t = 0.2)]
        duplicates: f64,
        /// Shuffle the stream (otherwise in fetch-time order).
        #[arg(long)]
        shuffle: bool,
        /// Generator seed (default: from the clock, printed on stderr).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the reference merge of what was sent here (NDJSON, url order).
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Send the updates of an NDJSON file as they are.
    Send {
        /// NDJSON file, one update per line (wire shape).
        file: PathBuf,
    },
    /// Print one document (one JSON object, wire shape).
    Get {
        /// The url.
        url: String,
    },
    /// List documents in url order.
    List {
        /// Documents to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this url.
        #[arg(long)]
        after: Option<String>,
    },
    /// Counts: documents, outbox backlog.
    Stats,
}

/// The docs API and the commands' calls to it.
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

    async fn ingest(&self, body: Vec<u8>) -> anyhow::Result<usize> {
        let a: Accepted = self
            .api
            .call(
                self.api
                    .http()
                    .post(self.api.url("/api/docs/updates"))
                    .header("content-type", "application/x-ndjson")
                    .body(body),
            )
            .await?;
        Ok(a.accepted)
    }

    /// Sends `lines` in chunks; progress on stderr. Returns the count accepted.
    async fn send_lines(
        &self,
        lines: impl Iterator<Item = anyhow::Result<Vec<u8>>>,
        total: Option<u64>,
    ) -> anyhow::Result<usize> {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos}/{len} updates sent ({per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut accepted = 0usize;
        let mut chunk: Vec<u8> = Vec::new();
        let mut in_chunk = 0usize;
        for line in lines {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            chunk.extend_from_slice(&line);
            chunk.push(b'\n');
            in_chunk += 1;
            if in_chunk >= CHUNK_LINES || chunk.len() >= CHUNK_BYTES {
                accepted += self.ingest(std::mem::take(&mut chunk)).await?;
                bar.inc(in_chunk as u64);
                in_chunk = 0;
            }
        }
        if in_chunk > 0 {
            accepted += self.ingest(chunk).await?;
            bar.inc(in_chunk as u64);
        }
        bar.finish_and_clear();
        Ok(accepted)
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// Runs `cmd`; `default_api` is `http://` + `docs.http_listen`.
///
/// # Errors
/// When the API cannot be reached or refuses, or a file cannot be read or written.
pub async fn run(cmd: Command, default_api: String) -> anyhow::Result<()> {
    let client = Client {
        api: Api::new("docs", &cmd.api.unwrap_or(default_api))?,
    };
    let json = cmd.json;
    match cmd.action {
        Action::Produce {
            urls,
            updates,
            duplicates,
            shuffle,
            seed,
            reference,
        } => {
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
            eprintln!("generating {updates} updates over {urls} urls (duplicates {duplicates}, shuffle {shuffle}, seed {seed})");
            let params = GenParams {
                urls,
                updates,
                duplicates,
                shuffle,
            };
            let stream = generate_updates(seed, &params)?;
            if let Some(path) = &reference {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("create {}", path.display()))?;
                let mut w = std::io::BufWriter::new(file);
                for doc in reference_merge(stream.iter().cloned()).values() {
                    serde_json::to_writer(&mut w, doc)?;
                    w.write_all(b"\n")?;
                }
                w.flush()?;
            }
            let lines = stream
                .iter()
                .map(|d| serde_json::to_vec(d).map_err(anyhow::Error::from));
            let n = client.send_lines(lines, Some(stream.len() as u64)).await?;
            if json {
                print_json(&serde_json::json!({"accepted": n, "seed": seed}))?;
            } else {
                println!("sent {n} updates (seed {seed})");
                if let Some(path) = reference {
                    println!("reference merge written to {}", path.display());
                }
            }
        }
        Action::Send { file } => {
            let f =
                std::fs::File::open(&file).with_context(|| format!("open {}", file.display()))?;
            let total = std::io::BufReader::new(
                std::fs::File::open(&file).with_context(|| format!("open {}", file.display()))?,
            )
            .lines()
            .count() as u64;
            let reader = std::io::BufReader::new(f);
            let lines = reader.split(b'\n').map(|l| {
                l.map(|mut l| {
                    if l.last() == Some(&b'\r') {
                        l.pop();
                    }
                    l
                })
                .map_err(anyhow::Error::from)
            });
            let n = client.send_lines(lines, Some(total)).await?;
            if json {
                print_json(&serde_json::json!({"accepted": n}))?;
            } else {
                println!("sent {n} updates from {}", file.display());
            }
        }
        Action::Get { url } => {
            let doc: serde_json::Value = client.get("/api/docs/documents", &[("url", url)]).await?;
            print_json(&doc)?;
        }
        Action::List { limit, after } => {
            let mut after = after;
            let mut left = limit;
            while left > 0 {
                let page_size = left.min(1000);
                let mut q = vec![("limit", page_size.to_string())];
                if let Some(a) = &after {
                    q.push(("after", a.clone()));
                }
                let page: DocumentPage = client.get("/api/docs/documents", &q).await?;
                for d in &page.documents {
                    if json {
                        print_json(d)?;
                    } else {
                        let text = d["Text"].as_str().unwrap_or_default();
                        let short: String = text.chars().take(60).collect();
                        println!(
                            "{}  fetch_time={} first_fetch_time={} pub_date={}  {short}",
                            d["Url"].as_str().unwrap_or_default(),
                            d["FetchTime"],
                            d["FirstFetchTime"],
                            d["PubDate"],
                        );
                    }
                }
                left = left.saturating_sub(page.documents.len());
                match page.next_after {
                    Some(next) if !page.documents.is_empty() => after = Some(next),
                    _ => break,
                }
            }
        }
        Action::Stats => {
            let s: Stats = client.get("/api/docs/stats", &[]).await?;
            if json {
                print_json(&s)?;
            } else {
                println!("documents: {}", s.documents);
                println!("outbox pending: {}", s.outbox_pending);
            }
        }
    }
    Ok(())
}

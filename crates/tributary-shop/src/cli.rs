//! `tributary shop ...`: a client of the shop REST API (it talks to a
//! running `tributary up` / `tributary serve shop-api`; it never opens the
//! bus itself, so it works against one laptop and a cluster alike). With
//! `--json` every command prints one JSON object per line.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use tributary_runtime::client::Api;

use crate::api::{Accepted, FilterView, SetFilter};
use crate::domain::{Emulator, Product, Prompt, Recommendation};
use crate::store::Counts;

/// Lines per ingest request, at most.
const CHUNK_LINES: usize = 2000;
/// Bytes per ingest request, at most (below the API's body limit).
const CHUNK_BYTES: usize = 1024 * 1024;

/// `tributary shop`: the shop system's client.
#[derive(Debug, Args)]
pub struct Command {
    /// Base URL of the shop API (default: `http://` + `shop.http_listen`).
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub action: Action,
}

/// What a `send` file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Products (to `shop_products`).
    Products,
    /// Search prompts (to `analytic_products_find`).
    Prompts,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Search for a product: emits a prompt {id, user_id, find}. Without
    /// TEXT, reads one prompt per line from stdin.
    Find {
        /// What to find; omit for the interactive mode.
        text: Option<String>,
        /// Who is searching.
        #[arg(long, default_value = "anonymous")]
        user: String,
        /// Event time of the prompts, ms since the epoch (default: when sent).
        #[arg(long, value_name = "MS")]
        event_time: Option<i64>,
    },
    /// Send the records of an NDJSON file (wire shape) as they are.
    Send {
        /// `products` or `prompts`.
        kind: Kind,
        /// The file, one record per line.
        file: PathBuf,
        /// Event time of every record, ms since the epoch (default: when
        /// sent); replays of late or early records set it.
        #[arg(long, value_name = "MS")]
        event_time: Option<i64>,
    },
    /// Emulate stores: generated products at a rate.
    Emulate {
        /// Products per second.
        #[arg(long, default_value_t = 30)]
        rate: u32,
        /// Products in total.
        #[arg(long, default_value_t = 100)]
        count: u64,
        /// Generator seed (default: from the clock).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// The product filter.
    Filter {
        /// The filter command.
        #[command(subcommand)]
        action: FilterAction,
    },
    /// A user's recommendations (prompt, product id and name).
    Recommendations {
        /// The user.
        #[arg(long)]
        user: String,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Products whose name contains TEXT (case-insensitive).
    Products {
        /// Name part; omit for all.
        #[arg(long)]
        name: Option<String>,
        /// The filtered products instead of all.
        #[arg(long)]
        filtered: bool,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Row counts of the sink's tables.
    Stats,
}

/// `tributary shop filter ...`.
#[derive(Debug, Subcommand)]
pub enum FilterAction {
    /// Set the filter: a case-insensitive substring, or with `--regex` a regex.
    Set {
        /// Read PATTERN as a regex (the `regex` crate's syntax).
        #[arg(long)]
        regex: bool,
        /// For a regex: ignore case.
        #[arg(long, short = 'i')]
        ignore_case: bool,
        /// The pattern.
        pattern: String,
    },
    /// Show the filter, when it was set, and what each replica reported.
    Get,
    /// Clear the filter (all products pass).
    Clear,
}

/// The shop API and the commands' calls to it.
struct Client {
    api: Api,
    /// The API's client (it sends the token), to build requests with.
    http: reqwest::Client,
}

impl Client {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        self.api.call(req).await
    }

    fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    async fn ingest(
        &self,
        kind: Kind,
        body: Vec<u8>,
        event_time: Option<i64>,
    ) -> anyhow::Result<usize> {
        let path = match kind {
            Kind::Products => "/api/shop/products",
            Kind::Prompts => "/api/shop/prompts",
        };
        let mut url = self.url(path);
        if let Some(ms) = event_time {
            url = format!("{url}?event_time_ms={ms}");
        }
        let a: Accepted = self
            .call(
                self.http
                    .post(url)
                    .header("content-type", "application/x-ndjson")
                    .body(body),
            )
            .await?;
        Ok(a.accepted)
    }

    /// Sends `lines` in chunks; returns the count accepted.
    async fn send_lines(
        &self,
        kind: Kind,
        lines: impl Iterator<Item = anyhow::Result<Vec<u8>>>,
        event_time: Option<i64>,
    ) -> anyhow::Result<usize> {
        let mut sent = 0;
        let mut body = Vec::new();
        let mut n = 0;
        for line in lines {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            body.extend_from_slice(&line);
            body.push(b'\n');
            n += 1;
            if n >= CHUNK_LINES || body.len() >= CHUNK_BYTES {
                sent += self
                    .ingest(kind, std::mem::take(&mut body), event_time)
                    .await?;
                n = 0;
            }
        }
        if n > 0 {
            sent += self.ingest(kind, body, event_time).await?;
        }
        Ok(sent)
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn print_filter(v: &FilterView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(v);
    }
    let f = &v.filter;
    if f.pattern.is_empty() {
        println!("filter: none (all products pass)");
    } else {
        let case = if f.kind == "regex" && !f.case_insensitive {
            "case-sensitive"
        } else {
            "ignoring case"
        };
        println!("filter: {} {:?} ({case})", f.kind, f.pattern);
    }
    match v.control_offset {
        Some(o) => println!("set at: {} ms (control offset {o})", f.set_at),
        None => println!("set at: never"),
    }
    for r in &v.replicas {
        let state = if r.set_at == f.set_at {
            "applied"
        } else {
            "older filter"
        };
        println!(
            "replica {}: {state}, applies from {:?}",
            r.replica, r.applies_from
        );
    }
    Ok(())
}

/// Runs `cmd` against the API at `default_api` unless `--api` is given.
///
/// # Errors
/// When the API is unreachable or refuses the request (the error body's
/// code and message are shown).
pub async fn run(cmd: Command, default_api: String) -> anyhow::Result<()> {
    let api = Api::new("shop", &cmd.api.unwrap_or(default_api))?;
    let c = Client {
        http: api.http().clone(),
        api,
    };
    let json = cmd.json;
    match cmd.action {
        Action::Find {
            text: Some(text),
            user,
            event_time,
        } => {
            let p = Prompt::new(user, text);
            let line = serde_json::to_vec(&p)?;
            c.ingest(Kind::Prompts, line, event_time).await?;
            if json {
                print_json(&p)?;
            } else {
                println!("prompt {} sent for {}: {:?}", p.id, p.user_id, p.find);
            }
        }
        Action::Find {
            text: None,
            user,
            event_time,
        } => {
            if !json {
                eprintln!("one search per line; end with Ctrl-D");
            }
            loop {
                let mut line = String::new();
                if std::io::stdin()
                    .read_line(&mut line)
                    .context("read stdin")?
                    == 0
                {
                    break;
                }
                if line.trim().is_empty() {
                    continue;
                }
                let p = Prompt::new(user.clone(), line.trim());
                c.ingest(Kind::Prompts, serde_json::to_vec(&p)?, event_time)
                    .await?;
                if json {
                    print_json(&p)?;
                } else {
                    println!("prompt {} sent", p.id);
                }
            }
        }
        Action::Send {
            kind,
            file,
            event_time,
        } => {
            let f =
                std::fs::File::open(&file).with_context(|| format!("open {}", file.display()))?;
            let lines = std::io::BufReader::new(f)
                .split(b'\n')
                .map(|l| l.context("read the file"));
            let n = c.send_lines(kind, lines, event_time).await?;
            if json {
                print_json(&serde_json::json!({"sent": n}))?;
            } else {
                println!("{n} records sent");
            }
        }
        Action::Emulate { rate, count, seed } => {
            let seed = crate::pipeline::emulator::seed_or_clock(seed);
            let mut emulator = Emulator::new(seed);
            let (period, per_tick) = crate::pipeline::emulator::pacing(rate);
            let started = Instant::now();
            let mut sent = 0u64;
            let mut tick = tokio::time::interval(period);
            while sent < count {
                tick.tick().await;
                let n = per_tick.min(count - sent);
                let mut body = Vec::new();
                for _ in 0..n {
                    let p: Product = emulator.next_product(chrono::Utc::now());
                    serde_json::to_writer(&mut body, &p)?;
                    body.push(b'\n');
                }
                c.ingest(Kind::Products, body, None).await?;
                sent += n;
            }
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            if json {
                print_json(&serde_json::json!({"sent": sent, "seed": seed, "seconds": secs}))?;
            } else {
                println!("{sent} products sent in {secs:.1} s (seed {seed})");
            }
        }
        Action::Filter { action } => {
            let view: FilterView = match action {
                FilterAction::Set {
                    regex,
                    ignore_case,
                    pattern,
                } => {
                    let body = SetFilter {
                        pattern,
                        regex,
                        case_insensitive: ignore_case,
                    };
                    c.call(c.http.put(c.url("/api/shop/filter")).json(&body))
                        .await?
                }
                FilterAction::Get => c.call(c.http.get(c.url("/api/shop/filter"))).await?,
                FilterAction::Clear => c.call(c.http.delete(c.url("/api/shop/filter"))).await?,
            };
            print_filter(&view, json)?;
        }
        Action::Recommendations { user, limit } => {
            let recs: Vec<Recommendation> = c
                .call(
                    c.http
                        .get(c.url("/api/shop/recommendations"))
                        .query(&[("user", user), ("limit", limit.to_string())]),
                )
                .await?;
            for r in &recs {
                if json {
                    print_json(&serde_json::json!({
                        "key": r.key(),
                        "prompt_id": r.prompt_id,
                        "user_id": r.user_id,
                        "find": r.find,
                        "product_id": r.product.product_id,
                        "name": r.product.name,
                        "matched_at": r.matched_at,
                    }))?;
                } else {
                    println!(
                        "{:?} -> {} {}",
                        r.find, r.product.product_id, r.product.name
                    );
                }
            }
        }
        Action::Products {
            name,
            filtered,
            limit,
        } => {
            let mut q = vec![
                ("limit", limit.to_string()),
                ("filtered", filtered.to_string()),
            ];
            if let Some(n) = name {
                q.push(("name", n));
            }
            let ps: Vec<Product> = c
                .call(c.http.get(c.url("/api/shop/products")).query(&q))
                .await?;
            for p in &ps {
                if json {
                    print_json(p)?;
                } else {
                    println!(
                        "{} {} ({} {})",
                        p.product_id, p.name, p.price.amount, p.price.currency
                    );
                }
            }
        }
        Action::Stats => {
            let s: Counts = c.call(c.http.get(c.url("/api/shop/stats"))).await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "products {}, filtered {}, recommendations {}",
                    s.products, s.filtered, s.recommendations
                );
            }
        }
    }
    Ok(())
}

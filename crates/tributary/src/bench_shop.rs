//! `tributary bench shop`: the shop streams against their peers on the same
//! generated products (the shop emulator's), in one run:
//!
//! - (a) raw passthrough on Kafka: rdkafka consume -> produce of every
//!   product, no parsing (the floor of any consume-produce job);
//! - (b) our filter on Kafka: the real `shop-filter` pipeline (the
//!   at-least-once runner, [`FilterHandler`], the filter set through its
//!   control topic the way `shop-api` sets it and read back by the
//!   replica's follower), from the first poll until every passing product
//!   is on the output topic;
//! - (c) quixstreams (PyPI) on Kafka: the same substring filter as a
//!   streaming dataframe, run as `python3 SCRIPT` when `--quix-python` is set;
//! - latency of (b) at a fixed input rate: produce -> output consumed,
//!   p50/p99;
//! - (d) our join on the embedded bus + SQLite, as `tributary up` runs it:
//!   the real [`JoinHandler`] (state in SQL) on prompts and products over
//!   `--join-names` distinct normalised names.
//!
//! Each run checks its output against a simple in-memory computation (the
//! filter as `lowercase(name) contains lowercase(needle)`, the join as
//! products x prompts per normalised name), so a fast wrong answer cannot
//! pass as a figure.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::{self, Ack, Handler, HandlerError, RunnerConfig};
use tributary_bus::{Bus, BusConfig, ConsumerOptions, Message, Record, StartFrom};
use tributary_shop::domain::{
    Emulator, FilterSpec, JoinConfig, JoinState, Product, Prompt, SplitMix64,
};
use tributary_shop::pipeline::control::{replica_id, ControlView, Follower, FILTER_KEY};
use tributary_shop::pipeline::filter::FilterHandler;
use tributary_shop::pipeline::join::JoinHandler;
use tributary_shop::pipeline::{ConsumerHealth, RECOMMENDATION_KEY_HEADER};
use tributary_shop::settings::ShopSettings;
use tributary_shop::store::ShopStore;
use tributary_storage::{Database, SqlConfig};

use crate::bench::{bar, feed, tempdir, unique};
use crate::cli::ShopBenchArgs;

/// The targets.
const TARGET_B_OVER_A: f64 = 0.7;
const TARGET_B_OVER_C: f64 = 5.0;
const TARGET_D_RATE: f64 = 50_000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_P99_RATE: u32 = 1_000;

/// How long to wait for one more output record before calling the output
/// complete (or short).
const IDLE: Duration = Duration::from_secs(10);

/// One measured run: input records, seconds from the first poll to done.
struct Run {
    name: &'static str,
    records: u64,
    seconds: f64,
    note: String,
    /// The output matched the in-memory computation.
    correct: bool,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
    fn print(&self) {
        println!(
            "{:<44} {:>9} records in {:>7.2} s = {:>9.0} records/s  {}",
            self.name,
            self.records,
            self.seconds,
            self.rate(),
            self.note
        );
    }
}

/// Produce -> output latency of (b) at a fixed input rate.
struct Latency {
    rate: u32,
    sent: u64,
    samples: Vec<Duration>,
    missing: usize,
    send_errors: u64,
}

pub async fn shop(args: ShopBenchArgs) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let emulator = Emulator::new(args.seed);
    let mut values = Vec::with_capacity(args.products as usize);
    let mut passing = HashSet::new();
    for i in 0..args.products {
        let p = emulator.product(i, now);
        if passes(&p.name, &args.filter) {
            passing.insert(p.product_id.clone());
        }
        values.push((p.product_id.clone(), serde_json::to_vec(&p)?));
    }
    let bytes: usize = values.iter().map(|(_, v)| v.len()).sum();
    println!(
        "bench shop: {} products ({:.1} MB of JSON, shop emulator, seed {}), filter substring {:?} \
         passes {} ({:.1}%); {} partitions{}",
        values.len(),
        bytes as f64 / 1e6,
        args.seed,
        args.filter,
        passing.len(),
        100.0 * passing.len() as f64 / values.len().max(1) as f64,
        args.partitions,
        if cfg!(debug_assertions) {
            "; DEBUG BUILD: not the release figures"
        } else {
            ""
        }
    );

    let mut raw = None;
    let mut ours = None;
    let mut quix = None;
    let mut lat = None;
    let mut wrong = Vec::new();
    if let Some(kafka) = &args.kafka {
        let mut config = BusConfig::default();
        config.kafka.fetch_wait_max_ms = args.fetch_wait_ms;
        config.kafka.linger_ms = args.linger_ms;
        println!(
            "our Kafka consumers: fetch.wait.max.ms = {} (bus.kafka.fetch_wait_max_ms); \
             producers: linger.ms = {} (bus.kafka.linger_ms)",
            args.fetch_wait_ms, args.linger_ms
        );
        let bus = tributary_bus::connect(kafka, &config).await?;
        let input = unique("bench-shop-in");
        bus.create_topic(&input, args.partitions).await?;
        feed(
            &bus,
            values
                .iter()
                .map(|(k, v)| Record::new(&input, k.clone(), v.clone())),
            values.len() as u64,
            "feed the products topic",
        )
        .await?;

        let r = crate::bench_docs::raw_passthrough(kafka, &input, values.len() as u64).await?;
        let a = Run {
            name: "a) raw passthrough: rdkafka consume->produce",
            records: values.len() as u64,
            seconds: r.seconds,
            note: format!("{} records out, no parsing", values.len()),
            correct: true,
        };
        a.print();
        raw = Some(a);

        let control = unique("bench-shop-control");
        let b = filter_ours(&bus, &input, &control, &passing, &args).await?;
        b.print();
        if !b.correct {
            wrong.push(b.name);
        }
        ours = Some(b);

        if let Some(python) = &args.quix_python {
            let c = quixstreams(
                python,
                &args.quix_script,
                &bus,
                kafka,
                &input,
                &passing,
                &args,
            )
            .await?;
            c.print();
            if !c.correct {
                wrong.push(c.name);
            }
            quix = Some(c);
        } else {
            println!("(no --quix-python: skipping c) quixstreams)");
        }

        if args.seconds > 0 && args.rate > 0 {
            let l = latency(&bus, &control, &args).await?;
            print_latency(&l, ours.as_ref());
            lat = Some(l);
        }
    } else {
        println!("(no --kafka URL: skipping a), b), c) and the latency run)");
    }

    let d = if args.join_products + args.join_prompts > 0 {
        let d = join_embedded(&args).await?;
        d.print();
        if !d.correct {
            wrong.push(d.name);
        }
        Some(d)
    } else {
        None
    };

    println!("figures against the issue's targets:");
    match (&raw, &ours) {
        (Some(a), Some(b)) => target(
            &format!("b/a = {:.2}", b.rate() / a.rate()),
            &format!(">= {TARGET_B_OVER_A}"),
            b.rate() / a.rate() >= TARGET_B_OVER_A,
        ),
        _ => println!("  b/a: not measured"),
    }
    match (&ours, &quix) {
        (Some(b), Some(c)) => target(
            &format!("b/c = {:.2}", b.rate() / c.rate()),
            &format!(">= {TARGET_B_OVER_C}"),
            b.rate() / c.rate() >= TARGET_B_OVER_C,
        ),
        _ => println!("  b/c: not measured"),
    }
    match &d {
        Some(d) => target(
            &format!("d = {:.0} input records/s on the embedded bus", d.rate()),
            &format!(">= {TARGET_D_RATE:.0}"),
            d.rate() >= TARGET_D_RATE,
        ),
        None => println!("  d: not measured"),
    }
    match &lat {
        Some(l) => match percentile(&sorted(&l.samples), 0.99) {
            Some(p99) if l.missing == 0 => target(
                &format!("latency p99 = {:.1} ms at {} records/s", ms(p99), l.rate),
                &format!("< {TARGET_P99_MS} ms at {TARGET_P99_RATE} records/s"),
                ms(p99) < TARGET_P99_MS && l.rate >= TARGET_P99_RATE,
            ),
            _ => target(
                &format!("latency: {} of the outputs never arrived", l.missing),
                &format!("p99 < {TARGET_P99_MS} ms"),
                false,
            ),
        },
        None => println!("  latency: not measured"),
    }
    if !wrong.is_empty() {
        bail!(
            "output differs from the in-memory computation in: {}",
            wrong.join(", ")
        );
    }
    Ok(())
}

fn target(figure: &str, want: &str, met: bool) {
    println!(
        "  {figure:<58} target {want:<34} {}",
        if met { "met" } else { "NOT MET" }
    );
}

/// The filter of (b) and (c) as a plain computation: the name contains the
/// needle, ignoring case (empty: all pass).
fn passes(name: &str, needle: &str) -> bool {
    name.to_lowercase().contains(&needle.to_lowercase())
}

/// The join key as a plain computation: lowercase, words joined by one space.
fn normalise(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Matches of the join when every record is inside one window: per
/// normalised name, products x prompts (ids all distinct).
fn expected_matches<'a>(
    product_names: impl IntoIterator<Item = &'a str>,
    prompt_finds: impl IntoIterator<Item = &'a str>,
) -> u64 {
    let mut products: HashMap<String, u64> = HashMap::new();
    for n in product_names {
        *products.entry(normalise(n)).or_default() += 1;
    }
    let mut matches = 0;
    for f in prompt_finds {
        matches += products.get(&normalise(f)).copied().unwrap_or(0);
    }
    matches
}

/// `n` distinct product names: the emulator's catalogue names with a
/// generation suffix (`"Apple iPhone 15 Gen 3"`).
fn join_names(n: usize) -> Vec<String> {
    let base = Emulator::catalogue();
    (0..n)
        .map(|i| format!("{} Gen {}", base[i % base.len()], i / base.len() + 1))
        .collect()
}

/// The `q` quantile (nearest rank) of sorted samples; `None` when empty.
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted(v: &[Duration]) -> Vec<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wraps a service's handler: counts the records it finished and stops the
/// runner after `target` of them, noting when.
struct Counted<H> {
    inner: H,
    done: Arc<AtomicU64>,
    rejected: AtomicU64,
    target: u64,
    finished_at: Arc<OnceLock<Instant>>,
    stop: CancellationToken,
    pb: ProgressBar,
}

impl<H> Counted<H> {
    fn new(inner: H, target: u64, stop: CancellationToken, pb: ProgressBar) -> Self {
        Self {
            inner,
            done: Arc::new(AtomicU64::new(0)),
            rejected: AtomicU64::new(0),
            target,
            finished_at: Arc::new(OnceLock::new()),
            stop,
            pb,
        }
    }
}

/// Runs `handler` under the shared runner until it stopped itself, and
/// returns the seconds from the start to its last counted record.
async fn run_counted<H: Handler + 'static>(
    bus: &Bus,
    cfg: RunnerConfig,
    handler: Arc<Counted<H>>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    runner::run(bus.clone(), cfg, handler.clone(), handler.stop.clone()).await?;
    let seconds = handler
        .finished_at
        .get()
        .map_or_else(|| started.elapsed(), |t| t.duration_since(started))
        .as_secs_f64();
    handler.pb.finish_and_clear();
    Ok(seconds)
}

/// One record finished (handled or dead-lettered, and durable): counts it,
/// and stops the runner at `target`, noting when.
fn finish_one(
    done: &AtomicU64,
    target: u64,
    finished_at: &OnceLock<Instant>,
    stop: &CancellationToken,
    pb: &ProgressBar,
) {
    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_multiple_of(1_000) {
        pb.set_position(n);
    }
    if n >= target {
        let _ = finished_at.set(Instant::now());
        stop.cancel();
    }
}

#[async_trait::async_trait]
impl<H: Handler> Handler for Counted<H> {
    async fn handle(&self, m: &Message) -> Result<(), HandlerError> {
        match self.handle_deferred(m).await? {
            Some(ack) => ack.await,
            None => Ok(()),
        }
    }

    /// The service's own deferral (the filter does not wait for each
    /// delivery), counting a record when its side effect completed.
    async fn handle_deferred(&self, m: &Message) -> Result<Option<Ack>, HandlerError> {
        let finish = || {
            finish_one(
                &self.done,
                self.target,
                &self.finished_at,
                &self.stop,
                &self.pb,
            );
        };
        match self.inner.handle_deferred(m).await {
            Ok(None) => {
                finish();
                Ok(None)
            }
            Ok(Some(ack)) => {
                let (done, target, at, stop, pb) = (
                    self.done.clone(),
                    self.target,
                    self.finished_at.clone(),
                    self.stop.clone(),
                    self.pb.clone(),
                );
                Ok(Some(Box::pin(async move {
                    ack.await?;
                    finish_one(&done, target, &at, &stop, &pb);
                    Ok(())
                })))
            }
            // Retried by the runner: not finished yet.
            Err(e @ HandlerError::Retryable(_)) => Err(e),
            Err(e @ HandlerError::Permanent(_)) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                finish();
                Err(e)
            }
        }
    }
}

/// Reads `topic` from the start under a new group and returns the id
/// (`id_of`) of every record, until `expect` were read and nothing more
/// came for a second, or nothing came for [`IDLE`].
async fn collect_ids(
    bus: &Bus,
    topic: &str,
    expect: usize,
    id_of: impl Fn(&Message) -> String,
) -> anyhow::Result<Vec<String>> {
    let mut consumer = bus
        .subscribe(
            &unique("bench-shop-check"),
            &[topic.to_owned()],
            ConsumerOptions {
                start_from: StartFrom::Earliest,
                ..ConsumerOptions::default()
            },
        )
        .await
        .with_context(|| format!("read back {topic}"))?;
    let mut ids = Vec::with_capacity(expect);
    loop {
        let wait = if ids.len() >= expect {
            Duration::from_secs(1)
        } else {
            IDLE
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(m) => ids.push(id_of(&m?)),
            Err(_) => break,
        }
    }
    consumer.close().await?;
    Ok(ids)
}

fn key_of(m: &Message) -> String {
    String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).into_owned()
}

/// Checks output ids against the expected set: the note, and whether it matched.
fn check(ids: &[String], want: &HashSet<String>) -> (String, bool) {
    let got: HashSet<&String> = ids.iter().collect();
    let missing = want.iter().filter(|id| !got.contains(id)).count();
    let extra = got.iter().filter(|id| !want.contains(**id)).count();
    let ok = missing == 0 && extra == 0 && ids.len() == want.len();
    let note = if ok {
        format!("{} out = the filter in memory", ids.len())
    } else {
        format!(
            "WRONG: {} out ({} distinct), want {}: {missing} missing, {extra} unexpected",
            ids.len(),
            got.len(),
            want.len()
        )
    };
    (note, ok)
}

/// Starts a filter replica's control-topic follower and returns its view.
async fn follower(
    bus: &Bus,
    control: &str,
    stop: &CancellationToken,
) -> anyhow::Result<ControlView> {
    let view = ControlView::default();
    Follower {
        bus: bus.clone(),
        topic: control.to_owned(),
        replica: replica_id(),
        ack: true,
        view: view.clone(),
    }
    .start(stop.clone())
    .await
    .context("start the filter's control-topic follower")?;
    Ok(view)
}

/// (b) the filter service's pipeline on Kafka.
async fn filter_ours(
    bus: &Bus,
    input: &str,
    control: &str,
    passing: &HashSet<String>,
    args: &ShopBenchArgs,
) -> anyhow::Result<Run> {
    let n = args.products;
    let settings = ShopSettings::default();
    let output = unique("bench-shop-filtered");
    bus.create_topic(&output, args.partitions).await?;
    let stop = CancellationToken::new();
    let follow = CancellationToken::new();
    let view = follower(bus, control, &follow).await?;
    // As `shop-api` does: the spec on the control topic under `filter`,
    // then wait until the replica has applied it.
    let spec = FilterSpec::substring(args.filter.clone(), tributary_shop::pipeline::now_ms());
    let delivery = bus
        .send(Record::new(
            control,
            FILTER_KEY.as_bytes().to_vec(),
            serde_json::to_vec(&spec)?,
        ))
        .await
        .context("write the filter to the control topic")?;
    if !view
        .wait_applied(delivery.offset, Duration::from_secs(10))
        .await
    {
        bail!("the filter replica did not apply the filter within 10 s");
    }
    anyhow::ensure!(
        view.snapshot().spec == spec,
        "the replica applied another filter"
    );
    let handler = Arc::new(Counted::new(
        FilterHandler::new(
            bus.clone(),
            output.clone(),
            view,
            ConsumerHealth::new("shop filter"),
        ),
        n,
        stop.clone(),
        bar(n, "b) ours: shop-filter"),
    ));
    let mut cfg = RunnerConfig::new(unique("bench-shop-filter"), &[input]);
    cfg.backoff = settings.backoff();
    let seconds = run_counted(bus, cfg, handler.clone()).await?;
    follow.cancel();
    let ids = collect_ids(bus, &output, passing.len(), key_of).await?;
    let (note, correct) = check(&ids, passing);
    let rejected = handler.rejected.load(Ordering::Relaxed);
    Ok(Run {
        name: "b) ours: shop-filter (runner + FilterHandler)",
        records: n,
        seconds,
        note: if rejected > 0 {
            format!("{note}; {rejected} dead-lettered")
        } else {
            note
        },
        correct: correct && rejected == 0,
    })
}

/// (c) quixstreams, as a child process; its script prints one JSON object
/// with `seconds` (first poll to the last output flushed) and `emitted`.
async fn quixstreams(
    python: &Path,
    script: &Path,
    bus: &Bus,
    kafka: &str,
    input: &str,
    passing: &HashSet<String>,
    args: &ShopBenchArgs,
) -> anyhow::Result<Run> {
    let brokers = tributary_bus::kafka::parse_brokers(kafka)?;
    let output = unique("bench-shop-quix-out");
    bus.create_topic(&output, args.partitions).await?;
    let n = args.products;
    let started = Instant::now();
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script)
        .args([
            "--broker",
            &brokers,
            "--input",
            input,
            "--output",
            &output,
            "--group",
            &unique("bench-shop-quix"),
            "--count",
            &n.to_string(),
            "--needle",
            &args.filter,
        ])
        .stderr(std::process::Stdio::inherit());
    let what = format!("run {} {}", python.display(), script.display());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context(what)?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("quixstreams script failed: {}", out.status);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap_or("{}"))
        .with_context(|| format!("quixstreams script output {line:?}"))?;
    let seconds = v["seconds"].as_f64().unwrap_or(wall);
    let ids = collect_ids(bus, &output, passing.len(), key_of).await?;
    let (note, correct) = check(&ids, passing);
    Ok(Run {
        name: "c) quixstreams: sdf.filter -> to_topic",
        records: n,
        seconds,
        note: format!("{note}; {wall:.2} s with interpreter start"),
        correct,
    })
}

/// (b) at a fixed input rate: a filter replica runs on a fresh products
/// topic; products are sent at `--rate` for `--seconds`, and each passing
/// one is timed from the send (its produce timestamp) to when it is read
/// from the output topic.
async fn latency(bus: &Bus, control: &str, args: &ShopBenchArgs) -> anyhow::Result<Latency> {
    let settings = ShopSettings::default();
    let input = unique("bench-shop-lat-in");
    let output = unique("bench-shop-lat-out");
    bus.create_topic(&input, args.partitions).await?;
    bus.create_topic(&output, args.partitions).await?;
    let stop = CancellationToken::new();
    let view = follower(bus, control, &stop).await?;
    anyhow::ensure!(
        view.snapshot().spec.pattern == args.filter,
        "the latency run's replica did not read the filter from the control topic"
    );
    let handler = Arc::new(FilterHandler::new(
        bus.clone(),
        output.clone(),
        view,
        ConsumerHealth::new("shop filter"),
    ));
    let mut cfg = RunnerConfig::new(unique("bench-shop-lat"), &[input.as_str()]);
    cfg.backoff = settings.backoff();
    let service = tokio::spawn(runner::run(bus.clone(), cfg, handler, stop.clone()));

    // Sent passing products by id -> when; the reader turns them into samples.
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let samples: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let seen = Arc::new(tokio::sync::Notify::new());
    let mut consumer = bus
        .subscribe(
            &unique("bench-shop-lat-out"),
            std::slice::from_ref(&output),
            ConsumerOptions {
                start_from: StartFrom::Earliest,
                ..ConsumerOptions::default()
            },
        )
        .await?;
    let reader = {
        let (sent_at, samples, seen, stop) =
            (sent_at.clone(), samples.clone(), seen.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    () = stop.cancelled() => break,
                    m = consumer.recv() => m,
                };
                let Ok(m) = m else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let at = Instant::now();
                let t0 = sent_at.lock().ok().and_then(|mut s| s.remove(&key_of(&m)));
                if let Some(t0) = t0 {
                    if let Ok(mut v) = samples.lock() {
                        v.push(at - t0);
                    }
                }
                seen.notify_waiters();
            }
            let _ = consumer.close().await;
        })
    };

    // Products beyond the main run's indices, so their ids are new.
    let emulator = Emulator::new(args.seed);
    let mut index = args.products + 1_000_000;
    let mut next = move || {
        let p = emulator.product(index, chrono::Utc::now());
        index += 1;
        p
    };
    let send = |p: &Product| {
        let value = serde_json::to_vec(p).unwrap_or_default();
        bus.send(Record::new(&input, p.product_id.clone(), value))
    };

    // Warm-up: a passing product every 500 ms until one comes out, so the
    // replica and the reader have their partitions before timing starts.
    let warm = Instant::now();
    loop {
        let p = std::iter::repeat_with(&mut next)
            .take(1_000_000)
            .find(|p| passes(&p.name, &args.filter))
            .context("latency run: no product passes the filter")?;
        let notified = seen.notified();
        send(&p).await?;
        if tokio::time::timeout(Duration::from_millis(500), notified)
            .await
            .is_ok()
        {
            break;
        }
        if warm.elapsed() > Duration::from_secs(60) {
            bail!("latency run: no output within 60 s of warm-up");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rate = args.rate.max(1);
    let per_tick = u64::from(rate).div_ceil(100);
    let period = Duration::from_secs_f64(per_tick as f64 / f64::from(rate));
    let total = u64::from(rate) * args.seconds;
    let errors = Arc::new(AtomicU64::new(0));
    let pb = bar(total, "latency run: send");
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        for _ in 0..per_tick.min(total - sent) {
            let p = next();
            if passes(&p.name, &args.filter) {
                if let Ok(mut s) = sent_at.lock() {
                    s.insert(p.product_id.clone(), Instant::now());
                }
            }
            let fut = send(&p);
            let errors = errors.clone();
            tokio::spawn(async move {
                if fut.await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            });
            sent += 1;
        }
        pb.set_position(sent);
    }
    pb.finish_and_clear();
    // Wait for the outputs still on their way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && sent_at.lock().map(|s| !s.is_empty()).unwrap_or(false) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let _ = reader.await;
    service.await??;
    let missing = sent_at.lock().map(|s| s.len()).unwrap_or(0);
    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(Latency {
        rate,
        sent,
        samples,
        missing,
        send_errors: errors.load(Ordering::Relaxed),
    })
}

fn print_latency(l: &Latency, ours: Option<&Run>) {
    let s = sorted(&l.samples);
    let show = |q| percentile(&s, q).map_or_else(|| "-".to_owned(), |d| format!("{:.1} ms", ms(d)));
    let load = ours.map_or_else(String::new, |b| {
        format!(
            " ({:.0}% of b)'s rate)",
            100.0 * f64::from(l.rate) / b.rate()
        )
    });
    println!(
        "{:<44} {:>9} records at {} records/s{load}: produce->output p50 {} p99 {} max {} \
         ({} passing timed, {} never arrived, {} send errors)",
        "b) latency at a fixed rate",
        l.sent,
        l.rate,
        show(0.50),
        show(0.99),
        show(1.0),
        s.len(),
        l.missing,
        l.send_errors,
    );
}

/// (d) the join service's pipeline on the embedded bus + SQLite.
async fn join_embedded(args: &ShopBenchArgs) -> anyhow::Result<Run> {
    let dir = tempdir()?;
    let pid = std::process::id();
    let bus_url = format!("sqlite://{}/bench-shop-bus-{pid}.db", dir.display());
    let sql_url = format!("sqlite://{}/bench-shop-{pid}.db", dir.display());
    let r = join_run(args, &bus_url, &sql_url).await;
    for file in [&bus_url, &sql_url] {
        let path = file.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    r
}

async fn join_run(args: &ShopBenchArgs, bus_url: &str, sql_url: &str) -> anyhow::Result<Run> {
    let names = join_names(args.join_names.max(1));
    let mut rng = SplitMix64::new(args.seed ^ 0x4a4f_494e); // "JOIN"
    let now = chrono::Utc::now();
    let emulator = Emulator::new(args.seed);
    let products: Vec<Product> = (0..args.join_products)
        .map(|i| {
            let mut p = emulator.product(i, now);
            // Every name once before any repeats, so the run has them all.
            p.name.clone_from(&names[(i % names.len() as u64) as usize]);
            p
        })
        .collect();
    let prompts: Vec<Prompt> = (0..args.join_prompts)
        .map(|_| {
            let name = rng.pick(&names);
            // Typed the way people type: as is, lowercase, stray spaces.
            let find = match rng.below(3) {
                0 => name.clone(),
                1 => name.to_lowercase(),
                _ => format!(" {} ", name.replace(' ', "  ")),
            };
            Prompt::new(format!("user-{}", 1 + rng.below(1_000)), find)
        })
        .collect();
    let want = expected_matches(
        products.iter().map(|p| p.name.as_str()),
        prompts.iter().map(|p| p.find.as_str()),
    );
    let n = args.join_products + args.join_prompts;
    let distinct: HashSet<String> = products.iter().map(|p| normalise(&p.name)).collect();
    println!(
        "bench shop d): {} products over {} distinct names, {} prompts; {want} matches expected \
         (all inside one window)",
        products.len(),
        distinct.len(),
        prompts.len()
    );

    let bus = tributary_bus::connect(bus_url, &BusConfig::default()).await?;
    let db = Database::connect(sql_url, &SqlConfig::default()).await?;
    let store = ShopStore::open(&db).await?;
    let prompts_topic = unique("bench-shop-find");
    let filtered = unique("bench-shop-filtered");
    let output = unique("bench-shop-recom");
    for t in [&prompts_topic, &filtered, &output] {
        bus.create_topic(t, args.partitions).await?;
    }
    let mut records = Vec::with_capacity(n as usize);
    for p in &products {
        records.push(Record::new(
            &filtered,
            p.product_id.clone(),
            serde_json::to_vec(p)?,
        ));
    }
    for p in &prompts {
        records.push(Record::new(
            &prompts_topic,
            p.id.to_string(),
            serde_json::to_vec(p)?,
        ));
    }
    // The domain's state machine alone, in memory: the floor of d) without
    // the bus and the SQL state, and a second check of the expected count.
    let t = tributary_shop::pipeline::now_ms();
    let started = Instant::now();
    let mut state = JoinState::new(JoinConfig::default());
    let mut in_memory = 0u64;
    for p in products {
        in_memory += state.on_product(p, t).matches.len() as u64;
    }
    for p in prompts {
        in_memory += state.on_prompt(p, t).matches.len() as u64;
    }
    let d0 = Run {
        name: "d0) join state machine alone, in memory",
        records: n,
        seconds: started.elapsed().as_secs_f64(),
        note: if in_memory == want {
            format!("{in_memory} matches = products x prompts per name (the floor of d)")
        } else {
            format!("WRONG: {in_memory} matches, want {want}")
        },
        correct: in_memory == want,
    };
    d0.print();
    drop(state);
    feed(&bus, records.into_iter(), n, "feed prompts and products").await?;

    let stop = CancellationToken::new();
    let handler = Arc::new(Counted::new(
        JoinHandler::open(
            store,
            bus.clone(),
            vec![prompts_topic.clone()],
            output.clone(),
            JoinConfig::default(),
            // The embedded bus: no repartition topics, one state part.
            false,
            ConsumerHealth::new("shop recommendations"),
        )
        .await?,
        n,
        stop.clone(),
        bar(n, "d) ours: shop-recommendations"),
    ));
    let mut cfg = RunnerConfig::new(
        unique("bench-shop-join"),
        &[prompts_topic.as_str(), filtered.as_str()],
    );
    cfg.backoff = ShopSettings::default().backoff();
    let seconds = run_counted(&bus, cfg, handler.clone()).await?;
    let want_n = usize::try_from(want).unwrap_or(usize::MAX);
    let keys = collect_ids(&bus, &output, want_n, |m| {
        m.header(RECOMMENDATION_KEY_HEADER)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    })
    .await?;
    let distinct_keys: HashSet<&String> = keys.iter().collect();
    let rejected = handler.rejected.load(Ordering::Relaxed);
    let correct =
        keys.len() == want_n && distinct_keys.len() == want_n && rejected == 0 && d0.correct;
    let note = if correct {
        format!(
            "{} matches out = products x prompts per name, each pair once",
            keys.len()
        )
    } else {
        format!(
            "WRONG: {} matches out ({} distinct pairs, {rejected} dead-lettered), want {want}",
            keys.len(),
            distinct_keys.len()
        )
    };
    Ok(Run {
        name: "d) ours: join on the embedded bus + SQLite",
        records: n,
        seconds,
        note,
        correct,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Proves the percentile is the nearest rank: p50 of 1..=100 ms is 50 ms, p99 is 99 ms, p100 the max, and empty has none.
    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.50), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&v, 0.0), Some(Duration::from_millis(1)));
        let one = [Duration::from_millis(7)];
        assert_eq!(percentile(&one, 0.99), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 0.99), None);
    }

    // Proves the expected join count is products x prompts per normalised name, and that names differing only in case and spacing meet.
    #[test]
    fn expected_matches_per_normalised_name() {
        let products = ["Apple iPhone 15", "apple  iphone 15", "Pixel 9", "Sony X"];
        let prompts = [" APPLE iPhone 15 ", "pixel 9", "pixel 9", "Nothing"];
        assert_eq!(expected_matches(products, prompts), 2 + 1 + 1);
        assert_eq!(expected_matches(products, []), 0);
    }

    // Proves the filter computation ignores case and an empty needle passes everything, as the shop's substring filter does.
    #[test]
    fn filter_in_memory_matches_the_substring_rule() {
        assert!(passes("Apple iPhone 15 Pro", "IPHONE"));
        assert!(passes("Apple iPhone 15 Pro", ""));
        assert!(!passes("Google Pixel 9", "iphone"));
        let f =
            tributary_shop::domain::Filter::compile(&FilterSpec::substring("iphone", 0)).unwrap();
        for name in Emulator::catalogue() {
            assert_eq!(passes(&name, "iphone"), f.matches(&name), "{name}");
        }
    }

    // Proves the join's names are distinct after normalisation, so the run really has that many keys.
    #[test]
    fn join_names_are_distinct_keys() {
        let names = join_names(10_000);
        let keys: HashSet<String> = names.iter().map(|n| normalise(n)).collect();
        assert_eq!(keys.len(), 10_000);
    }
}

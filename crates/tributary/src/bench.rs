//! `tributary bench bus`: produce N records, then consume them, three ways
//! in one run — (a) raw rdkafka with no framework, (b) our Kafka adapter and
//! at-least-once runner, on the same broker, and (c) the embedded bus with
//! persistence on. Prints msgs/s per phase and the b/a ratio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::{self, Handler, HandlerError, RunnerConfig};
use tributary_bus::{Bus, BusConfig, Message, Record};

use crate::cli::BusBenchArgs;

/// Figures of one measurement.
struct Figures {
    name: &'static str,
    produce: Duration,
    consume: Duration,
    n: u64,
}

impl Figures {
    fn rate(n: u64, d: Duration) -> f64 {
        n as f64 / d.as_secs_f64().max(1e-9)
    }
    fn end_to_end(&self) -> f64 {
        Self::rate(self.n, self.produce + self.consume)
    }
    fn print(&self) {
        println!(
            "{:<34} produce {:>10.0} msgs/s  consume {:>10.0} msgs/s  produce+consume {:>10.0} msgs/s",
            self.name,
            Self::rate(self.n, self.produce),
            Self::rate(self.n, self.consume),
            self.end_to_end()
        );
    }
}

pub(crate) fn bar(n: u64, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(n);
    pb.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(label.to_string());
    pb
}

fn key(i: u64) -> String {
    format!("key-{}", i % 10_000)
}

pub async fn bus(args: BusBenchArgs) -> anyhow::Result<()> {
    let value = Bytes::from(vec![b'x'; args.size]);
    println!(
        "bench bus: {} messages of {} bytes, {} partitions, window {}",
        args.messages, args.size, args.partitions, args.window
    );
    let mut results = Vec::new();
    if let Some(url) = &args.kafka {
        let raw = raw_kafka(url, &args, &value)
            .await
            .context("raw rdkafka bench")?;
        raw.print();
        let bus = tributary_bus::connect(url, &BusConfig::default()).await?;
        let ours = through_port("b) Kafka adapter + runner", bus, &args, &value).await?;
        ours.print();
        println!(
            "ratio b/a (produce+consume): {:.2}",
            ours.end_to_end() / raw.end_to_end()
        );
        results.push(raw);
        results.push(ours);
    } else {
        println!("(no --kafka URL: skipping a) and b))");
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let url = format!(
        "sqlite://{}/bench-bus-{}.db",
        dir.display(),
        std::process::id()
    );
    let bus = tributary_bus::connect(&url, &BusConfig::default()).await?;
    let emb = through_port("c) embedded bus (SQLite, WAL)", bus, &args, &value).await?;
    emb.print();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!(
            "{}/bench-bus-{}.db{suffix}",
            dir.display(),
            std::process::id()
        ));
    }
    Ok(())
}

pub(crate) fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("tributary-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{nanos:x}")
}

/// (a) rdkafka alone: FutureProducer with the adapter's producer settings,
/// then a StreamConsumer counting records.
async fn raw_kafka(url: &str, args: &BusBenchArgs, value: &Bytes) -> anyhow::Result<Figures> {
    let brokers = tributary_bus::kafka::parse_brokers(url)?;
    let bus = tributary_bus::connect(url, &BusConfig::default()).await?;
    let topic = unique("bench-raw");
    bus.create_topic(&topic, args.partitions).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let pb = bar(args.messages, "a) raw rdkafka produce");
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for i in 0..args.messages {
        let k = key(i);
        let rec: FutureRecord<'_, str, [u8]> =
            FutureRecord::to(&topic).key(k.as_str()).payload(&value[..]);
        let fut = producer
            .send_result(rec)
            .map_err(|(e, _)| anyhow::anyhow!("enqueue: {e}"))?;
        inflight.push(fut);
        while inflight.len() >= args.window {
            if let Some(r) = inflight.next().await {
                r?.map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
                pb.inc(1);
            }
        }
    }
    while let Some(r) = inflight.next().await {
        r?.map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
        pb.inc(1);
    }
    let produce = started.elapsed();
    pb.finish_and_clear();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("bench-raw-g"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let pb = bar(args.messages, "a) raw rdkafka consume");
    let started = Instant::now();
    let mut n = 0;
    while n < args.messages {
        consumer.recv().await?;
        n += 1;
        if n.is_multiple_of(10_000) {
            pb.set_position(n);
        }
    }
    let consume = started.elapsed();
    pb.finish_and_clear();
    Ok(Figures {
        name: "a) raw rdkafka",
        produce,
        consume,
        n: args.messages,
    })
}

struct Count {
    seen: AtomicU64,
    target: u64,
    done: CancellationToken,
    pb: ProgressBar,
}

#[async_trait::async_trait]
impl Handler for Count {
    async fn handle(&self, _m: &Message) -> Result<(), HandlerError> {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(10_000) {
            self.pb.set_position(n);
        }
        if n >= self.target {
            self.done.cancel();
        }
        Ok(())
    }
}

/// (b)/(c): the port's `send` with the same window, then the runner.
async fn through_port(
    name: &'static str,
    bus: Bus,
    args: &BusBenchArgs,
    value: &Bytes,
) -> anyhow::Result<Figures> {
    let topic = unique("bench-port");
    bus.create_topic(&topic, args.partitions).await?;
    let pb = bar(args.messages, &format!("{} produce", &name[..2]));
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for i in 0..args.messages {
        inflight.push(bus.send(Record::new(&topic, key(i), value.clone())));
        while inflight.len() >= args.window {
            if let Some(r) = inflight.next().await {
                r?;
                pb.inc(1);
            }
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
        pb.inc(1);
    }
    let produce = started.elapsed();
    pb.finish_and_clear();

    let done = CancellationToken::new();
    let handler = Arc::new(Count {
        seen: AtomicU64::new(0),
        target: args.messages,
        done: done.clone(),
        pb: bar(args.messages, &format!("{} consume (runner)", &name[..2])),
    });
    let started = Instant::now();
    runner::run(
        bus.clone(),
        RunnerConfig::new(unique("bench-g"), &[topic.as_str()]),
        handler.clone(),
        done,
    )
    .await?;
    let consume = started.elapsed();
    handler.pb.finish_and_clear();
    anyhow::ensure!(
        handler.seen.load(Ordering::Relaxed) >= args.messages,
        "runner stopped early"
    );
    Ok(Figures {
        name,
        produce,
        consume,
        n: args.messages,
    })
}

/// Sends `records` (not timed), `n` of them, at most 50,000 in flight.
pub(crate) async fn feed(
    bus: &Bus,
    records: impl Iterator<Item = Record>,
    n: u64,
    label: &str,
) -> anyhow::Result<()> {
    let pb = bar(n, label);
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for rec in records {
        inflight.push(bus.send(rec));
        while inflight.len() >= 50_000 {
            if let Some(r) = inflight.next().await {
                r?;
                pb.inc(1);
            }
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
        pb.inc(1);
    }
    bus.flush(Duration::from_secs(60)).await?;
    pb.finish_and_clear();
    println!(
        "{label}: {n} records to {} in {:.1} s",
        bus.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

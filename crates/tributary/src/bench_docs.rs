//! `tributary bench docs`: the document-update executor against its peers on
//! the same generated update stream, in one run:
//!
//! - (a) raw passthrough on Kafka: rdkafka consume -> produce of every
//!   record, no parsing, no state (the floor of any consume-produce job);
//! - (b) ours on Kafka: the real `docs-executor` pipeline (batches, merge in
//!   the SQL upsert, cache, outbox) plus the `docs-outbox` relay, from the
//!   first poll until every update is durable and every changed document is
//!   on the output topic;
//! - (c) quixstreams (PyPI) on Kafka: the same merge as a stateful
//!   streaming dataframe (RocksDB state with its changelog topic), emitting
//!   changed documents — run as `python3 SCRIPT` when `--quix-python` is set;
//! - (d) ours on the embedded defaults: embedded bus + SQLite + in-process
//!   cache, as `tributary up` runs it.
//!
//! Each of (b) and (d) checks its final table against the reference merge
//! of the stream, so a fast wrong answer cannot pass as a figure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use tributary_bus::{BusConfig, Record};
use tributary_documents::domain::{generate_updates, reference_merge, Document, GenParams};
use tributary_documents::pipeline::Executor;
use tributary_documents::settings::DocsSettings;
use tributary_documents::store::DocStore;
use tributary_runtime::outbox::{plain, Relay, RelayConfig};
use tributary_storage::{Cache, CacheConfig, Database, SqlConfig};

use crate::bench::{bar, tempdir, unique};
use crate::cli::DocsBenchArgs;

/// One measured run: updates in, seconds from start to done.
pub(crate) struct Run {
    name: &'static str,
    updates: u64,
    pub(crate) seconds: f64,
    note: String,
}

impl Run {
    fn rate(&self) -> f64 {
        self.updates as f64 / self.seconds.max(1e-9)
    }
    fn print(&self) {
        println!(
            "{:<44} {:>9} updates in {:>7.2} s = {:>9.0} updates/s  {}",
            self.name,
            self.updates,
            self.seconds,
            self.rate(),
            self.note
        );
    }
}

pub async fn docs(args: DocsBenchArgs) -> anyhow::Result<()> {
    let stream = generate_updates(
        args.seed,
        &GenParams {
            urls: args.urls,
            updates: args.updates,
            duplicates: args.duplicates,
            shuffle: true,
        },
    )
    .context("generate the update stream")?;
    let want = reference_merge(stream.iter().cloned());
    let values: Vec<(String, Vec<u8>)> = stream
        .iter()
        .map(|d| Ok((d.url.clone(), serde_json::to_vec(d)?)))
        .collect::<anyhow::Result<_>>()?;
    let bytes: usize = values.iter().map(|(_, v)| v.len()).sum();
    println!(
        "bench docs: {} updates ({:.1} MB of JSON) over {} urls, {:.0}% duplicates, shuffled, seed {}; \
         {} partitions, batch_max {}",
        values.len(),
        bytes as f64 / 1e6,
        want.len(),
        args.duplicates * 100.0,
        args.seed,
        args.partitions,
        args.batch_max
    );
    drop(stream);

    let mut raw = None;
    let mut ours_kafka = None;
    let mut quix = None;
    if let Some(kafka) = &args.kafka {
        let input = unique("bench-docs-in");
        feed(kafka, &input, args.partitions, &values).await?;
        let r = raw_passthrough(kafka, &input, values.len() as u64).await?;
        r.print();
        raw = Some(r);
        let sql = match &args.sql {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}/bench-docs-k-{}.db",
                tempdir()?.display(),
                std::process::id()
            ),
        };
        let r = ours(
            if args.redis.is_some() {
                "b) ours: Kafka + SQL + Redis + outbox"
            } else {
                "b) ours: Kafka + SQL + cache + outbox"
            },
            kafka,
            &sql,
            args.redis.as_deref(),
            &input,
            &want,
            &args,
        )
        .await?;
        r.print();
        ours_kafka = Some(r);
        if let Some(python) = &args.quix_python {
            let r = quixstreams(
                python,
                &args.quix_script,
                kafka,
                &input,
                values.len() as u64,
            )?;
            r.print();
            quix = Some(r);
        } else {
            println!("(no --quix-python: skipping c) quixstreams)");
        }
    } else {
        println!("(no --kafka URL: skipping a), b) and c))");
    }

    let dir = tempdir()?;
    let bus_url = format!(
        "sqlite://{}/bench-docs-bus-{}.db",
        dir.display(),
        std::process::id()
    );
    let sql_url = format!(
        "sqlite://{}/bench-docs-{}.db",
        dir.display(),
        std::process::id()
    );
    let input = unique("bench-docs-in");
    feed(&bus_url, &input, args.partitions, &values).await?;
    let emb = ours(
        "d) ours: embedded bus + SQLite + cache",
        &bus_url,
        &sql_url,
        None,
        &input,
        &want,
        &args,
    )
    .await?;
    emb.print();
    for file in [&bus_url, &sql_url] {
        let path = file.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }

    if let (Some(a), Some(b)) = (&raw, &ours_kafka) {
        println!(
            "ratio b/a (ours / raw passthrough): {:.2}",
            b.rate() / a.rate()
        );
    }
    if let (Some(b), Some(c)) = (&ours_kafka, &quix) {
        println!("ratio b/c (ours / quixstreams): {:.2}", b.rate() / c.rate());
    }
    Ok(())
}

/// Writes the stream to a new topic (not timed).
async fn feed(
    url: &str,
    topic: &str,
    partitions: i32,
    values: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let bus = tributary_bus::connect(url, &BusConfig::default()).await?;
    bus.create_topic(topic, partitions).await?;
    let records = values
        .iter()
        .map(|(key, value)| Record::new(topic, key.clone(), value.clone()));
    crate::bench::feed(&bus, records, values.len() as u64, "feed the input topic").await
}

/// (a) rdkafka consume -> produce, every record as it is.
pub(crate) async fn raw_passthrough(kafka: &str, input: &str, n: u64) -> anyhow::Result<Run> {
    let brokers = tributary_bus::kafka::parse_brokers(kafka)?;
    let output = unique("bench-docs-raw-out");
    let bus = tributary_bus::connect(kafka, &BusConfig::default()).await?;
    bus.create_topic(&output, 3).await?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("bench-docs-raw"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    consumer.subscribe(&[input])?;
    let pb = bar(n, "a) raw passthrough");
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    let mut delivered = 0u64;
    let mut consumed = 0u64;
    while delivered < n {
        tokio::select! {
            m = consumer.recv(), if consumed < n && inflight.len() < 50_000 => {
                let m = m?;
                let rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&output)
                    .key(m.key().unwrap_or_default())
                    .payload(m.payload().unwrap_or_default());
                let fut = producer
                    .send_result(rec)
                    .map_err(|(e, _)| anyhow::anyhow!("enqueue: {e}"))?;
                inflight.push(fut);
                consumed += 1;
            }
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                r?.map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
                delivered += 1;
                if delivered.is_multiple_of(10_000) {
                    pb.set_position(delivered);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok(Run {
        name: "a) raw passthrough: rdkafka consume->produce",
        updates: n,
        seconds,
        note: format!("{n} records out"),
    })
}

/// (b)/(d): the executor pipeline and the outbox relay in this process,
/// until every update is durable and the outbox is empty.
async fn ours(
    name: &'static str,
    bus_url: &str,
    sql_url: &str,
    redis: Option<&str>,
    input: &str,
    want: &BTreeMap<String, Document>,
    args: &DocsBenchArgs,
) -> anyhow::Result<Run> {
    let n = args.updates as u64;
    let db = Database::connect(sql_url, &SqlConfig::default()).await?;
    let store = DocStore::open(&db).await?;
    if store.count().await? > 0 || store.outbox().pending().await? > 0 {
        bail!("{sql_url}: the documents table or the outbox is not empty; give the bench an empty database");
    }
    let bus = tributary_bus::connect(bus_url, &BusConfig::default()).await?;
    let output = unique("bench-docs-out");
    let settings = DocsSettings {
        input_topic: input.to_owned(),
        group: unique("bench-docs"),
        partitions: args.partitions,
        batch_max: args.batch_max,
        relay: RelayConfig::for_topic(&output),
        ..DocsSettings::default()
    };
    let cache_config = match redis {
        Some(url) => CacheConfig {
            key_prefix: format!("{}:", unique("bench-docs")),
            ..CacheConfig::from_url(url)
        },
        None => CacheConfig::default(),
    };
    let cache = Cache::connect(&cache_config).await?;
    let (tap, mut taps) = tokio::sync::mpsc::unbounded_channel();
    let relay = Relay::new(store.outbox(), bus.clone(), settings.relay.clone(), plain())
        .with_latency_tap(tap);
    let executor = Arc::new(Executor::new(
        store.clone(),
        Some(cache),
        bus,
        Arc::new(settings),
    ));
    let stop = CancellationToken::new();
    let pb = bar(n, &name[..2]);
    let started = Instant::now();
    let exec_task = tokio::spawn(executor.clone().run(|| {}, stop.clone()));
    let relay_task = tokio::spawn(relay.run(stop.clone()));
    let mut durable_at = None;
    loop {
        let done = executor.messages_done();
        pb.set_position(done);
        if done >= n {
            durable_at.get_or_insert_with(|| started.elapsed().as_secs_f64());
            if store.outbox().pending().await? == 0 {
                break;
            }
        }
        if exec_task.is_finished() || relay_task.is_finished() {
            bail!("{name}: a pipeline task stopped early");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    stop.cancel();
    exec_task.await??;
    relay_task.await??;
    let table: BTreeMap<String, Document> = store
        .list(None, u32::MAX)
        .await?
        .into_iter()
        .map(|d| (d.url.clone(), d))
        .collect();
    if table != *want {
        bail!("{name}: the final table differs from the reference merge");
    }
    let mut latencies = Vec::new();
    while let Ok(d) = taps.try_recv() {
        latencies.push(d);
    }
    let (hits, misses) = executor.cache_lookups();
    Ok(Run {
        name,
        updates: n,
        seconds,
        note: format!(
            "all durable after {:.2} s; table = reference merge ({} urls); \
             cache hit ratio {:.3} ({hits} hits, {misses} misses); \
             commit->ack p50 {} p99 {} ({} events)",
            durable_at.unwrap_or(seconds),
            want.len(),
            hits as f64 / ((hits + misses).max(1)) as f64,
            quantile_ms(&mut latencies, 0.50),
            quantile_ms(&mut latencies, 0.99),
            latencies.len(),
        ),
    })
}

/// The `q` quantile of `v` in milliseconds, as text ("-" when empty).
fn quantile_ms(v: &mut [Duration], q: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    format!("{:.1} ms", v[i.min(v.len() - 1)].as_secs_f64() * 1e3)
}

/// (c) quixstreams, as a child process; its script prints one JSON object
/// with `seconds` (first poll to the last output flushed) and `emitted`.
fn quixstreams(
    python: &PathBuf,
    script: &PathBuf,
    kafka: &str,
    input: &str,
    n: u64,
) -> anyhow::Result<Run> {
    let brokers = tributary_bus::kafka::parse_brokers(kafka)?;
    let state = tempdir()?.join(unique("quix-state"));
    let started = Instant::now();
    let out = std::process::Command::new(python)
        .arg(script)
        .args([
            "--broker",
            &brokers,
            "--input",
            input,
            "--output",
            &unique("bench-docs-quix-out"),
            "--group",
            &unique("bench-docs-quix"),
            "--count",
            &n.to_string(),
            "--state-dir",
        ])
        .arg(&state)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("run {} {}", python.display(), script.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&state);
    if !out.status.success() {
        bail!("quixstreams script failed: {}", out.status);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap_or("{}"))
        .with_context(|| format!("quixstreams script output {line:?}"))?;
    let seconds = v["seconds"].as_f64().unwrap_or(wall);
    Ok(Run {
        name: "c) quixstreams: stateful merge (RocksDB)",
        updates: n,
        seconds,
        note: format!(
            "{} documents emitted; {wall:.2} s with interpreter start",
            v["emitted"].as_u64().unwrap_or(0)
        ),
    })
}

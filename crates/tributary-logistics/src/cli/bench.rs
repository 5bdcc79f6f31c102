//! `tributary logistics bench`: starts the API and a relay in this process
//! against the given database and bus, then measures
//! (1) create throughput over gRPC with N concurrent clients (own connections),
//! (2) relay throughput draining the outbox those creates filled,
//! (3) commit-to-acknowledged latency at a fixed create rate with the relay running,
//! (4) for a Kafka bus, the raw rdkafka produce rate on the same broker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tributary_bus::BusConfig;
use tributary_storage::{Database, SqlConfig};

use crate::api::ApiConfig;
use crate::domain::PageLimits;
use crate::proto::v1 as pb;
use crate::proto::v1::logistic_package_api_service_client::LogisticPackageApiServiceClient;
use crate::relay::RelayConfig;
use crate::service::PackageService;
use crate::store::Store;

/// `bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// SQL URL (postgres:// or sqlite://PATH); tables are created in it.
    #[arg(long)]
    pub sql: String,
    /// Bus URL (kafka://host:port or sqlite://PATH).
    #[arg(long)]
    pub bus: String,
    /// Concurrent gRPC clients, one connection each.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Creates in the throughput phase (they also fill the outbox for phase 2).
    #[arg(long, default_value_t = 20_000)]
    pub creates: u64,
    /// Create rate of the latency phase, per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Duration of the latency phase, seconds.
    #[arg(long, default_value_t = 10)]
    pub rate_secs: u64,
    /// Messages of the raw rdkafka phase.
    #[arg(long, default_value_t = 100_000)]
    pub raw_messages: u64,
    /// Relay: events per claim.
    #[arg(long, default_value_t = 500)]
    pub batch_size: i64,
    /// SQL pool size.
    #[arg(long, default_value_t = 40)]
    pub pool: u32,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn request(i: u64) -> pb::CreatePackageV1Request {
    pb::CreatePackageV1Request {
        title: format!("bench box {i}"),
        material: "cardboard".into(),
        maximum_volume: 1000.0 + (i % 100) as f32,
        reusable: i.is_multiple_of(2),
    }
}

async fn clients(
    addr: SocketAddr,
    n: usize,
) -> anyhow::Result<Vec<LogisticPackageApiServiceClient<Channel>>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ch = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        out.push(LogisticPackageApiServiceClient::new(ch));
    }
    Ok(out)
}

/// Runs the bench and prints figures.
///
/// # Errors
/// When a backend cannot be reached or a request fails.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let db = Database::connect(
        &args.sql,
        &SqlConfig {
            max_connections: args.pool,
            ..SqlConfig::default()
        },
    )
    .await?;
    let store = Store::new(db.clone());
    store.migrate().await?;
    let bus = tributary_bus::connect(&args.bus, &BusConfig::default()).await?;
    let topic = format!(
        "omp-package-events-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let backlog = store.pending_events().await?;
    println!(
        "bench logistics: sql {} ({}), bus {}, topic {topic}, {} clients; outbox backlog before start: {backlog}",
        db.redacted_url(),
        db.kind(),
        bus.describe(),
        args.clients
    );
    let stop = CancellationToken::new();
    let api = crate::api::serve(
        PackageService::new(store.clone(), PageLimits::default()),
        &ApiConfig {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_request_log_level: false,
        },
        stop.clone(),
    )
    .await?;
    let addr = api.grpc_addr;

    // 1) create throughput, relay not running.
    let cs = clients(addr, args.clients).await?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in cs {
        let next = next.clone();
        let total = args.creates;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, tonic::Status>(lat);
                }
                let t = Instant::now();
                c.create_package_v1(request(i)).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(
            t.await?
                .map_err(|s| anyhow::anyhow!("create failed: {s}"))?,
        );
    }
    let took = started.elapsed();
    lat.sort();
    println!(
        "1) creates over gRPC, {} clients: {} in {:.2}s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        args.clients,
        lat.len(),
        took.as_secs_f64(),
        lat.len() as f64 / took.as_secs_f64(),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99))
    );

    // 2) relay draining the backlog.
    let pending = store.pending_events().await?;
    let cfg = RelayConfig {
        topic: topic.clone(),
        batch_size: args.batch_size,
        cleaner_batch: usize::try_from(args.batch_size).unwrap_or(100),
        ..RelayConfig::default()
    };
    let (tap, mut taps) = mpsc::unbounded_channel();
    let relay_stop = CancellationToken::new();
    let relay = crate::relay::relay(&store, bus.clone(), cfg).with_latency_tap(tap);
    bus.create_topic(&topic, 3).await?;
    let started = Instant::now();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    loop {
        if store.pending_events().await? == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    println!(
        "2) relay drain: {pending} events in {:.2}s = {:.0} events/s (commit -> acknowledged by the bus, deleted from the outbox)",
        took.as_secs_f64(),
        pending as f64 / took.as_secs_f64()
    );
    while taps.try_recv().is_ok() {}

    // 3) latency at a fixed rate with the relay running.
    let total = args.rate * args.rate_secs;
    let mut cs = clients(addr, args.clients).await?;
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = FuturesUnordered::new();
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let idx = usize::try_from(i).unwrap_or(0) % cs.len().max(1);
        let mut c = cs[idx].clone();
        inflight.push(async move { c.create_package_v1(request(i)).await });
        while let Some(Some(r)) = futures::FutureExt::now_or_never(inflight.next()) {
            r.map_err(|s| anyhow::anyhow!("create failed: {s}"))?;
        }
    }
    while let Some(r) = inflight.next().await {
        r.map_err(|s| anyhow::anyhow!("create failed: {s}"))?;
    }
    cs.clear();
    let offered = started.elapsed();
    let mut relayed = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    while (relayed.len() as u64) < total && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), taps.recv()).await {
            Ok(Some(d)) => relayed.push(d),
            _ => break,
        }
    }
    relayed.sort();
    println!(
        "3) at {} creates/s for {:.1}s: {} events relayed, commit -> acknowledged p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.rate,
        offered.as_secs_f64(),
        relayed.len(),
        ms(pct(&relayed, 0.50)),
        ms(pct(&relayed, 0.99)),
        ms(relayed.last().copied().unwrap_or_default())
    );
    relay_stop.cancel();
    relay_task.await??;
    stop.cancel();
    api.wait().await?;

    // 4) raw rdkafka on the same broker.
    if args.bus.starts_with("kafka://") {
        raw_kafka(&args.bus, args.raw_messages, args.rate, args.rate_secs)
            .await
            .context("raw rdkafka produce")?;
    }
    Ok(())
}

async fn raw_kafka(url: &str, n: u64, rate: u64, rate_secs: u64) -> anyhow::Result<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let brokers = tributary_bus::kafka::parse_brokers(url)?;
    let bus = tributary_bus::connect(url, &BusConfig::default()).await?;
    let topic = format!(
        "bench-raw-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    bus.create_topic(&topic, 3).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    let value = [b'x'; 200];
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for i in 0..n {
        let key = (i % 10_000).to_string();
        let rec: FutureRecord<'_, str, [u8]> = FutureRecord::to(&topic)
            .key(key.as_str())
            .payload(&value[..]);
        let fut = producer
            .send_result(rec)
            .map_err(|(e, _)| anyhow::anyhow!("enqueue: {e}"))?;
        inflight.push(fut);
        while inflight.len() >= 10_000 {
            if let Some(r) = inflight.next().await {
                r?.map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
            }
        }
    }
    while let Some(r) = inflight.next().await {
        r?.map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
    }
    let took = started.elapsed();
    println!(
        "4) raw rdkafka produce (acks=all, 200 B, window 10000): {n} in {:.2}s = {:.0} msgs/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    // The broker's own acknowledgement latency at the latency phase's rate.
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut ticker = tokio::time::interval(period);
    let mut acks = FuturesUnordered::new();
    let mut lat = Vec::new();
    for i in 0..rate * rate_secs {
        ticker.tick().await;
        let key = (i % 10_000).to_string();
        let rec: FutureRecord<'_, str, [u8]> = FutureRecord::to(&topic)
            .key(key.as_str())
            .payload(&value[..]);
        let sent = Instant::now();
        let fut = producer
            .send_result(rec)
            .map_err(|(e, _)| anyhow::anyhow!("enqueue: {e}"))?;
        acks.push(async move {
            match fut.await {
                Ok(Ok(_)) => Ok(sent.elapsed()),
                Ok(Err((e, _))) => Err(anyhow::anyhow!("delivery: {e}")),
                Err(e) => Err(anyhow::anyhow!("delivery: {e}")),
            }
        });
        while let Some(Some(r)) = futures::FutureExt::now_or_never(acks.next()) {
            lat.push(r?);
        }
    }
    while let Some(r) = acks.next().await {
        lat.push(r?);
    }
    lat.sort();
    println!(
        "4b) raw rdkafka at {rate} msgs/s for {rate_secs}s: send -> acknowledged p50 {:.1} ms, p99 {:.1} ms (the broker's floor for 3)",
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99))
    );
    Ok(())
}

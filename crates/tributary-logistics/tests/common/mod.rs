//! Shared test harness: backends per scenario (SQLite file or a fresh
//! PostgreSQL database; embedded bus or the rig's Kafka), a spawned API
//! server on port 0, and reading the event topic back.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tributary_bus::{Bus, ConsumerOptions, StartFrom};
use tributary_logistics::api::{self, ApiConfig, RunningApi};
use tributary_logistics::domain::PageLimits;
use tributary_logistics::proto::v1 as pb;
use tributary_logistics::proto::v1::logistic_package_api_service_client::LogisticPackageApiServiceClient;
use tributary_logistics::service::PackageService;
use tributary_logistics::store::Store;
use tributary_storage::Database;

pub use tributary_testkit::{BusKind, Sql};

/// A migrated logistics database for one test (the kit's [`tributary_testkit::TestDb`]
/// plus the logistics store on it); `None` when the backend is not configured (skip).
pub struct TestDb {
    pub db: Database,
    pub store: Store,
    _kit: tributary_testkit::TestDb,
}

pub async fn db(kind: Sql) -> Option<TestDb> {
    let kit = tributary_testkit::TestDb::open(kind).await?;
    let db = kit.db.clone();
    let store = Store::new(db.clone());
    store.migrate().await.expect("migrate");
    Some(TestDb {
        db,
        store,
        _kit: kit,
    })
}

/// A bus for one test (the kit's [`tributary_testkit::TestBus`]) and a unique topic on it.
pub struct TestBus {
    pub bus: Bus,
    pub topic: String,
    _kit: tributary_testkit::TestBus,
}

pub async fn bus(kind: BusKind) -> Option<TestBus> {
    let kit = tributary_testkit::TestBus::open(kind).await?;
    let bus = kit.bus.clone();
    let topic = tributary_testkit::unique("omp-package-events");
    bus.create_topic(&topic, 3).await.expect("create topic");
    Some(TestBus {
        bus,
        topic,
        _kit: kit,
    })
}

/// A running API server.
pub struct TestApi {
    pub grpc: LogisticPackageApiServiceClient<Channel>,
    pub channel: Channel,
    pub http: String,
    pub grpc_addr: SocketAddr,
    pub stop: CancellationToken,
    pub running: Option<RunningApi>,
}

impl TestApi {
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await.expect("api stops cleanly");
        }
    }
}

pub async fn spawn_api(store: Store, limits: PageLimits, allow_debug: bool) -> TestApi {
    let stop = CancellationToken::new();
    let running = api::serve(
        PackageService::new(store, limits),
        &ApiConfig {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_request_log_level: allow_debug,
        },
        stop.clone(),
    )
    .await
    .expect("serve api");
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("connect grpc");
    TestApi {
        grpc: LogisticPackageApiServiceClient::new(channel.clone()),
        channel,
        http: format!("http://{}", running.http_addr),
        grpc_addr: running.grpc_addr,
        stop,
        running: Some(running),
    }
}

/// One consumed event.
#[derive(Debug, Clone)]
pub struct Seen {
    pub partition: i32,
    pub event: pb::PackageEvent,
}

/// Reads `topic` from the beginning until every id in `expected` was seen
/// (or `timeout`), then keeps reading for `linger` to catch late duplicates.
pub async fn read_topic(
    bus: &Bus,
    topic: &str,
    expected: &HashSet<u64>,
    timeout: Duration,
    linger: Duration,
) -> Vec<Seen> {
    let group = tributary_testkit::unique("reader");
    let mut consumer = bus
        .subscribe(
            &group,
            &[topic.to_string()],
            ConsumerOptions {
                start_from: StartFrom::Earliest,
                ..ConsumerOptions::default()
            },
        )
        .await
        .expect("subscribe");
    let mut out = Vec::new();
    let mut missing: HashSet<u64> = expected.clone();
    let deadline = Instant::now() + timeout;
    let mut linger_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if missing.is_empty() && linger_until.is_none() {
            linger_until = Some(now + linger);
        }
        let until = linger_until.unwrap_or(deadline).min(deadline);
        if now >= until {
            break;
        }
        match tokio::time::timeout(until - now, consumer.recv()).await {
            Ok(Ok(m)) => {
                let event: pb::PackageEvent =
                    prost::Message::decode(&m.value[..]).expect("decode PackageEvent");
                assert_eq!(
                    m.key.as_deref(),
                    Some(event.package_id.to_string().as_bytes()),
                    "key must be the package id"
                );
                missing.remove(&event.id);
                out.push(Seen {
                    partition: m.partition,
                    event,
                });
            }
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => break,
        }
    }
    let _ = consumer.close().await;
    assert!(
        missing.is_empty(),
        "{} of {} events never reached the topic",
        missing.len(),
        expected.len()
    );
    out
}

/// Checks that every package's events were first seen in id (= commit)
/// order, on one partition, and that each package has `expected[pkg]`
/// distinct events; returns the number of duplicate deliveries.
pub fn check_order(seen: &[Seen], expected: &HashMap<u64, usize>) -> usize {
    let mut first: HashMap<u64, Vec<pb::PackageEvent>> = HashMap::new();
    let mut ids = HashSet::new();
    let mut dups = 0;
    let mut partition_of: HashMap<u64, i32> = HashMap::new();
    for s in seen {
        let e = &s.event;
        let p = *partition_of.entry(e.package_id).or_insert(s.partition);
        assert_eq!(p, s.partition, "package {} on two partitions", e.package_id);
        if !ids.insert(e.id) {
            dups += 1;
            continue;
        }
        let list = first.entry(e.package_id).or_default();
        if let Some(prev) = list.last() {
            assert!(
                prev.id < e.id,
                "package {}: event {} first seen after later event {}",
                e.package_id,
                e.id,
                prev.id
            );
        }
        list.push(e.clone());
    }
    for (pkg, n) in expected {
        let got = first.get(pkg).map_or(0, Vec::len);
        assert_eq!(
            got, *n,
            "package {pkg}: {got} distinct events, expected {n}"
        );
    }
    dups
}

//! The outbox relay end to end: a relay killed hard mid-stream, two relays
//! at once, and a bus that goes away for a while — on both SQL backends and
//! both bus adapters. Each scenario checks that every event reached the
//! topic, that per-package order holds, and reports duplicates.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bus, check_order, db, read_topic, spawn_api, BusKind, Sql};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tributary_bus::unreliable::Unreliable;
use tributary_bus::BusHealth;
use tributary_logistics::domain::{NewPackage, PackageId, PackageUpdate};
use tributary_logistics::proto::v1 as pb;
use tributary_logistics::relay::{relay, RelayConfig};
use tributary_logistics::store::Store;
use tributary_platform::Readiness;

fn config(topic: &str) -> RelayConfig {
    RelayConfig {
        topic: topic.into(),
        lease_secs: 1,
        poll_interval_ms: 10,
        batch_size: 50,
        cleaner_interval_ms: 10,
        backoff_base_ms: 10,
        backoff_max_ms: 200,
        ..RelayConfig::default()
    }
}

async fn drained(store: &Store, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = store.pending_events().await.unwrap();
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} events still in the outbox after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 10 changes per package: create, 8 updates (title v1..v8), remove.
/// `round` 0 creates, 1..=8 update, 9 removes. Writers run concurrently,
/// each owning a slice of the packages.
async fn write_round(
    store: &Store,
    ids: &Arc<tokio::sync::Mutex<Vec<PackageId>>>,
    packages: usize,
    round: usize,
) {
    const WRITERS: usize = 8;
    let tasks = (0..WRITERS).map(|w| {
        let store = store.clone();
        let ids = ids.clone();
        async move {
            let mine: Vec<usize> = (w..packages).step_by(WRITERS).collect();
            for i in mine {
                match round {
                    0 => {
                        let p = store
                            .create(
                                &NewPackage::parse(format!("p{i}"), "m".into(), 1.0, false)
                                    .unwrap(),
                            )
                            .await
                            .unwrap();
                        ids.lock().await[i] = p.id;
                    }
                    9 => {
                        let id = ids.lock().await[i];
                        store.remove(id).await.unwrap();
                    }
                    r => {
                        let id = ids.lock().await[i];
                        let u = PackageUpdate::parse(Some(format!("v{r}")), None, None, None)
                            .unwrap()
                            .unwrap();
                        store.update(id, &u).await.unwrap();
                    }
                }
            }
        }
    });
    join_all(tasks).await;
}

fn titles_in_order(seen: &[common::Seen]) -> HashMap<u64, Vec<String>> {
    let mut ids = HashSet::new();
    let mut out: HashMap<u64, Vec<String>> = HashMap::new();
    for s in seen {
        if ids.insert(s.event.id) {
            let v: serde_json::Value = serde_json::from_slice(&s.event.payload).unwrap();
            out.entry(s.event.package_id).or_default().push(format!(
                "{}:{}",
                s.event.r#type,
                v["title"].as_str().unwrap()
            ));
        }
    }
    out
}

async fn crash(sql: Sql, bus_kind: BusKind, packages: usize) {
    let Some(t) = db(sql).await else { return };
    let Some(b) = bus(bus_kind).await else { return };
    let cfg = config(&b.topic);
    let ids = Arc::new(tokio::sync::Mutex::new(vec![
        PackageId::parse(1)
            .unwrap()
            .unwrap();
        packages
    ]));

    // A backlog of 4 changes per package, then relay A starts draining it...
    for round in 0..4 {
        write_round(&t.store, &ids, packages, round).await;
    }
    let backlog = t.store.pending_events().await.unwrap();
    let relay_a =
        tokio::spawn(relay(&t.store, b.bus.clone(), cfg.clone()).run(CancellationToken::new()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while t.store.pending_events().await.unwrap() > backlog / 2 {
        assert!(Instant::now() < deadline, "relay A made no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // ...and is killed hard halfway: its tasks are aborted, its leases stay behind.
    relay_a.abort();
    let _ = relay_a.await;
    let left_locked = t.store.pending_events().await.unwrap();
    for round in 4..7 {
        write_round(&t.store, &ids, packages, round).await;
    }
    let stop_b = CancellationToken::new();
    let relay_b = tokio::spawn(relay(&t.store, b.bus.clone(), cfg.clone()).run(stop_b.clone()));
    for round in 7..10 {
        write_round(&t.store, &ids, packages, round).await;
    }
    drained(&t.store, Duration::from_secs(180)).await;
    stop_b.cancel();
    relay_b.await.unwrap().unwrap();

    let mut expected_ids = HashSet::new();
    let total = (packages * 10) as u64;
    // Event ids are 1..=total on a fresh database.
    expected_ids.extend(1..=total);
    let seen = read_topic(
        &b.bus,
        &b.topic,
        &expected_ids,
        Duration::from_secs(120),
        Duration::from_millis(500),
    )
    .await;
    let ids = ids.lock().await;
    let expected: HashMap<u64, usize> = ids.iter().map(|id| (id.as_u64(), 10)).collect();
    let dups = check_order(&seen, &expected);
    let want: Vec<String> = std::iter::once("0:p".to_string())
        .chain((1..=8).map(|r| format!("1:v{r}")))
        .chain(std::iter::once("2:v8".to_string()))
        .collect();
    for (pkg, titles) in titles_in_order(&seen) {
        let titles: Vec<String> = titles
            .into_iter()
            .map(|s| {
                if s.starts_with("0:p") {
                    "0:p".to_string()
                } else {
                    s
                }
            })
            .collect();
        assert_eq!(titles, want, "package {pkg}");
    }
    println!(
        "crash {sql:?}/{bus_kind:?}: {total} events over {packages} packages, {} deliveries, {dups} duplicates \
         ({left_locked} events were unsent when relay A was killed)",
        seen.len()
    );
}

// Proves at-least-once and per-package order survive a relay killed mid-stream (SQLite, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_sqlite_embedded() {
    crash(Sql::Sqlite, BusKind::Embedded, 1000).await;
}

// Proves at-least-once and per-package order survive a relay killed mid-stream (PostgreSQL, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_postgres_embedded() {
    crash(Sql::Postgres, BusKind::Embedded, 1000).await;
}

// Proves at-least-once and per-package order survive a relay killed mid-stream (PostgreSQL, Kafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_postgres_kafka() {
    crash(Sql::Postgres, BusKind::Kafka, 1000).await;
}

async fn two_relays(sql: Sql, bus_kind: BusKind) {
    let Some(t) = db(sql).await else { return };
    let Some(b) = bus(bus_kind).await else { return };
    let packages = 200;
    let cfg = RelayConfig {
        lease_secs: 30,
        batch_size: 20,
        ..config(&b.topic)
    };
    let ids = Arc::new(tokio::sync::Mutex::new(vec![
        PackageId::parse(1)
            .unwrap()
            .unwrap();
        packages
    ]));
    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|_| tokio::spawn(relay(&t.store, b.bus.clone(), cfg.clone()).run(stop.clone())))
        .collect();
    for round in 0..10 {
        write_round(&t.store, &ids, packages, round).await;
    }
    drained(&t.store, Duration::from_secs(120)).await;
    stop.cancel();
    for r in relays {
        r.await.unwrap().unwrap();
    }
    let expected_ids: HashSet<u64> = (1..=(packages as u64 * 10)).collect();
    let seen = read_topic(
        &b.bus,
        &b.topic,
        &expected_ids,
        Duration::from_secs(60),
        Duration::from_millis(500),
    )
    .await;
    let expected: HashMap<u64, usize> = ids
        .lock()
        .await
        .iter()
        .map(|id| (id.as_u64(), 10))
        .collect();
    let dups = check_order(&seen, &expected);
    println!(
        "two relays {sql:?}/{bus_kind:?}: {} deliveries, {dups} duplicates",
        seen.len()
    );
    assert_eq!(dups, 0, "no crash, no lease expiry: no duplicates");
}

// Proves two relays over one outbox lose nothing, keep per-package order and send no duplicates (SQLite, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_sqlite_embedded() {
    two_relays(Sql::Sqlite, BusKind::Embedded).await;
}

// Proves two relays over one outbox lose nothing, keep per-package order and send no duplicates (PostgreSQL, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_postgres_embedded() {
    two_relays(Sql::Postgres, BusKind::Embedded).await;
}

// Proves two relays over one outbox lose nothing, keep per-package order and send no duplicates (PostgreSQL, Kafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_postgres_kafka() {
    two_relays(Sql::Postgres, BusKind::Kafka).await;
}

async fn ready(readiness: &Readiness) -> bool {
    readiness
        .run(Duration::from_secs(5))
        .await
        .iter()
        .all(|r| r.ok)
}

async fn broker_away(sql: Sql, bus_kind: BusKind) {
    let Some(t) = db(sql).await else { return };
    let Some(b) = bus(bus_kind).await else { return };
    let (flaky, outage) = Unreliable::wrap(b.bus.clone());
    let relay = relay(&t.store, flaky.clone(), config(&b.topic));
    let readiness = Readiness::default();
    readiness.register(Arc::new(relay.health()));
    readiness.register(Arc::new(BusHealth(flaky.clone())));
    let stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(stop.clone()));
    let api = spawn_api(t.store.clone(), Default::default(), false).await;
    let grpc = api.grpc.clone();
    let http = reqwest::Client::new();
    let mut counts: HashMap<u64, usize> = HashMap::new();

    let create = |i: usize| {
        let mut grpc = grpc.clone();
        async move {
            grpc.create_package_v1(pb::CreatePackageV1Request {
                title: format!("b{i}"),
                material: "m".into(),
                maximum_volume: 1.0,
                reusable: false,
            })
            .await
            .unwrap()
            .into_inner()
            .id
        }
    };
    for i in 0..10 {
        let id = create(i).await;
        counts.insert(id, 1);
    }
    drained(&t.store, Duration::from_secs(30)).await;
    let checks = readiness.run(Duration::from_secs(5)).await;
    assert!(
        checks.iter().all(|r| r.ok),
        "ready while the bus answers: {checks:?}"
    );

    // The bus goes away: writes keep being accepted, readiness goes red.
    outage.set_down(true);
    for i in 10..40 {
        let id = create(i).await;
        counts.insert(id, 1);
        let r = http
            .put(format!("{}/v1/packages/{id}", api.http))
            .json(&serde_json::json!({"title": format!("u{i}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        *counts.entry(id).or_default() += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(&readiness).await {
        assert!(
            Instant::now() < deadline,
            "readiness must go red while the bus is away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t.store.pending_events().await.unwrap() > 0,
        "events wait in the outbox"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The bus returns: everything flows, readiness is green again.
    outage.set_down(false);
    drained(&t.store, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready(&readiness).await {
        assert!(Instant::now() < deadline, "readiness must recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = api
        .grpc
        .clone()
        .list_packages_v1(pb::ListPackagesV1Request::default())
        .await
        .unwrap();
    api.shutdown().await;
    stop.cancel();
    relay_task.await.unwrap().unwrap();

    let total: usize = counts.values().sum();
    let expected_ids: HashSet<u64> = (1..=total as u64).collect();
    let seen = read_topic(
        &b.bus,
        &b.topic,
        &expected_ids,
        Duration::from_secs(60),
        Duration::from_millis(300),
    )
    .await;
    let dups = check_order(&seen, &counts);
    println!(
        "broker away {sql:?}/{bus_kind:?}: {total} events, {} deliveries, {dups} duplicates",
        seen.len()
    );
}

// Proves a bus outage keeps writes accepted, turns relay readiness red, and loses nothing (SQLite, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_away_sqlite_embedded() {
    broker_away(Sql::Sqlite, BusKind::Embedded).await;
}

// Proves a bus outage keeps writes accepted, turns relay readiness red, and loses nothing (PostgreSQL, Kafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_away_postgres_kafka() {
    broker_away(Sql::Postgres, BusKind::Kafka).await;
}

//! Crash test of the real binary, the logistics promise end to end:
//! `tributary serve logistics-api logistics-relay` takes package creates
//! from several concurrent gRPC clients and is killed with SIGKILL while
//! creates are in flight, restarted on the same database and bus, and the
//! relay drains the outbox. Then the whole topic is read (as many records
//! as its watermarks say, under a new group) and counted per create the
//! API acknowledged: lost must be 0; duplicates (the at-least-once price
//! of a crash) are counted and printed; creates in flight at the kill and
//! never acknowledged may or may not appear (how many do is printed), and
//! nothing else may. Run on SQLite + the embedded bus and on PostgreSQL +
//! Kafka.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tributary_logistics::proto::v1 as pb;
use tributary_logistics::proto::v1::logistic_package_api_service_client::LogisticPackageApiServiceClient;
use tributary_logistics::store::Store;
use tributary_storage::{Database, SqlConfig};
use tributary_testkit::spawn::{free_port, Tributary};
use tributary_testkit::{backend, fresh_postgres_db, Backend};

mod common;

use common::bin;
use common::outbox::package_event;
use common::topic::{kafka_topic_size, read_exactly};

/// Concurrent gRPC clients creating packages.
const CLIENTS: usize = 6;
/// Creates acknowledged before the kill (at least; or [`KILL_AFTER`]).
const KILL_AT_ACKS: usize = 3000;
/// The latest moment of the kill after the first acknowledgement.
const KILL_AFTER: Duration = Duration::from_secs(10);

/// What one client saw: acknowledged creates (package id, title) and the
/// titles of creates that got no acknowledgement.
#[derive(Default)]
struct Seen {
    acked: Vec<(u64, String)>,
    unacked: Vec<String>,
}

/// Creates packages titled `c{k}-{seq}` one after another until `stop`
/// or the first failure (the server is gone).
async fn client(addr: String, k: usize, stop: Arc<AtomicBool>, acks: Arc<AtomicUsize>) -> Seen {
    let channel = tributary_runtime::client::grpc_channel(&addr, "logistics-api")
        .await
        .unwrap();
    let mut c = LogisticPackageApiServiceClient::new(channel);
    let mut seen = Seen::default();
    for seq in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let title = format!("c{k}-{seq}");
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            c.create_package_v1(pb::CreatePackageV1Request {
                title: title.clone(),
                material: "cardboard".into(),
                maximum_volume: 1.5,
                reusable: seq % 2 == 0,
            }),
        )
        .await;
        match r {
            Ok(Ok(resp)) => {
                seen.acked.push((resp.into_inner().id, title));
                acks.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                seen.unacked.push(title);
                break;
            }
        }
    }
    seen
}

/// How many records `topic` holds on the embedded bus file (its owner has
/// stopped): per partition, the next offset minus the first offset still stored.
async fn embedded_topic_size(bus_url: &str, topic: &str) -> i64 {
    let db = Database::connect(bus_url, &SqlConfig::default())
        .await
        .unwrap();
    let pool = db.as_sqlite().unwrap();
    let n: Option<i64> = sqlx::query_scalar(
        "SELECT SUM(hi - lo) FROM (
             SELECT MAX(last_offset) + 1 AS hi, MIN(base_offset) AS lo
             FROM bus_batches WHERE topic = ? GROUP BY partition)",
    )
    .bind(topic)
    .fetch_one(pool)
    .await
    .unwrap();
    db.close().await;
    n.unwrap_or(0)
}

async fn creates_killed_mid_stream(sql_url: String, bus_url: String, kafka: bool, dir: &Path) {
    let t_start = Instant::now();
    let topic = tributary_testkit::unique("crash-acked-creates");
    let data = dir.to_string_lossy().into_owned();
    let grpc = format!("127.0.0.1:{}", free_port());
    let env = [
        ("TRIBUTARY__SQL__URL", sql_url.as_str()),
        ("TRIBUTARY__BUS__URL", bus_url.as_str()),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__LOGISTICS__GRPC_LISTEN", grpc.as_str()),
        ("TRIBUTARY__LOGISTICS__RELAY__TOPIC", topic.as_str()),
        ("TRIBUTARY__LOGISTICS__RELAY__LEASE_SECS", "2"),
        ("TRIBUTARY__LOGISTICS__RELAY__POLL_INTERVAL_MS", "10"),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
    ];
    let mut t = Tributary::start(
        bin(),
        &["serve", "logistics-api", "logistics-relay"],
        &env,
        &dir.join("logistics.log"),
    );
    t.wait_ready(Duration::from_secs(60));

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| tokio::spawn(client(grpc.clone(), k, stop.clone(), acks.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no create acknowledged:\n{}",
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_ack = Instant::now();
    while acks.load(Ordering::SeqCst) < KILL_AT_ACKS && first_ack.elapsed() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every client has a create in flight right now (they never pause).
    t.kill9();
    let acked_at_kill = acks.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut unacked: HashSet<String> = HashSet::new();
    for c in clients {
        let s = c.await.unwrap();
        for (id, title) in s.acked {
            assert!(
                acked.insert(id, title).is_none(),
                "id {id} acknowledged twice"
            );
        }
        unacked.extend(s.unacked);
    }
    assert!(!acked.is_empty());
    assert!(
        !unacked.is_empty(),
        "the kill must land while creates are in flight"
    );

    t.restart();
    t.wait_ready(Duration::from_secs(60));
    let store = Store::new(
        Database::connect(&sql_url, &SqlConfig::default())
            .await
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.pending_events().await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained after the restart:\n{}",
            t.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());

    // The whole topic: exactly as many records as its watermarks say, read
    // under a new group (tansu does not reliably evict a SIGKILLed member).
    let on_topic = if kafka {
        kafka_topic_size(&bus_url, &topic).await
    } else {
        embedded_topic_size(&bus_url, &topic).await
    };
    let records = read_exactly(
        &bus_url,
        &topic,
        on_topic,
        Duration::from_secs(60),
        "records read back vs the topic's watermarks",
    )
    .await;

    let mut per_package: HashMap<u64, usize> = HashMap::new();
    let mut titles: HashMap<u64, String> = HashMap::new();
    for m in &records {
        let e = package_event(m);
        assert_eq!(
            e.r#type,
            pb::EventType::Created as i32,
            "only creates happened"
        );
        let p: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
        let title = p["title"].as_str().unwrap().to_owned();
        *per_package.entry(e.package_id).or_default() += 1;
        if let Some(prev) = titles.insert(e.package_id, title.clone()) {
            assert_eq!(prev, title, "package {}: one title", e.package_id);
        }
    }
    let mut lost = Vec::new();
    let mut duplicated = 0usize;
    for (id, title) in &acked {
        match per_package.get(id) {
            None => lost.push(*id),
            Some(n) => {
                assert_eq!(titles.get(id), Some(title), "package {id}: its title");
                duplicated += n - 1;
            }
        }
    }
    let mut unacked_seen = 0usize;
    let mut unacked_dups = 0usize;
    for (id, n) in &per_package {
        if acked.contains_key(id) {
            continue;
        }
        let title = &titles[id];
        assert!(
            unacked.contains(title),
            "package {id} ({title}) on the topic was neither acknowledged nor in flight"
        );
        unacked_seen += 1;
        unacked_dups += n - 1;
    }
    eprintln!(
        "logistics SIGKILL mid-stream ({}): {CLIENTS} clients, {} creates acknowledged ({acked_at_kill} counted at the kill), \
         {} in flight and unacknowledged; after the restart {} records on the topic: lost {}, duplicated {duplicated}; \
         {unacked_seen} of the {} unacknowledged creates appear ({unacked_dups} duplicated); test took {:?}",
        if kafka { "PostgreSQL + Kafka" } else { "SQLite + embedded bus" },
        acked.len(),
        unacked.len(),
        records.len(),
        lost.len(),
        unacked.len(),
        t_start.elapsed()
    );
    assert!(lost.is_empty(), "acknowledged creates lost: {lost:?}");
}

// Proves no create the API acknowledged is lost when the process is SIGKILLed
// with creates in flight (SQLite, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_creates_survive_sigkill_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    creates_killed_mid_stream(sql, bus, false, dir.path()).await;
}

// Proves the same on PostgreSQL and Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_creates_survive_sigkill_postgres_kafka() {
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    creates_killed_mid_stream(sql, kafka, true, dir.path()).await;
}

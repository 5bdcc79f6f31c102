//! Crash tests of the real binary: `tributary serve logistics-relay` (the
//! shared outbox relay) is killed with SIGKILL in the middle of relaying,
//! restarted on the same database and bus, and every event is counted on
//! the topic: none lost, per-package order kept, duplicates reported (the
//! at-least-once price of a crash). Run on SQLite + the embedded bus and on
//! PostgreSQL + Kafka.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use tributary_bus::{BusConfig, ConsumerOptions, StartFrom};
use tributary_logistics::domain::{NewPackage, PackageUpdate};
use tributary_logistics::proto::v1 as pb;
use tributary_logistics::store::Store;
use tributary_storage::{Database, SqlConfig};
use tributary_testkit::spawn::Tributary;
use tributary_testkit::{backend, fresh_postgres_db, Backend};

const PACKAGES: usize = 1500;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

async fn pending(store: &Store) -> i64 {
    store.pending_events().await.unwrap()
}

/// Writes `PACKAGES` packages, each created then updated (two events).
async fn write_events(store: &Store) {
    let upd = PackageUpdate::parse(Some("v2".into()), None, None, None)
        .unwrap()
        .unwrap();
    for i in 0..PACKAGES {
        let p = store
            .create(&NewPackage::parse(format!("p{i}"), "m".into(), 1.0, false).unwrap())
            .await
            .unwrap();
        store.update(p.id, &upd).await.unwrap();
    }
}

async fn relay_killed_mid_stream(sql_url: String, bus_url: String, dir: &Path) {
    let db = Database::connect(&sql_url, &SqlConfig::default())
        .await
        .unwrap();
    let store = Store::new(db);
    store.migrate().await.unwrap();
    write_events(&store).await;
    let total = pending(&store).await;
    assert_eq!(total, 2 * PACKAGES as i64);

    let topic = tributary_testkit::unique("crash-package-events");
    let data = dir.to_string_lossy().into_owned();
    let env = [
        ("TRIBUTARY__SQL__URL", sql_url.as_str()),
        ("TRIBUTARY__BUS__URL", bus_url.as_str()),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__LOGISTICS__RELAY__TOPIC", topic.as_str()),
        // Small batches and one producer, so the kill lands mid-stream.
        ("TRIBUTARY__LOGISTICS__RELAY__BATCH_SIZE", "10"),
        ("TRIBUTARY__LOGISTICS__RELAY__PRODUCERS", "1"),
        ("TRIBUTARY__LOGISTICS__RELAY__CONSUMERS", "1"),
        ("TRIBUTARY__LOGISTICS__RELAY__LEASE_SECS", "2"),
        ("TRIBUTARY__LOGISTICS__RELAY__POLL_INTERVAL_MS", "10"),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
    ];
    let mut relay = Tributary::start(
        bin(),
        &["serve", "logistics-relay"],
        &env,
        &dir.join("relay.log"),
    );
    relay.wait_ready(Duration::from_secs(60));
    // Kill once a tenth has gone out.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pending(&store).await > total * 9 / 10 {
        assert!(
            Instant::now() < deadline,
            "relay made no progress:\n{}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    relay.kill9();
    let left = pending(&store).await;
    assert!(
        left > 0 && left < total,
        "the kill must land mid-stream ({left} of {total} left)"
    );

    relay.restart();
    relay.wait_ready(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(180);
    while pending(&store).await > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained:\n{}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = relay.stop(Duration::from_secs(30));
    assert!(
        st.success(),
        "relay exit after SIGTERM: {st}\n{}",
        relay.log_text()
    );

    // Count what reached the topic (read-only: the file belongs to the relay's process).
    let bus = tributary_bus::connect_read_only(&bus_url, &BusConfig::default())
        .await
        .unwrap();
    let mut consumer = bus
        .subscribe(
            &tributary_testkit::unique("crash-reader"),
            std::slice::from_ref(&topic),
            ConsumerOptions {
                start_from: StartFrom::Earliest,
                ..ConsumerOptions::default()
            },
        )
        .await
        .unwrap();
    let mut first_seen: HashMap<u64, Vec<i32>> = HashMap::new();
    let mut seen_ids = std::collections::HashSet::new();
    let mut records = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen_ids.len() < total as usize && Instant::now() < deadline {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
        let e = pb::PackageEvent::decode(&m.value[..]).unwrap();
        assert_eq!(m.key.as_deref(), Some(e.package_id.to_string().as_bytes()));
        records += 1;
        if seen_ids.insert(e.id) {
            first_seen.entry(e.package_id).or_default().push(e.r#type);
        }
    }
    let lost = total as usize - seen_ids.len();
    let duplicates = records - seen_ids.len();
    eprintln!(
        "relay SIGKILL with {left} of {total} events unsent: lost {lost}, duplicated {duplicates}"
    );
    assert_eq!(lost, 0, "events lost");
    assert_eq!(first_seen.len(), PACKAGES);
    for (pkg, types) in &first_seen {
        assert_eq!(
            types,
            &vec![0, 1],
            "package {pkg}: Created then Updated, once each"
        );
    }
}

// Proves a SIGKILLed relay process loses no outbox event and keeps per-package order (SQLite, embedded bus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sigkill_loses_nothing_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let sql = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    relay_killed_mid_stream(sql, bus, dir.path()).await;
}

// Proves the same on PostgreSQL and Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sigkill_loses_nothing_postgres_kafka() {
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    relay_killed_mid_stream(sql, kafka, dir.path()).await;
}

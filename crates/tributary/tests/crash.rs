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

use tributary_bus::{BusConfig, ConsumerOptions, StartFrom};
use tributary_testkit::{backend, fresh_postgres_db, Backend};

mod common;

use common::outbox::{
    assert_created_then_updated, package_event, pending, start_relay, store_with_events,
    wait_tenth_relayed,
};

const PACKAGES: usize = 1500;

async fn relay_killed_mid_stream(sql_url: String, bus_url: String, dir: &Path) {
    let (store, total) = store_with_events(&sql_url, PACKAGES).await;

    let topic = tributary_testkit::unique("crash-package-events");
    let mut relay = start_relay(&sql_url, &bus_url, &topic, dir);
    // Kill once a tenth has gone out.
    wait_tenth_relayed(&store, total, &relay).await;
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
        let e = package_event(&m);
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
    assert_created_then_updated(&first_seen, PACKAGES);
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

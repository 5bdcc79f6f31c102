//! The logistics outbox and its relay, `tributary serve logistics-relay`:
//! an outbox filled with package events, the relay started on it, and the
//! events it relayed checked on the topic.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use tributary_bus::Message;
use tributary_logistics::domain::{NewPackage, PackageUpdate};
use tributary_logistics::proto::v1 as pb;
use tributary_logistics::store::Store;
use tributary_storage::{Database, SqlConfig};
use tributary_testkit::spawn::Tributary;

/// Outbox events not yet relayed.
pub async fn pending(store: &Store) -> i64 {
    store.pending_events().await.unwrap()
}

/// Writes `packages` packages, each created then updated (two events).
pub async fn write_events(store: &Store, packages: usize) {
    let upd = PackageUpdate::parse(Some("v2".into()), None, None, None)
        .unwrap()
        .unwrap();
    for i in 0..packages {
        let p = store
            .create(&NewPackage::parse(format!("p{i}"), "m".into(), 1.0, false).unwrap())
            .await
            .unwrap();
        store.update(p.id, &upd).await.unwrap();
    }
}

/// The logistics store on `sql_url`, migrated, with [`write_events`] of
/// `packages` in its outbox; returns it and the events pending (checked to
/// be two per package).
pub async fn store_with_events(sql_url: &str, packages: usize) -> (Store, i64) {
    let db = Database::connect(sql_url, &SqlConfig::default())
        .await
        .unwrap();
    let store = Store::new(db);
    store.migrate().await.unwrap();
    write_events(&store, packages).await;
    let total = pending(&store).await;
    assert_eq!(total, 2 * packages as i64);
    (store, total)
}

/// Starts `serve logistics-relay` on `sql_url` and `bus_url`, relaying to
/// `topic`, with data and its log (`relay.log`) in `dir`, and waits until it
/// is ready. Small batches and one producer, so a kill lands mid-stream.
pub fn start_relay(sql_url: &str, bus_url: &str, topic: &str, dir: &Path) -> Tributary {
    let data = dir.to_string_lossy().into_owned();
    let env = [
        ("TRIBUTARY__SQL__URL", sql_url),
        ("TRIBUTARY__BUS__URL", bus_url),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__LOGISTICS__RELAY__TOPIC", topic),
        // Small batches and one producer, so the kill lands mid-stream.
        ("TRIBUTARY__LOGISTICS__RELAY__BATCH_SIZE", "10"),
        ("TRIBUTARY__LOGISTICS__RELAY__PRODUCERS", "1"),
        ("TRIBUTARY__LOGISTICS__RELAY__CONSUMERS", "1"),
        ("TRIBUTARY__LOGISTICS__RELAY__LEASE_SECS", "2"),
        ("TRIBUTARY__LOGISTICS__RELAY__POLL_INTERVAL_MS", "10"),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
    ];
    let mut relay = Tributary::start(
        super::bin(),
        &["serve", "logistics-relay"],
        &env,
        &dir.join("relay.log"),
    );
    relay.wait_ready(Duration::from_secs(60));
    relay
}

/// Waits (at most 120 s, else panics with the relay's log) until a tenth
/// of the `total` events has left the outbox.
pub async fn wait_tenth_relayed(store: &Store, total: i64, relay: &Tributary) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while pending(store).await > total * 9 / 10 {
        assert!(
            Instant::now() < deadline,
            "relay made no progress:\n{}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The package event a topic record holds; its key must be the package id.
pub fn package_event(m: &Message) -> pb::PackageEvent {
    let e = pb::PackageEvent::decode(&m.value[..]).unwrap();
    assert_eq!(m.key.as_deref(), Some(e.package_id.to_string().as_bytes()));
    e
}

/// Every one of the `packages` packages was seen, Created then Updated,
/// once each (`first_seen`: the event types per package, duplicates left out).
pub fn assert_created_then_updated(first_seen: &HashMap<u64, Vec<i32>>, packages: usize) {
    assert_eq!(first_seen.len(), packages);
    for (pkg, types) in first_seen {
        assert_eq!(
            types,
            &vec![0, 1],
            "package {pkg}: Created then Updated, once each"
        );
    }
}

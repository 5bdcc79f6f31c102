//! Broker outage tests of the real binary against a real broker that is
//! really stopped: a private tansu of the test's own
//! ([`tributary_testkit::PrivateTansu`], never the rig's shared broker) is
//! SIGKILLed in the middle of a stream and started again on the same port
//! and the same storage. `/readyz` must turn red while it is away and green
//! again after it is back, nothing may be dropped meanwhile, and every event
//! must end up on the topic (lost must be 0; duplicates are counted and
//! reported: the at-least-once price of an outage).
//!
//! Logistics: `tributary serve logistics-relay` (the shared outbox relay) on
//! PostgreSQL, relaying package events to the private broker. Documents:
//! `tributary serve docs-executor docs-outbox` on PostgreSQL, consuming its
//! input from the private broker and relaying its output back to it.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tributary_documents::domain::{generate_updates, reference_merge, GenParams};
use tributary_testkit::spawn::{http_get, Tributary};
use tributary_testkit::{backend, fresh_postgres_db, Backend, PrivateTansu};

mod common;

use common::bin;
use common::docs::{feed, last_per_url, store_of, table};
use common::outbox::{
    assert_created_then_updated, package_event, pending, start_relay, store_with_events,
    wait_tenth_relayed,
};
use common::topic::{kafka_topic_size, read_exactly};

/// Packages written before the relay starts; each is created then updated (two events).
const PACKAGES: usize = 1500;
/// How long `/readyz` may take to notice the broker is gone, and to notice it is back.
const READINESS_BOUND: Duration = Duration::from_secs(30);
/// How long the broker stays away once readiness has turned red.
const OUTAGE: Duration = Duration::from_secs(8);

/// The rig's PostgreSQL and a private tansu of the test's own, or `None`
/// when either is missing (the test then returns early).
async fn postgres_and_private_broker() -> Option<(String, PrivateTansu)> {
    let pg = backend(Backend::Postgres)?;
    let broker = PrivateTansu::start().await?;
    Some((pg, broker))
}

fn ready(t: &Tributary) -> bool {
    matches!(http_get(t.admin, "/readyz"), Some((200, _)))
}

/// Polls `/readyz` every 50 ms until it says `want` (true: 200), or panics
/// after [`READINESS_BOUND`]; returns how long it took.
fn wait_readiness(t: &Tributary, want: bool, what: &str, broker: &PrivateTansu) -> Duration {
    let t0 = Instant::now();
    while ready(t) != want {
        assert!(
            t0.elapsed() < READINESS_BOUND,
            "{what}: /readyz did not turn {} within {READINESS_BOUND:?}; now: {:?}\nrelay log:\n{}\nbroker log:\n{}",
            if want { "200" } else { "non-200" },
            http_get(t.admin, "/readyz"),
            t.log_text(),
            broker.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

// Proves the outbox relay survives a real broker SIGKILL mid-stream: readiness
// goes red and back, nothing leaves the outbox without an ack while the broker
// is away, and no event is lost on the topic (duplicates counted exactly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_survives_broker_sigkill_postgres() {
    let Some((pg, mut broker)) = postgres_and_private_broker().await else {
        return;
    };
    let t_start = Instant::now();
    let dir = tributary_testkit::temp_dir();
    let sql_url = fresh_postgres_db(&pg).await.unwrap();
    let (store, total) = store_with_events(&sql_url, PACKAGES).await;
    let bus_url = broker.url();
    let topic = tributary_testkit::unique("outage-package-events");
    let mut relay = start_relay(&sql_url, &bus_url, &topic, dir.path());

    // Kill the broker once a tenth has gone out.
    wait_tenth_relayed(&store, total, &relay).await;
    broker.kill9();
    let killed = Instant::now();
    let sent_before = relay.metric("tributary_outbox_sent_total");
    let left_at_kill = pending(&store).await;
    assert!(
        left_at_kill > 0 && left_at_kill < total,
        "the kill must land mid-stream ({left_at_kill} of {total} left)"
    );

    // Readiness turns red while the broker is away.
    let to_red = wait_readiness(&relay, false, "broker killed", &broker);
    let red_body = http_get(relay.admin, "/readyz").map(|(_, b)| b);

    // Meanwhile nothing leaves the outbox without an ack: the acks counted
    // plus what is still pending is at least every event, for the whole
    // outage (the cleaner may lag behind the acks, never lead them).
    let outage_end = Instant::now() + OUTAGE;
    let mut left_in_outage = left_at_kill;
    while Instant::now() < outage_end {
        let sent = relay.metric("tributary_outbox_sent_total");
        left_in_outage = pending(&store).await;
        assert!(
            left_in_outage > 0,
            "the outbox drained while the broker was away"
        );
        assert!(
            sent as i64 + left_in_outage >= total,
            "events deleted without an ack: {sent} acked, {left_in_outage} pending of {total}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Acked events of a batch whose other sends still wait on the broker
    // stay until that batch is done: "held" of them, never fewer than 0.
    let held = relay.metric("tributary_outbox_sent_total") as i64 + left_in_outage - total;
    assert!(!ready(&relay), "ready again while the broker is still away");

    // The broker comes back on the same port and the same storage.
    let down_for = killed.elapsed();
    let broker_up = broker.restart().await;
    let to_green = wait_readiness(&relay, true, "broker restarted", &broker);

    let deadline = Instant::now() + Duration::from_secs(180);
    while pending(&store).await > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained after the broker came back ({} left):\nrelay log:\n{}\nbroker log:\n{}",
            pending(&store).await,
            relay.log_text(),
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent_total = relay.metric("tributary_outbox_sent_total");
    let failed_total = relay.metric("tributary_outbox_failed_total");
    let st = relay.stop(Duration::from_secs(30));
    assert!(
        st.success(),
        "relay exit after SIGTERM: {st}\n{}",
        relay.log_text()
    );

    // Count what reached the topic: exactly as many records as its
    // partitions' watermarks say, read back under a new group (tansu does
    // not reliably evict a killed member of an old one).
    let on_topic = kafka_topic_size(&bus_url, &topic).await;
    let records = read_exactly(
        &bus_url,
        &topic,
        on_topic,
        Duration::from_secs(120),
        "records read back vs the topic's watermarks",
    )
    .await;
    let mut first_seen: HashMap<u64, Vec<i32>> = HashMap::new();
    let mut seen = HashSet::new();
    for m in &records {
        let e = package_event(m);
        if seen.insert(e.id) {
            first_seen.entry(e.package_id).or_default().push(e.r#type);
        }
    }
    let lost = total as usize - seen.len();
    let duplicates = records.len() - seen.len();
    eprintln!(
        "broker SIGKILL mid-stream: {total} events written, {sent_before} acked and {left_at_kill} pending at the kill; \
         /readyz non-200 after {to_red:?} ({red_body:?}); {left_in_outage} pending through the outage ({held} of them acked, \
         held with their batch); broker down {down_for:?}, answering {broker_up:?} after its restart, \
         /readyz 200 again {to_green:?} after that; {sent_total} sends acked, {failed_total} failed; \
         on the topic: {} records, lost {lost}, duplicated {duplicates}; test took {:?}",
        records.len(),
        t_start.elapsed()
    );
    assert_eq!(lost, 0, "events lost");
    assert_created_then_updated(&first_seen, PACKAGES);
}

// Proves the docs executor + outbox survive a real broker SIGKILL mid-stream (the
// broker is both its input and its output): readiness goes red and back, no ack
// arrives while it is away, and after its restart the table and the last output
// per url equal the reference merge (PostgreSQL + a private tansu).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_executor_survives_broker_sigkill_postgres() {
    let Some((pg, mut broker)) = postgres_and_private_broker().await else {
        return;
    };
    let t_start = Instant::now();
    let dir = tributary_testkit::temp_dir();
    let sql = fresh_postgres_db(&pg).await.unwrap();
    let bus_url = broker.url();
    let stream = generate_updates(
        33,
        &GenParams {
            urls: 2000,
            updates: 20_000,
            duplicates: 0.2,
            shuffle: true,
        },
    )
    .unwrap();
    let want = reference_merge(stream.iter().cloned());
    let input = tributary_testkit::unique("doc-in");
    let output = tributary_testkit::unique("doc-out");
    let group = tributary_testkit::unique("doc-group");
    feed(&bus_url, &input, 3, &stream).await;
    let store = store_of(&sql).await;
    let data = dir.path().to_string_lossy().into_owned();
    let env = [
        ("TRIBUTARY__SQL__URL", sql.as_str()),
        ("TRIBUTARY__BUS__URL", bus_url.as_str()),
        ("TRIBUTARY__DATA_DIR", data.as_str()),
        ("TRIBUTARY__AUDIT__ENABLED", "false"),
        ("TRIBUTARY__DOCS__INPUT_TOPIC", input.as_str()),
        ("TRIBUTARY__DOCS__GROUP", group.as_str()),
        ("TRIBUTARY__DOCS__RELAY__TOPIC", output.as_str()),
        // Small batches, so the kill lands between commits.
        ("TRIBUTARY__DOCS__BATCH_MAX", "20"),
    ];
    let mut t = Tributary::start(
        bin(),
        &["serve", "docs-executor", "docs-outbox"],
        &env,
        &dir.path().join("executor.log"),
    );
    t.wait_ready(Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(120);
    while t.metric("tributary_docs_updates_in_total") < 3000.0 {
        assert!(Instant::now() < deadline, "no progress\n{}", t.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.kill9();
    let killed = Instant::now();
    let merged_at_kill = t.metric("tributary_docs_updates_in_total");

    let to_red = wait_readiness(&t, false, "broker killed", &broker);
    // Acks still in flight at the kill have been counted by now; none may follow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent_in_outage = t.metric("tributary_outbox_sent_total");
    let outage_end = Instant::now() + OUTAGE;
    while Instant::now() < outage_end {
        assert_eq!(
            t.metric("tributary_outbox_sent_total"),
            sent_in_outage,
            "an output acked while the broker was away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pending_in_outage = store.outbox().pending().await.unwrap();
    let merged_in_outage = t.metric("tributary_docs_updates_in_total");
    assert!(!ready(&t), "ready again while the broker is still away");
    assert!(
        merged_in_outage < stream.len() as f64,
        "the stream must outlast the kill ({merged_in_outage} of {})",
        stream.len()
    );

    let down_for = killed.elapsed();
    let broker_up = broker.restart().await;
    let to_green = wait_readiness(&t, true, "broker restarted", &broker);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if store.outbox().pending().await.unwrap() == 0 && table(&store).await == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not merged and relayed in time after the broker came back\nexecutor log:\n{}\nbroker log:\n{}",
            t.log_text(),
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let merged = t.metric("tributary_docs_updates_in_total");
    let sent = t.metric("tributary_outbox_sent_total");
    let st = t.stop(Duration::from_secs(30));
    assert!(st.success(), "exit after SIGTERM: {st}\n{}", t.log_text());

    let on_topic = kafka_topic_size(&bus_url, &output).await;
    let out = read_exactly(
        &bus_url,
        &output,
        on_topic,
        Duration::from_secs(120),
        "output read back vs its watermarks",
    )
    .await;
    let last = last_per_url(&out);
    let lost = want.keys().filter(|u| !last.contains_key(*u)).count();
    eprintln!(
        "docs broker SIGKILL mid-stream: {} updates over {} urls on the input, {merged_at_kill} merged at the kill; \
         /readyz non-200 after {to_red:?}; {merged_in_outage} merged and {pending_in_outage} outputs waiting in the \
         outbox at the end of the outage; broker down {down_for:?}, answering {broker_up:?} after its restart, \
         /readyz 200 again {to_green:?} after that; {merged} updates merged in all (redelivered: {}), {sent} outputs \
         acked; output topic: {} records for {} urls, urls lost {lost}; test took {:?}",
        stream.len(),
        want.len(),
        merged - stream.len() as f64,
        out.len(),
        last.len(),
        t_start.elapsed()
    );
    assert_eq!(lost, 0, "urls missing on the output topic");
    assert!(
        last == want,
        "last output per url differs from the reference merge"
    );
}

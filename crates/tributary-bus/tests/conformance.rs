//! Bus conformance: every scenario is written once, generic over the port,
//! and run against both adapters — the embedded bus (always) and Kafka
//! (the rig's broker, `TRIBUTARY_TEST_KAFKA`; required under CI).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tributary_bus::partitioner::partition_for_key;
use tributary_bus::runner::{self, dlq_headers, Backoff, Handler, HandlerError, RunnerConfig};
use tributary_bus::{
    connect, Bus, BusConfig, Consumer, ConsumerOptions, Message, Record, TopicConfig,
};
use tributary_testkit::unique;

/// Where a scenario's bus lives; `open` can be called again to simulate a restart.
enum Harness {
    Embedded(tempfile::TempDir),
    Kafka(String),
}

impl Harness {
    fn url(&self) -> String {
        match self {
            Harness::Embedded(dir) => format!("sqlite://{}/bus.db", dir.path().display()),
            Harness::Kafka(url) => url.clone(),
        }
    }

    async fn open(&self) -> Bus {
        connect(&self.url(), &BusConfig::default())
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.url()))
    }

    /// How long to wait for group joins and deliveries on this backend.
    fn patience(&self) -> Duration {
        match self {
            Harness::Embedded(_) => Duration::from_secs(10),
            Harness::Kafka(_) => Duration::from_secs(90),
        }
    }
}

fn options() -> ConsumerOptions {
    ConsumerOptions {
        commit_interval: Duration::from_millis(200),
        ..ConsumerOptions::default()
    }
}

async fn topic(bus: &Bus, partitions: i32) -> String {
    let name = unique("conf");
    bus.create_topic(&name, partitions)
        .await
        .expect("create topic");
    name
}

async fn recv_n(c: &mut dyn Consumer, n: usize, patience: Duration) -> Vec<Message> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + patience;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Ok(m)) => out.push(m),
            Ok(Err(e)) => panic!("recv: {e}"),
            Err(_) => panic!("only {} of {n} messages within {patience:?}", out.len()),
        }
    }
    out
}

/// Nothing more arrives within `quiet`.
async fn assert_quiet(c: &mut dyn Consumer, quiet: Duration) {
    if let Ok(m) = tokio::time::timeout(quiet, c.recv()).await {
        panic!("unexpected message: {m:?}");
    }
}

async fn send_all(bus: &Bus, records: Vec<Record>) -> Vec<tributary_bus::Delivery> {
    let futs: Vec<_> = records.into_iter().map(|r| bus.send(r)).collect();
    futures::future::try_join_all(futs).await.expect("send")
}

// Proves create_topic is idempotent and the partition count is reported.
async fn topics_are_idempotent(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 3).await;
    bus.create_topic(&t, 3)
        .await
        .expect("second create is a no-op");
    assert_eq!(bus.partitions(&t).await.expect("partitions"), 3);
    assert!(bus.partitions(&unique("missing")).await.is_err());
    bus.ping().await.expect("ping");
}

// Proves records of one key stay on one partition, in send order, with headers intact.
async fn ordering_per_key(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 3).await;
    let mut records = Vec::new();
    for seq in 0..50 {
        for key in 0..6 {
            records.push(
                Record::new(&t, format!("key-{key}"), format!("{seq}"))
                    .header("seq", seq.to_string()),
            );
        }
    }
    send_all(&bus, records).await;
    let mut c = bus
        .subscribe(&unique("g"), std::slice::from_ref(&t), options())
        .await
        .expect("subscribe");
    let msgs = recv_n(&mut *c, 300, h.patience()).await;
    let mut last: HashMap<Bytes, (i32, i64)> = HashMap::new();
    for m in &msgs {
        let key = m.key.clone().expect("key");
        let seq: i64 = std::str::from_utf8(&m.value)
            .expect("utf8")
            .parse()
            .expect("int");
        assert_eq!(
            m.header("seq").map(|v| v.to_vec()),
            Some(seq.to_string().into_bytes())
        );
        if let Some((p, prev)) = last.get(&key) {
            assert_eq!(*p, m.partition, "key moved partition");
            assert!(seq > *prev, "out of order for {key:?}: {seq} after {prev}");
        }
        last.insert(key, (m.partition, seq));
    }
    assert_eq!(last.len(), 6);
    c.close().await.expect("close");
}

// Proves a producer timestamp (event time) set on a record is the consumed
// message's timestamp, and a record without one is stamped with its send time.
async fn producer_timestamps_round_trip(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 1).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // An hour ago and a day ahead: event times need not be "now".
    let past = before - 3_600_000;
    let future = before + 86_400_000;
    send_all(
        &bus,
        vec![
            Record::new(&t, "k", "past").at(past),
            Record::new(&t, "k", "now"),
            Record::new(&t, "k", "future").at(future),
        ],
    )
    .await;
    let mut c = bus
        .subscribe(&unique("g"), std::slice::from_ref(&t), options())
        .await
        .expect("subscribe");
    let msgs = recv_n(&mut *c, 3, h.patience()).await;
    let by_value: HashMap<&[u8], Option<i64>> = msgs
        .iter()
        .map(|m| (&m.value[..], m.timestamp_ms))
        .collect();
    assert_eq!(by_value[&b"past"[..]], Some(past));
    assert_eq!(by_value[&b"future"[..]], Some(future));
    let now = by_value[&b"now"[..]].expect("a send-time stamp");
    assert!(
        now >= before - 1_000 && now < before + 600_000,
        "send-time stamp {now} is not near {before}"
    );
    c.close().await.expect("close");
}

// Proves a key lands on murmur2(key) % partitions, the same number on every adapter.
async fn partition_mapping_is_kafkas(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 4).await;
    let keys: Vec<String> = (0..40).map(|i| format!("order-{i}")).collect();
    let deliveries = send_all(
        &bus,
        keys.iter()
            .map(|k| Record::new(&t, k.clone(), "v"))
            .collect(),
    )
    .await;
    for (k, d) in keys.iter().zip(&deliveries) {
        assert_eq!(d.partition, partition_for_key(k.as_bytes(), 4), "key {k}");
    }
    let used: BTreeSet<i32> = deliveries.iter().map(|d| d.partition).collect();
    assert!(used.len() > 1, "40 keys should spread over partitions");
}

// Proves committed offsets survive a restart of the consumer and of the bus handle.
async fn offsets_survive_restart(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 1).await;
    let group = unique("g");
    send_all(
        &bus,
        (0..20)
            .map(|i| Record::new(&t, "k", format!("{i}")))
            .collect(),
    )
    .await;
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .expect("subscribe");
    let first = recv_n(&mut *c, 10, h.patience()).await;
    for m in &first {
        c.store(m).expect("store");
    }
    c.close().await.expect("close commits");
    drop(bus);

    let bus = h.open().await;
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .expect("subscribe again");
    let rest = recv_n(&mut *c, 10, h.patience()).await;
    let values: Vec<String> = rest
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect();
    assert_eq!(values, (10..20).map(|i| i.to_string()).collect::<Vec<_>>());
    c.close().await.expect("close");
}

// Proves a consumer that dies before storing/committing loses nothing: the group gets the messages again.
async fn uncommitted_messages_are_redelivered(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 2).await;
    let group = unique("g");
    send_all(
        &bus,
        (0..10)
            .map(|i| Record::new(&t, format!("k{i}"), format!("{i}")))
            .collect(),
    )
    .await;
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .expect("subscribe");
    let got = recv_n(&mut *c, 10, h.patience()).await;
    assert_eq!(got.len(), 10);
    drop(c); // crash: no store, no commit

    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .expect("subscribe again");
    let again = recv_n(&mut *c, 10, h.patience()).await;
    let values: BTreeSet<Bytes> = again.iter().map(|m| m.value.clone()).collect();
    assert_eq!(values.len(), 10, "every message redelivered");
    c.close().await.expect("close");
}

type Assignment = Vec<(String, i32)>;

// Proves two members of one group split the partitions between them and together see everything.
async fn members_split_partitions(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 4).await;
    let group = unique("g");
    let stop = CancellationToken::new();
    let seen: Arc<Mutex<BTreeMap<usize, BTreeSet<Bytes>>>> = Arc::default();
    let assigned: Arc<Mutex<BTreeMap<usize, Assignment>>> = Arc::default();
    let mut tasks = Vec::new();
    for member in 0..2 {
        let mut c = bus
            .subscribe(&group, std::slice::from_ref(&t), options())
            .await
            .expect("subscribe");
        let (stop, seen, assigned) = (stop.clone(), seen.clone(), assigned.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), c.recv()).await {
                    let m = m.expect("recv");
                    c.store(&m).expect("store");
                    seen.lock()
                        .expect("lock")
                        .entry(member)
                        .or_default()
                        .insert(m.value.clone());
                }
                assigned
                    .lock()
                    .expect("lock")
                    .insert(member, c.assignment());
            }
            c.close().await.expect("close");
        }));
    }
    // Wait for a stable split, then publish.
    let deadline = tokio::time::Instant::now() + h.patience();
    loop {
        let a = assigned.lock().expect("lock").clone();
        let sets: Vec<BTreeSet<(String, i32)>> =
            a.values().map(|v| v.iter().cloned().collect()).collect();
        if sets.len() == 2
            && sets.iter().all(|s| !s.is_empty())
            && sets[0].is_disjoint(&sets[1])
            && sets[0].len() + sets[1].len() == 4
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no split of 4 partitions: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_all(
        &bus,
        (0..40)
            .map(|i| Record::new(&t, format!("k{i}"), format!("{i}")))
            .collect(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + h.patience();
    loop {
        let s = seen.lock().expect("lock").clone();
        let all: BTreeSet<&Bytes> = s.values().flatten().collect();
        if all.len() == 40 {
            assert_eq!(s.len(), 2, "both members consumed: {:?}", s.keys());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 40 consumed",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    for t in tasks {
        t.await.expect("member task");
    }
}

/// A runner for `group` on `topic` with short backoffs.
fn quick_runner(group: &str, topic: &str) -> RunnerConfig {
    let mut cfg = RunnerConfig::new(group.to_owned(), &[topic]);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        max_retries: None,
    };
    cfg.consumer = options();
    cfg
}

/// The group committed past everything on `topic`: a new member gets nothing.
async fn assert_group_consumed_all(h: &Harness, bus: &Bus, group: &str, topic: &str) {
    let mut c = bus
        .subscribe(group, &[topic.to_owned()], options())
        .await
        .expect("subscribe");
    let quiet = match h {
        Harness::Embedded(_) => Duration::from_secs(1),
        Harness::Kafka(_) => Duration::from_secs(15),
    };
    assert_quiet(&mut *c, quiet).await;
    c.close().await.expect("close");
}

/// Fails "flaky" twice with a retryable error, "poison" permanently, accepts the rest.
#[derive(Default)]
struct Picky {
    attempts: Mutex<HashMap<String, u32>>,
    handled: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Handler for Picky {
    async fn handle(&self, m: &Message) -> Result<(), HandlerError> {
        let v = String::from_utf8_lossy(&m.value).into_owned();
        let n = {
            let mut a = self.attempts.lock().expect("lock");
            let n = a.entry(v.clone()).or_default();
            *n += 1;
            *n
        };
        match v.as_str() {
            "poison" => Err(HandlerError::Permanent("cannot parse poison".into())),
            "flaky" if n <= 2 => Err(HandlerError::Retryable("database busy".into())),
            _ => {
                self.handled.lock().expect("lock").push(v);
                Ok(())
            }
        }
    }
}

// Proves the runner retries retryable errors in place, dead-letters permanent ones with
// origin headers, keeps going, and commits on shutdown so nothing is consumed twice.
async fn retry_then_dead_letter(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 1).await;
    let group = unique("g");
    send_all(
        &bus,
        ["a", "flaky", "poison", "b"]
            .iter()
            .map(|v| Record::new(&t, "k", *v))
            .collect(),
    )
    .await;
    let handler = Arc::new(Picky::default());
    let shutdown = CancellationToken::new();
    let cfg = quick_runner(&group, &t);
    let task = tokio::spawn(runner::run(
        bus.clone(),
        cfg,
        handler.clone(),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + h.patience();
    while handler.handled.lock().expect("lock").len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "runner did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.expect("join").expect("runner");
    assert_eq!(
        *handler.handled.lock().expect("lock"),
        vec!["a", "flaky", "b"]
    );
    assert_eq!(handler.attempts.lock().expect("lock")["flaky"], 3);

    let dlq = format!("{t}{}", runner::DLQ_SUFFIX);
    let mut c = bus
        .subscribe(&unique("dlq-reader"), &[dlq], options())
        .await
        .expect("subscribe dlq");
    let dead = recv_n(&mut *c, 1, h.patience()).await;
    let m = &dead[0];
    assert_eq!(&m.value[..], b"poison");
    assert_eq!(
        m.header(dlq_headers::TOPIC).map(|v| v.to_vec()),
        Some(t.clone().into_bytes())
    );
    assert_eq!(
        m.header(dlq_headers::OFFSET).map(|v| v.to_vec()),
        Some(b"2".to_vec())
    );
    let err =
        String::from_utf8_lossy(m.header(dlq_headers::ERROR).expect("error header")).into_owned();
    assert!(err.contains("cannot parse poison"), "{err}");
    c.close().await.expect("close");

    // The group committed past everything: a new member gets nothing.
    assert_group_consumed_all(&h, &bus, &group, &t).await;
}

/// Completes each message later than it was handed out (out of order
/// across messages), failing the completion of "fail-once" the first time.
#[derive(Default)]
struct Deferring {
    completed: Arc<Mutex<HashMap<String, u32>>>,
    failed: Arc<std::sync::atomic::AtomicBool>,
    /// Times the runner said it rewound (before subscribing again).
    rewinds: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl Handler for Deferring {
    async fn handle(&self, m: &Message) -> Result<(), HandlerError> {
        match self.handle_deferred(m).await? {
            Some(ack) => ack.await,
            None => Ok(()),
        }
    }

    async fn handle_deferred(&self, m: &Message) -> Result<Option<runner::Ack>, HandlerError> {
        let v = String::from_utf8_lossy(&m.value).into_owned();
        // Later messages often complete first: 0..=19 ms, by a hash of the offset.
        let delay = Duration::from_millis(((m.offset * 7919) % 20) as u64);
        let completed = self.completed.clone();
        let failed = self.failed.clone();
        Ok(Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            if v == "fail-once" && !failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(HandlerError::Retryable("delivery failed".into()));
            }
            *completed.lock().expect("lock").entry(v).or_default() += 1;
            Ok(())
        })))
    }

    async fn rewound(&self) {
        self.rewinds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

// Proves deferred completions (a handler that hands back its side effect's completion) keep
// the at-least-once contract: a failed completion rewinds, so it and what came after it are
// delivered again (the handler told once, before the redelivery); every message completes; on shutdown the group has committed past all of
// them (a new member gets nothing), although completions arrived out of order.
async fn deferred_completions_commit_in_order(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 2).await;
    let group = unique("g");
    let mut values: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    values[77] = "fail-once".into();
    send_all(
        &bus,
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new(&t, format!("k{}", i % 5), v.clone()))
            .collect(),
    )
    .await;
    let handler = Arc::new(Deferring::default());
    let shutdown = CancellationToken::new();
    let mut cfg = quick_runner(&group, &t);
    cfg.max_in_flight = 32;
    let task = tokio::spawn(runner::run(
        bus.clone(),
        cfg,
        handler.clone(),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + h.patience() + Duration::from_secs(30);
    loop {
        let done = handler.completed.lock().expect("lock").len();
        if done == values.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {} messages completed",
            values.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.expect("join").expect("runner");
    assert!(handler.failed.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        handler.rewinds.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the handler is told of the one rewind"
    );
    let completed = handler.completed.lock().expect("lock").clone();
    assert_eq!(
        completed["fail-once"], 1,
        "completed once, after its rewind"
    );

    assert_group_consumed_all(&h, &bus, &group, &t).await;
}

// Proves a topic can be declared compacted, idempotently, on every adapter: it takes keyed
// records and tombstones (an empty value, read back empty with its key), and on Kafka the
// topic carries cleanup.policy=compact. (When compaction runs is the backend's business;
// the embedded bus's compaction is tested in tests/embedded.rs.)
async fn compacted_topics(h: Harness) {
    let bus = h.open().await;
    let t = unique("conf");
    bus.create_topic_with(&t, &TopicConfig::compacted(2))
        .await
        .expect("create compacted");
    bus.create_topic_with(&t, &TopicConfig::compacted(2))
        .await
        .expect("second create is a no-op");
    assert_eq!(bus.partitions(&t).await.expect("partitions"), 2);
    send_all(
        &bus,
        vec![
            Record::new(&t, "a", "a1"),
            Record::new(&t, "b", "b1"),
            Record::new(&t, "a", "a2"),
            Record::new(&t, "b", ""),
        ],
    )
    .await;
    let mut c = bus
        .subscribe(&unique("g"), std::slice::from_ref(&t), options())
        .await
        .expect("subscribe");
    let mut msgs = recv_n(&mut *c, 4, h.patience()).await;
    msgs.sort_by_key(|m| (m.partition, m.offset));
    let mut last: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    for m in msgs {
        last.insert(m.key.clone().expect("key"), m.value.clone());
    }
    assert_eq!(last.get(&Bytes::from("a")), Some(&Bytes::from("a2")));
    assert_eq!(
        last.get(&Bytes::from("b")),
        Some(&Bytes::new()),
        "tombstone"
    );
    c.close().await.expect("close");
    if let Harness::Kafka(url) = &h {
        let kafka = tributary_bus::kafka::KafkaBus::connect(url, &Default::default())
            .await
            .expect("connect");
        let policy = kafka
            .topic_config(&t, "cleanup.policy")
            .await
            .expect("describe configs");
        assert_eq!(policy.as_deref(), Some("compact"));
    }
}

/// The lag per partition the consumer reports, with the end offsets checked.
async fn lag_of(c: &dyn Consumer, ends: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
    let lag = c.lag().await.expect("lag");
    for l in &lag {
        assert_eq!(
            Some(&l.end_offset),
            ends.get(&l.partition),
            "end offset of {l:?}"
        );
    }
    lag.iter().map(|l| (l.partition, l.lag())).collect()
}

// Proves the lag a consumer reports is the count of records its group has
// not processed, per partition: all of them before any store, the rest
// after some are stored, and the same from the committed offsets for the
// next member after a close.
async fn lag_counts_unprocessed_records(h: Harness) {
    let bus = h.open().await;
    let t = topic(&bus, 2).await;
    let group = unique("g");
    let sent = send_all(
        &bus,
        (0..12)
            .map(|i| Record::new(&t, format!("k{i}"), format!("{i}")))
            .collect(),
    )
    .await;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for d in &sent {
        *ends.entry(d.partition).or_default() += 1;
    }
    assert_eq!(ends.len(), 2, "12 keys should use both partitions");
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .expect("subscribe");
    let got = recv_n(&mut *c, 12, h.patience()).await;
    // Received but not processed: everything is lag.
    assert_eq!(lag_of(&*c, &ends).await, ends);

    // Process the first two records of each partition.
    let mut done: BTreeMap<i32, i64> = BTreeMap::new();
    for m in &got {
        let n = done.entry(m.partition).or_default();
        if *n < 2 {
            c.store(m).expect("store");
            *n += 1;
        }
    }
    let rest: BTreeMap<i32, i64> = ends.iter().map(|(p, n)| (*p, n - 2)).collect();
    assert_eq!(lag_of(&*c, &ends).await, rest);
    c.close().await.expect("close commits");

    // A new member counts from the committed offsets.
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .expect("subscribe again");
    recv_n(&mut *c, 8, h.patience()).await;
    assert_eq!(lag_of(&*c, &ends).await, rest);
    c.close().await.expect("close");
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Harness::Embedded(tributary_testkit::temp_dir())).await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(url) = tributary_testkit::backend(tributary_testkit::Backend::Kafka) else { return };
                    super::$scenario(super::Harness::Kafka(url)).await;
                }
            )*
        }
    };
}

conformance!(
    topics_are_idempotent,
    ordering_per_key,
    producer_timestamps_round_trip,
    partition_mapping_is_kafkas,
    offsets_survive_restart,
    uncommitted_messages_are_redelivered,
    members_split_partitions,
    retry_then_dead_letter,
    deferred_completions_commit_in_order,
    compacted_topics,
    lag_counts_unprocessed_records,
);

mod outage {
    use super::*;
    use tributary_bus::unreliable::Unreliable;

    // Proves that while the bus is away sends and pings fail (readiness goes red), and that
    // after it returns a sender that retried loses nothing and the consumer gets everything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_then_recovery_loses_nothing() {
        let dir = tributary_testkit::temp_dir();
        let h = Harness::Embedded(dir);
        let (bus, outage) = Unreliable::wrap(h.open().await);
        let t = topic(&bus, 2).await;
        let mut c = bus
            .subscribe(&unique("g"), std::slice::from_ref(&t), options())
            .await
            .expect("subscribe");
        outage.set_down(true);
        assert!(bus.ping().await.is_err());
        let mut pending: Vec<Record> = (0..20)
            .map(|i| Record::new(&t, format!("k{i}"), format!("{i}")))
            .collect();
        for r in &pending {
            assert!(
                bus.send(r.clone()).await.is_err(),
                "send must fail while down"
            );
        }
        outage.set_down(false);
        bus.ping().await.expect("ping after recovery");
        let sent = send_all(&bus, std::mem::take(&mut pending)).await;
        assert_eq!(sent.len(), 20);
        let got = recv_n(&mut *c, 20, h.patience()).await;
        let values: BTreeSet<Bytes> = got.iter().map(|m| m.value.clone()).collect();
        assert_eq!(values.len(), 20);
        c.close().await.expect("close");
    }
}

//! The docs executor against real backends: SQLite (temp file) and
//! PostgreSQL, the embedded bus and Kafka, the in-process cache and Redis.
//! Proves that a shuffled stream with duplicates and poison messages ends in
//! exactly the reference merge (table and last outbox event per url), that
//! poison messages reach the dead-letter topic while the rest goes on, that
//! `emit = changed` emits nothing for a duplicate, and that the SQL upsert
//! merges exactly like the Rust `merge` on random pairs (both dialects).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::dlq_headers;
use tributary_bus::{Bus, BusConfig, ConsumerOptions, Message, Record};
use tributary_documents::domain::{generate_updates, merge, reference_merge, Document, GenParams};
use tributary_documents::pipeline::Executor;
use tributary_documents::settings::DocsSettings;
use tributary_documents::store::DocStore;
use tributary_documents::EmitPolicy;
use tributary_storage::{Cache, CacheConfig, Database, SqlConfig};
use tributary_testkit::{backend, fresh_postgres_db, unique, Backend};

#[derive(Clone, Copy, Debug)]
enum Sql {
    Sqlite,
    Postgres,
}
#[derive(Clone, Copy, Debug)]
enum BusKind {
    Embedded,
    Kafka,
}
#[derive(Clone, Copy, Debug)]
enum CacheKind {
    Memory,
    Redis,
}

/// Opens the database, or `None` when the backend is not configured (skip).
async fn open_db(kind: Sql, dir: &std::path::Path) -> Option<Database> {
    let url = match kind {
        Sql::Sqlite => format!("sqlite://{}", dir.join("docs.db").display()),
        Sql::Postgres => fresh_postgres_db(&backend(Backend::Postgres)?)
            .await
            .unwrap(),
    };
    Some(
        Database::connect(&url, &SqlConfig::default())
            .await
            .unwrap(),
    )
}

async fn open_bus(kind: BusKind, dir: &std::path::Path) -> Option<Bus> {
    let url = match kind {
        BusKind::Embedded => format!("sqlite://{}", dir.join("bus.db").display()),
        BusKind::Kafka => backend(Backend::Kafka)?,
    };
    Some(
        tributary_bus::connect(&url, &BusConfig::default())
            .await
            .unwrap(),
    )
}

async fn open_cache(kind: CacheKind) -> Option<Cache> {
    let url = match kind {
        CacheKind::Memory => "memory://".to_owned(),
        CacheKind::Redis => backend(Backend::Redis)?,
    };
    let config = CacheConfig {
        key_prefix: format!("{}:", unique("docs-test")),
        ..CacheConfig::from_url(url)
    };
    Some(Cache::connect(&config).await.unwrap())
}

fn settings(batch_max: usize, emit: EmitPolicy) -> DocsSettings {
    let mut s = DocsSettings {
        input_topic: unique("doc-in"),
        dead_letter_topic: unique("doc-dead"),
        group: unique("doc-group"),
        batch_max,
        batch_wait_ms: 10,
        emit,
        retry_base_ms: 20,
        ..DocsSettings::default()
    };
    s.relay.topic = unique("doc-out");
    s
}

fn wire(d: &Document) -> Bytes {
    Bytes::from(serde_json::to_vec(d).unwrap())
}

/// Every docs outbox event, in commit order: `(key, payload)`.
async fn outbox_events(store: &DocStore) -> Vec<(String, Document)> {
    let events = store
        .outbox()
        .claim("test-reader", Duration::from_secs(600), 1_000_000)
        .await
        .unwrap();
    events
        .into_iter()
        .map(|e| {
            let doc = tributary_documents::parse_update(&e.payload).unwrap();
            (String::from_utf8(e.key).unwrap(), doc)
        })
        .collect()
}

async fn table(store: &DocStore) -> BTreeMap<String, Document> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(after.as_deref(), 500).await.unwrap();
        if page.is_empty() {
            return out;
        }
        after = page.last().map(|d| d.url.clone());
        out.extend(page.into_iter().map(|d| (d.url.clone(), d)));
    }
}

/// Reads `n` messages of `topic` with a fresh group.
async fn read_topic(bus: &Bus, topic: &str, n: usize) -> Vec<Message> {
    let mut consumer = bus
        .subscribe(
            &unique("doc-reader"),
            &[topic.to_owned()],
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        if let Ok(m) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await {
            out.push(m.unwrap());
        }
    }
    consumer.close().await.unwrap();
    out
}

/// The scenario: a generated stream (shuffled, 20% duplicates) plus poison
/// messages through the running pipeline ends in the reference merge.
async fn stream_scenario(sql: Sql, bus_kind: BusKind, cache_kind: CacheKind) {
    let dir = tributary_testkit::temp_dir();
    let (Some(db), Some(bus), Some(cache)) = (
        open_db(sql, dir.path()).await,
        open_bus(bus_kind, dir.path()).await,
        open_cache(cache_kind).await,
    ) else {
        return;
    };
    let s = Arc::new(settings(150, EmitPolicy::Changed));
    let store = DocStore::open(&db).await.unwrap();
    let stream = generate_updates(
        7,
        &GenParams {
            urls: 200,
            updates: 2000,
            duplicates: 0.2,
            shuffle: true,
        },
    )
    .unwrap();
    let reference = reference_merge(stream.iter().cloned());
    bus.create_topic(&s.input_topic, 3).await.unwrap();
    let poison: Vec<&[u8]> = vec![
        b"not json at all",
        br#"{"Url":"","FetchTime":1}"#,
        br#"{"Url":"https://example.com/doc/1","FetchTime":"soon"}"#,
    ];
    // Poison messages spread through the stream (one at the very start).
    let mut sends = Vec::new();
    for (i, d) in stream.iter().enumerate() {
        if i % 700 == 0 {
            let p = poison[(i / 700) % poison.len()];
            sends.push(bus.send(Record::new(
                s.input_topic.clone(),
                Bytes::from_static(b"https://example.com/doc/1"),
                Bytes::copy_from_slice(p),
            )));
        }
        sends.push(bus.send(Record::new(
            s.input_topic.clone(),
            Bytes::from(d.url.clone()),
            wire(d),
        )));
    }
    let n_poison = stream.len().div_ceil(700);
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }

    let executor = Arc::new(Executor::new(
        store.clone(),
        Some(cache),
        bus.clone(),
        s.clone(),
    ));
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(executor.clone().run(|| {}, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = table(&store).await;
        if got == reference {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sql:?}/{bus_kind:?}/{cache_kind:?}: table did not reach the reference merge ({} of {} urls)",
            got.len(),
            reference.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the last offsets be stored, then drain.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    run.await.unwrap().unwrap();

    // The last outbox event of each url is its reference state; every url emitted.
    let events = outbox_events(&store).await;
    let mut last: BTreeMap<String, Document> = BTreeMap::new();
    for (key, doc) in &events {
        assert_eq!(key, &doc.url);
        last.insert(key.clone(), doc.clone());
    }
    assert_eq!(last, reference, "last output per url");
    assert!(
        events.len() < stream.len(),
        "emit=changed: {} events for {} updates",
        events.len(),
        stream.len()
    );

    // Dead letters: original bytes, the error and origin in headers.
    let dead = read_topic(&bus, &s.dead_letter_topic, n_poison).await;
    assert_eq!(dead.len(), n_poison, "dead letters");
    for m in &dead {
        assert!(poison.contains(&&m.value[..]), "{:?}", m.value);
        let err = m.header(dlq_headers::ERROR).expect("dlq.error");
        assert!(!err.is_empty());
        assert_eq!(
            m.header(dlq_headers::TOPIC).map(|v| &v[..]),
            Some(s.input_topic.as_bytes())
        );
        assert!(m.header(dlq_headers::OFFSET).is_some());
        assert!(m.header(dlq_headers::PARTITION).is_some());
    }

    // A restarted executor with the same group finds everything committed:
    // redelivered duplicates change and emit nothing.
    let pending = store.outbox().pending().await.unwrap();
    assert_eq!(pending, events.len() as i64);
    let mut resend = Vec::new();
    for d in stream.iter().take(300) {
        resend.push(bus.send(Record::new(
            s.input_topic.clone(),
            Bytes::from(d.url.clone()),
            wire(d),
        )));
    }
    for r in futures::future::join_all(resend).await {
        r.unwrap();
    }
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(executor.clone().run(|| {}, shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(table(&store).await, reference);
    assert_eq!(
        store.outbox().pending().await.unwrap(),
        pending,
        "redelivered duplicates emitted"
    );
}

// Proves the stream ends in the reference merge on SQLite + embedded bus + in-process cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sqlite_embedded_memory() {
    stream_scenario(Sql::Sqlite, BusKind::Embedded, CacheKind::Memory).await;
}

// Proves the same on SQLite + embedded bus + Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sqlite_embedded_redis() {
    stream_scenario(Sql::Sqlite, BusKind::Embedded, CacheKind::Redis).await;
}

// Proves the same on PostgreSQL + embedded bus + in-process cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_postgres_embedded_memory() {
    stream_scenario(Sql::Postgres, BusKind::Embedded, CacheKind::Memory).await;
}

// Proves the same on PostgreSQL + Kafka + Redis (the cluster stack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_postgres_kafka_redis() {
    stream_scenario(Sql::Postgres, BusKind::Kafka, CacheKind::Redis).await;
}

// Proves the same on SQLite + Kafka + in-process cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sqlite_kafka_memory() {
    stream_scenario(Sql::Sqlite, BusKind::Kafka, CacheKind::Memory).await;
}

fn doc(url: &str, pub_date: u64, fetch_time: u64, text: &str) -> Document {
    Document {
        url: url.into(),
        pub_date,
        fetch_time,
        text: text.into(),
        first_fetch_time: 0,
    }
}

fn message(d: &Document, offset: i64) -> Message {
    Message {
        topic: "t".into(),
        partition: 0,
        offset,
        key: Some(Bytes::from(d.url.clone())),
        value: wire(d),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

async fn emit_scenario(sql: Sql, cache_kind: CacheKind) {
    let dir = tributary_testkit::temp_dir();
    let (Some(db), Some(bus), Some(cache)) = (
        open_db(sql, dir.path()).await,
        open_bus(BusKind::Embedded, dir.path()).await,
        open_cache(cache_kind).await,
    ) else {
        return;
    };
    let store = DocStore::open(&db).await.unwrap();
    let stop = CancellationToken::new();
    let changed = Executor::new(
        store.clone(),
        Some(cache.clone()),
        bus.clone(),
        Arc::new(settings(100, EmitPolicy::Changed)),
    );
    let u = doc("https://a/1", 5, 100, "v1");
    let r = changed
        .process_batch(vec![message(&u, 0)], &stop)
        .await
        .unwrap();
    assert_eq!((r.changed.len(), r.emitted), (1, 1), "new url emits");
    // The same update again (cache hit), then in a batch with an older one.
    let r = changed
        .process_batch(vec![message(&u, 1)], &stop)
        .await
        .unwrap();
    assert_eq!(
        (r.changed.len(), r.emitted, r.cache_hits),
        (0, 0, 1),
        "duplicate"
    );
    let older = doc("https://a/1", 9, 100, "v0");
    let r = changed
        .process_batch(vec![message(&older, 2), message(&u, 3)], &stop)
        .await
        .unwrap();
    assert_eq!((r.changed.len(), r.emitted), (0, 0), "older on both sides");
    // Without the cache (a fresh one: every prior state from the database).
    let cold = Executor::new(
        store.clone(),
        None,
        bus.clone(),
        Arc::new(settings(100, EmitPolicy::Changed)),
    );
    let r = cold
        .process_batch(vec![message(&u, 4)], &stop)
        .await
        .unwrap();
    assert_eq!(
        (r.changed.len(), r.emitted),
        (0, 0),
        "duplicate, cold cache"
    );
    // A newer update changes it.
    let newer = doc("https://a/1", 1, 200, "v2");
    let r = cold
        .process_batch(vec![message(&newer, 5)], &stop)
        .await
        .unwrap();
    assert_eq!(r.changed, vec![merge(&u, &newer)]);
    assert_eq!(r.emitted, 1);
    // emit = always emits the stored state for the duplicate.
    let always = Executor::new(
        store.clone(),
        Some(cache),
        bus,
        Arc::new(settings(100, EmitPolicy::Always)),
    );
    let r = always
        .process_batch(vec![message(&u, 6)], &stop)
        .await
        .unwrap();
    assert_eq!((r.changed.len(), r.emitted), (0, 1), "always");
    let events = outbox_events(&store).await;
    let states: Vec<&Document> = events.iter().map(|(_, d)| d).collect();
    let merged = merge(&u, &newer);
    assert_eq!(states, vec![&u.clone().normalized(), &merged, &merged]);
}

// Proves emit=changed emits nothing for duplicates and stale updates (cache warm and cold),
// and emit=always emits the stored state (SQLite + in-process cache).
#[tokio::test]
async fn emit_policy_sqlite_memory() {
    emit_scenario(Sql::Sqlite, CacheKind::Memory).await;
}

// Proves the same on PostgreSQL + Redis.
#[tokio::test]
async fn emit_policy_postgres_redis() {
    emit_scenario(Sql::Postgres, CacheKind::Redis).await;
}

/// splitmix64, for reproducible random pairs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Small ranges so ties on fetch time, first fetch time and text are
/// frequent; texts whose byte order differs from case-insensitive or
/// locale order; big values near the storable maximum.
fn random_doc(rng: &mut Rng, url: &str) -> Document {
    const TEXTS: [&str; 8] = ["", "a", "B", "b", "ab", "é", "z", "Z"];
    let big = tributary_documents::domain::MAX_STORABLE;
    let fetch = match rng.below(10) {
        0 => big,
        1 => big - 1,
        n => n,
    };
    let first = if rng.below(2) == 0 {
        0
    } else {
        rng.below(fetch.min(12) + 1)
    };
    Document {
        url: url.into(),
        pub_date: if rng.below(8) == 0 { big } else { rng.below(4) },
        fetch_time: fetch,
        text: TEXTS[rng.below(TEXTS.len() as u64) as usize].into(),
        first_fetch_time: first.min(fetch),
    }
}

async fn sql_merge_scenario(sql: Sql) {
    let dir = tributary_testkit::temp_dir();
    let Some(db) = open_db(sql, dir.path()).await else {
        return;
    };
    let store = DocStore::open(&db).await.unwrap();
    let mut rng = Rng(42);
    const PAIRS: usize = 3000;
    let a: Vec<Document> = (0..PAIRS)
        .map(|i| random_doc(&mut rng, &format!("u{i:05}")))
        .collect();
    let b: Vec<Document> = (0..PAIRS)
        .map(|i| random_doc(&mut rng, &format!("u{i:05}")))
        .collect();
    let first = store.upsert(&a, EmitPolicy::Changed).await.unwrap();
    assert_eq!(
        first.changed.len(),
        PAIRS,
        "every new url is inserted and returned"
    );
    let second = store.upsert(&b, EmitPolicy::Changed).await.unwrap();
    let returned: HashMap<&str, &Document> =
        second.changed.iter().map(|d| (d.url.as_str(), d)).collect();
    let urls: Vec<&str> = a.iter().map(|d| d.url.as_str()).collect();
    let stored = store.get_many(&urls).await.unwrap();
    let mut changed = 0;
    for (x, y) in a.iter().zip(&b) {
        let want = merge(&x.clone().normalized(), y);
        assert_eq!(stored[&x.url], want, "{sql:?}: merge({x:?}, {y:?})");
        assert_eq!(want, merge(y, &x.clone().normalized()), "commutative");
        let did_change = want != x.clone().normalized();
        assert_eq!(
            returned.get(x.url.as_str()).copied(),
            did_change.then_some(&want),
            "{sql:?}: RETURNING of merge({x:?}, {y:?})"
        );
        changed += usize::from(did_change);
    }
    assert_eq!(second.emitted, changed);
    assert!(
        changed > PAIRS / 4 && changed < PAIRS,
        "{changed} of {PAIRS} changed: cases too one-sided"
    );
    // The other order ends in the same state (a fresh url set).
    let a2: Vec<Document> = b
        .iter()
        .map(|d| Document {
            url: format!("r{}", d.url),
            ..d.clone()
        })
        .collect();
    let b2: Vec<Document> = a
        .iter()
        .map(|d| Document {
            url: format!("r{}", d.url),
            ..d.clone()
        })
        .collect();
    store.upsert(&a2, EmitPolicy::Changed).await.unwrap();
    store.upsert(&b2, EmitPolicy::Changed).await.unwrap();
    let urls2: Vec<&str> = a2.iter().map(|d| d.url.as_str()).collect();
    let stored2 = store.get_many(&urls2).await.unwrap();
    for d in &a {
        let mut other = stored2[format!("r{}", d.url).as_str()].clone();
        other.url = d.url.clone();
        assert_eq!(other, stored[&d.url], "{sql:?}: order of the two upserts");
    }
}

// Proves the SQL upsert's merge equals the Rust merge (and RETURNING = "changed") on random pairs, SQLite.
#[tokio::test]
async fn sql_merge_equals_rust_merge_sqlite() {
    sql_merge_scenario(Sql::Sqlite).await;
}

// Proves the same on PostgreSQL.
#[tokio::test]
async fn sql_merge_equals_rust_merge_postgres() {
    sql_merge_scenario(Sql::Postgres).await;
}

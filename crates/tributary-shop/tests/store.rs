//! The join state table, on SQLite and PostgreSQL: parts are independent,
//! and a commit made from a stale copy of a part (another writer committed
//! it since) writes nothing; one commit of a long batch (puts and evicts
//! of the same entries among them) restores the state it came from; and a
//! join replica holding a stale copy of a part joins its records again on
//! the fresh part, missing nothing the other replica stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tributary_shop::domain::{Emulator, JoinConfig, JoinState, Prompt, StateChange};
use tributary_shop::store::ShopStore;
use tributary_storage::{Database, SqlConfig};

async fn store(url: &str) -> ShopStore {
    let db = Database::connect(url, &SqlConfig::default()).await.unwrap();
    ShopStore::open(&db).await.unwrap()
}

/// The changes of one prompt joining an empty state.
fn prompt_changes(find: &str, t: i64) -> Vec<StateChange> {
    let mut state = JoinState::new(JoinConfig::default());
    state
        .on_prompt(Prompt::new("u".to_owned(), find.to_owned()), t)
        .changes
}

// Proves a part's commit is conditional on the version its writer loaded: the second of two
// writers that loaded the same version fails and writes nothing, its reload sees the first's
// changes, and another part is untouched by either.
async fn stale_commits_write_nothing(url: &str) {
    let s = store(url).await;
    let a = s.load_join_state(3).await.unwrap();
    let b = s.load_join_state(3).await.unwrap();
    assert_eq!((a.version, a.changes.len()), (0, 0));
    let first = prompt_changes("iphone", 1_000);
    assert!(!first.is_empty());
    assert!(s
        .persist_join_changes(3, &first, a.next_seq, a.version)
        .await
        .unwrap());
    // B still holds version 0: its commit is refused and leaves no trace.
    let second = prompt_changes("pixel", 2_000);
    assert!(!s
        .persist_join_changes(3, &second, b.next_seq, b.version)
        .await
        .unwrap());
    let now = s.load_join_state(3).await.unwrap();
    assert_eq!(now.version, 1);
    assert_eq!(now.changes, first);
    // Reloaded, B commits.
    assert!(s
        .persist_join_changes(3, &second, now.next_seq, now.version)
        .await
        .unwrap());
    let after = s.load_join_state(3).await.unwrap();
    assert_eq!(after.version, 2);
    assert_eq!(after.changes.len(), first.len() + second.len());
    // Part 4 is its own.
    let other = s.load_join_state(4).await.unwrap();
    assert_eq!((other.version, other.changes.len()), (0, 0));
}

#[tokio::test]
async fn stale_commits_write_nothing_sqlite() {
    let dir = tributary_testkit::temp_dir();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    stale_commits_write_nothing(&url).await;
}

#[tokio::test]
async fn stale_commits_write_nothing_postgres() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let Some(pg) = backend(Backend::Postgres) else {
        return;
    };
    let url = fresh_postgres_db(&pg).await.unwrap();
    stale_commits_write_nothing(&url).await;
}

// Proves a batch commit keeps exactly the last change per entry: 1,200 records over 3 hours
// (so entries put early in the batch are evicted later in it, and the rows span several
// multi-row statements) committed at once restore to a state of the same size and stream
// time as the one that made them, which then matches the next records the same way.
async fn one_commit_of_a_long_batch_restores_the_state(url: &str) {
    let s = store(url).await;
    let config = JoinConfig::default();
    let mut state = JoinState::new(config);
    let emulator = Emulator::new(7);
    let now = chrono::Utc::now();
    let names = ["Phone A", "Phone B", "Laptop C", "Tablet D"];
    let mut changes = Vec::new();
    let mut matches = 0;
    for i in 0..1_200u64 {
        let t = 1_000_000 + i64::try_from(i).unwrap() * 9_000;
        let name = names[(i % 4) as usize];
        let out = if i % 3 == 0 {
            state.on_prompt(Prompt::new(format!("u{i}"), name.to_owned()), t)
        } else {
            let mut p = emulator.product(i, now);
            p.name = name.to_owned();
            state.on_product(p, t)
        };
        matches += out.matches.len();
        changes.extend(out.changes);
    }
    assert!(matches > 0, "the records join");
    assert!(
        changes.iter().any(StateChange::is_tombstone),
        "the batch evicts entries it put"
    );
    let loaded = s.load_join_state(0).await.unwrap();
    assert!(s
        .persist_join_changes(0, &changes, loaded.next_seq, loaded.version)
        .await
        .unwrap());
    let back = s.load_join_state(0).await.unwrap();
    assert_eq!(back.version, loaded.version + 1);
    assert!(back.changes.len() < changes.len(), "one row per entry");
    let mut restored = JoinState::restore(config, back.changes);
    assert_eq!(restored.size(), state.size());
    assert_eq!(restored.stream_time(), state.stream_time());
    // The same next records give the same matches on both.
    let t = 1_000_000 + 1_200 * 9_000;
    for name in names {
        let a = state.on_prompt(Prompt::new("x".to_owned(), name.to_owned()), t);
        let b = restored.on_prompt(Prompt::new("x".to_owned(), name.to_owned()), t);
        let ids = |o: &tributary_shop::domain::JoinOutput| {
            let mut v: Vec<String> = o
                .matches
                .iter()
                .map(|m| m.product.product_id.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&a), ids(&b), "{name}");
        assert!(
            !a.matches.is_empty(),
            "{name} still has products in the window"
        );
    }
}

#[tokio::test]
async fn one_commit_of_a_long_batch_restores_the_state_sqlite() {
    let dir = tributary_testkit::temp_dir();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    one_commit_of_a_long_batch_restores_the_state(&url).await;
}

#[tokio::test]
async fn one_commit_of_a_long_batch_restores_the_state_postgres() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let Some(pg) = backend(Backend::Postgres) else {
        return;
    };
    let url = fresh_postgres_db(&pg).await.unwrap();
    one_commit_of_a_long_batch_restores_the_state(&url).await;
}

/// A message of `topic`, partition 1, carrying `value` at event time `t`.
fn message(topic: &str, offset: i64, value: Vec<u8>, t: i64) -> tributary_bus::Message {
    tributary_bus::Message {
        topic: topic.to_owned(),
        partition: 1,
        offset,
        key: None,
        value: value.into(),
        headers: Vec::new(),
        timestamp_ms: Some(t),
    }
}

// Proves the join's group commit on two replicas sharing part 1 (as during a rebalance): each
// joins a record on a copy the other has committed past, so its commit conflicts; it reloads
// the part, joins the record again on the fresh state and commits. Both prompts are answered
// by the product the other replica stored (a pair produced on a stale copy before its
// conflict may come twice, with the same idempotent key), and the table ends with all four
// records at version 4.
async fn stale_replica_joins_again_on_the_fresh_part(db_url: &str, bus_url: &str) {
    use tributary_bus::runner::Handler as _;
    use tributary_shop::pipeline::join::JoinHandler;
    use tributary_shop::pipeline::ConsumerHealth;
    let s = store(db_url).await;
    let bus = tributary_bus::connect(bus_url, &tributary_bus::BusConfig::default())
        .await
        .unwrap();
    let prompts = tributary_testkit::unique("find");
    let filtered = tributary_testkit::unique("filtered");
    let output = tributary_testkit::unique("recom");
    for t in [&prompts, &filtered, &output] {
        bus.create_topic(t, 2).await.unwrap();
    }
    let open = || {
        JoinHandler::open(
            s.clone(),
            bus.clone(),
            vec![prompts.clone()],
            output.clone(),
            JoinConfig::default(),
            true,
            ConsumerHealth::new("join test"),
        )
    };
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    let t = tributary_shop::pipeline::now_ms();
    let emulator = Emulator::new(3);
    let product = |i: u64, name: &str| {
        let mut p = emulator.product(i, chrono::Utc::now());
        p.name = name.to_owned();
        p
    };
    let (pa, pb) = (product(1, "Phone A"), product(2, "Phone B"));
    let (qa, qb) = (
        Prompt::new("u1".to_owned(), "phone a".to_owned()),
        Prompt::new("u2".to_owned(), " PHONE  b ".to_owned()),
    );
    // B loads part 1 (version 0) and commits Phone A; A loads it (version 1) and commits Phone B.
    b.handle(&message(&filtered, 0, json(&pa), t))
        .await
        .unwrap();
    a.handle(&message(&filtered, 1, json(&pb), t))
        .await
        .unwrap();
    // B's copy lacks Phone B, A's copy lacks what B commits next: both conflict and join again.
    b.handle(&message(&prompts, 0, json(&qb), t)).await.unwrap();
    a.handle(&message(&prompts, 1, json(&qa), t)).await.unwrap();

    let key = |m: &tributary_bus::Message| {
        String::from_utf8_lossy(
            m.header(tributary_shop::pipeline::RECOMMENDATION_KEY_HEADER)
                .unwrap(),
        )
        .into_owned()
    };
    let distinct = |out: &[tributary_bus::Message]| {
        let mut keys: Vec<String> = out.iter().map(key).collect();
        keys.sort();
        keys.dedup();
        keys
    };
    // A's first try matched Phone A on its stale copy, so that pair may come twice (same key).
    let out = tributary_testkit::read_topic_until(
        bus_url,
        &output,
        std::time::Duration::from_secs(30),
        |m| distinct(m).len() >= 2,
    )
    .await;
    let keys = distinct(&out);
    let mut want = vec![
        format!("{}:{}", qa.id, pa.product_id),
        format!("{}:{}", qb.id, pb.product_id),
    ];
    want.sort();
    assert_eq!(keys, want);
    let stored = s.load_join_state(1).await.unwrap();
    assert_eq!(stored.version, 4);
    let size = JoinState::restore(JoinConfig::default(), stored.changes).size();
    assert_eq!((size.records, size.emitted), (4, 2));
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_replica_joins_again_on_the_fresh_part_sqlite_embedded() {
    let dir = tributary_testkit::temp_dir();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let bus = format!("sqlite://{}", dir.path().join("bus.db").display());
    stale_replica_joins_again_on_the_fresh_part(&db, &bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_replica_joins_again_on_the_fresh_part_postgres_kafka() {
    use tributary_testkit::{backend, fresh_postgres_db, Backend};
    let (Some(pg), Some(kafka)) = (backend(Backend::Postgres), backend(Backend::Kafka)) else {
        return;
    };
    let db = fresh_postgres_db(&pg).await.unwrap();
    stale_replica_joins_again_on_the_fresh_part(&db, &kafka).await;
}

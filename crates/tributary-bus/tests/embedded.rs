//! Behaviour only the embedded bus has: the single-writer lock on its file,
//! the read-only open, and its housekeeping (retention and compaction).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tributary_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use tributary_bus::partitioner::partition_for_key;
use tributary_bus::{Consumer, ConsumerOptions, Error, EventBus, Message, Record, TopicConfig};
use tributary_testkit::unique;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/bus.db", dir.path().display())
}

fn options() -> ConsumerOptions {
    ConsumerOptions {
        commit_interval: Duration::from_millis(200),
        ..ConsumerOptions::default()
    }
}

async fn recv_n(c: &mut dyn Consumer, n: usize) -> Vec<Message> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), c.recv()).await {
            Ok(m) => out.push(m.unwrap()),
            Err(_) => panic!("only {} of {n} messages", out.len()),
        }
    }
    out
}

fn values(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect()
}

// Proves a second writer open of a bus file fails, naming the file and this process's pid,
// while the first bus holds it, and succeeds once the first is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_writer_is_refused_until_the_first_is_dropped() {
    let dir = tributary_testkit::temp_dir();
    let first = EmbeddedBus::open(&url(&dir)).await.unwrap();
    let err = match EmbeddedBus::open(&url(&dir)).await {
        Ok(_) => panic!("a second writer must be refused"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    let text = err.to_string();
    let file = format!("{}/bus.db", dir.path().display());
    assert!(text.contains(&file), "names the file: {text}");
    assert!(
        text.contains("in use by another tributary process"),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "names the holder: {text}"
    );
    // Through the URL-picking entry point too.
    let err = tributary_bus::connect(&url(&dir), &Default::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");

    let t = unique("t");
    first.create_topic(&t, 1).await.unwrap();
    first.send(Record::new(&t, "k", "1")).await.unwrap();
    drop(first);
    let second = EmbeddedBus::open(&url(&dir)).await.unwrap();
    let d = second.send(Record::new(&t, "k", "2")).await.unwrap();
    assert_eq!(d.offset, 1, "the second writer continues the log");
}

// Proves a read-only open works next to a writer: it reads what the writer appends (also
// after the open, and on topics created after it), and refuses to send, create or commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_open_reads_next_to_a_writer() {
    let dir = tributary_testkit::temp_dir();
    let missing = format!("sqlite://{}/none.db", dir.path().display());
    assert!(EmbeddedBus::open_read_only(&missing).await.is_err());
    assert!(
        !dir.path().join("none.db").exists(),
        "read-only never creates"
    );

    let writer = EmbeddedBus::open(&url(&dir)).await.unwrap();
    let t = unique("t");
    writer.create_topic(&t, 2).await.unwrap();
    for i in 0..5 {
        writer
            .send(Record::new(&t, format!("k{i}"), format!("{i}")))
            .await
            .unwrap();
    }
    let reader = tributary_bus::connect_read_only(&url(&dir), &Default::default())
        .await
        .unwrap();
    assert!(reader.describe().contains("mode=ro"));
    assert_eq!(reader.partitions(&t).await.unwrap(), 2);
    let mut c = reader
        .subscribe(&unique("g"), std::slice::from_ref(&t), options())
        .await
        .unwrap();
    let mut got = recv_n(&mut *c, 5).await;
    for i in 5..8 {
        writer
            .send(Record::new(&t, format!("k{i}"), format!("{i}")))
            .await
            .unwrap();
    }
    got.extend(recv_n(&mut *c, 3).await);
    let mut v = values(&got);
    v.sort();
    assert_eq!(v, (0..8).map(|i| i.to_string()).collect::<Vec<_>>());

    // A topic the writer creates later is visible to a later subscribe.
    let later = unique("t");
    writer.create_topic(&later, 1).await.unwrap();
    writer.send(Record::new(&later, "k", "x")).await.unwrap();
    let mut c2 = reader
        .subscribe(&unique("g"), std::slice::from_ref(&later), options())
        .await
        .unwrap();
    assert_eq!(values(&recv_n(&mut *c2, 1).await), ["x"]);

    let refused = reader.send(Record::new(&t, "k", "no")).await.err().unwrap();
    assert!(matches!(refused, Error::ReadOnly { .. }), "{refused:?}");
    assert!(matches!(
        reader.create_topic(&unique("t"), 1).await,
        Err(Error::ReadOnly { .. })
    ));
    reader.flush(Duration::from_secs(1)).await.unwrap();
    let m = got.last().unwrap();
    c.store(m).unwrap();
    assert!(matches!(c.commit().await, Err(Error::ReadOnly { .. })));
    drop(c);
    c2.close().await.unwrap();
    // The writer is unaffected.
    writer.send(Record::new(&t, "k", "after")).await.unwrap();
}

fn keeping(config: EmbeddedConfig) -> EmbeddedConfig {
    EmbeddedConfig {
        cleanup_interval_ms: 0, // on demand only: the test calls housekeep()
        ..config
    }
}

async fn send_each(bus: &EmbeddedBus, records: Vec<Record>) -> Vec<i64> {
    let mut offsets = Vec::new();
    for r in records {
        offsets.push(bus.send(r).await.unwrap().offset); // one batch each
    }
    offsets
}

async fn read_all(bus: &EmbeddedBus, topic: &str, n: usize) -> Vec<Message> {
    let mut c = bus
        .subscribe(&unique("g"), &[topic.to_owned()], options())
        .await
        .unwrap();
    let got = recv_n(&mut *c, n).await;
    if let Ok(m) = tokio::time::timeout(Duration::from_millis(300), c.recv()).await {
        panic!("more than {n} messages: {m:?}");
    }
    c.close().await.unwrap();
    got
}

fn offsets(ms: &[Message]) -> Vec<i64> {
    ms.iter().map(|m| m.offset).collect()
}

// Proves time retention deletes whole old batches regardless of consumer groups (Kafka
// semantics): a group whose committed offset was deleted resumes at the earliest remaining
// offset, the newest batch of a partition is kept, and offsets keep counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_deletes_old_batches() {
    let dir = tributary_testkit::temp_dir();
    let config = keeping(EmbeddedConfig {
        retention_ms: 300,
        retention_bytes: 0,
        ..EmbeddedConfig::default()
    });
    let bus = EmbeddedBus::open_with(&url(&dir), &config).await.unwrap();
    let t = unique("t");
    bus.create_topic(&t, 1).await.unwrap();
    let old = send_each(
        &bus,
        (0..5)
            .map(|i| Record::new(&t, "k", format!("{i}")))
            .collect(),
    )
    .await;
    assert_eq!(old, [0, 1, 2, 3, 4]);
    let group = unique("g");
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .unwrap();
    for m in recv_n(&mut *c, 2).await {
        c.store(&m).unwrap();
    }
    c.close().await.unwrap(); // committed: next offset 2
    assert_eq!(
        bus.housekeep().await.unwrap().batches_deleted,
        0,
        "all young"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    send_each(
        &bus,
        (5..8)
            .map(|i| Record::new(&t, "k", format!("{i}")))
            .collect(),
    )
    .await;
    let done = bus.housekeep().await.unwrap();
    assert_eq!(done.batches_deleted, 5, "the five old batches");
    assert_eq!(offsets(&read_all(&bus, &t, 3).await), [5, 6, 7]);
    // The group committed at 2, now deleted: it resumes at the earliest remaining offset.
    let mut c = bus
        .subscribe(&group, std::slice::from_ref(&t), options())
        .await
        .unwrap();
    assert_eq!(offsets(&recv_n(&mut *c, 3).await), [5, 6, 7]);
    c.close().await.unwrap();

    // Everything old now: all but the partition's newest batch goes; offsets go on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bus.housekeep().await.unwrap().batches_deleted, 2);
    assert_eq!(offsets(&read_all(&bus, &t, 1).await), [7]);
    drop(bus);
    let bus = EmbeddedBus::open_with(&url(&dir), &config).await.unwrap();
    assert_eq!(bus.send(Record::new(&t, "k", "8")).await.unwrap().offset, 8);
}

// Proves size retention keeps a topic within retention_bytes by deleting its oldest batches
// across partitions; what is left is the newest suffix of each partition, offsets unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_deletes_oldest_batches() {
    let dir = tributary_testkit::temp_dir();
    // One record batch here: 8 ts + 4 key len + 2 key + 4 value len + 100 value + 4 headers.
    let batch = 122;
    let config = keeping(EmbeddedConfig {
        retention_ms: 0,
        retention_bytes: 10 * batch,
        ..EmbeddedConfig::default()
    });
    let bus = EmbeddedBus::open_with(&url(&dir), &config).await.unwrap();
    let t = unique("t");
    bus.create_topic(&t, 2).await.unwrap();
    let value = "x".repeat(100);
    // Two-byte keys, one on each partition.
    let key_on = |p: i32| {
        (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| k.len() == 2 && partition_for_key(k.as_bytes(), 2) == p)
            .unwrap()
    };
    let keys = [key_on(0), key_on(1)];
    let records: Vec<Record> = (0..30)
        .map(|i| Record::new(&t, keys[i % 2].clone(), value.clone()))
        .collect();
    send_each(&bus, records).await;
    let done = bus.housekeep().await.unwrap();
    assert_eq!(done.batches_deleted, 20);
    let left = read_all(&bus, &t, 10).await;
    for p in 0..2 {
        let mut offs: Vec<i64> = left
            .iter()
            .filter(|m| m.partition == p)
            .map(|m| m.offset)
            .collect();
        offs.sort_unstable();
        let end = *offs.last().unwrap();
        assert_eq!(end, 14, "partition {p} keeps its newest records");
        assert_eq!(
            offs,
            ((end + 1 - offs.len() as i64)..=end).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        bus.housekeep().await.unwrap().batches_deleted,
        0,
        "within the limit"
    );
}

// Proves compaction keeps the latest record per key with its offset, removes superseded
// records, keeps a tombstone for delete_retention_ms and then removes it, never touches the
// partition's newest batch, and refuses keyless records; declaring an existing topic
// compacted makes it compacted, and a plain create does not undo that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_record_per_key() {
    let dir = tributary_testkit::temp_dir();
    let long_tombstones = keeping(EmbeddedConfig {
        delete_retention_ms: 3_600_000,
        retention_ms: 1, // a compacted topic has no time retention
        ..EmbeddedConfig::default()
    });
    let bus = EmbeddedBus::open_with(&url(&dir), &long_tombstones)
        .await
        .unwrap();
    let t = unique("t");
    bus.create_topic(&t, 1).await.unwrap();
    bus.create_topic_with(&t, &TopicConfig::compacted(1))
        .await
        .unwrap();
    bus.create_topic(&t, 1).await.unwrap();
    let keyless = Record {
        key: None,
        ..Record::new(&t, "", "v")
    };
    assert!(matches!(
        bus.send(keyless).await,
        Err(Error::InvalidRecord { .. })
    ));
    let seq = [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("c", "c1"),
        ("b", ""), // tombstone
        ("a", "a3"),
        ("d", "d1"),
    ];
    let offs = send_each(
        &bus,
        seq.iter().map(|(k, v)| Record::new(&t, *k, *v)).collect(),
    )
    .await;
    assert_eq!(offs, [0, 1, 2, 3, 4, 5, 6]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let done = bus.housekeep().await.unwrap();
    assert_eq!(done.records_compacted, 3, "a1, b1, a2");
    assert_eq!(done.batches_deleted, 0);
    let got = read_all(&bus, &t, 4).await;
    assert_eq!(offsets(&got), [3, 4, 5, 6]);
    assert_eq!(values(&got), ["c1", "", "a3", "d1"]);
    assert_eq!(
        bus.housekeep().await.unwrap(),
        Default::default(),
        "nothing new"
    );
    drop(bus);

    // Reopened with delete_retention_ms 0: the tombstone goes too; later writes compact.
    let short = keeping(EmbeddedConfig {
        delete_retention_ms: 0,
        ..long_tombstones
    });
    let bus = EmbeddedBus::open_with(&url(&dir), &short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(bus.housekeep().await.unwrap().records_compacted, 1);
    assert_eq!(offsets(&read_all(&bus, &t, 3).await), [3, 5, 6]);
    // The newest batch (d1 until now) is never compacted; once superseded, a3 goes.
    assert_eq!(
        bus.send(Record::new(&t, "a", "a4")).await.unwrap().offset,
        7
    );
    assert_eq!(bus.housekeep().await.unwrap().records_compacted, 1);
    let got = read_all(&bus, &t, 3).await;
    assert_eq!(offsets(&got), [3, 6, 7]);
    assert_eq!(values(&got), ["c1", "d1", "a4"]);
}

// Proves a bus file written before retention and compaction existed (old schema) opens,
// gets the new columns, and its topics keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_files_are_migrated() {
    use sqlx::Connection;
    let dir = tributary_testkit::temp_dir();
    let path = dir.path().join("bus.db");
    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE bus_topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
         CREATE TABLE bus_batches (topic TEXT NOT NULL, partition INTEGER NOT NULL,
             base_offset INTEGER NOT NULL, last_offset INTEGER NOT NULL, records BLOB NOT NULL);
         CREATE UNIQUE INDEX bus_batches_by_offset ON bus_batches (topic, partition, last_offset);
         CREATE TABLE bus_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL,
             partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
             PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
         INSERT INTO bus_topics VALUES ('old', 1);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    // Read-only before migration: the topic is there.
    let ro = EmbeddedBus::open_read_only(&url(&dir)).await.unwrap();
    assert_eq!(ro.partitions("old").await.unwrap(), 1);
    drop(ro);
    let bus = EmbeddedBus::open(&url(&dir)).await.unwrap();
    assert_eq!(
        bus.send(Record::new("old", "k", "v")).await.unwrap().offset,
        0
    );
    bus.housekeep().await.unwrap();
    assert_eq!(values(&read_all(&bus, "old", 1).await), ["v"]);
}

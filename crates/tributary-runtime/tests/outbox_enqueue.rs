//! The outbox's write side on both dialects: many events written in one
//! transaction (several statements' worth) come back from `claim` complete,
//! in the order written, and a rolled-back transaction leaves nothing; a
//! claim never takes a key's later event while its earlier one is
//! row-locked by another writer (the cleaner's release, a heartbeat).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tributary_runtime::outbox::{NewEvent, OutboxConnection, OutboxStore, Release};
use tributary_storage::stmt::Pool;
use tributary_storage::BeginWrite;
use tributary_testkit::{Sql, TestDb};

/// 1,234 events over 7 keys: more than two statements' worth on either dialect.
fn events() -> Vec<(Vec<u8>, String, Vec<u8>)> {
    (0..1234u32)
        .map(|i| {
            (
                format!("key-{}", i % 7).into_bytes(),
                if i % 2 == 0 {
                    "Even".into()
                } else {
                    String::new()
                },
                i.to_be_bytes().to_vec(),
            )
        })
        .collect()
}

async fn write(db: &TestDb, rows: &[(Vec<u8>, String, Vec<u8>)], commit: bool) {
    let new: Vec<NewEvent<'_>> = rows
        .iter()
        .map(|(k, t, p)| NewEvent {
            key: k,
            kind: t,
            payload: p,
        })
        .collect();
    match db.db.pool() {
        Pool::Pg(pool) => {
            let mut tx = pool.begin_write().await.unwrap();
            (*tx).enqueue_events("t", &new).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
        }
        Pool::Lite(pool) => {
            let mut tx = pool.begin_write().await.unwrap();
            (*tx).enqueue_events("t", &new).await.unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
        }
    }
}

async fn scenario(kind: Sql) {
    let Some(db) = TestDb::open(kind).await else {
        return;
    };
    let store = OutboxStore::new(db.db.clone(), "t");
    store.migrate().await.unwrap();
    let rows = events();

    write(&db, &rows, false).await;
    assert_eq!(store.pending().await.unwrap(), 0, "rolled back: nothing");

    write(&db, &rows, true).await;
    assert_eq!(store.pending().await.unwrap(), 1234);
    let claimed = store
        .claim("me", Duration::from_secs(30), 5000)
        .await
        .unwrap();
    let got: Vec<(Vec<u8>, String, Vec<u8>)> = claimed
        .iter()
        .map(|e| (e.key.clone(), e.kind.clone(), e.payload.clone()))
        .collect();
    assert_eq!(got, rows, "every event, in the order written");
    assert!(
        claimed.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_enqueue_keeps_order_sqlite() {
    scenario(Sql::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_enqueue_keeps_order_postgres() {
    scenario(Sql::Postgres).await;
}

/// A claim that meets the head event of a key row-locked by another
/// writer (here a no-op update held open for 300 ms, as the cleaner's
/// release holds it) must wait for it, not skip it and take the key's
/// next event alone: that sent a package's update before its create
/// (CI, broker away on PostgreSQL + Kafka, with `FOR UPDATE SKIP LOCKED`).
async fn head_locked(kind: Sql) {
    let Some(db) = TestDb::open(kind).await else {
        return;
    };
    let store = OutboxStore::new(db.db.clone(), "t");
    store.migrate().await.unwrap();
    let rows: Vec<(Vec<u8>, String, Vec<u8>)> = (0..2u8)
        .map(|i| (b"pkg-16".to_vec(), "E".into(), vec![i]))
        .collect();
    write(&db, &rows, true).await;
    let update = "UPDATE tributary_outbox SET attempts = attempts \
                  WHERE id = (SELECT min(id) FROM tributary_outbox WHERE namespace = 't')";
    let hold = Duration::from_millis(300);
    let claim = {
        let store = store.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store
                .claim("me", Duration::from_secs(30), 10)
                .await
                .unwrap()
        }
    };
    let claimed = match db.db.pool() {
        Pool::Pg(pool) => {
            let mut tx = pool.begin_write().await.unwrap();
            sqlx::query(update).execute(&mut *tx).await.unwrap();
            let commit = async {
                tokio::time::sleep(hold).await;
                tx.commit().await.unwrap();
            };
            tokio::join!(claim, commit).0
        }
        Pool::Lite(pool) => {
            let mut tx = pool.begin_write().await.unwrap();
            sqlx::query(update).execute(&mut *tx).await.unwrap();
            let commit = async {
                tokio::time::sleep(hold).await;
                tx.commit().await.unwrap();
            };
            tokio::join!(claim, commit).0
        }
    };
    let payloads: Vec<Vec<u8>> = claimed.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(
        payloads,
        vec![vec![0], vec![1]],
        "the key's events from its head, in order, once the head's lock is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_waits_for_a_locked_head_sqlite() {
    head_locked(Sql::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_waits_for_a_locked_head_postgres() {
    head_locked(Sql::Postgres).await;
}

/// The claim rules on both dialects, through the partial indexes of
/// migration 0002: a live lease or a backoff makes its key wait while
/// other keys go on; an expired lease is taken over together with the
/// key's later events, in id order; the old owner can no longer delete
/// what it lost.
async fn claim_rules(kind: Sql) {
    let Some(db) = TestDb::open(kind).await else {
        return;
    };
    let store = OutboxStore::new(db.db.clone(), "t");
    store.migrate().await.unwrap();
    // Every relay of a deployment claims with the same lease (a claim
    // judges other owners' leases by its own).
    const LEASE: Duration = Duration::from_secs(2);
    // ids in this order: a0 b0 a1 c0 c1
    let rows: Vec<(Vec<u8>, String, Vec<u8>)> =
        [("a", 0u8), ("b", 0), ("a", 1), ("c", 0), ("c", 1)]
            .iter()
            .map(|(k, i)| {
                (
                    k.as_bytes().to_vec(),
                    String::new(),
                    format!("{k}{i}").into_bytes(),
                )
            })
            .collect();
    write(&db, &rows, true).await;
    let names = |events: &[tributary_runtime::outbox::OutboxEvent]| -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8(e.payload.clone()).unwrap())
            .collect()
    };

    let first = store.claim("r1", LEASE, 2).await.unwrap();
    assert_eq!(names(&first), ["a0", "b0"], "the first events by id");
    let second = store.claim("r2", LEASE, 10).await.unwrap();
    assert_eq!(
        names(&second),
        ["c0", "c1"],
        "a and b wait behind r1's live lease"
    );
    store
        .release(
            "r2",
            &[
                (
                    second[0].id,
                    Release::Failed {
                        backoff: Duration::from_secs(60),
                    },
                ),
                (second[1].id, Release::Untried),
            ],
        )
        .await
        .unwrap();
    assert!(
        store.claim("r2", LEASE, 10).await.unwrap().is_empty(),
        "a and b leased, c backing off: nothing to claim"
    );

    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    let taken = store.claim("r2", LEASE, 10).await.unwrap();
    assert_eq!(
        names(&taken),
        ["a0", "b0", "a1"],
        "r1's expired lease taken over with a's later event, in id order; c still backs off"
    );
    assert_eq!(
        store
            .delete_sent("r1", &[first[0].id, first[1].id])
            .await
            .unwrap(),
        0,
        "r1 lost its lease: its late delete removes nothing"
    );
    let ids: Vec<i64> = taken.iter().map(|e| e.id).collect();
    assert_eq!(store.delete_sent("r2", &ids).await.unwrap(), 3);
    assert_eq!(store.pending().await.unwrap(), 2, "c0 and c1 remain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_rules_sqlite() {
    claim_rules(Sql::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_rules_postgres() {
    claim_rules(Sql::Postgres).await;
}

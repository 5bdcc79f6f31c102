//! The outbox's write side on both dialects: many events written in one
//! transaction (several statements' worth) come back from `claim` complete,
//! in the order written, and a rolled-back transaction leaves nothing; a
//! claim never takes a key's later event while its earlier one is
//! row-locked by another writer (the cleaner's release, a heartbeat).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tributary_runtime::outbox::{NewEvent, OutboxConnection, OutboxStore};
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

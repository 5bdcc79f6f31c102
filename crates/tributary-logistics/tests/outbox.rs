//! The transactional outbox: each write stores its row and its event
//! together, and a write whose transaction fails leaves neither.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{db, Sql, TestDb};
use tributary_logistics::domain::{EventType, NewPackage, PackageUpdate, Page};
use tributary_logistics::Error;

fn new(title: &str) -> NewPackage {
    NewPackage::parse(title.into(), "steel".into(), 5.0, false).unwrap()
}

/// Makes every insert into the shared outbox (`tributary_outbox`) fail, the way a constraint or
/// a lost connection would in the middle of the transaction.
async fn break_outbox(t: &TestDb) {
    if let Some(pg) = t.db.as_postgres() {
        sqlx::query("ALTER TABLE tributary_outbox ADD CONSTRAINT broken CHECK (id < 0) NOT VALID")
            .execute(pg)
            .await
            .unwrap();
    } else if let Some(lite) = t.db.as_sqlite() {
        sqlx::query(
            "CREATE TRIGGER broken BEFORE INSERT ON tributary_outbox BEGIN SELECT RAISE(ABORT, 'broken'); END",
        )
        .execute(lite)
        .await
        .unwrap();
    }
}

async fn packages(t: &TestDb) -> Vec<String> {
    let page = Page::resolve(0, 1000, None, Default::default());
    t.store
        .list(page)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.title)
        .collect()
}

async fn atomicity(kind: Sql) {
    let Some(t) = db(kind).await else { return };
    // Every successful write adds exactly one event, in order, with the package state.
    let p = t.store.create(&new("a")).await.unwrap();
    let upd = PackageUpdate::parse(Some("b".into()), None, None, None)
        .unwrap()
        .unwrap();
    t.store.update(p.id, &upd).await.unwrap();
    t.store.remove(p.id).await.unwrap();
    let events = t
        .store
        .claim("inspector", Duration::from_secs(30), 100)
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        [EventType::Created, EventType::Updated, EventType::Removed]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    let last: serde_json::Value = serde_json::from_str(&events[2].payload).unwrap();
    assert_eq!(last["title"], "b", "Removed carries the last state");
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(t.store.delete_sent("inspector", &ids).await.unwrap(), 3);

    // Not-found writes write nothing.
    assert!(matches!(
        t.store.update(p.id, &upd).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(t.store.remove(p.id).await, Err(Error::NotFound)));
    assert_eq!(t.store.pending_events().await.unwrap(), 0);

    // A failing event insert rolls the row change back too.
    let kept = t.store.create(&new("kept")).await.unwrap();
    let before = t.store.pending_events().await.unwrap();
    break_outbox(&t).await;
    assert!(t.store.create(&new("ghost")).await.is_err());
    assert!(t.store.update(kept.id, &upd).await.is_err());
    assert!(t.store.remove(kept.id).await.is_err());
    assert_eq!(packages(&t).await, ["kept"], "no row of a failed write");
    assert_eq!(
        t.store.describe(kept.id).await.unwrap().title,
        "kept",
        "update rolled back"
    );
    assert_eq!(
        t.store.pending_events().await.unwrap(),
        before,
        "no event of a failed write"
    );
}

// Proves write+event atomicity (and one event per write) on SQLite.
#[tokio::test]
async fn outbox_atomic_on_sqlite() {
    atomicity(Sql::Sqlite).await;
}

// Proves write+event atomicity (and one event per write) on PostgreSQL.
#[tokio::test]
async fn outbox_atomic_on_postgres() {
    atomicity(Sql::Postgres).await;
}

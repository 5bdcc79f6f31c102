//! The join state table, on SQLite and PostgreSQL: parts are independent,
//! and a commit made from a stale copy of a part (another writer committed
//! it since) writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tributary_shop::domain::{JoinConfig, JoinState, Prompt, StateChange};
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

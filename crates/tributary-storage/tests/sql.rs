//! Conformance scenarios of the SQL port, each written once and run against
//! SQLite (always) and PostgreSQL (when the rig provides it).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sqlx::migrate::Migrator;
use tributary_storage::{Database, DatabaseKind, Error, Migrations, SqlConfig};
use tributary_testkit::{backend, fresh_postgres_db, Backend};

static PG: Migrator = sqlx::migrate!("tests/migrations/postgres");
static LITE: Migrator = sqlx::migrate!("tests/migrations/sqlite");

const MIGRATIONS: Migrations<'static> = Migrations {
    namespace: "notes",
    postgres: &PG,
    sqlite: &LITE,
};

fn config() -> SqlConfig {
    SqlConfig {
        max_connections: 4,
        ..SqlConfig::default()
    }
}

/// A fresh in-memory SQLite database.
async fn sqlite() -> Option<Database> {
    Some(
        Database::connect("sqlite::memory:", &config())
            .await
            .unwrap(),
    )
}

/// A fresh PostgreSQL database, or `None` outside the rig.
async fn postgres() -> Option<Database> {
    let base = backend(Backend::Postgres)?;
    let url = fresh_postgres_db(&base).await.unwrap();
    Some(Database::connect(&url, &config()).await.unwrap())
}

async fn insert_notebook(db: &Database, name: &str) -> Result<i64, sqlx::Error> {
    match db.kind() {
        DatabaseKind::Postgres => {
            sqlx::query_scalar("INSERT INTO notebooks (name) VALUES ($1) RETURNING id")
                .bind(name)
                .fetch_one(db.as_postgres().unwrap())
                .await
        }
        DatabaseKind::Sqlite => {
            sqlx::query_scalar("INSERT INTO notebooks (name) VALUES (?) RETURNING id")
                .bind(name)
                .fetch_one(db.as_sqlite().unwrap())
                .await
        }
    }
}

async fn insert_note(db: &Database, notebook: i64, body: &str) -> Result<(), sqlx::Error> {
    match db.kind() {
        DatabaseKind::Postgres => {
            sqlx::query("INSERT INTO notes (notebook_id, body) VALUES ($1, $2)")
                .bind(notebook)
                .bind(body)
                .execute(db.as_postgres().unwrap())
                .await?;
        }
        DatabaseKind::Sqlite => {
            sqlx::query("INSERT INTO notes (notebook_id, body) VALUES (?, ?)")
                .bind(notebook)
                .bind(body)
                .execute(db.as_sqlite().unwrap())
                .await?;
        }
    }
    Ok(())
}

async fn note_bodies(db: &Database, notebook: i64) -> Vec<String> {
    match db.kind() {
        DatabaseKind::Postgres => {
            sqlx::query_scalar("SELECT body FROM notes WHERE notebook_id = $1 ORDER BY id")
                .bind(notebook)
                .fetch_all(db.as_postgres().unwrap())
                .await
                .unwrap()
        }
        DatabaseKind::Sqlite => {
            sqlx::query_scalar("SELECT body FROM notes WHERE notebook_id = ? ORDER BY id")
                .bind(notebook)
                .fetch_all(db.as_sqlite().unwrap())
                .await
                .unwrap()
        }
    }
}

async fn applied_migrations(db: &Database) -> i64 {
    let sql = "SELECT COUNT(*) FROM tributary_migrations WHERE namespace = 'notes'";
    match db.kind() {
        DatabaseKind::Postgres => sqlx::query_scalar(sql)
            .fetch_one(db.as_postgres().unwrap())
            .await
            .unwrap(),
        DatabaseKind::Sqlite => sqlx::query_scalar(sql)
            .fetch_one(db.as_sqlite().unwrap())
            .await
            .unwrap(),
    }
}

async fn migrations_apply_once(db: Database) {
    // Proves: migrations of the dialect apply, and running migrate again changes nothing.
    let first = db.migrate(&MIGRATIONS).await.unwrap();
    assert_eq!(first.applied, vec![1, 2]);
    assert_eq!(applied_migrations(&db).await, 2);
    let nb = insert_notebook(&db, "kept").await.unwrap();
    let again = db.migrate(&MIGRATIONS).await.unwrap();
    assert!(
        again.applied.is_empty() && again.adopted.is_empty(),
        "{again:?}"
    );
    assert_eq!(applied_migrations(&db).await, 2);
    insert_note(&db, nb, "still here").await.unwrap();
    assert_eq!(note_bodies(&db, nb).await, vec!["still here".to_string()]);
}

async fn insert_and_select(db: Database) {
    // Proves: rows written through the pool read back in insertion order.
    db.migrate(&MIGRATIONS).await.unwrap();
    let a = insert_notebook(&db, "a").await.unwrap();
    let b = insert_notebook(&db, "b").await.unwrap();
    assert_ne!(a, b);
    for body in ["one", "two", "three"] {
        insert_note(&db, a, body).await.unwrap();
    }
    insert_note(&db, b, "other").await.unwrap();
    assert_eq!(note_bodies(&db, a).await, vec!["one", "two", "three"]);
    assert_eq!(note_bodies(&db, b).await, vec!["other"]);
}

async fn constraints_are_enforced(db: Database) {
    // Proves: foreign keys and unique constraints are on in both dialects.
    db.migrate(&MIGRATIONS).await.unwrap();
    let err = insert_note(&db, 424_242, "orphan").await.unwrap_err();
    assert!(
        err.as_database_error()
            .is_some_and(|e| e.is_foreign_key_violation()),
        "{err}"
    );
    insert_notebook(&db, "same").await.unwrap();
    let err = insert_notebook(&db, "same").await.unwrap_err();
    assert!(
        err.as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{err}"
    );
}

async fn namespaces_are_separate(db: Database) {
    // Proves: two systems may use the same version numbers; each namespace keeps its own history.
    db.migrate(&MIGRATIONS).await.unwrap();
    let other = Migrations {
        namespace: "other",
        ..MIGRATIONS
    };
    // The same versions again, in another namespace: they run (and fail,
    // since the tables exist), naming the namespace and version, and the
    // failed call leaves nothing recorded.
    let err = db.migrate(&other).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("other/1"), "{msg}");
    assert_eq!(applied_migrations(&db).await, 2);
    let n: i64 = match db.kind() {
        DatabaseKind::Postgres => sqlx::query_scalar(
            "SELECT COUNT(*) FROM tributary_migrations WHERE namespace = 'other'",
        )
        .fetch_one(db.as_postgres().unwrap())
        .await
        .unwrap(),
        DatabaseKind::Sqlite => sqlx::query_scalar(
            "SELECT COUNT(*) FROM tributary_migrations WHERE namespace = 'other'",
        )
        .fetch_one(db.as_sqlite().unwrap())
        .await
        .unwrap(),
    };
    assert_eq!(n, 0);
}

async fn legacy_history_is_adopted(db: Database) {
    // Proves: a database migrated by sqlx's own runner (earlier releases) is adopted, not migrated twice.
    match db.kind() {
        DatabaseKind::Postgres => PG.run(db.as_postgres().unwrap()).await.unwrap(),
        DatabaseKind::Sqlite => LITE.run(db.as_sqlite().unwrap()).await.unwrap(),
    }
    let report = db.migrate(&MIGRATIONS).await.unwrap();
    assert_eq!(report.adopted, vec![1, 2], "{report:?}");
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(applied_migrations(&db).await, 2);
}

async fn readiness_answers(db: Database) {
    // Proves: the readiness check passes on a live pool and fails after close.
    use tributary_platform::health::HealthCheck;
    assert_eq!(db.name(), "sql");
    db.check().await.unwrap();
    db.close().await;
    let err = db.check().await.unwrap_err();
    assert!(!err.is_empty());
}

macro_rules! run_on {
    ($adapter:ident: $($scenario:ident),+ $(,)?) => {
        mod $adapter {
            $(
                // Runs the scenario of the same name (see its first line) on this adapter.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(db) = super::$adapter().await else { return };
                    super::$scenario(db).await;
                }
            )+
        }
    };
}

run_on!(sqlite: migrations_apply_once, namespaces_are_separate, legacy_history_is_adopted,
    insert_and_select, constraints_are_enforced, readiness_answers);
run_on!(postgres: migrations_apply_once, namespaces_are_separate, legacy_history_is_adopted,
    insert_and_select, constraints_are_enforced, readiness_answers);

/// Eight pools on one database (for SQLite: one file, eight independent
/// connection pools, as eight processes would have) migrate at once.
async fn concurrent_migrations(url: &str) {
    let mut pools = Vec::new();
    for _ in 0..8 {
        pools.push(Database::connect(url, &config()).await.unwrap());
    }
    let runs = pools
        .iter()
        .map(|db| async move { db.migrate(&MIGRATIONS).await });
    let reports: Vec<_> = futures::future::join_all(runs).await;
    let mut applied = 0;
    for r in reports {
        applied += r.unwrap().applied.len();
    }
    assert_eq!(applied, 2, "every migration runs exactly once");
    assert_eq!(applied_migrations(&pools[0]).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_never_race_on_sqlite() {
    // Proves: many independent pools migrating one SQLite file at once apply each migration once, without error.
    let dir = tributary_testkit::temp_dir();
    concurrent_migrations(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_never_race_on_postgres() {
    // Proves: many pools migrating one PostgreSQL database at once apply each migration once (advisory lock).
    let Some(base) = backend(Backend::Postgres) else {
        return;
    };
    let url = fresh_postgres_db(&base).await.unwrap();
    concurrent_migrations(&url).await;
}

#[tokio::test]
async fn sqlite_file_is_created_with_parents_in_wal_mode() {
    // Proves: a sqlite:// URL creates the file and its missing parent directories, in WAL mode.
    let dir = tributary_testkit::temp_dir();
    let path = dir.path().join("nested/deeper/app.db");
    let url = format!("sqlite://{}", path.display());
    let db = Database::connect(&url, &config()).await.unwrap();
    assert_eq!(db.kind(), DatabaseKind::Sqlite);
    assert!(db.as_postgres().is_none());
    db.migrate(&MIGRATIONS).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.as_sqlite().unwrap())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(path.exists());
    db.close().await;

    // Data survives reopening the file.
    let db = Database::connect(&url, &config()).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    insert_notebook(&db, "persisted").await.unwrap();
    db.close().await;
    let db = Database::connect(&url, &config()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notebooks")
        .fetch_one(db.as_sqlite().unwrap())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn unreachable_server_error_names_url_without_password() {
    // Proves: an unreachable PostgreSQL fails within the acquire timeout with one line that hides the password.
    let cfg = SqlConfig {
        acquire_timeout: Duration::from_millis(500),
        ..config()
    };
    let err = Database::connect("postgres://app:hunter2@127.0.0.1:1/db", &cfg)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{msg}");
    assert!(msg.contains("postgres://app:***@127.0.0.1:1/db"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[tokio::test]
async fn malformed_or_unknown_urls_are_rejected() {
    // Proves: unknown schemes and malformed URLs fail with a clear error that hides the password.
    let err = Database::connect("mysql://u:pw@h/db", &config())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedScheme { .. }), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");

    let err = Database::connect("postgres://u:pw@host:notaport/db", &config())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

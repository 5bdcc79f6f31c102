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
    let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
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
    db.migrate(&MIGRATIONS).await.unwrap();
    assert_eq!(applied_migrations(&db).await, 2);
    let nb = insert_notebook(&db, "kept").await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
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

run_on!(sqlite: migrations_apply_once, insert_and_select, constraints_are_enforced, readiness_answers);
run_on!(postgres: migrations_apply_once, insert_and_select, constraints_are_enforced, readiness_answers);

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

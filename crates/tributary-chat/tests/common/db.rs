//! The archive database of a scenario: a SQLite file in the test's
//! directory, or a fresh PostgreSQL database of the rig.
#![allow(dead_code)]

use std::path::Path;

use tributary_storage::{Database, SqlConfig};
use tributary_testkit::Backend;

/// Which SQL adapter a scenario runs on.
#[derive(Clone, Copy, Debug)]
pub enum Sql {
    Sqlite,
    Postgres,
}

/// Opens the database; `None` when PostgreSQL is not configured outside CI
/// (under `CI=true` the testkit fails instead).
pub async fn open(sql: Sql, dir: &Path) -> Option<Database> {
    let url = match sql {
        Sql::Sqlite => format!("sqlite://{}", dir.join("chat.db").display()),
        Sql::Postgres => {
            let base = tributary_testkit::backend(Backend::Postgres)?;
            tributary_testkit::fresh_postgres_db(&base)
                .await
                .expect("fresh database")
        }
    };
    Some(
        Database::connect(&url, &SqlConfig::default())
            .await
            .expect("database"),
    )
}

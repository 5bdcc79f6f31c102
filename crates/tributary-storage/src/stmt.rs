//! The SQL toolkit: a tiny statement builder shared by both dialects — SQL
//! text with `$N` placeholders plus the arguments, bound per dialect by
//! [`bind_args!`](crate::bind_args) — and [`on_pool!`](crate::on_pool),
//! which writes a body once and type-checks it per dialect. Where the
//! dialects differ (`SKIP LOCKED` vs `BEGIN IMMEDIATE`, `RETURNING`,
//! upserts), match on [`Stmt::sql_for`]'s dialect or on the [`Pool`].
//! For SQLite the placeholders become anonymous `?` ([`Stmt::sql_for`]):
//! SQLite resolves numbered/named parameters with a linear search per
//! parameter, which made a 23,000-parameter batch insert quadratic.

use std::fmt::Write as _;
use std::sync::OnceLock;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A nullable BIGINT.
    I64(Option<i64>),
    /// A nullable INTEGER.
    I32(Option<i32>),
    /// A nullable TEXT.
    Text(Option<String>),
}

/// The two SQL dialects (the storage port's [`DatabaseKind`](crate::DatabaseKind)).
pub use crate::DatabaseKind as Dialect;

/// SQL text and its arguments.
#[derive(Debug, Default)]
pub struct Stmt {
    /// The SQL text with `$N` placeholders.
    pub sql: String,
    /// The arguments, in placeholder order.
    pub args: Vec<Arg>,
    /// `sql` with `?` placeholders, made on first use.
    sqlite_sql: OnceLock<String>,
}

impl Stmt {
    /// A statement starting with `sql`.
    pub fn new(sql: &str) -> Self {
        Stmt {
            sql: sql.to_owned(),
            args: Vec::new(),
            sqlite_sql: OnceLock::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn arg(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        // Writing to a String cannot fail.
        let _ = write!(self.sql, "${}", self.args.len());
        self
    }

    /// The SQL text for the pool's dialect: `$N` kept for PostgreSQL,
    /// replaced by `?` for SQLite (arguments are appended in placeholder
    /// order, and SQL text written here never contains `$` otherwise).
    pub fn sql_for(&self, pool: &impl HasDialect) -> &str {
        match pool.dialect() {
            Dialect::Postgres => &self.sql,
            Dialect::Sqlite => self.sqlite_sql.get_or_init(|| {
                let mut out = String::with_capacity(self.sql.len());
                let mut chars = self.sql.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                        out.push('?');
                        while chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                        }
                    } else {
                        out.push(c);
                    }
                }
                out
            }),
        }
    }

    /// Appends `(p1, p2, ...)` for a list of arguments.
    pub fn list(&mut self, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.sql.push('(');
        for (i, a) in args.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.arg(a);
        }
        self.sql.push(')');
        self
    }
}

/// Knows its SQL dialect.
pub trait HasDialect {
    /// The dialect.
    fn dialect(&self) -> Dialect;
}

impl HasDialect for PgPool {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

impl HasDialect for SqlitePool {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

/// A connection pool of either dialect.
#[derive(Clone, Debug)]
pub enum Pool {
    /// PostgreSQL.
    Pg(PgPool),
    /// SQLite.
    Lite(SqlitePool),
}

impl Pool {
    /// The dialect of this pool.
    pub fn dialect(&self) -> Dialect {
        match self {
            Pool::Pg(_) => Dialect::Postgres,
            Pool::Lite(_) => Dialect::Sqlite,
        }
    }
}

/// Runs `$body` with `$p` bound to the concrete pool of either dialect, so
/// the body is written once and type-checked per dialect.
#[macro_export]
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::stmt::Pool::Pg($p) => $body,
            $crate::stmt::Pool::Lite($p) => $body,
        }
    };
}

/// Binds every [`Arg`] of a statement to a `sqlx::query`.
#[macro_export]
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args.iter() {
            q = match a {
                $crate::stmt::Arg::I64(v) => q.bind(*v),
                $crate::stmt::Arg::I32(v) => q.bind(*v),
                $crate::stmt::Arg::Text(v) => q.bind(v.as_deref()),
            };
        }
        q
    }};
}

impl crate::Database {
    /// The pool of this database, for [`on_pool!`](crate::on_pool).
    pub fn pool(&self) -> Pool {
        match (self.as_postgres(), self.as_sqlite()) {
            (Some(p), _) => Pool::Pg(p.clone()),
            (None, Some(p)) => Pool::Lite(p.clone()),
            (None, None) => unreachable!("a Database is either PostgreSQL or SQLite"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lite;
    impl HasDialect for Lite {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }
    }

    // Proves numbered placeholders become anonymous ones for SQLite, in order.
    #[test]
    fn sqlite_placeholders() {
        let mut s = Stmt::new("SELECT 1 WHERE a = ");
        s.arg(Arg::I64(Some(1)))
            .push(" AND b IN ")
            .list([Arg::I32(None), Arg::Text(None)]);
        assert_eq!(s.sql, "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(s.sql_for(&Lite), "SELECT 1 WHERE a = ? AND b IN (?, ?)");
    }
}

//! A tiny statement builder shared by both dialects: SQL text with `$N`
//! placeholders plus the arguments, bound per dialect by [`bind_args!`].
//! For SQLite the placeholders become anonymous `?` ([`Stmt::sql_for`]):
//! SQLite resolves numbered/named parameters with a linear search per
//! parameter, which made a 23,000-parameter batch insert quadratic.

use std::fmt::Write as _;
use std::sync::OnceLock;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(Option<i64>),
    I32(Option<i32>),
    Text(Option<String>),
}

/// The two SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// SQL text and its arguments.
#[derive(Debug, Default)]
pub(crate) struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
    /// `sql` with `?` placeholders, made on first use.
    sqlite_sql: OnceLock<String>,
}

impl Stmt {
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
pub(crate) trait HasDialect {
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
pub(crate) enum Pool {
    Pg(PgPool),
    Lite(SqlitePool),
}

impl Pool {
    pub fn dialect(&self) -> Dialect {
        match self {
            Pool::Pg(_) => Dialect::Postgres,
            Pool::Lite(_) => Dialect::Sqlite,
        }
    }
}

/// Runs `$body` with `$p` bound to the concrete pool of either dialect, so
/// the body is written once and type-checked per dialect.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::sql::Pool::Pg($p) => $body,
            $crate::store::sql::Pool::Lite($p) => $body,
        }
    };
}

/// Binds every [`Arg`] of a statement to a `sqlx::query`.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args.iter() {
            q = match a {
                $crate::store::sql::Arg::I64(v) => q.bind(*v),
                $crate::store::sql::Arg::I32(v) => q.bind(*v),
                $crate::store::sql::Arg::Text(v) => q.bind(v.as_deref()),
            };
        }
        q
    }};
}

pub(crate) use {bind_args, on_pool};

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

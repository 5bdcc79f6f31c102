//! The storage crate's SQL toolkit, under the names this crate uses.

pub(crate) use tributary_storage::stmt::Stmt;
pub(crate) use tributary_storage::stmt::{Arg, Dialect, Pool};
pub(crate) use tributary_storage::{bind_args, on_pool};

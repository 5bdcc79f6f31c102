//! Service wrappers of each system (one file per system).

pub mod chat;
pub mod logistics;

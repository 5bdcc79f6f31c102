//! Helpers the spawned-binary crash and outage tests of this crate share:
//! the binary's path, the logistics outbox relay ([`outbox`]), reading a
//! topic back exactly against its watermarks ([`topic`]) and feeding and
//! reading documents streams ([`docs`]). Each test file takes what it needs.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

pub mod docs;
pub mod outbox;
pub mod topic;

/// The `tributary` binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tributary"))
}

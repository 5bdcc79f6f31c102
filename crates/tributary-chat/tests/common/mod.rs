//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod sample;
pub mod writer;

use std::path::{Path, PathBuf};

use tributary_chat::{parse_path, FileError, Message, ParseEvent, Summary};

/// Everything one parse produced.
#[derive(Debug, Default)]
pub struct Collected {
    pub messages: Vec<Message>,
    pub errors: Vec<FileError>,
    pub files: Vec<String>,
    pub summary: Summary,
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn collect(path: &Path) -> Collected {
    let mut c = Collected::default();
    let summary = parse_path(path, &mut |e| match e {
        ParseEvent::Message(m) => c.messages.push(m),
        ParseEvent::FileError(f) => c.errors.push(f),
        ParseEvent::FileStart { file, .. } => c.files.push(file),
    })
    .expect("path readable");
    c.summary = summary;
    c
}

pub fn collect_reader(name: &str, bytes: &[u8]) -> Collected {
    let mut c = Collected::default();
    let summary = tributary_chat::parse::parse_reader(name, bytes, &mut |e| match e {
        ParseEvent::Message(m) => c.messages.push(m),
        ParseEvent::FileError(f) => c.errors.push(f),
        ParseEvent::FileStart { file, .. } => c.files.push(file),
    });
    c.summary = summary;
    c
}

//! Reading exports and backups: one file, a directory tree, or a zip.
//!
//! Everything streams: messages go to the caller's callback as soon as they
//! are parsed, so memory stays bounded by the largest single message (JSON,
//! CSV), the largest single HTML token, or one chunk of rows of a Parquet
//! backup, not by the file size. Parquet needs seeking: a Parquet stream (a
//! zip entry, [`parse_reader`]) is spilled to a temporary file first.
//!
//! Failure model: [`parse_path`] returns `Err` only when the path itself
//! cannot be read. A file that turns out to be broken is reported as a
//! [`ParseEvent::FileError`] (file, position, reason) and the walk goes on;
//! messages of that file delivered before the break stay delivered (the
//! import is idempotent, so re-importing a fixed file is harmless). A single
//! message that is well-formed but unusable (e.g. no id) is reported the same
//! way with a [`Position::Message`] and only that message is skipped.

mod csv;
pub mod detect;
pub mod html;
pub mod json;
pub mod parquet;
mod walk;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub use detect::{detect, FileKind};
pub use walk::natural_cmp;

use crate::domain::Message;
use crate::error::{Error, Position, Result};

/// What the parser hands to the caller, in file order.
// Events are moved into the callback once and never stored in bulk, so a
// boxed message would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ParseEvent {
    /// A file (or zip entry) is about to be parsed; useful for progress.
    FileStart { file: String, kind: FileKind },
    /// One parsed message.
    Message(Message),
    /// A file could not be parsed (from `position` on), or one message in it
    /// was skipped (`position` is then a [`Position::Message`] or
    /// [`Position::Record`]).
    FileError(FileError),
}

/// A problem in one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Path of the file; zip entries are `archive.zip!path/in/zip`.
    pub file: String,
    pub position: Position,
    pub reason: String,
}

/// Counts of one parse run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files (and zip entries) parsed to their end.
    pub files: u64,
    /// Files that broke part-way or could not be read (each reported).
    pub files_failed: u64,
    /// Files that are not chat data (media, css, other html pages...).
    pub files_ignored: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Messages skipped as unusable (each reported).
    pub messages_skipped: u64,
}

/// Per-file output: forwards events and counts them.
pub(crate) struct Sink<'a> {
    file: &'a str,
    emit: &'a mut dyn FnMut(ParseEvent),
    messages: u64,
    skipped: u64,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a str, emit: &'a mut dyn FnMut(ParseEvent)) -> Self {
        Sink {
            file,
            emit,
            messages: 0,
            skipped: 0,
        }
    }

    /// Delivers one message.
    pub(crate) fn message(&mut self, m: Message) {
        self.messages += 1;
        (self.emit)(ParseEvent::Message(m));
    }

    /// Reports one skipped message.
    pub(crate) fn skip(&mut self, position: Position, reason: impl Into<String>) {
        self.skipped += 1;
        (self.emit)(ParseEvent::FileError(FileError {
            file: self.file.to_owned(),
            position,
            reason: reason.into(),
        }));
    }

    /// Messages delivered plus skipped so far: the index of the next one.
    pub(crate) fn seen(&self) -> u64 {
        self.messages + self.skipped
    }
}

/// Parses a file, a directory tree (files in [`natural_cmp`] order, so
/// `messages2.html` comes before `messages10.html`), or a `.zip` export
/// (entries in the same order), sending every event to `on_event`.
///
/// Errors: only if `path` itself cannot be read; everything below it is
/// reported through [`ParseEvent::FileError`] and counted in the summary.
pub fn parse_path(path: impl AsRef<Path>, on_event: &mut dyn FnMut(ParseEvent)) -> Result<Summary> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut summary = Summary::default();
    if meta.is_dir() {
        walk::walk_dir(path, on_event, &mut summary)?;
    } else {
        walk::parse_file(path, on_event, &mut summary);
    }
    Ok(summary)
}

/// Parses one stream whose kind is detected from `name` (a file name, used
/// for detection and in reports) and its first bytes. Zip archives need a
/// seekable file: use [`parse_path`] for them.
pub fn parse_reader(
    name: &str,
    reader: impl Read,
    on_event: &mut dyn FnMut(ParseEvent),
) -> Summary {
    let mut summary = Summary::default();
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    parse_stream(name, base, &mut reader, on_event, &mut summary);
    summary
}

/// Detects and parses one stream, updating `summary`.
pub(crate) fn parse_stream(
    display: &str,
    base_name: &str,
    reader: &mut dyn BufRead,
    on_event: &mut dyn FnMut(ParseEvent),
    summary: &mut Summary,
) {
    let kind = match reader.fill_buf() {
        Ok(head) => detect(base_name, head),
        Err(e) => {
            summary.files_failed += 1;
            on_event(ParseEvent::FileError(FileError {
                file: display.to_owned(),
                position: Position::Byte(0),
                reason: format!("cannot read: {e}"),
            }));
            return;
        }
    };
    match kind {
        FileKind::Other => {
            summary.files_ignored += 1;
            return;
        }
        FileKind::Zip => {
            summary.files_failed += 1;
            on_event(ParseEvent::FileError(FileError {
                file: display.to_owned(),
                position: Position::Unknown,
                reason: "a zip inside a zip or a non-seekable stream is not supported; \
                         unpack it first"
                    .into(),
            }));
            return;
        }
        FileKind::JsonExport
        | FileKind::HtmlExport
        | FileKind::CsvBackup
        | FileKind::ParquetBackup => {}
    }
    run_parser(display, kind, on_event, summary, |sink| match kind {
        FileKind::JsonExport => json::parse_json(reader, sink),
        FileKind::HtmlExport => html::parse_html(reader, sink),
        FileKind::CsvBackup => csv::parse_csv(reader, sink),
        FileKind::ParquetBackup => parquet::parse_parquet_stream(reader, sink),
        FileKind::Other | FileKind::Zip => Ok(()),
    });
}

/// Announces one file of `kind`, runs `parse` on it and accounts for the
/// outcome in `summary` (a failure becomes a [`ParseEvent::FileError`]).
pub(crate) fn run_parser(
    display: &str,
    kind: FileKind,
    on_event: &mut dyn FnMut(ParseEvent),
    summary: &mut Summary,
    parse: impl FnOnce(&mut Sink<'_>) -> Result<()>,
) {
    on_event(ParseEvent::FileStart {
        file: display.to_owned(),
        kind,
    });
    let mut sink = Sink::new(display, on_event);
    let result = parse(&mut sink);
    summary.messages += sink.messages;
    summary.messages_skipped += sink.skipped;
    match result {
        Ok(()) => summary.files += 1,
        Err(e) => {
            summary.files_failed += 1;
            on_event(ParseEvent::FileError(FileError {
                file: display.to_owned(),
                position: e.position(),
                reason: e.to_string(),
            }));
        }
    }
}

//! Our Parquet backup format, both directions: [`ParquetBackupEncoder`]
//! writes it (one row group per call, for the streaming backup), the reader
//! turns a file back into [`Message`]s through the same
//! [`ParseEvent`](crate::ParseEvent) callback path as every other parser.
//!
//! # Schema
//!
//! One leaf column per [`COLUMNS`](crate::domain::backup_schema::COLUMNS)
//! entry of the CSV backup, typed ([`SCHEMA`]):
//!
//! | column | Parquet type | content |
//! |---|---|---|
//! | `chat_id` | optional INT64 | |
//! | `chat_name` | required UTF8 | |
//! | `message_id` | required INT64 | |
//! | `kind` | required UTF8 | `message` or `service` |
//! | `date`, `edited` | optional INT64 `TIMESTAMP(MICROS, isAdjustedToUTC=false)` | the *local* wall-clock time as written in the export |
//! | `date_offset`, `edited_offset` | optional INT32 | seconds east of UTC; null when the zone is unknown |
//! | `from`, `from_id`, `forwarded_from`, `via_bot` | optional UTF8 | |
//! | `reply_to` | optional INT64 | |
//! | `text` | required UTF8 | line breaks kept |
//! | `links` | required `LIST` of required `{text: UTF8, href: UTF8}` | standard 3-level list, empty when none |
//! | `media_type`, `action`, `actor`, `actor_id` | optional UTF8 | |
//!
//! Decisions: a date is the local time as a timestamp that is *not*
//! adjusted to UTC (Parquet's own notion of "local time") plus the offset
//! in its own column, which is exactly [`MessageDate`]; every input has
//! whole-second dates, and microseconds keep anything finer than that down
//! to the microsecond. Unlike CSV, null and empty strings stay distinct and
//! offsets keep their seconds, so every [`Message`] round-trips exactly.
//! Pages are Snappy-compressed (pure Rust), dictionary-encoded where it
//! pays (chat names, senders, kinds). The file's key-value metadata holds
//! `tributary.chat.backup = 1`; the reader does not require it, so a file
//! rewritten by another tool with the same schema still imports.
//!
//! # Reading
//!
//! Columns are looked up by path, so extra columns and another order are
//! fine; a missing column or one of another physical type or repetition is
//! a file error naming the column. Row groups are read one after the other,
//! in lockstep chunks of [`READ_CHUNK`] rows across all columns, so memory
//! stays bounded whatever the row-group size. A truncated file has no
//! footer and fails before any message; a row group whose column chunks
//! lie outside the file, or that fails to decode, stops the file there
//! (earlier row groups stay delivered). A row with an unusable value (a
//! `kind` that is neither `message` nor `service`, invalid UTF-8, an offset
//! beyond a day) is skipped and reported with the column named. The
//! decoder of the `parquet` crate is run under `catch_unwind` as a last
//! line of defence: should damaged data make it panic, that becomes a file
//! error as well.
//!
//! Parquet needs seeking: files on disk are read in place; a stream (a
//! `.zip` entry, [`crate::parse::parse_reader`]) is first spilled to a
//! temporary file, which is removed afterwards. So Parquet backups inside
//! a `.zip` are supported.

use std::fs::File;
use std::io::{BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime};
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::column::writer::{ColumnWriter, ColumnWriterImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::SchemaDescriptor;

use super::Sink;
use crate::domain::{Link, Message, MessageDate, MessageKind};
use crate::error::{Error, Position, Result};

/// The Parquet message type of our backups (see the module doc).
pub const SCHEMA: &str = "message chat_backup {
  OPTIONAL INT64 chat_id;
  REQUIRED BYTE_ARRAY chat_name (UTF8);
  REQUIRED INT64 message_id;
  REQUIRED BYTE_ARRAY kind (UTF8);
  OPTIONAL INT64 date (TIMESTAMP(MICROS,false));
  OPTIONAL INT32 date_offset;
  OPTIONAL INT64 edited (TIMESTAMP(MICROS,false));
  OPTIONAL INT32 edited_offset;
  OPTIONAL BYTE_ARRAY from (UTF8);
  OPTIONAL BYTE_ARRAY from_id (UTF8);
  OPTIONAL BYTE_ARRAY forwarded_from (UTF8);
  OPTIONAL INT64 reply_to;
  OPTIONAL BYTE_ARRAY via_bot (UTF8);
  REQUIRED BYTE_ARRAY text (UTF8);
  REQUIRED GROUP links (LIST) {
    REPEATED GROUP list {
      REQUIRED GROUP element {
        REQUIRED BYTE_ARRAY text (UTF8);
        REQUIRED BYTE_ARRAY href (UTF8);
      }
    }
  }
  OPTIONAL BYTE_ARRAY media_type (UTF8);
  OPTIONAL BYTE_ARRAY action (UTF8);
  OPTIONAL BYTE_ARRAY actor (UTF8);
  OPTIONAL BYTE_ARRAY actor_id (UTF8);
}";

/// Key of the marker in the file's key-value metadata.
pub const MARKER_KEY: &str = "tributary.chat.backup";

/// Rows read per column per step.
pub const READ_CHUNK: usize = 4096;

/// One leaf column of [`SCHEMA`]: dotted path, physical type, and the
/// definition / repetition levels its repetition implies.
struct Leaf {
    path: &'static str,
    physical: PhysicalType,
    max_def: i16,
    max_rep: i16,
}

const fn leaf(path: &'static str, physical: PhysicalType, max_def: i16, max_rep: i16) -> Leaf {
    Leaf {
        path,
        physical,
        max_def,
        max_rep,
    }
}

use parquet::basic::Type::{BYTE_ARRAY, INT32, INT64};

/// Number of leaf columns of [`SCHEMA`].
const N_LEAVES: usize = 20;

/// The leaves in schema order; the `C_*` constants index this table.
static LEAVES: [Leaf; N_LEAVES] = [
    leaf("chat_id", INT64, 1, 0),
    leaf("chat_name", BYTE_ARRAY, 0, 0),
    leaf("message_id", INT64, 0, 0),
    leaf("kind", BYTE_ARRAY, 0, 0),
    leaf("date", INT64, 1, 0),
    leaf("date_offset", INT32, 1, 0),
    leaf("edited", INT64, 1, 0),
    leaf("edited_offset", INT32, 1, 0),
    leaf("from", BYTE_ARRAY, 1, 0),
    leaf("from_id", BYTE_ARRAY, 1, 0),
    leaf("forwarded_from", BYTE_ARRAY, 1, 0),
    leaf("reply_to", INT64, 1, 0),
    leaf("via_bot", BYTE_ARRAY, 1, 0),
    leaf("text", BYTE_ARRAY, 0, 0),
    leaf("links.list.element.text", BYTE_ARRAY, 1, 1),
    leaf("links.list.element.href", BYTE_ARRAY, 1, 1),
    leaf("media_type", BYTE_ARRAY, 1, 0),
    leaf("action", BYTE_ARRAY, 1, 0),
    leaf("actor", BYTE_ARRAY, 1, 0),
    leaf("actor_id", BYTE_ARRAY, 1, 0),
];

const C_CHAT_ID: usize = 0;
const C_CHAT_NAME: usize = 1;
const C_MESSAGE_ID: usize = 2;
const C_KIND: usize = 3;
const C_DATE: usize = 4;
const C_DATE_OFFSET: usize = 5;
const C_EDITED: usize = 6;
const C_EDITED_OFFSET: usize = 7;
const C_FROM: usize = 8;
const C_FROM_ID: usize = 9;
const C_FORWARDED_FROM: usize = 10;
const C_REPLY_TO: usize = 11;
const C_VIA_BOT: usize = 12;
const C_TEXT: usize = 13;
const C_LINK_TEXT: usize = 14;
const C_LINK_HREF: usize = 15;
const C_MEDIA_TYPE: usize = 16;
const C_ACTION: usize = 17;
const C_ACTOR: usize = 18;
const C_ACTOR_ID: usize = 19;

fn describe(physical: PhysicalType, max_def: i16, max_rep: i16) -> String {
    let repetition = match (max_def, max_rep) {
        (_, r) if r > 0 => "repeated",
        (0, _) => "required",
        _ => "optional",
    };
    format!("{repetition} {physical} (definition level {max_def}, repetition level {max_rep})")
}

// ------------------------------------------------------------------ writing

fn encode_err(e: impl std::fmt::Display) -> Error {
    Error::File {
        context: "encode Parquet backup".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Writes our Parquet backup into memory one row group at a time and hands
/// out the finished bytes after each one, so a caller can stream them to a
/// file or an object while holding about one row group in memory.
///
/// The concatenation of every [`ParquetBackupEncoder::row_group`] output
/// and the [`ParquetBackupEncoder::finish`] output is the file.
pub struct ParquetBackupEncoder {
    writer: SerializedFileWriter<Vec<u8>>,
}

impl std::fmt::Debug for ParquetBackupEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetBackupEncoder")
            .field("bytes_written", &self.writer.bytes_written())
            .finish()
    }
}

impl ParquetBackupEncoder {
    /// Starts a file (the leading `PAR1` magic is part of the first output).
    ///
    /// # Errors
    /// [`Error::File`] if the writer cannot start (not expected: the
    /// schema is a constant, checked by the tests).
    pub fn new() -> Result<Self> {
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(encode_err)?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("tributary-chat {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                MARKER_KEY.to_owned(),
                "1".to_owned(),
            )]))
            // One row group per call: never split a batch on our own.
            .set_max_row_group_row_count(None)
            .build();
        let writer =
            SerializedFileWriter::new(Vec::with_capacity(1 << 20), schema, Arc::new(props))
                .map_err(encode_err)?;
        Ok(ParquetBackupEncoder { writer })
    }

    /// Encodes `messages` as one row group and returns the bytes completed
    /// since the last call. An empty slice writes nothing.
    ///
    /// # Errors
    /// [`Error::File`] when encoding fails.
    pub fn row_group(&mut self, messages: &[Message]) -> Result<Vec<u8>> {
        if !messages.is_empty() {
            let mut group = self.writer.next_row_group().map_err(encode_err)?;
            let mut index = 0;
            while let Some(mut column) = group.next_column().map_err(encode_err)? {
                write_leaf(index, column.untyped(), messages).map_err(encode_err)?;
                column.close().map_err(encode_err)?;
                index += 1;
            }
            group.close().map_err(encode_err)?;
        }
        self.take()
    }

    /// Writes the footer and returns the last bytes of the file.
    ///
    /// # Errors
    /// [`Error::File`] when encoding fails.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.writer.finish().map_err(encode_err)?;
        self.take()
    }

    fn take(&mut self) -> Result<Vec<u8>> {
        self.writer.flush().map_err(encode_err)?;
        let buf = self.writer.inner_mut();
        let capacity = buf.capacity();
        // The writer counts offsets itself, so draining its sink is safe.
        Ok(std::mem::replace(buf, Vec::with_capacity(capacity)))
    }
}

/// Encodes a whole file at once (tests, small exports).
///
/// # Errors
/// [`Error::File`] when encoding fails.
pub fn encode_file(messages: &[Message]) -> Result<Vec<u8>> {
    let mut enc = ParquetBackupEncoder::new()?;
    let mut out = enc.row_group(messages)?;
    out.extend(enc.finish()?);
    Ok(out)
}

fn write_leaf(
    index: usize,
    writer: &mut ColumnWriter<'_>,
    ms: &[Message],
) -> Result<(), ParquetError> {
    let s = |v: &String| ByteArray::from(v.as_str());
    let os = |v: &Option<String>| v.as_deref().map(ByteArray::from);
    let micros = |d: &Option<MessageDate>| d.map(|d| d.local.and_utc().timestamp_micros());
    let offset = |d: &Option<MessageDate>| d.and_then(|d| d.offset_seconds);
    match (index, writer) {
        (C_CHAT_ID, ColumnWriter::Int64ColumnWriter(w)) => opt(w, ms.iter().map(|m| m.chat_id)),
        (C_CHAT_NAME, ColumnWriter::ByteArrayColumnWriter(w)) => {
            req(w, ms.iter().map(|m| s(&m.chat_name)))
        }
        (C_MESSAGE_ID, ColumnWriter::Int64ColumnWriter(w)) => req(w, ms.iter().map(|m| m.id)),
        (C_KIND, ColumnWriter::ByteArrayColumnWriter(w)) => {
            req(w, ms.iter().map(|m| ByteArray::from(m.kind.as_str())))
        }
        (C_DATE, ColumnWriter::Int64ColumnWriter(w)) => opt(w, ms.iter().map(|m| micros(&m.date))),
        (C_DATE_OFFSET, ColumnWriter::Int32ColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| offset(&m.date)))
        }
        (C_EDITED, ColumnWriter::Int64ColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| micros(&m.edited)))
        }
        (C_EDITED_OFFSET, ColumnWriter::Int32ColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| offset(&m.edited)))
        }
        (C_FROM, ColumnWriter::ByteArrayColumnWriter(w)) => opt(w, ms.iter().map(|m| os(&m.from))),
        (C_FROM_ID, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.from_id)))
        }
        (C_FORWARDED_FROM, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.forwarded_from)))
        }
        (C_REPLY_TO, ColumnWriter::Int64ColumnWriter(w)) => opt(w, ms.iter().map(|m| m.reply_to)),
        (C_VIA_BOT, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.via_bot)))
        }
        (C_TEXT, ColumnWriter::ByteArrayColumnWriter(w)) => req(w, ms.iter().map(|m| s(&m.text))),
        (C_LINK_TEXT, ColumnWriter::ByteArrayColumnWriter(w)) => links(w, ms, |l| &l.text),
        (C_LINK_HREF, ColumnWriter::ByteArrayColumnWriter(w)) => links(w, ms, |l| &l.href),
        (C_MEDIA_TYPE, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.media_type)))
        }
        (C_ACTION, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.action)))
        }
        (C_ACTOR, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.actor)))
        }
        (C_ACTOR_ID, ColumnWriter::ByteArrayColumnWriter(w)) => {
            opt(w, ms.iter().map(|m| os(&m.actor_id)))
        }
        (i, _) => Err(ParquetError::General(format!(
            "column #{i} of the backup schema has no writer of the expected type"
        ))),
    }
}

fn req<T: DataType>(
    w: &mut ColumnWriterImpl<'_, T>,
    values: impl Iterator<Item = T::T>,
) -> Result<(), ParquetError> {
    let values: Vec<T::T> = values.collect();
    w.write_batch(values.as_slice(), None, None).map(|_| ())
}

fn opt<T: DataType>(
    w: &mut ColumnWriterImpl<'_, T>,
    values: impl Iterator<Item = Option<T::T>>,
) -> Result<(), ParquetError> {
    let (lower, _) = values.size_hint();
    let mut defs = Vec::with_capacity(lower);
    let mut present = Vec::with_capacity(lower);
    for v in values {
        defs.push(i16::from(v.is_some()));
        present.extend(v);
    }
    w.write_batch(present.as_slice(), Some(&defs), None)
        .map(|_| ())
}

fn links(
    w: &mut ColumnWriterImpl<'_, ByteArrayType>,
    ms: &[Message],
    field: impl Fn(&Link) -> &String,
) -> Result<(), ParquetError> {
    let mut defs = Vec::with_capacity(ms.len());
    let mut reps = Vec::with_capacity(ms.len());
    let mut values = Vec::new();
    for m in ms {
        if m.links.is_empty() {
            defs.push(0);
            reps.push(0);
        }
        for (j, l) in m.links.iter().enumerate() {
            defs.push(1);
            reps.push(i16::from(j > 0));
            values.push(ByteArray::from(field(l).as_str()));
        }
    }
    w.write_batch(values.as_slice(), Some(&defs), Some(&reps))
        .map(|_| ())
}

// ------------------------------------------------------------------ reading

fn perr(position: Position, reason: impl Into<String>) -> Error {
    Error::Parquet {
        position,
        reason: reason.into(),
    }
}

/// Parses a Parquet backup on disk into `sink` (see the module doc).
pub(crate) fn parse_parquet_file(file: File, sink: &mut Sink<'_>) -> Result<()> {
    match catch_unwind(AssertUnwindSafe(|| read_file(file, sink))) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".into());
            Err(perr(
                Position::Unknown,
                format!("the Parquet decoder failed on damaged data: {what}"),
            ))
        }
    }
}

/// Parses a Parquet backup from a stream: spills it to a temporary file
/// first (Parquet is read from its footer backwards), removed afterwards.
pub(crate) fn parse_parquet_stream(reader: &mut dyn BufRead, sink: &mut Sink<'_>) -> Result<()> {
    let spill = Spill::create()?;
    let mut file = &spill.file;
    let mut at: u64 = 0;
    loop {
        let buf = reader.fill_buf().map_err(|source| Error::Read {
            position: Position::Byte(at),
            source,
        })?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        file.write_all(buf).map_err(|source| spill.error(source))?;
        reader.consume(n);
        at += n as u64;
    }
    file.flush().map_err(|source| spill.error(source))?;
    let file = spill
        .file
        .try_clone()
        .map_err(|source| spill.error(source))?;
    parse_parquet_file(file, sink)
}

/// A temporary file removed on drop.
struct Spill {
    path: PathBuf,
    file: File,
}

impl Spill {
    fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "tributary-spill-{}.parquet",
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::File {
                context: format!("create temporary file {}", path.display()),
                source,
            })?;
        Ok(Spill { path, file })
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error::File {
            context: format!("write temporary file {}", self.path.display()),
            source,
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where each of [`LEAVES`] is in the file's schema; checks type and
/// repetition.
fn map_columns(schema: &SchemaDescriptor) -> Result<[usize; N_LEAVES]> {
    let mut index = [0usize; N_LEAVES];
    for (slot, want) in index.iter_mut().zip(LEAVES.iter()) {
        let found = schema
            .columns()
            .iter()
            .position(|c| c.path().string() == want.path)
            .ok_or_else(|| {
                perr(
                    Position::Unknown,
                    format!("column {}: missing (not our backup schema)", want.path),
                )
            })?;
        let c = schema.column(found);
        if (c.physical_type(), c.max_def_level(), c.max_rep_level())
            != (want.physical, want.max_def, want.max_rep)
        {
            return Err(perr(
                Position::Unknown,
                format!(
                    "column {}: expected {}, found {}",
                    want.path,
                    describe(want.physical, want.max_def, want.max_rep),
                    describe(c.physical_type(), c.max_def_level(), c.max_rep_level())
                ),
            ));
        }
        *slot = found;
    }
    Ok(index)
}

fn read_file(file: File, sink: &mut Sink<'_>) -> Result<()> {
    let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
    let reader = SerializedFileReader::new(file).map_err(|e| {
        perr(
            Position::Unknown,
            format!("not a readable Parquet file (truncated or damaged footer?): {e}"),
        )
    })?;
    let meta = reader.metadata();
    let index = map_columns(meta.file_metadata().schema_descr())?;
    for rg in 0..reader.num_row_groups() {
        let position = || Position::RowGroup {
            row_group: rg as u64,
        };
        // Checked here, without `byte_range()` (which asserts), so that a
        // damaged footer is an error before any read is attempted.
        for c in meta.row_group(rg).columns() {
            let start = c
                .dictionary_page_offset()
                .unwrap_or_else(|| c.data_page_offset());
            let size = c.compressed_size();
            let fits = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(s, n)| s.checked_add(n))
                .is_some_and(|end| end <= file_len);
            if !fits {
                return Err(perr(
                    position(),
                    format!(
                        "column {}: chunk at byte {start} of {size} bytes lies outside the file",
                        c.column_path().string()
                    ),
                ));
            }
        }
        let group = reader
            .get_row_group(rg)
            .map_err(|e| perr(position(), e.to_string()))?;
        let mut cols = Columns::open(group.as_ref(), &index).map_err(|e| e.at(position()))?;
        loop {
            let rows = cols.read(READ_CHUNK).map_err(|e| e.at(position()))?;
            if rows == 0 {
                break;
            }
            cols.emit(rows, sink).map_err(|e| e.at(position()))?;
        }
    }
    Ok(())
}

/// A column-level failure before its position is known.
struct ColError(String);

impl ColError {
    fn at(self, position: Position) -> Error {
        perr(position, self.0)
    }
}

/// The buffers of one leaf column for the current chunk of rows.
struct Col<T: DataType> {
    leaf: &'static Leaf,
    reader: ColumnReaderImpl<T>,
    defs: Vec<i16>,
    reps: Vec<i16>,
    values: Vec<T::T>,
    /// Next unread value / level while emitting.
    value_at: usize,
    level_at: usize,
}

impl<T: DataType> Col<T> {
    fn new(leaf: &'static Leaf, reader: ColumnReaderImpl<T>) -> Self {
        Col {
            leaf,
            reader,
            defs: Vec::new(),
            reps: Vec::new(),
            values: Vec::new(),
            value_at: 0,
            level_at: 0,
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> ColError {
        ColError(format!("column {}: {e}", self.leaf.path))
    }

    /// Reads up to `max` rows; returns how many.
    fn read(&mut self, max: usize) -> Result<usize, ColError> {
        self.defs.clear();
        self.reps.clear();
        self.values.clear();
        self.value_at = 0;
        self.level_at = 0;
        let defs = (self.leaf.max_def > 0).then_some(&mut self.defs);
        let reps = (self.leaf.max_rep > 0).then_some(&mut self.reps);
        let (rows, _, _) = self
            .reader
            .read_records(max, defs, reps, &mut self.values)
            .map_err(|e| ColError(format!("column {}: {e}", self.leaf.path)))?;
        Ok(rows)
    }

    /// The value of the next row of a non-repeated column.
    fn next(&mut self) -> Result<Option<&T::T>, ColError> {
        let present = if self.leaf.max_def == 0 {
            true
        } else {
            let d = *self
                .defs
                .get(self.level_at)
                .ok_or_else(|| self.err("fewer levels than rows"))?;
            self.level_at += 1;
            d == self.leaf.max_def
        };
        if !present {
            return Ok(None);
        }
        let i = self.value_at;
        self.value_at += 1;
        self.values
            .get(i)
            .map(Some)
            .ok_or_else(|| self.err("fewer values than rows"))
    }

    /// The values of the next row of a repeated column.
    fn next_list(&mut self) -> Result<Vec<&T::T>, ColError> {
        let start = self.level_at;
        let mut end = start + 1;
        while self.reps.get(end).is_some_and(|r| *r > 0) {
            end += 1;
        }
        if end > self.defs.len() || end > self.reps.len() {
            return Err(self.err("fewer levels than rows"));
        }
        self.level_at = end;
        let n = self.defs[start..end]
            .iter()
            .filter(|d| **d == self.leaf.max_def)
            .count();
        let i = self.value_at;
        self.value_at += n;
        let values = self
            .values
            .get(i..i + n)
            .ok_or_else(|| self.err("fewer values than levels"))?;
        Ok(values.iter().collect())
    }
}

fn typed<T: DataType>(
    group: &dyn RowGroupReader,
    at: usize,
    leaf: &'static Leaf,
    pick: impl FnOnce(ColumnReader) -> Option<ColumnReaderImpl<T>>,
) -> Result<Col<T>, ColError> {
    let reader = group
        .get_column_reader(at)
        .map_err(|e| ColError(format!("column {}: {e}", leaf.path)))?;
    let reader = pick(reader).ok_or_else(|| {
        ColError(format!(
            "column {}: not of type {}",
            leaf.path, leaf.physical
        ))
    })?;
    Ok(Col::new(leaf, reader))
}

fn i64_col(g: &dyn RowGroupReader, idx: &[usize], c: usize) -> Result<Col<Int64Type>, ColError> {
    typed(g, idx[c], &LEAVES[c], |r| match r {
        ColumnReader::Int64ColumnReader(r) => Some(r),
        _ => None,
    })
}

fn i32_col(g: &dyn RowGroupReader, idx: &[usize], c: usize) -> Result<Col<Int32Type>, ColError> {
    typed(g, idx[c], &LEAVES[c], |r| match r {
        ColumnReader::Int32ColumnReader(r) => Some(r),
        _ => None,
    })
}

fn str_col(
    g: &dyn RowGroupReader,
    idx: &[usize],
    c: usize,
) -> Result<Col<ByteArrayType>, ColError> {
    typed(g, idx[c], &LEAVES[c], |r| match r {
        ColumnReader::ByteArrayColumnReader(r) => Some(r),
        _ => None,
    })
}

/// Readers of every leaf of one row group.
struct Columns {
    i64s: Vec<Col<Int64Type>>,
    i32s: Vec<Col<Int32Type>>,
    strs: Vec<Col<ByteArrayType>>,
}

// Positions inside `Columns::i64s` / `i32s` / `strs`.
const I64_LEAVES: [usize; 5] = [C_CHAT_ID, C_MESSAGE_ID, C_DATE, C_EDITED, C_REPLY_TO];
const I32_LEAVES: [usize; 2] = [C_DATE_OFFSET, C_EDITED_OFFSET];
const STR_LEAVES: [usize; 13] = [
    C_CHAT_NAME,
    C_KIND,
    C_FROM,
    C_FROM_ID,
    C_FORWARDED_FROM,
    C_VIA_BOT,
    C_TEXT,
    C_LINK_TEXT,
    C_LINK_HREF,
    C_MEDIA_TYPE,
    C_ACTION,
    C_ACTOR,
    C_ACTOR_ID,
];

fn slot(table: &[usize], c: usize) -> usize {
    table.iter().position(|x| *x == c).unwrap_or(usize::MAX)
}

/// A row's value that cannot become a message field.
struct BadRow(String);

fn utf8(leaf: usize, v: &ByteArray) -> Result<String, BadRow> {
    std::str::from_utf8(v.data())
        .map(str::to_owned)
        .map_err(|e| BadRow(format!("column {}: not UTF-8: {e}", LEAVES[leaf].path)))
}

fn date(
    leaf: usize,
    micros: Option<i64>,
    offset: Option<i32>,
) -> Result<Option<MessageDate>, BadRow> {
    let Some(micros) = micros else {
        return match offset {
            None => Ok(None),
            Some(_) => Err(BadRow(format!(
                "column {}: set while {} is null",
                LEAVES[leaf + 1].path,
                LEAVES[leaf].path
            ))),
        };
    };
    let local: NaiveDateTime = DateTime::from_timestamp_micros(micros)
        .map(|d| d.naive_utc())
        .ok_or_else(|| {
            BadRow(format!(
                "column {}: timestamp {micros} out of range",
                LEAVES[leaf].path
            ))
        })?;
    match offset {
        None => Ok(Some(MessageDate::naive(local))),
        Some(secs) => MessageDate::with_offset(local, secs)
            .map(Some)
            .ok_or_else(|| {
                BadRow(format!(
                    "column {}: offset {secs} s is beyond a day",
                    LEAVES[leaf + 1].path
                ))
            }),
    }
}

impl Columns {
    fn open(group: &dyn RowGroupReader, idx: &[usize; N_LEAVES]) -> Result<Self, ColError> {
        Ok(Columns {
            i64s: I64_LEAVES
                .iter()
                .map(|c| i64_col(group, idx, *c))
                .collect::<Result<_, _>>()?,
            i32s: I32_LEAVES
                .iter()
                .map(|c| i32_col(group, idx, *c))
                .collect::<Result<_, _>>()?,
            strs: STR_LEAVES
                .iter()
                .map(|c| str_col(group, idx, *c))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Reads the next chunk of every column; all must yield the same
    /// number of rows.
    fn read(&mut self, max: usize) -> Result<usize, ColError> {
        let mut counts: Vec<(&'static str, usize)> = Vec::with_capacity(N_LEAVES);
        for c in &mut self.i64s {
            counts.push((c.leaf.path, c.read(max)?));
        }
        for c in &mut self.i32s {
            counts.push((c.leaf.path, c.read(max)?));
        }
        for c in &mut self.strs {
            counts.push((c.leaf.path, c.read(max)?));
        }
        let (first, rows) = counts[0];
        if let Some((path, n)) = counts.iter().find(|(_, n)| *n != rows) {
            return Err(ColError(format!(
                "column {path}: {n} rows where column {first} has {rows}"
            )));
        }
        Ok(rows)
    }

    fn i64(&mut self, c: usize) -> Result<Option<i64>, ColError> {
        let s = slot(&I64_LEAVES, c);
        Ok(self.i64s[s].next()?.copied())
    }

    fn i32(&mut self, c: usize) -> Result<Option<i32>, ColError> {
        let s = slot(&I32_LEAVES, c);
        Ok(self.i32s[s].next()?.copied())
    }

    fn bytes(&mut self, c: usize) -> Result<Option<ByteArray>, ColError> {
        let s = slot(&STR_LEAVES, c);
        Ok(self.strs[s].next()?.cloned())
    }

    fn list(&mut self, c: usize) -> Result<Vec<ByteArray>, ColError> {
        let s = slot(&STR_LEAVES, c);
        Ok(self.strs[s].next_list()?.into_iter().cloned().collect())
    }

    /// Builds and delivers `rows` messages from the buffered chunk.
    fn emit(&mut self, rows: usize, sink: &mut Sink<'_>) -> Result<(), ColError> {
        for _ in 0..rows {
            let raw = RawRow {
                chat_id: self.i64(C_CHAT_ID)?,
                chat_name: self.bytes(C_CHAT_NAME)?,
                id: self.i64(C_MESSAGE_ID)?,
                kind: self.bytes(C_KIND)?,
                date: self.i64(C_DATE)?,
                date_offset: self.i32(C_DATE_OFFSET)?,
                edited: self.i64(C_EDITED)?,
                edited_offset: self.i32(C_EDITED_OFFSET)?,
                from: self.bytes(C_FROM)?,
                from_id: self.bytes(C_FROM_ID)?,
                forwarded_from: self.bytes(C_FORWARDED_FROM)?,
                reply_to: self.i64(C_REPLY_TO)?,
                via_bot: self.bytes(C_VIA_BOT)?,
                text: self.bytes(C_TEXT)?,
                link_texts: self.list(C_LINK_TEXT)?,
                link_hrefs: self.list(C_LINK_HREF)?,
                media_type: self.bytes(C_MEDIA_TYPE)?,
                action: self.bytes(C_ACTION)?,
                actor: self.bytes(C_ACTOR)?,
                actor_id: self.bytes(C_ACTOR_ID)?,
            };
            let id = raw.id;
            match raw.into_message() {
                Ok(m) => sink.message(m),
                Err(BadRow(reason)) => {
                    let index = sink.seen();
                    sink.skip(Position::Message { index, id }, reason);
                }
            }
        }
        Ok(())
    }
}

/// One row as decoded, before its values are checked.
struct RawRow {
    chat_id: Option<i64>,
    chat_name: Option<ByteArray>,
    id: Option<i64>,
    kind: Option<ByteArray>,
    date: Option<i64>,
    date_offset: Option<i32>,
    edited: Option<i64>,
    edited_offset: Option<i32>,
    from: Option<ByteArray>,
    from_id: Option<ByteArray>,
    forwarded_from: Option<ByteArray>,
    reply_to: Option<i64>,
    via_bot: Option<ByteArray>,
    text: Option<ByteArray>,
    link_texts: Vec<ByteArray>,
    link_hrefs: Vec<ByteArray>,
    media_type: Option<ByteArray>,
    action: Option<ByteArray>,
    actor: Option<ByteArray>,
    actor_id: Option<ByteArray>,
}

impl RawRow {
    fn into_message(self) -> Result<Message, BadRow> {
        let required = |leaf: usize, v: Option<ByteArray>| -> Result<String, BadRow> {
            match v {
                Some(v) => utf8(leaf, &v),
                None => Err(BadRow(format!("column {}: null", LEAVES[leaf].path))),
            }
        };
        let optional = |leaf: usize, v: Option<ByteArray>| -> Result<Option<String>, BadRow> {
            v.map(|v| utf8(leaf, &v)).transpose()
        };
        let id = self
            .id
            .ok_or_else(|| BadRow("column message_id: null".into()))?;
        let kind_text = required(C_KIND, self.kind)?;
        let kind = MessageKind::parse(&kind_text).ok_or_else(|| {
            BadRow(format!(
                "column kind: expected message|service, got {kind_text:?}"
            ))
        })?;
        if self.link_texts.len() != self.link_hrefs.len() {
            return Err(BadRow(format!(
                "column {}: {} entries but {} has {}",
                LEAVES[C_LINK_HREF].path,
                self.link_hrefs.len(),
                LEAVES[C_LINK_TEXT].path,
                self.link_texts.len()
            )));
        }
        let mut links = Vec::with_capacity(self.link_texts.len());
        for (t, h) in self.link_texts.iter().zip(&self.link_hrefs) {
            links.push(Link {
                text: utf8(C_LINK_TEXT, t)?,
                href: utf8(C_LINK_HREF, h)?,
            });
        }
        Ok(Message {
            chat_id: self.chat_id,
            chat_name: required(C_CHAT_NAME, self.chat_name)?,
            id,
            kind,
            date: date(C_DATE, self.date, self.date_offset)?,
            edited: date(C_EDITED, self.edited, self.edited_offset)?,
            from: optional(C_FROM, self.from)?,
            from_id: optional(C_FROM_ID, self.from_id)?,
            forwarded_from: optional(C_FORWARDED_FROM, self.forwarded_from)?,
            reply_to: self.reply_to,
            via_bot: optional(C_VIA_BOT, self.via_bot)?,
            text: required(C_TEXT, self.text)?,
            links,
            media_type: optional(C_MEDIA_TYPE, self.media_type)?,
            action: optional(C_ACTION, self.action)?,
            actor: optional(C_ACTOR, self.actor)?,
            actor_id: optional(C_ACTOR_ID, self.actor_id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the schema parses and its leaves are exactly LEAVES, in order,
    // with the types and levels the reader expects.
    #[test]
    fn schema_matches_leaves() {
        let t = parse_message_type(SCHEMA).expect("schema parses");
        let d = SchemaDescriptor::new(Arc::new(t));
        assert_eq!(d.num_columns(), LEAVES.len());
        for (c, want) in d.columns().iter().zip(LEAVES.iter()) {
            assert_eq!(c.path().string(), want.path);
            assert_eq!(c.physical_type(), want.physical, "{}", want.path);
            assert_eq!(c.max_def_level(), want.max_def, "{}", want.path);
            assert_eq!(c.max_rep_level(), want.max_rep, "{}", want.path);
        }
        let mut all: Vec<usize> = I64_LEAVES
            .iter()
            .chain(&I32_LEAVES)
            .chain(&STR_LEAVES)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..LEAVES.len()).collect::<Vec<_>>());
    }

    // Proves the encoder streams: the first output starts with the magic,
    // the last ends with it, and an empty backup is a valid (footer-only) file.
    #[test]
    fn encoder_outputs_concatenate_to_a_file() {
        let mut enc = ParquetBackupEncoder::new().expect("encoder");
        let first = enc
            .row_group(&[Message::new("c", 1, MessageKind::Message)])
            .expect("row group");
        assert!(first.starts_with(b"PAR1"));
        let last = enc.finish().expect("finish");
        assert!(last.ends_with(b"PAR1"));
        let empty = encode_file(&[]).expect("empty");
        assert!(empty.starts_with(b"PAR1") && empty.ends_with(b"PAR1"));
    }
}

//! Streaming reader of Telegram Desktop's `result.json`.
//!
//! The document is never held whole. A small structural scanner walks a
//! refillable byte buffer (filled from the reader in `CHUNK`-sized reads)
//! and descends only into the containers it needs: the root object (single
//! chat `{name, type, id, messages}` or full account
//! `{..., chats: {list: [...]}, left_chats: {list: [...]}}`), the sections'
//! `list` arrays, the chat objects and their `messages` arrays. Each
//! message is decoded in place by serde_json's slice reader (much faster
//! than its byte-at-a-time `from_reader`), which also says where the message
//! ended; one cut by the end of the buffer is retried once at least twice as
//! much input is buffered. A chat's `name`/`id` are decoded into `Scalar`
//! from their exact byte extent (found by string- and escape-aware bracket
//! matching). Other values are skipped: ignored containers are walked by the
//! scanner and only their leaves (strings, numbers, literals) are checked by
//! serde, so a syntax error anywhere is still reported and a huge ignored
//! section (`contacts`, ...) is never buffered. Peak memory is the buffer:
//! about one chunk plus the largest single message, which grows the buffer
//! only while it is being read. Keys are matched without allocating.
//!
//! Every message field is read leniently (any JSON value is accepted and
//! judged afterwards), so a message with odd values is skipped and reported
//! on its own, while a syntax error stops the file with its absolute line
//! and column (errors inside a decoded slice are translated from the
//! slice's relative position using a running newline count).
//!
//! Decision: chat `name`/`id` are taken as known when the `messages` key is
//! reached; Telegram always writes them first. A file that puts them after
//! `messages` yields messages with an empty chat name / no chat id rather
//! than buffering the array.

use std::fmt;
use std::io::{self, Read};
use std::marker::PhantomData;

use chrono::NaiveDateTime;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Sink;
use crate::domain::{normalize_from_id, Link, Message, MessageDate, MessageKind};
use crate::error::{Error, Position, Result};

/// Local-time format of JSON `date` / `edited`.
pub const JSON_DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Bytes asked from the reader per refill.
const CHUNK: usize = 1 << 20;

/// Deepest nesting the scanner walks itself (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// Parses one JSON export from `reader` into `sink`.
pub(crate) fn parse_json<R: Read>(reader: R, sink: &mut Sink<'_>) -> Result<()> {
    parse_json_chunked(reader, sink, CHUNK)
}

/// [`parse_json`] with a given refill size (tests use tiny ones to split
/// every value across refills).
fn parse_json_chunked<R: Read>(reader: R, sink: &mut Sink<'_>, chunk: usize) -> Result<()> {
    let mut sc = Scanner::new(reader, chunk);
    sc.skip_ws()?;
    if sc.peek()? == Some(b'{') {
        sc.chat_object(sink, true, 1)?;
    } else {
        sc.expect_other(Expect {
            what: "a Telegram export object",
            null_ok: false,
        })?;
    }
    sc.skip_ws()?;
    if sc.peek()?.is_some() {
        return Err(sc.error_at(sc.pos, "trailing characters"));
    }
    Ok(())
}

#[derive(Default, Clone)]
struct ChatInfo {
    id: Option<i64>,
    name: String,
}

/// A refillable window over the input with a running line count.
struct Scanner<R> {
    reader: R,
    /// `buf[..end]` holds input bytes; `buf[end..]` is room for the next read.
    buf: Vec<u8>,
    end: usize,
    /// Next byte to look at; bytes before it may be dropped on refill.
    pos: usize,
    eof: bool,
    chunk: usize,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Newlines are counted in `buf[..counted]`.
    counted: usize,
    /// 1-based line at `buf[counted]` and the absolute offset it starts at.
    line: u64,
    line_start: u64,
}

impl<R: Read> Scanner<R> {
    fn new(reader: R, chunk: usize) -> Self {
        let chunk = chunk.max(1);
        Scanner {
            reader,
            buf: vec![0; chunk],
            end: 0,
            pos: 0,
            eof: false,
            chunk,
            base: 0,
            counted: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// Reads more input, keeping `buf[pos..end]` (moved to the front).
    /// Returns `false` at end of input.
    fn more(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let keep = self.pos;
        if keep > 0 {
            self.count_lines(keep);
            self.buf.copy_within(keep..self.end, 0);
            self.end -= keep;
            self.pos = 0;
            self.counted -= keep;
            self.base += keep as u64;
        }
        if self.buf.len() - self.end < self.chunk {
            // Only a value longer than a chunk makes the buffer grow.
            self.buf.resize(self.end + self.chunk, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error_at(self.end, &format!("cannot read: {e}"))),
            }
        }
    }

    /// Advances the newline count to `buf[to]`.
    fn count_lines(&mut self, to: usize) {
        if to <= self.counted {
            return;
        }
        let seg = &self.buf[self.counted..to];
        // Per-chunk byte sums vectorize far better than a filtered count.
        let n: usize = seg
            .chunks(255)
            .map(|c| usize::from(c.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>()))
            .sum();
        if n > 0 {
            self.line += n as u64;
            if let Some(last) = memchr::memrchr(b'\n', seg) {
                self.line_start = self.base + (self.counted + last + 1) as u64;
            }
        }
        self.counted = to;
    }

    /// 1-based line and column of `buf[idx]` (`idx` at or after everything
    /// dropped so far).
    fn line_col(&mut self, idx: usize) -> (u64, u64) {
        self.count_lines(idx);
        let abs = self.base + idx as u64;
        (self.line, abs.saturating_sub(self.line_start) + 1)
    }

    fn error_at(&mut self, idx: usize, reason: &str) -> Error {
        let (line, column) = self.line_col(idx);
        Error::Json {
            position: Position::LineColumn { line, column },
            reason: format!("{reason} at line {line} column {column}"),
        }
    }

    /// The next byte without consuming it; `None` at end of input.
    fn peek(&mut self) -> Result<Option<u8>> {
        if self.pos >= self.end && !self.more()? {
            return Ok(None);
        }
        Ok(self.buf.get(self.pos).copied())
    }

    fn skip_ws(&mut self) -> Result<()> {
        loop {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                    _ => return Ok(()),
                }
            }
            if !self.more()? {
                return Ok(());
            }
        }
    }

    /// Exclusive end of the value starting at `pos` (which must be in the
    /// buffer), reading more input as needed. The extent is found by
    /// string- and escape-aware bracket matching, not validated; at end of
    /// input it is whatever is left, so decoding reports the EOF.
    fn value_end(&mut self) -> Result<usize> {
        let first = self.buf[self.pos];
        match first {
            b'{' | b'[' | b'"' => self.container_end(first == b'"'),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scalar_end(),
            // Not a value: one byte, so decoding reports "expected value".
            _ => Ok(self.pos + 1),
        }
    }

    fn scalar_end(&mut self) -> Result<usize> {
        let mut i = self.pos;
        loop {
            while i < self.end {
                match self.buf[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | b',' | b':' | b'[' | b']' | b'{' | b'}'
                    | b'"' => return Ok(i),
                    _ => i += 1,
                }
            }
            let rel = i - self.pos;
            if !self.more()? {
                return Ok(self.end);
            }
            i = self.pos + rel;
        }
    }

    fn container_end(&mut self, string: bool) -> Result<usize> {
        let mut in_string = string;
        let mut depth: u64 = 0;
        // Relative to `pos`, which refills move; may pass the end by one
        // after a trailing backslash.
        let mut i = usize::from(string);
        loop {
            let buf = &self.buf[self.pos..self.end];
            while i < buf.len() {
                if in_string {
                    match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                        Some(k) if buf[i + k] == b'"' => {
                            in_string = false;
                            i += k + 1;
                            if depth == 0 {
                                return Ok(self.pos + i);
                            }
                        }
                        Some(k) => i += k + 2,
                        None => i = buf.len(),
                    }
                } else {
                    match buf[i] {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                return Ok(self.pos + i + 1);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            if !self.more()? {
                return Ok(self.end);
            }
        }
    }

    /// Decodes `buf[pos..end]` with `seed` and moves past it; a serde error
    /// gets the absolute line and column.
    fn decode<T, S>(&mut self, end: usize, seed: S) -> Result<T>
    where
        S: for<'a> DeserializeSeed<'a, Value = T>,
    {
        let start = self.pos;
        let slice = &self.buf[start..end];
        let mut de = serde_json::Deserializer::from_slice(slice);
        let res = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
        match res {
            Ok(v) => {
                self.pos = end;
                Ok(v)
            }
            Err(e) => Err(self.translate(start, &e)),
        }
    }

    /// Decodes the next value as a `T`.
    fn value<T: for<'a> Deserialize<'a>>(&mut self) -> Result<T> {
        let end = self.value_end_or_eof()?;
        self.decode(end, PhantomData::<T>)
    }

    /// Like [`Self::value_end`], but an empty rest of input is an empty
    /// extent (decoding reports "EOF while parsing a value").
    fn value_end_or_eof(&mut self) -> Result<usize> {
        if self.peek()?.is_none() {
            return Ok(self.pos);
        }
        self.value_end()
    }

    /// Turns a serde error in a slice starting at `buf[start]` into one
    /// with an absolute position.
    fn translate(&mut self, start: usize, e: &serde_json::Error) -> Error {
        let (line0, col0) = self.line_col(start);
        let (rl, rc) = (e.line() as u64, e.column() as u64);
        let full = e.to_string();
        let msg = full
            .strip_suffix(&format!(" at line {rl} column {rc}"))
            .unwrap_or(&full);
        let msg = &without_quoted_values(msg);
        let (line, column) = match rl {
            0 => (line0, col0),
            1 => (line0, (col0 - 1) + rc),
            _ => (line0 + rl - 1, rc),
        };
        Error::Json {
            position: Position::LineColumn { line, column },
            reason: format!("{msg} at line {line} column {column}"),
        }
    }

    /// A value where a container was wanted: decoded with `expect`, which
    /// errors unless it is a null that may stand for "nothing".
    fn expect_other(&mut self, expect: Expect) -> Result<()> {
        let end = self.value_end_or_eof()?;
        self.decode(end, expect)
    }

    /// After an element: consumes `,` (then refuses a trailing comma) or
    /// the `close` byte; returns whether another element follows.
    fn next_or_close(&mut self, close: u8, what: &str) -> Result<bool> {
        self.skip_ws()?;
        match self.peek()? {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws()?;
                if self.peek()? == Some(close) {
                    return Err(self.error_at(self.pos, "trailing comma"));
                }
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => {
                let expected = if close == b'}' {
                    "expected `,` or `}`"
                } else {
                    "expected `,` or `]`"
                };
                Err(self.error_at(self.pos, expected))
            }
            None => Err(self.error_at(self.pos, &format!("EOF while parsing {what}"))),
        }
    }

    /// At `{` or `[`: consumes it; returns whether an element follows.
    fn open(&mut self, close: u8, what: &str, depth: usize) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, "recursion limit exceeded"));
        }
        self.pos += 1;
        self.skip_ws()?;
        match self.peek()? {
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Err(self.error_at(self.pos, &format!("EOF while parsing {what}"))),
        }
    }

    /// Reads `"key":` and returns which field it names.
    fn key(&mut self) -> Result<Field> {
        self.skip_ws()?;
        match self.peek()? {
            Some(b'"') => {}
            Some(_) => return Err(self.error_at(self.pos, "key must be a string")),
            None => return Err(self.error_at(self.pos, "EOF while parsing an object")),
        }
        let end = self.value_end()?;
        let field = self.decode(end, PhantomData::<Field>)?;
        self.skip_ws()?;
        match self.peek()? {
            Some(b':') => {
                self.pos += 1;
                self.skip_ws()?;
                Ok(field)
            }
            Some(_) => Err(self.error_at(self.pos, "expected `:`")),
            None => Err(self.error_at(self.pos, "EOF while parsing an object")),
        }
    }

    /// At `{`: a chat; at top level also the full-account sections.
    fn chat_object(&mut self, sink: &mut Sink<'_>, top_level: bool, depth: usize) -> Result<()> {
        let mut chat = ChatInfo::default();
        let mut more = self.open(b'}', "an object", depth)?;
        while more {
            match self.key()? {
                Field::Name => {
                    chat.name = self.value::<Scalar>()?.into_string().unwrap_or_default();
                }
                Field::Id => chat.id = self.value::<Scalar>()?.as_i64(),
                Field::Messages => self.messages(sink, &chat, depth + 1)?,
                Field::Chats | Field::LeftChats if top_level => self.section(sink, depth + 1)?,
                _ => self.skip_value(depth + 1)?,
            }
            more = self.next_or_close(b'}', "an object")?;
        }
        Ok(())
    }

    /// `{"about": ..., "list": [chat, ...]}`; anything else but null is an
    /// error, null carries no chats.
    fn section(&mut self, sink: &mut Sink<'_>, depth: usize) -> Result<()> {
        if self.peek()? != Some(b'{') {
            return self.expect_other(Expect {
                what: "a chats section object",
                null_ok: true,
            });
        }
        let mut more = self.open(b'}', "an object", depth)?;
        while more {
            if self.key()? == Field::List {
                self.chat_list(sink, depth + 1)?;
            } else {
                self.skip_value(depth + 1)?;
            }
            more = self.next_or_close(b'}', "an object")?;
        }
        Ok(())
    }

    fn chat_list(&mut self, sink: &mut Sink<'_>, depth: usize) -> Result<()> {
        if self.peek()? != Some(b'[') {
            return self.expect_other(Expect {
                what: "a list of chats",
                null_ok: false,
            });
        }
        let mut more = self.open(b']', "a list", depth)?;
        while more {
            if self.peek()? == Some(b'{') {
                self.chat_object(sink, false, depth + 1)?;
            } else {
                self.expect_other(Expect {
                    what: "a Telegram export object",
                    null_ok: false,
                })?;
            }
            more = self.next_or_close(b']', "a list")?;
        }
        Ok(())
    }

    /// The `messages` array: each element is decoded from its own slice and
    /// delivered (or skipped and reported) at once.
    fn messages(&mut self, sink: &mut Sink<'_>, chat: &ChatInfo, depth: usize) -> Result<()> {
        if self.peek()? != Some(b'[') {
            return self.expect_other(Expect {
                what: "a list of messages",
                null_ok: false,
            });
        }
        let mut more = self.open(b']', "a list", depth)?;
        while more {
            let raw = self.message()?;
            let index = sink.seen();
            match raw.into_message(chat) {
                Ok(m) => sink.message(m),
                Err((id, reason)) => sink.skip(Position::Message { index, id }, reason),
            }
            more = self.next_or_close(b']', "a list")?;
        }
        Ok(())
    }

    /// Decodes one message straight from the buffer: serde reads it and
    /// says where it ended, so the bytes are read once. A message cut by
    /// the end of the buffer (an EOF error, or a value ending exactly there)
    /// is retried after reading at least as much again, so a long message
    /// costs a few attempts, not one per chunk.
    fn message(&mut self) -> Result<RawMessage> {
        loop {
            let avail = self.end - self.pos;
            let mut stream = serde_json::Deserializer::from_slice(&self.buf[self.pos..self.end])
                .into_iter::<RawMessage>();
            let res = stream.next();
            let used = stream.byte_offset();
            match res {
                Some(Ok(raw)) if self.eof || used < avail => {
                    self.pos += used;
                    return Ok(raw);
                }
                Some(Err(e)) if self.eof || !e.is_eof() => {
                    return Err(self.translate(self.pos, &e));
                }
                // Nothing left at all: let the plain path report the EOF.
                None if self.eof => return self.value::<RawMessage>(),
                _ => {
                    let target = avail.saturating_mul(2).max(avail + self.chunk);
                    while self.end - self.pos < target && self.more()? {}
                }
            }
        }
    }

    /// Skips one value, walking containers here (so their size never
    /// matters) and letting serde check each leaf.
    fn skip_value(&mut self, depth: usize) -> Result<()> {
        match self.peek()? {
            Some(b'{') => {
                let mut more = self.open(b'}', "an object", depth)?;
                while more {
                    self.key()?;
                    self.skip_value(depth + 1)?;
                    more = self.next_or_close(b'}', "an object")?;
                }
                Ok(())
            }
            Some(b'[') => {
                let mut more = self.open(b']', "a list", depth)?;
                while more {
                    self.skip_value(depth + 1)?;
                    more = self.next_or_close(b']', "a list")?;
                }
                Ok(())
            }
            _ => self.value::<IgnoredAny>().map(|_| ()),
        }
    }
}

/// Keys the scanner acts on; matched without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Id,
    Messages,
    Chats,
    LeftChats,
    List,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "name" => Field::Name,
                    "id" => Field::Id,
                    "messages" => Field::Messages,
                    "chats" => Field::Chats,
                    "left_chats" => Field::LeftChats,
                    "list" => Field::List,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Rejects a value of the wrong type with serde's "invalid type ...,
/// expected `what`"; accepts null if `null_ok`.
struct Expect {
    what: &'static str,
    null_ok: bool,
}

impl<'de> DeserializeSeed<'de> for Expect {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Expect {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.null_ok {
            Ok(())
        } else {
            Err(E::invalid_type(de::Unexpected::Unit, &self))
        }
    }
}

/// Any JSON value, reduced to what a message field can use.
#[derive(Debug, Default, Clone, PartialEq)]
enum Scalar {
    #[default]
    Absent,
    Null,
    Str(String),
    Int(i64),
    /// A float, bool, big number, array or object: present but unusable.
    Other,
}

impl Scalar {
    /// What kind of value this is, for error texts (which never carry the
    /// value itself: it is file content).
    fn shape(&self) -> &'static str {
        match self {
            Scalar::Absent => "absent",
            Scalar::Null => "null",
            Scalar::Str(_) => "a string",
            Scalar::Int(_) => "an integer",
            Scalar::Other => "not a string or an integer",
        }
    }

    fn into_string(self) -> Option<String> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            Scalar::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn is_present(&self) -> bool {
        !matches!(self, Scalar::Absent | Scalar::Null)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map(Scalar::Int).unwrap_or(Scalar::Other))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `text`: a string, or an array of strings and `{type, text, href?}`.
#[derive(Debug, Default)]
struct RawText {
    text: String,
    links: Vec<Link>,
}

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of text parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText {
                    text: v.to_owned(),
                    links: Vec::new(),
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawText, E> {
                Ok(RawText {
                    text: v,
                    links: Vec::new(),
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawText, E> {
                Ok(RawText::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawText::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawText, A::Error> {
                let mut out = RawText::default();
                while let Some(part) = seq.next_element::<TextPart>()? {
                    let Some(text) = part.text.into_string() else {
                        continue;
                    };
                    if let Some(href) =
                        entity_href(part.kind.as_deref(), part.href.as_deref(), &text)
                    {
                        out.links.push(Link {
                            text: text.clone(),
                            href,
                        });
                    }
                    out.text.push_str(&text);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of a `text` array.
#[derive(Debug, Default)]
struct TextPart {
    kind: Option<String>,
    text: Scalar,
    href: Option<String>,
}

impl<'de> Deserialize<'de> for TextPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextPart;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a text entity")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextPart, E> {
                Ok(TextPart {
                    text: Scalar::Str(v.to_owned()),
                    ..TextPart::default()
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<TextPart, E> {
                Ok(TextPart {
                    text: Scalar::Str(v),
                    ..TextPart::default()
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextPart, E> {
                Ok(TextPart::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextPart, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TextPart::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextPart, A::Error> {
                let mut part = TextPart::default();
                while let Some(key) = map.next_key::<PartField>()? {
                    match key {
                        PartField::Type => part.kind = map.next_value::<Scalar>()?.into_string(),
                        PartField::Text => part.text = map.next_value::<Scalar>()?,
                        PartField::Href => part.href = map.next_value::<Scalar>()?.into_string(),
                        PartField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(part)
            }
        }
        d.deserialize_any(V)
    }
}

/// Keys of a text entity, matched without allocating.
enum PartField {
    Type,
    Text,
    Href,
    Other,
}

impl<'de> Deserialize<'de> for PartField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PartField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PartField, E> {
                Ok(match v {
                    "type" => PartField::Type,
                    "text" => PartField::Text,
                    "href" => PartField::Href,
                    _ => PartField::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The href a text entity links to, mirroring what the HTML export writes
/// (see [`Link`]); `None` for formatting-only entities.
fn entity_href(kind: Option<&str>, href: Option<&str>, text: &str) -> Option<String> {
    match kind? {
        "link" => Some(text.to_owned()),
        "text_link" => href.map(str::to_owned),
        "email" => Some(format!("mailto:{text}")),
        "phone" => Some(format!("tel:{text}")),
        "mention" => Some(format!("https://t.me/{}", text.trim_start_matches('@'))),
        _ => None,
    }
}

/// One message object with every field read leniently.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMessage {
    id: Scalar,
    #[serde(rename = "type")]
    kind: Scalar,
    date: Scalar,
    date_unixtime: Scalar,
    edited: Scalar,
    edited_unixtime: Scalar,
    from: Scalar,
    from_id: Scalar,
    forwarded_from: Scalar,
    reply_to_message_id: Scalar,
    via_bot: Scalar,
    text: RawText,
    media_type: Scalar,
    photo: Scalar,
    file: Scalar,
    poll: Scalar,
    location_information: Scalar,
    contact_information: Scalar,
    game_title: Scalar,
    invoice_information: Scalar,
    action: Scalar,
    actor: Scalar,
    actor_id: Scalar,
}

type Rejection = (Option<i64>, String);

impl RawMessage {
    fn into_message(self, chat: &ChatInfo) -> Result<Message, Rejection> {
        let id = self.id.as_i64();
        let Some(id) = id else {
            return Err((
                None,
                format!("message has no integer id ({})", self.id.shape()),
            ));
        };
        let reject = |reason: String| (Some(id), reason);
        let kind = match &self.kind {
            Scalar::Absent | Scalar::Null => MessageKind::Message,
            Scalar::Str(s) => MessageKind::parse(s)
                .ok_or_else(|| reject(format!("unknown message type {s:?}")))?,
            other => {
                return Err(reject(format!(
                    "message type is not a string ({})",
                    other.shape()
                )))
            }
        };
        let date =
            json_date(&self.date, &self.date_unixtime).map_err(|r| reject(format!("date: {r}")))?;
        let edited = json_date(&self.edited, &self.edited_unixtime)
            .map_err(|r| reject(format!("edited: {r}")))?;
        let media_type = self.media_type.into_string().or_else(|| {
            [
                (&self.photo, "photo"),
                (&self.file, "file"),
                (&self.poll, "poll"),
                (&self.location_information, "location"),
                (&self.contact_information, "contact"),
                (&self.game_title, "game"),
                (&self.invoice_information, "invoice"),
            ]
            .into_iter()
            .find(|(field, _)| field.is_present())
            .map(|(_, name)| name.to_owned())
        });
        Ok(Message {
            chat_id: chat.id,
            chat_name: chat.name.clone(),
            id,
            kind,
            date,
            edited,
            from: self.from.into_string(),
            from_id: self
                .from_id
                .into_string()
                .and_then(|s| normalize_from_id(&s)),
            forwarded_from: self.forwarded_from.into_string(),
            reply_to: self.reply_to_message_id.as_i64(),
            via_bot: self.via_bot.into_string(),
            text: self.text.text,
            links: self.text.links,
            media_type,
            action: self.action.into_string(),
            actor: self.actor.into_string(),
            actor_id: self
                .actor_id
                .into_string()
                .and_then(|s| normalize_from_id(&s)),
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS` read by hand (the format string is not
/// re-interpreted per message); `None` for anything else, including valid
/// but odd values such as a leap second, which then take the general path.
fn fast_local_time(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?.and_hms_opt(
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    )
}

/// Combines `date` (local, no zone) and `date_unixtime` (epoch seconds, a
/// string in real exports) into a [`MessageDate`].
fn json_date(local: &Scalar, unix: &Scalar) -> Result<Option<MessageDate>, String> {
    let unix_secs = match unix {
        Scalar::Absent | Scalar::Null => None,
        s => Some(
            s.as_i64()
                .ok_or_else(|| format!("bad unixtime ({}, not epoch seconds)", s.shape()))?,
        ),
    };
    let local = match local {
        Scalar::Absent | Scalar::Null => None,
        Scalar::Str(s) => Some(match fast_local_time(s.as_bytes()) {
            Some(t) => t,
            None => NaiveDateTime::parse_from_str(s, JSON_DATE_FORMAT)
                .map_err(|e| format!("bad local time: {e}"))?,
        }),
        other => return Err(format!("local time is not a string ({})", other.shape())),
    };
    Ok(match (local, unix_secs) {
        (Some(l), Some(u)) => Some(MessageDate::from_local_and_unix(l, u)),
        (Some(l), None) => Some(MessageDate::naive(l)),
        (None, Some(u)) => chrono::DateTime::from_timestamp(u, 0)
            .and_then(|utc| MessageDate::with_offset(utc.naive_utc(), 0)),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FileError, ParseEvent};

    struct Run {
        messages: Vec<Message>,
        skipped: Vec<FileError>,
        result: Result<()>,
    }

    fn run(input: &[u8], chunk: usize) -> Run {
        let mut events = Vec::new();
        let mut emit = |e: ParseEvent| events.push(e);
        let mut sink = Sink::new("result.json", &mut emit);
        let result = parse_json_chunked(input, &mut sink, chunk);
        let mut messages = Vec::new();
        let mut skipped = Vec::new();
        for e in events {
            match e {
                ParseEvent::Message(m) => messages.push(m),
                ParseEvent::FileError(f) => skipped.push(f),
                ParseEvent::FileStart { .. } => {}
            }
        }
        Run {
            messages,
            skipped,
            result,
        }
    }

    /// Runs `input` with the real chunk size and tiny ones; all must agree.
    fn run_all(input: &str) -> Run {
        let full = run(input.as_bytes(), CHUNK);
        for chunk in [1, 7, 64] {
            let r = run(input.as_bytes(), chunk);
            assert_eq!(r.messages, full.messages, "chunk {chunk}");
            assert_eq!(r.skipped, full.skipped, "chunk {chunk}");
            assert_eq!(
                format!("{:?}", r.result),
                format!("{:?}", full.result),
                "chunk {chunk}"
            );
        }
        full
    }

    fn line_of(r: &Run) -> u64 {
        match &r.result {
            Err(Error::Json {
                position: Position::LineColumn { line, .. },
                ..
            }) => *line,
            other => panic!("expected a JSON error, got {other:?}"),
        }
    }

    /// serde_json's own line for the first syntax error of `input`.
    fn serde_line(input: &str) -> u64 {
        let e = serde_json::from_str::<serde_json::Value>(input).expect_err("invalid");
        e.line() as u64
    }

    // Proves escaped quotes, backslashes and brackets inside strings do not
    // end a message early, and nested arrays/objects inside a message are
    // kept within its extent.
    #[test]
    fn strings_and_nesting_inside_messages() {
        let input = r#"{"name": "A \"}]\" chat", "id": 7, "messages": [
  {"id": 1, "text": ["x \\\" ] } [ {", {"type": "link", "text": "http://a/[}]"}],
   "poll": {"q": [[1, {"a": []}], "\\"]}, "via_bot": "\\\\"},
  {"id": 2, "text": "\"}", "extra": [{}, [], {"k": "]"}]}
]}"#;
        let r = run_all(input);
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert!(r.skipped.is_empty(), "{:?}", r.skipped);
        assert_eq!(r.messages.len(), 2);
        let m = &r.messages[0];
        assert_eq!(m.chat_name, "A \"}]\" chat");
        assert_eq!(m.chat_id, Some(7));
        assert_eq!(m.text, "x \\\" ] } [ {http://a/[}]");
        assert_eq!(m.links.len(), 1);
        assert_eq!(m.media_type.as_deref(), Some("poll"));
        assert_eq!(m.via_bot.as_deref(), Some("\\\\"));
        assert_eq!(r.messages[1].text, "\"}");
    }

    // Proves the full-account shape: only chats/left_chats lists are read,
    // ignored sections (even ones holding a `messages` key or a huge nested
    // value) are skipped, a null section carries no chats.
    #[test]
    fn full_account_shape() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let input = format!(
            r#"{{"about": "x", "personal_information": {{"messages": [{{"id": 99}}]}},
 "contacts": {{"list": [{{"id": 5, "name": "no chat"}}], "deep": {deep}}},
 "chats": {{"about": "a", "list": [
   {{"name": "Bob", "type": "personal_chat", "id": 222, "messages": [{{"id": 10}}, {{"id": 11}}]}},
   {{"name": "Empty", "id": 3, "messages": []}}
 ]}},
 "left_chats": {{"list": [{{"name": "Old", "id": "444", "messages": [{{"id": 500}}],
   "chats": {{"list": [{{"name": "nested", "messages": [{{"id": 1}}]}}]}}}}]}},
 "other": null, "frequent_contacts": {{"list": []}}
}}"#
        );
        let r = run_all(&input);
        assert!(r.result.is_ok(), "{:?}", r.result);
        let got: Vec<(Option<i64>, &str, i64)> = r
            .messages
            .iter()
            .map(|m| (m.chat_id, m.chat_name.as_str(), m.id))
            .collect();
        assert_eq!(
            got,
            [
                (Some(222), "Bob", 10),
                (Some(222), "Bob", 11),
                (Some(444), "Old", 500)
            ]
        );
        let null_section = r#"{"chats": null, "left_chats": {"list": []}}"#;
        let r = run_all(null_section);
        assert!(r.result.is_ok() && r.messages.is_empty(), "{:?}", r.result);
    }

    // Proves a bad message is skipped and reported alone with its index.
    #[test]
    fn bad_message_skipped_alone() {
        let input = r#"{"name": "c", "messages": [{"id": 1}, {"id": "x"}, {"id": 3, "date": 5}, {"id": 4}]}"#;
        let r = run_all(input);
        assert!(r.result.is_ok(), "{:?}", r.result);
        let ids: Vec<i64> = r.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 4]);
        let positions: Vec<&Position> = r.skipped.iter().map(|e| &e.position).collect();
        assert_eq!(
            positions,
            [
                &Position::Message { index: 1, id: None },
                &Position::Message {
                    index: 2,
                    id: Some(3)
                }
            ]
        );
    }

    // Proves syntax errors on later lines (inside a message, in a key, in
    // the structure, in an ignored value, at EOF) carry the absolute line
    // serde_json itself reports, and messages before them stay delivered.
    #[test]
    fn error_positions_on_later_lines() {
        let cases = [
            "{\"name\": \"c\",\n\"messages\": [\n{\"id\": 1},\n{\"id\": 2,\n \"text\": tru}\n]}",
            "{\"name\": \"c\",\n\"messages\": [\n{\"id\": 1},\n{\"id\": 2,\n \"text\": \"a\nb\"}]}",
            "{\"name\": \"c\",\n\"messages\": [\n{\"id\": 1}\n{\"id\": 2}]}",
            "{\"name\": \"c\",\n\"messages\": [\n{\"id\": 1},\n]}",
            "{\"name\": \"c\",\n\"x\": [1,\n 2,\n {\"a\" 1}]}",
            "{\"name\": \"c\",\n\"x\": {\"k\": [1, 2}}",
            "{\"name\": \"c\",\n\"messages\": [\n{\"id\": 1},\n{\"id\": 2",
            "{\"name\": \"c\",\n\"messages\": [\n{\"id\": 1}\n",
            "{\"name\": \"c\",\n \"id\": 1\n}\n\n  x",
            "{\"name\": \"c\",\n 5: 1}",
        ];
        for input in cases {
            let r = run_all(input);
            assert_eq!(line_of(&r), serde_line(input), "{input:?}: {:?}", r.result);
            assert!(line_of(&r) > 1, "{input:?}");
        }
        // Columns are absolute too: the bad `tru` starts at column 10.
        let r = run(cases[0].as_bytes(), CHUNK);
        match r.result {
            Err(Error::Json {
                position: Position::LineColumn { line: 5, column },
                reason,
            }) => {
                assert!((10..=13).contains(&column), "{column} {reason}");
                assert!(
                    reason.ends_with(&format!("line 5 column {column}")),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.messages.len(), 1);
    }

    // Proves odd roots and shapes are errors, never panics.
    #[test]
    fn odd_inputs() {
        for input in [
            "",
            "   ",
            "[]",
            "null",
            "\"x\"",
            "{",
            "{\"messages\": {}}",
            "{\"messages\": 5}",
            "{\"chats\": {\"list\": 5}}",
            "{\"chats\": {\"list\": [5]}}",
            "{}{}",
            "{\"a\"",
            "{\"a\":",
            "\"\\",
            "{\"messages\": [\"\\",
            "{\"messages\": [{\"id\": 1}, -]}",
        ] {
            let r = run_all(input);
            assert!(r.result.is_err(), "{input:?}");
        }
        assert!(run_all("{}").result.is_ok());
        assert!(run_all(" {\"chats\": null} \n").result.is_ok());
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(run_all(&deep).result.is_err(), "recursion limit");
    }

    // Proves the hand-written date reader agrees with chrono's format.
    #[test]
    fn fast_local_time_matches_chrono() {
        for s in [
            "2023-03-01T10:00:00",
            "1999-12-31T23:59:59",
            "2024-02-29T00:00:00",
            "2023-02-29T00:00:00",
            "2023-13-01T00:00:00",
            "2023-01-01T24:00:00",
            "2023-01-01T10:00:60",
            "2023-01-01 10:00:00",
            "2023-1-01T10:00:000",
            "+023-01-01T10:00:00",
            "２023-01-01T10:00:0",
            "",
        ] {
            let chrono = NaiveDateTime::parse_from_str(s, JSON_DATE_FORMAT).ok();
            if let Some(fast) = fast_local_time(s.as_bytes()) {
                assert_eq!(Some(fast), chrono, "{s}");
            }
            let local = Scalar::Str(s.to_owned());
            let got = json_date(&local, &Scalar::Absent)
                .ok()
                .flatten()
                .map(|d| d.local);
            assert_eq!(got, chrono, "{s}");
        }
    }

    // Proves the fixtures parse identically whatever the refill size.
    #[test]
    fn fixtures_with_tiny_chunks() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/json");
        for name in ["single_chat", "full_account", "old_export"] {
            let input = std::fs::read_to_string(dir.join(name).join("result.json"))
                .expect("fixture readable");
            let r = run_all(&input);
            assert!(r.result.is_ok(), "{name}: {:?}", r.result);
            assert!(!r.messages.is_empty(), "{name}");
        }
    }
}

/// `msg` with every double-quoted value removed: serde quotes the offending
/// string (`invalid type: string "SECRET", expected i64`), and an error text
/// must never carry a file's content (it reaches API answers and logs).
fn without_quoted_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        // Skip to the closing quote (serde escapes inner quotes as \").
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        if out.ends_with(' ') {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod redaction_tests {
    // Proves serde's quoted values are dropped from error texts, the rest kept.
    #[test]
    fn quoted_values_are_dropped() {
        assert_eq!(
            super::without_quoted_values(
                r#"invalid type: string "SECRET \"x\" 123", expected i64"#
            ),
            "invalid type: string, expected i64"
        );
        assert_eq!(
            super::without_quoted_values("missing field `id`"),
            "missing field `id`"
        );
    }
}

//! Body format detection and streaming record splitting.
//!
//! Bytes arrive in chunks of any size; [`Splitter`] runs a byte-at-a-time
//! JSON syntax checker (RFC 8259, UTF-8 and surrogate pairs included) and
//! hands out each top-level object as soon as its closing brace arrives.
//! Only the record being read is buffered, so memory is bounded by the
//! largest record (and [`Splitter::with_max_record`] can bound that too).

use serde::Serialize;

/// How the records of a body are laid out, detected from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// Exactly one top-level object.
    Object,
    /// A top-level array whose elements are all objects.
    Array,
    /// Two or more objects one after another, separated by newlines or any
    /// whitespace (or nothing).
    Ndjson,
}

/// One top-level object of a body, as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 0-based position among the body's records.
    pub index: usize,
    /// 1-based line of the opening `{`.
    pub line: usize,
    /// 1-based column (in characters) of the opening `{`.
    pub column: usize,
    /// The object's bytes, from `{` to `}` inclusive.
    pub bytes: Vec<u8>,
}

impl Record {
    /// Decodes the record; an error carries its position in the whole body.
    /// The splitter has checked the syntax, so this fails only on what JSON
    /// allows but serde_json refuses (numbers beyond `f64`).
    pub fn parse(&self) -> Result<serde_json::Value, SyntaxError> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            let (line, column) = if e.line() <= 1 {
                (self.line, self.column + e.column().saturating_sub(1))
            } else {
                (self.line + e.line() - 1, e.column())
            };
            let text = e.to_string();
            let reason = match text.rfind(" at line ") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            SyntaxError {
                line,
                column,
                reason,
            }
        })
    }
}

/// Where and why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct SyntaxError {
    /// 1-based line of the offending byte (or of the end of the body).
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What was wrong, e.g. `expected ':'` or `array element 3 is not an object`.
    pub reason: String,
}

/// Deepest nesting accepted inside a record (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Where we are outside records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// Nothing but (part of) a byte order mark and whitespace so far.
    Start,
    /// Between top-level objects.
    Between,
    /// Right after the outer `[`.
    ArrayOpen,
    /// After a `,` of the outer array.
    ArrayComma,
    /// After an element of the outer array.
    ArrayAfter,
    /// After the outer `]`.
    Done,
}

/// Where we are inside a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    KeyOrEnd,
    Key,
    Colon,
    Value,
    ValueOrEnd,
    After,
    Str,
    Escape,
    Hex { left: u8, code: u16, low: bool },
    LowBackslash,
    LowU,
    Utf8 { left: u8, lo: u8, hi: u8 },
    Num(Num),
    Lit { word: &'static [u8], at: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    fn next(self, b: u8) -> Option<Num> {
        use Num::*;
        match (self, b) {
            (Minus, b'0') => Some(Zero),
            (Minus | Int, b'0'..=b'9') => Some(Int),
            (Zero | Int, b'.') => Some(Dot),
            (Dot | Frac, b'0'..=b'9') => Some(Frac),
            (Zero | Int | Frac, b'e' | b'E') => Some(E),
            (E, b'+' | b'-') => Some(ESign),
            (E | ESign | Exp, b'0'..=b'9') => Some(Exp),
            _ => None,
        }
    }

    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// Push-style record splitter; see the module doc.
#[derive(Debug)]
pub struct Splitter {
    top: Top,
    state: In,
    stack: Vec<u8>,
    key: bool,
    buf: Vec<u8>,
    seen: u64,
    bom: u64,
    line: usize,
    column: usize,
    start: (usize, usize),
    records: usize,
    format: Option<BodyFormat>,
    max_record: Option<usize>,
    failed: Option<SyntaxError>,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// A splitter for a new body, with no bound on record size.
    pub fn new() -> Self {
        Splitter {
            top: Top::Start,
            state: In::After,
            stack: Vec::new(),
            key: false,
            buf: Vec::new(),
            seen: 0,
            bom: 0,
            line: 1,
            column: 1,
            start: (1, 1),
            records: 0,
            format: None,
            max_record: None,
            failed: None,
        }
    }

    /// A splitter that rejects any record larger than `max_bytes`.
    pub fn with_max_record(max_bytes: usize) -> Self {
        Splitter {
            max_record: Some(max_bytes),
            ..Self::new()
        }
    }

    /// The layout seen so far (`Object` until a second object shows up).
    pub fn format(&self) -> Option<BodyFormat> {
        self.format
    }

    /// Feeds the next chunk; returns the records completed by it. After an
    /// error every later call returns the same error, and the records that
    /// the failing chunk had completed are dropped with it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Record>, SyntaxError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        for &b in chunk {
            if let Err(reason) = self.byte(b, &mut out) {
                return Err(self.fail(reason));
            }
            self.seen += 1;
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if b & 0xC0 != 0x80 {
                self.column += 1;
            }
        }
        Ok(out)
    }

    /// Ends the body: returns its format, or the error if it is empty,
    /// malformed or cut off.
    pub fn finish(mut self) -> Result<BodyFormat, SyntaxError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let reason = if !self.stack.is_empty() {
            format!("unexpected end of body inside record {}", self.records)
        } else {
            match (self.top, self.format) {
                (Top::Start, _) | (_, None) => "empty body".to_string(),
                (Top::ArrayOpen | Top::ArrayComma | Top::ArrayAfter, _) => {
                    "unexpected end of body: the array is not closed".to_string()
                }
                (Top::Between | Top::Done, Some(format)) => return Ok(format),
            }
        };
        Err(self.fail(reason))
    }

    fn fail(&mut self, reason: String) -> SyntaxError {
        let e = SyntaxError {
            line: self.line,
            column: self.column,
            reason,
        };
        self.failed = Some(e.clone());
        e
    }

    fn open_record(&mut self) {
        self.start = (self.line, self.column);
        self.buf.clear();
        self.buf.push(b'{');
        self.stack.push(b'{');
        self.state = In::KeyOrEnd;
    }

    fn top_byte(&mut self, b: u8) -> Result<(), String> {
        let n = self.records;
        match self.top {
            Top::Start
                if self.seen < 3 && self.seen == self.bom && b == BOM[self.seen as usize] =>
            {
                // The BOM takes no column: the caller adds 1 for its first
                // byte only (the other two are UTF-8 continuation bytes).
                self.column -= usize::from(self.bom == 0);
                self.bom += 1;
            }
            Top::Start if self.bom > 0 && self.bom < 3 => {
                return Err("invalid byte order mark".into());
            }
            _ if is_ws(b) => {}
            Top::Start => match b {
                b'{' => {
                    self.format = Some(BodyFormat::Object);
                    self.open_record();
                }
                b'[' => {
                    self.format = Some(BodyFormat::Array);
                    self.top = Top::ArrayOpen;
                }
                _ => {
                    return Err(format!(
                        "expected '{{' or '[' to start the body, found {}",
                        show(b)
                    ))
                }
            },
            Top::Between if b == b'{' => {
                self.format = Some(BodyFormat::Ndjson);
                self.open_record();
            }
            Top::Between => return Err(format!("record {n} is not an object (found {})", show(b))),
            Top::ArrayOpen | Top::ArrayComma if b == b'{' => self.open_record(),
            Top::ArrayOpen if b == b']' => self.top = Top::Done,
            Top::ArrayComma if b == b']' => return Err("trailing comma in array".into()),
            Top::ArrayOpen | Top::ArrayComma => {
                return Err(format!("array element {n} is not an object"))
            }
            Top::ArrayAfter if b == b',' => self.top = Top::ArrayComma,
            Top::ArrayAfter if b == b']' => self.top = Top::Done,
            Top::ArrayAfter => return Err(format!("expected ',' or ']', found {}", show(b))),
            Top::Done => return Err("unexpected data after the end of the array".into()),
        }
        Ok(())
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Record>) -> Result<(), String> {
        if self.stack.is_empty() {
            return self.top_byte(b);
        }
        self.buf.push(b);
        if let Some(max) = self.max_record {
            if self.buf.len() > max {
                return Err(format!(
                    "record {} is larger than {max} bytes",
                    self.records
                ));
            }
        }
        loop {
            match self.state {
                In::Num(n) => match n.next(b) {
                    Some(next) => self.state = In::Num(next),
                    None if n.complete() => {
                        self.state = In::After;
                        continue;
                    }
                    None => return Err(format!("invalid number, found {}", show(b))),
                },
                In::Lit { word, at } => {
                    if word.get(at) != Some(&b) {
                        return Err(format!("invalid literal, found {}", show(b)));
                    }
                    self.state = if at + 1 == word.len() {
                        In::After
                    } else {
                        In::Lit { word, at: at + 1 }
                    };
                }
                In::Str => self.string_byte(b)?,
                In::Escape => {
                    self.state = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => In::Str,
                        b'u' => In::Hex {
                            left: 4,
                            code: 0,
                            low: false,
                        },
                        _ => return Err(format!("invalid escape '\\{}'", b as char)),
                    }
                }
                In::Hex { left, code, low } => {
                    let digit = (b as char)
                        .to_digit(16)
                        .ok_or_else(|| format!("invalid \\u escape, found {}", show(b)))?;
                    let code = code * 16 + digit as u16;
                    self.state = match (left, low, code) {
                        (2.., _, _) => In::Hex {
                            left: left - 1,
                            code,
                            low,
                        },
                        (_, false, 0xD800..=0xDBFF) => In::LowBackslash,
                        (_, true, 0xDC00..=0xDFFF) => In::Str,
                        (_, true, _) | (_, false, 0xDC00..=0xDFFF) => {
                            return Err("unpaired surrogate in \\u escape".into())
                        }
                        _ => In::Str,
                    };
                }
                In::LowBackslash | In::LowU => {
                    self.state = match (self.state, b) {
                        (In::LowBackslash, b'\\') => In::LowU,
                        (In::LowU, b'u') => In::Hex {
                            left: 4,
                            code: 0,
                            low: true,
                        },
                        _ => return Err("unpaired surrogate in \\u escape".into()),
                    }
                }
                In::Utf8 { left, lo, hi } => {
                    if !(lo..=hi).contains(&b) {
                        return Err("invalid UTF-8 in string".into());
                    }
                    self.state = if left == 1 {
                        In::Str
                    } else {
                        In::Utf8 {
                            left: left - 1,
                            lo: 0x80,
                            hi: 0xBF,
                        }
                    };
                }
                _ if is_ws(b) => {}
                In::KeyOrEnd | In::Key if b == b'"' => {
                    self.key = true;
                    self.state = In::Str;
                }
                In::KeyOrEnd if b == b'}' => self.close(out),
                In::KeyOrEnd | In::Key => {
                    return Err(format!("expected a string key, found {}", show(b)))
                }
                In::Colon if b == b':' => self.state = In::Value,
                In::Colon => return Err(format!("expected ':', found {}", show(b))),
                In::ValueOrEnd if b == b']' => self.close(out),
                In::Value | In::ValueOrEnd => self.value(b)?,
                In::After => {
                    let inner = self.stack.last().copied().unwrap_or(b'{');
                    match (inner, b) {
                        (b'{', b',') => self.state = In::Key,
                        (b'[', b',') => self.state = In::Value,
                        (b'{', b'}') | (b'[', b']') => self.close(out),
                        (b'{', _) => {
                            return Err(format!("expected ',' or '}}', found {}", show(b)))
                        }
                        _ => return Err(format!("expected ',' or ']', found {}", show(b))),
                    }
                }
            }
            return Ok(());
        }
    }

    fn string_byte(&mut self, b: u8) -> Result<(), String> {
        let (left, lo, hi) = match b {
            b'"' => {
                self.state = if self.key { In::Colon } else { In::After };
                self.key = false;
                return Ok(());
            }
            b'\\' => {
                self.state = In::Escape;
                return Ok(());
            }
            0x00..=0x1F => return Err("control character in string".into()),
            0x20..=0x7F => return Ok(()),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xE1..=0xEF => (2, 0x80, 0xBF),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err("invalid UTF-8 in string".into()),
        };
        self.state = In::Utf8 { left, lo, hi };
        Ok(())
    }

    fn value(&mut self, b: u8) -> Result<(), String> {
        self.state = match b {
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH}"));
                }
                self.stack.push(b);
                if b == b'{' {
                    In::KeyOrEnd
                } else {
                    In::ValueOrEnd
                }
            }
            b'"' => In::Str,
            b'-' => In::Num(Num::Minus),
            b'0' => In::Num(Num::Zero),
            b'1'..=b'9' => In::Num(Num::Int),
            b't' => In::Lit {
                word: b"true",
                at: 1,
            },
            b'f' => In::Lit {
                word: b"false",
                at: 1,
            },
            b'n' => In::Lit {
                word: b"null",
                at: 1,
            },
            _ => return Err(format!("expected a value, found {}", show(b))),
        };
        Ok(())
    }

    fn close(&mut self, out: &mut Vec<Record>) {
        self.stack.pop();
        self.state = In::After;
        if self.stack.is_empty() {
            out.push(Record {
                index: self.records,
                line: self.start.0,
                column: self.start.1,
                bytes: std::mem::take(&mut self.buf),
            });
            self.records += 1;
            self.top = if self.format == Some(BodyFormat::Array) {
                Top::ArrayAfter
            } else {
                Top::Between
            };
        }
    }
}

/// Splits a whole body at once.
pub fn split(body: &[u8]) -> Result<(BodyFormat, Vec<Record>), SyntaxError> {
    let mut splitter = Splitter::new();
    let records = splitter.push(body)?;
    Ok((splitter.finish()?, records))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Feeds `body` in chunks of `size` (0 = whole); records, then the
    /// format or the error.
    fn run(body: &[u8], size: usize) -> (Vec<Record>, Result<BodyFormat, SyntaxError>) {
        let mut s = Splitter::new();
        let mut records = Vec::new();
        for chunk in body.chunks(if size == 0 { body.len().max(1) } else { size }) {
            match s.push(chunk) {
                Ok(r) => records.extend(r),
                Err(e) => return (records, Err(e)),
            }
        }
        (records, s.finish())
    }

    /// Same outcome for chunk sizes 1, 7, 64 and whole; returns it.
    fn each_size(body: &[u8]) -> (Vec<Record>, Result<BodyFormat, SyntaxError>) {
        let whole = run(body, 0);
        for size in [1, 7, 64] {
            let got = run(body, size);
            assert_eq!(got.1, whole.1, "chunk size {size}");
            if whole.1.is_ok() {
                assert_eq!(got.0, whole.0, "chunk size {size}");
            }
        }
        whole
    }

    fn err(body: &str) -> (usize, usize, String) {
        match each_size(body.as_bytes()).1 {
            Err(e) => (e.line, e.column, e.reason),
            Ok(f) => panic!("{body:?} was accepted as {f:?}"),
        }
    }

    fn texts(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect()
    }

    // Proves the three layouts are detected and split with index and line.
    #[test]
    fn formats_and_positions() {
        let (r, f) = each_size(b"{\"a\": 1}");
        assert_eq!(
            (f, texts(&r)),
            (Ok(BodyFormat::Object), vec!["{\"a\": 1}".to_string()])
        );

        let (r, f) = each_size(b"[\n  {\"a\": [1, {\"b\": null}]},\n  {}\n]\n");
        assert_eq!(f, Ok(BodyFormat::Array));
        assert_eq!(texts(&r), ["{\"a\": [1, {\"b\": null}]}", "{}"]);
        assert_eq!(
            r.iter()
                .map(|r| (r.index, r.line, r.column))
                .collect::<Vec<_>>(),
            [(0, 2, 3), (1, 3, 3)]
        );

        let (r, f) = each_size(b"{\"n\":1}\n{\"n\":2}\r\n\n{\"n\":3}");
        assert_eq!(f, Ok(BodyFormat::Ndjson));
        assert_eq!(
            r.iter().map(|r| (r.index, r.line)).collect::<Vec<_>>(),
            [(0, 1), (1, 2), (2, 4)]
        );

        let (r, f) = each_size(b"{\"a\":\"}{\"} {\"b\":2}{}\t{\"c\":\"\\\"\"}");
        assert_eq!(f, Ok(BodyFormat::Ndjson));
        assert_eq!(
            texts(&r),
            ["{\"a\":\"}{\"}", "{\"b\":2}", "{}", "{\"c\":\"\\\"\"}"]
        );

        let (r, f) = each_size(b"[]");
        assert_eq!((r.len(), f), (0, Ok(BodyFormat::Array)));
    }

    // Proves a byte order mark and leading whitespace are skipped.
    #[test]
    fn bom_and_whitespace() {
        let (r, f) = each_size(b"\xEF\xBB\xBF \r\n\t{\"a\":1}");
        assert_eq!((f, r[0].line, r[0].column), (Ok(BodyFormat::Object), 2, 2));
        assert_eq!(each_size("\u{FEFF}{}".as_bytes()).0[0].column, 1);
        assert_eq!(
            err("\u{FEFF}\u{FEFF}{}").2,
            "expected '{' or '[' to start the body, found byte 0xEF"
        );
        assert_eq!(
            each_size(b"\xEF\xBB{}").1.map_err(|e| e.reason),
            Err("invalid byte order mark".into())
        );
    }

    // Proves an empty or blank body is the error "empty body".
    #[test]
    fn empty_body() {
        for body in ["", "   \n\t ", "\u{FEFF}", "\u{FEFF}\n"] {
            assert_eq!(err(body).2, "empty body", "{body:?}");
        }
    }

    // Proves an array element that is not an object is named by its index.
    #[test]
    fn non_object_elements() {
        assert_eq!(
            err("[{\"a\":1},\n {}, 3]"),
            (2, 6, "array element 2 is not an object".into())
        );
        assert_eq!(
            err("[\"x\"]"),
            (1, 2, "array element 0 is not an object".into())
        );
        assert_eq!(err("{}\n[1]").2, "record 1 is not an object (found '[')");
        assert_eq!(
            err("42").2,
            "expected '{' or '[' to start the body, found '4'"
        );
    }

    // Proves malformed JSON is reported at the 1-based line and column of the fault.
    #[test]
    fn error_positions() {
        // line:column|reason|body
        let cases = [
            "1:6|expected ':', found '1'|{\"a\" 1}",
            "3:7|expected ':', found '2'|{\n  \"a\": 1,\n  \"b\" 2\n}",
            "1:8|expected a string key, found '}'|{\"a\":1,}",
            "1:8|expected ',' or '}', found '\"'|{\"a\":1 \"b\":2}",
            "1:9|expected ',' or ']', found '2'|{\"a\":[1 2]}",
            "1:8|expected ',' or ']', found '}'|{\"a\":[1}",
            "1:9|invalid literal, found '}'|{\"a\":tru}",
            "1:7|invalid number, found '}'|{\"a\":-}",
            "1:8|invalid number, found '}'|{\"a\":1.}",
            "1:9|invalid number, found '}'|{\"a\":1e+}",
            "1:7|expected ',' or '}', found '1'|{\"a\":01}",
            "1:6|expected a value, found '''|{\"a\":'x'}",
            "1:8|invalid escape '\\x'|{\"a\":\"\\x\"}",
            "1:11|invalid \\u escape, found 'G'|{\"a\":\"\\u12G4\"}",
            "1:13|unpaired surrogate in \\u escape|{\"a\":\"\\uD800x\"}",
            "1:12|unpaired surrogate in \\u escape|{\"a\":\"\\uDC00\"}",
            "1:7|control character in string|{\"a\":\"\t\"}",
            "1:16|expected ':', found '}'|{\"é\": \"€\", \"b\" }",
            "1:6|unexpected data after the end of the array|[{}] {}",
            "1:5|trailing comma in array|[{},]",
            "1:5|expected ',' or ']', found '{'|[{} {}]",
            "1:7|unexpected end of body inside record 0|{\"a\":1",
            "2:8|unexpected end of body inside record 1|{}\n{\"a\":\"x",
            "1:4|unexpected end of body: the array is not closed|[{}",
        ];
        for case in cases {
            let (at, rest) = case.split_once('|').unwrap();
            let (reason, body) = rest.split_once('|').unwrap();
            let (line, column) = at.split_once(':').unwrap();
            let want = (
                line.parse().unwrap(),
                column.parse().unwrap(),
                reason.to_string(),
            );
            assert_eq!(err(body), want, "{body:?}");
        }
    }

    // Proves strings are checked as UTF-8 and valid escapes and pairs pass.
    #[test]
    fn strings_and_utf8() {
        let good = "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00 é € 😀\"}";
        let (r, f) = each_size(good.as_bytes());
        assert_eq!(f, Ok(BodyFormat::Object));
        assert_eq!(
            r[0].parse().map(|v| v["s"].as_str().map(str::len)),
            Ok(Some(26))
        );
        for bad in [
            &b"{\"a\":\"\xFF\"}"[..],
            b"{\"a\":\"\xC3\"}",
            b"{\"a\":\"\xE0\x80\x80\"}",
            b"{\"a\":\"\xED\xA0\x80\"}",
            b"{\"a\":\"\xF5\"}",
        ] {
            assert_eq!(
                each_size(bad).1.map_err(|e| e.reason),
                Err("invalid UTF-8 in string".into()),
                "{bad:?}"
            );
        }
    }

    // Proves nesting is capped at MAX_DEPTH and records at the configured size.
    #[test]
    fn limits() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(split(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            split(deep(MAX_DEPTH + 1).as_bytes()).map_err(|e| e.reason),
            Err("nesting deeper than 128".into())
        );

        let mut s = Splitter::with_max_record(18);
        assert_eq!(s.push(b"{\"a\":\"0123456789\"}\n").map(|r| r.len()), Ok(1));
        let e = s.push(b"{\"a\":\"01234567890\"}");
        assert_eq!(
            e.map_err(|e| (e.line, e.column, e.reason)),
            Err((2, 19, "record 1 is larger than 18 bytes".into()))
        );
        assert!(s.push(b"{}").is_err(), "errors are sticky");
    }

    // Proves Record::parse decodes records and places serde_json's errors in the body.
    #[test]
    fn record_parse() {
        let (records, _) = each_size(b"\n  {\"a\": [1, 2.5, \"x\"], \"b\": {\"c\": null}}");
        assert_eq!(
            records[0].parse(),
            Ok(json!({"a": [1, 2.5, "x"], "b": {"c": null}}))
        );
        let (records, f) = each_size(b"{}\n  {\"a\": 1e999}");
        assert!(f.is_ok(), "well-formed JSON");
        let e = records[1].parse().map_err(|e| (e.line, e.reason));
        assert_eq!(e, Err((2, "number out of range".to_string())));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1_000_000i32..1_000_000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
            "[ -~é€😀\n\"\\\\]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::btree_map("[a-z{}\"]{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-z]{1,5}", arb_json(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Splits `body` at the given cut points.
    fn run_cuts(body: &[u8], cuts: &[usize]) -> (Vec<Record>, Result<BodyFormat, SyntaxError>) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut s = Splitter::new();
        let (mut records, mut at) = (Vec::new(), 0);
        for cut in cuts.into_iter().chain([body.len()]) {
            match s.push(&body[at..cut]) {
                Ok(r) => records.extend(r),
                Err(e) => return (records, Err(e)),
            }
            at = cut;
        }
        (records, s.finish())
    }

    proptest! {
        // Proves any chunking yields the same records, each decoding to its source object.
        #[test]
        fn chunking_does_not_matter(
            docs in prop::collection::vec(arb_object(), 1..6),
            layout in 0..3u8,
            cuts in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let pretty = |d: &Value| serde_json::to_string_pretty(d).unwrap();
            let (body, want) = match (layout, docs.len()) {
                (0, n) => (docs.iter().map(|d| format!("{d}\n")).collect(), n),
                (1, _) => (pretty(&Value::from(docs.clone())), 0),
                (_, n) => (docs.iter().map(pretty).collect::<Vec<_>>().join(" "), n),
            };
            let want = match want {
                0 => BodyFormat::Array,
                1 => BodyFormat::Object,
                _ => BodyFormat::Ndjson,
            };
            let (format, whole) = split(body.as_bytes()).unwrap();
            let decoded: Vec<Value> = whole.iter().map(|r| r.parse().unwrap()).collect();
            prop_assert_eq!(decoded, docs);
            prop_assert_eq!(format, want);
            let (records, result) = run_cuts(body.as_bytes(), &cuts);
            prop_assert_eq!(result, Ok(want));
            prop_assert_eq!(records, whole);
        }

        // Proves a corrupted body gives the same error (or records) whatever the chunking.
        #[test]
        fn corruption_is_chunking_independent(
            docs in prop::collection::vec(arb_object(), 1..4),
            at in any::<usize>(),
            byte in any::<u8>(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut body = crate::generate::ndjson(&docs);
            let i = at % body.len();
            body[i] = byte;
            let whole = run_cuts(&body, &[]);
            let (records, result) = run_cuts(&body, &cuts);
            prop_assert_eq!(&result, &whole.1);
            if result.is_ok() {
                prop_assert_eq!(&records, &whole.0);
                // Whatever the splitter accepts, serde_json accepts too, except
                // numbers beyond f64 (`1e309`): JSON's grammar (RFC 8259) has
                // no range, so that is not a syntax error of the body; whoever
                // decodes the record into numbers reports it for that record.
                for r in &records {
                    let res = serde_json::from_slice::<Value>(&r.bytes);
                    let ok = match &res {
                        Ok(_) => true,
                        Err(e) => e.to_string().starts_with("number out of range"),
                    };
                    prop_assert!(ok, "{:?}: {:?}", String::from_utf8_lossy(&r.bytes), res.err());
                }
            }
        }
    }
}

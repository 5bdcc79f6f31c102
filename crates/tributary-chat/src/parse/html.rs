//! Streaming reader of Telegram Desktop's HTML export pages
//! (`messages.html`, `messages2.html`, ...).
//!
//! A small tolerant tokenizer reads tags and text straight from the reader
//! (no DOM; memory is bounded by the longest single token, capped at
//! [`MAX_TOKEN`]), and a state machine over the open-element stack picks out
//! what the export writes:
//!
//! - chat name: text of `.text` inside `div.page_header`;
//! - `div.message.default#message<ID>`: date from the `title` of the
//!   `.date` element (`DD.MM.YYYY HH:MM:SS[ UTC+HH:MM]`), sender from
//!   `.from_name` (a trailing ` via @bot` goes to `via_bot`), `joined`
//!   messages take the previous message's sender (within the file; the first
//!   message of a page is never joined), the original author of a forward
//!   from `.from_name` inside `div.forwarded.body` (joined forwards inherit
//!   it too), `reply_to` from the `#go_to_message<ID>` link of `.reply_to`,
//!   media type from the classes inside `.media_wrap`, text from `div.text`
//!   (`<br>` -> `\n`, entities decoded, links kept as [`Link`]s);
//! - `div.message.service#message<ID>`: a service message whose text is the
//!   `.body` text; the export gives it no date (`date: None`);
//! - negative ids are date separators, not messages: skipped silently.
//!
//! Unrecognized markup is ignored; a message lacking a usable id or date is
//! skipped and reported; only an unreadable stream or a token over
//! [`MAX_TOKEN`] stops the file.

use std::io::BufRead;

use chrono::NaiveDateTime;

use super::Sink;
use crate::domain::message::parse_offset;
use crate::domain::{Link, Message, MessageDate, MessageKind};
use crate::error::{Error, Position, Result};

/// Longest tag or text run accepted (bytes).
pub const MAX_TOKEN: usize = 16 << 20;

/// Local-time format in the `title` of HTML date elements.
pub const HTML_DATE_FORMAT: &str = "%d.%m.%Y %H:%M:%S";

/// Parses one HTML export page from `reader` into `sink`.
pub(crate) fn parse_html(reader: &mut dyn BufRead, sink: &mut Sink<'_>) -> Result<()> {
    let mut tok = Tokenizer::new(reader);
    let mut st = State::default();
    loop {
        match tok.next()? {
            Token::Eof => break,
            Token::Text(t) => st.text(&t),
            Token::Open {
                name,
                attrs,
                self_closing,
            } => st.open(name, &attrs, self_closing, sink),
            Token::Close(name) => st.close(&name, sink),
        }
    }
    // A page that ends inside a message was cut short: that message is
    // incomplete, so it is not delivered and the file is reported.
    if let Some(cur) = st.cur.take() {
        if !cur.separator {
            return Err(Error::Html {
                position: Position::Byte(tok.pos),
                reason: format!(
                    "file ends inside message {}",
                    cur.id.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
                ),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- tokenizer

#[derive(Debug, PartialEq)]
enum Token {
    Open {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    Close(String),
    Text(String),
    Eof,
}

struct Tokenizer<'r> {
    r: &'r mut dyn BufRead,
    pos: u64,
    buf: Vec<u8>,
}

impl<'r> Tokenizer<'r> {
    fn new(r: &'r mut dyn BufRead) -> Self {
        Tokenizer {
            r,
            pos: 0,
            buf: Vec::new(),
        }
    }

    fn io_err(&self, e: std::io::Error) -> Error {
        Error::Read {
            position: Position::Byte(self.pos),
            source: e,
        }
    }

    /// Appends bytes up to (not including) `delim` to `self.buf`, consuming
    /// the delimiter too. Returns whether the delimiter was found.
    fn read_until(&mut self, delim: u8) -> Result<bool> {
        loop {
            let chunk = match self.r.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            };
            if chunk.is_empty() {
                return Ok(false);
            }
            let (take, found) = match chunk.iter().position(|b| *b == delim) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if self.buf.len() + take > MAX_TOKEN {
                return Err(Error::Html {
                    position: Position::Byte(self.pos),
                    reason: format!("token longer than {MAX_TOKEN} bytes"),
                });
            }
            self.buf.extend_from_slice(&chunk[..take]);
            let used = take + usize::from(found);
            self.r.consume(used);
            self.pos += used as u64;
            if found {
                return Ok(true);
            }
        }
    }

    fn peek_byte(&mut self) -> Result<Option<u8>> {
        loop {
            match self.r.fill_buf() {
                Ok(c) => return Ok(c.first().copied()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    fn next(&mut self) -> Result<Token> {
        loop {
            let Some(first) = self.peek_byte()? else {
                return Ok(Token::Eof);
            };
            self.buf.clear();
            if first != b'<' {
                // Text up to the next '<' (left in the stream).
                loop {
                    let chunk = match self.r.fill_buf() {
                        Ok(c) => c,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.io_err(e)),
                    };
                    if chunk.is_empty() {
                        break;
                    }
                    let (take, found) = match chunk.iter().position(|b| *b == b'<') {
                        Some(i) => (i, true),
                        None => (chunk.len(), false),
                    };
                    if self.buf.len() + take > MAX_TOKEN {
                        return Err(Error::Html {
                            position: Position::Byte(self.pos),
                            reason: format!("text longer than {MAX_TOKEN} bytes"),
                        });
                    }
                    self.buf.extend_from_slice(&chunk[..take]);
                    self.r.consume(take);
                    self.pos += take as u64;
                    if found {
                        break;
                    }
                }
                return Ok(Token::Text(decode_entities(&String::from_utf8_lossy(
                    &self.buf,
                ))));
            }
            // A tag: consume '<', then read to a '>' outside quotes.
            self.r.consume(1);
            self.pos += 1;
            let start = self.pos;
            let mut closed = self.read_until(b'>')?;
            if self.buf.starts_with(b"!--") {
                while closed && !(self.buf.len() >= 5 && self.buf.ends_with(b"--")) {
                    self.buf.push(b'>');
                    closed = self.read_until(b'>')?;
                }
                continue; // comment
            }
            while closed && in_quote(&self.buf) {
                self.buf.push(b'>');
                closed = self.read_until(b'>')?;
            }
            if !closed {
                return Err(Error::Html {
                    position: Position::Byte(start.saturating_sub(1)),
                    reason: "unterminated tag at end of file".into(),
                });
            }
            match self.buf.first() {
                Some(b'!' | b'?') => continue, // doctype, processing instruction
                Some(b'/') => {
                    let name = tag_name(&self.buf[1..]);
                    return Ok(Token::Close(name));
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let (name, attrs, self_closing) = parse_tag(&self.buf);
                    return Ok(Token::Open {
                        name,
                        attrs,
                        self_closing,
                    });
                }
                // "<" followed by something that is not a tag: literal text.
                _ => {
                    let mut text = String::from("<");
                    text.push_str(&String::from_utf8_lossy(&self.buf));
                    text.push('>');
                    return Ok(Token::Text(decode_entities(&text)));
                }
            }
        }
    }
}

/// Whether `tag` (the bytes between `<` and a `>`) ends inside an attribute
/// value quote, i.e. the `>` belonged to the value.
fn in_quote(tag: &[u8]) -> bool {
    let mut quote: Option<u8> = None;
    let mut prev_eq = false;
    for &b in tag {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => {
                if (b == b'"' || b == b'\'') && prev_eq {
                    quote = Some(b);
                }
                if !b.is_ascii_whitespace() {
                    prev_eq = b == b'=';
                }
            }
        }
    }
    quote.is_some()
}

fn tag_name(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase()
}

/// Splits `name attr="v" attr2='v' attr3=v attr4 /` into its parts.
fn parse_tag(bytes: &[u8]) -> (String, Vec<(String, String)>, bool) {
    let name = tag_name(bytes);
    let mut i = name.len();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    let n = bytes.len();
    while i < n {
        while i < n && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            break;
        }
        if bytes[i] == b'/' {
            self_closing = i + 1 == n || bytes[i + 1..].iter().all(|b| b.is_ascii_whitespace());
            i += 1;
            continue;
        }
        let s = i;
        while i < n && !bytes[i].is_ascii_whitespace() && bytes[i] != b'=' && bytes[i] != b'/' {
            i += 1;
        }
        let key = String::from_utf8_lossy(&bytes[s..i]).to_ascii_lowercase();
        while i < n && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < n && bytes[i] == b'=' {
            i += 1;
            while i < n && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < n && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let q = bytes[i];
                i += 1;
                let vs = i;
                while i < n && bytes[i] != q {
                    i += 1;
                }
                value = decode_entities(&String::from_utf8_lossy(&bytes[vs..i]));
                i = (i + 1).min(n);
            } else {
                let vs = i;
                while i < n && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = decode_entities(&String::from_utf8_lossy(&bytes[vs..i]));
            }
        }
        if !key.is_empty() {
            attrs.push((key, value));
        }
    }
    (name, attrs, self_closing)
}

/// Decodes `&amp;`-style named entities Telegram writes and numeric ones;
/// anything unrecognized stays as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(j, _)| j + 1);
        let decoded = end.and_then(|e| decode_one(&rest[1..e]).map(|c| (c, e)));
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "laquo" => '«',
        "raquo" => '»',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "copy" => '©',
        _ => return None,
    })
}

// ------------------------------------------------------------ state machine

const VOID: [&str; 14] = [
    "br", "img", "meta", "link", "input", "hr", "wbr", "source", "area", "base", "col", "embed",
    "param", "track",
];

/// Where text inside an element goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    ChatName,
    From,
    Forwarded,
    Text,
    Service,
    /// Text here is not part of anything we keep (dates, reply previews).
    Suppress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    None,
    PageHeader,
    Message,
    ForwardedBody,
    ReplyTo,
    MediaWrap,
    /// A link inside message text: (byte offset in the text, href).
    Link,
}

#[derive(Debug)]
struct Frame {
    name: String,
    role: Role,
    capture: Option<Capture>,
    href: Option<(usize, String)>,
}

/// Text with Telegram's block formatting stripped: the exporter writes a
/// newline right after `<div class="text">` and a newline plus indentation
/// before `</div>`; real line breaks are `<br>`.
#[derive(Debug, Default)]
struct TextBuf {
    s: String,
    started: bool,
    raw_tail: usize,
}

impl TextBuf {
    fn push_raw(&mut self, t: &str) {
        let t = if self.started {
            t
        } else {
            t.strip_prefix('\n').unwrap_or(t)
        };
        self.started = true;
        let blank = |x: &str| x.bytes().all(|b| b == b' ' || b == b'\t');
        self.raw_tail = match t.rfind('\n') {
            Some(i) if blank(&t[i + 1..]) => t.len() - i,
            None if blank(t) && self.raw_tail > 0 => self.raw_tail + t.len(),
            _ => 0,
        };
        self.s.push_str(t);
    }

    fn push_br(&mut self) {
        self.started = true;
        self.raw_tail = 0;
        self.s.push('\n');
    }

    fn finish(mut self) -> String {
        let keep = self.s.len().saturating_sub(self.raw_tail);
        self.s.truncate(keep);
        self.s
    }
}

#[derive(Debug, Default)]
struct Current {
    id: Option<i64>,
    bad_id: Option<String>,
    separator: bool,
    kind: Option<MessageKind>,
    joined: bool,
    date: Option<MessageDate>,
    bad_date: Option<String>,
    from: String,
    forwarded: bool,
    forwarded_from: String,
    reply_to: Option<i64>,
    media_type: Option<String>,
    text: TextBuf,
    service: String,
    links: Vec<Link>,
}

#[derive(Debug, Default)]
struct State {
    stack: Vec<Frame>,
    chat_name: String,
    in_header: usize,
    in_forwarded: usize,
    in_reply: usize,
    in_media: usize,
    cur: Option<Current>,
    prev_from: Option<String>,
    prev_forwarded: Option<String>,
    prev_via: Option<String>,
    index: u64,
}

impl State {
    fn capture(&self) -> Option<Capture> {
        self.stack.iter().rev().find_map(|f| f.capture)
    }

    fn text(&mut self, t: &str) {
        let Some(cap) = self.capture() else { return };
        match cap {
            Capture::ChatName => self.chat_name.push_str(t),
            Capture::Suppress => {}
            Capture::From | Capture::Forwarded | Capture::Text | Capture::Service => {
                let Some(cur) = self.cur.as_mut() else { return };
                match cap {
                    Capture::From => cur.from.push_str(t),
                    Capture::Forwarded => cur.forwarded_from.push_str(t),
                    Capture::Text => cur.text.push_raw(t),
                    _ => cur.service.push_str(t),
                }
            }
        }
    }

    fn open(
        &mut self,
        name: String,
        attrs: &[(String, String)],
        self_closing: bool,
        sink: &mut Sink<'_>,
    ) {
        let attr = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        let class = attr("class").unwrap_or("");
        let has = |c: &str| class.split_ascii_whitespace().any(|x| x == c);
        if name == "br" {
            if self.capture() == Some(Capture::Text) {
                if let Some(cur) = self.cur.as_mut() {
                    cur.text.push_br();
                }
            } else if self.capture() == Some(Capture::Service) {
                if let Some(cur) = self.cur.as_mut() {
                    cur.service.push('\n');
                }
            }
            return;
        }
        let mut frame = Frame {
            name,
            role: Role::None,
            capture: None,
            href: None,
        };
        let id_attr = attr("id").unwrap_or("");
        if self.cur.is_none() {
            if has("page_header") {
                frame.role = Role::PageHeader;
                self.in_header += 1;
            } else if self.in_header > 0 && has("text") {
                frame.capture = Some(Capture::ChatName);
            } else if has("message") && id_attr.starts_with("message") {
                // A message never nests in another; a stray one closes the
                // unterminated previous message first.
                self.start_message(&mut frame, class, id_attr);
            }
        } else if has("message") && id_attr.starts_with("message") {
            self.close_open_message(sink);
            self.start_message(&mut frame, class, id_attr);
        } else if let Some(cur) = self.cur.as_mut() {
            let service = cur.kind == Some(MessageKind::Service);
            if service {
                if has("body") && cur.service.is_empty() && self.capture().is_none() {
                    frame.capture = Some(Capture::Service);
                }
            } else if has("forwarded") && has("body") {
                frame.role = Role::ForwardedBody;
                cur.forwarded = true;
                self.in_forwarded += 1;
            } else if has("date") {
                frame.capture = Some(Capture::Suppress);
                if self.in_forwarded == 0 && cur.date.is_none() && cur.bad_date.is_none() {
                    if let Some(title) = attr("title") {
                        match parse_html_date(title) {
                            Some(d) => cur.date = Some(d),
                            None => cur.bad_date = Some(title.to_owned()),
                        }
                    }
                }
            } else if has("from_name") {
                frame.capture = Some(if self.in_forwarded > 0 {
                    Capture::Forwarded
                } else {
                    Capture::From
                });
            } else if has("reply_to") {
                frame.role = Role::ReplyTo;
                frame.capture = Some(Capture::Suppress);
                self.in_reply += 1;
            } else if has("media_wrap") {
                frame.role = Role::MediaWrap;
                frame.capture = Some(Capture::Suppress);
                self.in_media += 1;
            } else if self.in_media > 0 {
                if cur.media_type.is_none() {
                    cur.media_type = media_from_classes(class);
                }
            } else if has("text") && frame.name == "div" {
                frame.capture = Some(Capture::Text);
            }
        }
        // Links: reply targets and links inside text.
        if frame.name == "a" {
            if let (Some(cur), Some(href)) = (self.cur.as_mut(), attr("href")) {
                if self.in_reply > 0 {
                    if cur.reply_to.is_none() {
                        cur.reply_to = reply_target(href);
                    }
                } else if self.stack.iter().rev().find_map(|f| f.capture) == Some(Capture::Text)
                    && is_link_href(href)
                {
                    frame.role = Role::Link;
                    frame.href = Some((cur.text.s.len(), href.to_owned()));
                }
            }
        }
        if self_closing || VOID.contains(&frame.name.as_str()) {
            // Nothing can be inside; run the end actions right away.
            self.end_frame(frame, sink);
        } else {
            self.stack.push(frame);
        }
    }

    fn start_message(&mut self, frame: &mut Frame, class: &str, id_attr: &str) {
        let has = |c: &str| class.split_ascii_whitespace().any(|x| x == c);
        let mut cur = Current::default();
        match id_attr["message".len()..].parse::<i64>() {
            Ok(id) if id < 0 => cur.separator = true,
            Ok(id) => cur.id = Some(id),
            Err(_) => cur.bad_id = Some(id_attr.to_owned()),
        }
        cur.kind = Some(if has("service") {
            MessageKind::Service
        } else {
            MessageKind::Message
        });
        cur.joined = has("joined");
        frame.role = Role::Message;
        self.cur = Some(cur);
    }

    /// Ends a message whose closing tag never came.
    fn close_open_message(&mut self, sink: &mut Sink<'_>) {
        while let Some(pos) = self.stack.iter().rposition(|f| f.role == Role::Message) {
            while self.stack.len() > pos {
                if let Some(frame) = self.stack.pop() {
                    self.end_frame(frame, sink);
                }
            }
        }
        if self.cur.is_some() {
            self.finish_message(sink);
        }
    }

    fn close(&mut self, name: &str, sink: &mut Sink<'_>) {
        let Some(pos) = self.stack.iter().rposition(|f| f.name == name) else {
            return; // stray end tag
        };
        while self.stack.len() > pos {
            if let Some(frame) = self.stack.pop() {
                self.end_frame(frame, sink);
            }
        }
    }

    fn end_frame(&mut self, frame: Frame, sink: &mut Sink<'_>) {
        match frame.role {
            Role::None => {}
            Role::PageHeader => self.in_header = self.in_header.saturating_sub(1),
            Role::ForwardedBody => self.in_forwarded = self.in_forwarded.saturating_sub(1),
            Role::ReplyTo => self.in_reply = self.in_reply.saturating_sub(1),
            Role::MediaWrap => self.in_media = self.in_media.saturating_sub(1),
            Role::Link => {
                if let (Some(cur), Some((start, href))) = (self.cur.as_mut(), frame.href) {
                    let text = cur.text.s.get(start..).unwrap_or("").to_owned();
                    cur.links.push(Link { text, href });
                }
            }
            Role::Message => self.finish_message(sink),
        }
    }

    fn finish_message(&mut self, sink: &mut Sink<'_>) {
        self.in_forwarded = 0;
        self.in_reply = 0;
        self.in_media = 0;
        let Some(cur) = self.cur.take() else { return };
        if cur.separator {
            return;
        }
        let index = self.index;
        self.index += 1;
        let Some(id) = cur.id else {
            let reason = format!("bad message id {:?}", cur.bad_id.unwrap_or_default());
            sink.skip(Position::Message { index, id: None }, reason);
            return;
        };
        if let Some(bad) = cur.bad_date {
            sink.skip(
                Position::Message {
                    index,
                    id: Some(id),
                },
                format!("bad date title {bad:?}"),
            );
            return;
        }
        let chat_name = self.chat_name.trim().to_owned();
        let kind = cur.kind.unwrap_or(MessageKind::Message);
        let mut m = Message::new(chat_name, id, kind);
        if kind == MessageKind::Service {
            m.text = cur.service.trim().to_owned();
            sink.message(m);
            return;
        }
        let (from, via) = split_via(cur.from.trim());
        // A joined message repeats the previous sender (and its bot: the
        // exporter only joins messages sent via the same bot).
        if cur.joined && from.is_none() {
            m.from = self.prev_from.clone();
            m.via_bot = self.prev_via.clone();
        } else {
            m.from = from;
            m.via_bot = via;
        }
        self.prev_from = m.from.clone();
        self.prev_via = m.via_bot.clone();
        if cur.forwarded {
            let (name, _) = split_via(cur.forwarded_from.trim());
            m.forwarded_from = name.or_else(|| self.prev_forwarded.clone());
        }
        self.prev_forwarded = m.forwarded_from.clone();
        m.date = cur.date;
        m.reply_to = cur.reply_to;
        m.media_type = cur.media_type;
        m.text = cur.text.finish();
        // Links never extend into the stripped trailing layout whitespace.
        m.links = cur
            .links
            .into_iter()
            .map(|mut l| {
                if l.text.len() > m.text.len() {
                    l.text.truncate(m.text.len());
                }
                l
            })
            .collect();
        sink.message(m);
    }
}

/// `"Alice via @bot"` -> (`Alice`, `@bot`).
fn split_via(s: &str) -> (Option<String>, Option<String>) {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    match s.rfind(" via @") {
        Some(i) => (
            non_empty(s[..i].trim()),
            non_empty(s[i + " via ".len()..].trim()),
        ),
        None => (non_empty(s), None),
    }
}

/// `#go_to_message5`, `messages2.html#go_to_message5` -> 5.
fn reply_target(href: &str) -> Option<i64> {
    let i = href.find("go_to_message")?;
    let digits: String = href[i + "go_to_message".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// A real link has a URL scheme (`https:`, `mailto:`, `tel:`, `tg:`...);
/// empty hrefs (hashtags, mention names) and relative paths (custom emoji
/// files) are formatting only.
fn is_link_href(href: &str) -> bool {
    match href.find(':') {
        Some(i) => {
            i > 0
                && href[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        }
        None => false,
    }
}

/// Media type from the classes of an element inside `.media_wrap`.
fn media_from_classes(class: &str) -> Option<String> {
    const MAP: [(&str, &str); 15] = [
        ("photo_wrap", "photo"),
        ("video_file_wrap", "video_file"),
        ("animated_wrap", "animation"),
        ("sticker_wrap", "sticker"),
        ("media_voice_message", "voice_message"),
        ("media_audio_file", "audio_file"),
        ("media_video", "video_message"),
        ("media_file", "file"),
        ("media_photo", "photo"),
        ("media_location", "location"),
        ("media_live_location", "location"),
        ("media_contact", "contact"),
        ("media_poll", "poll"),
        ("media_game", "game"),
        ("media_invoice", "invoice"),
    ];
    class.split_ascii_whitespace().find_map(|c| {
        MAP.iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| (*v).to_owned())
    })
}

/// `"11.01.2021 14:22:33 UTC+03:00"` or `"11.01.2021 14:22:33"`.
pub fn parse_html_date(title: &str) -> Option<MessageDate> {
    let title = title.trim();
    let (local, offset) = match title.find(" UTC") {
        Some(i) => (&title[..i], Some(&title[i + 4..])),
        None => (title, None),
    };
    let local = NaiveDateTime::parse_from_str(local.trim(), HTML_DATE_FORMAT).ok()?;
    match offset {
        None => Some(MessageDate::naive(local)),
        Some(o) => MessageDate::with_offset(local, parse_offset(o)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves entities Telegram writes are decoded and unknown ones kept.
    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a &amp; b &quot;c&quot; &apos;d&#39; &lt;&gt; &#x41; &bogus; &"),
            "a & b \"c\" 'd' <> A &bogus; &"
        );
    }

    // Proves dates parse with and without the UTC offset, and junk does not.
    #[test]
    fn date_titles() {
        let d = parse_html_date("11.01.2021 14:22:33 UTC+03:00").expect("with offset");
        assert_eq!(d.offset_seconds, Some(10800));
        let d = parse_html_date("11.01.2021 14:22:33").expect("without offset");
        assert_eq!(d.offset_seconds, None);
        assert!(parse_html_date("yesterday").is_none());
    }

    // Proves tag attributes parse with both quote styles, spaces around `=`
    // and a `>` inside a quoted value.
    #[test]
    fn tags() {
        let mut input: &[u8] = b"<a href = \"x>y\" class='c d' hidden>t</a>";
        let mut tok = Tokenizer::new(&mut input);
        let Token::Open { name, attrs, .. } = tok.next().expect("tag") else {
            panic!("expected open tag");
        };
        assert_eq!(name, "a");
        assert_eq!(
            attrs,
            vec![
                ("href".to_owned(), "x>y".to_owned()),
                ("class".to_owned(), "c d".to_owned()),
                ("hidden".to_owned(), String::new())
            ]
        );
        assert_eq!(tok.next().expect("text"), Token::Text("t".into()));
        assert_eq!(tok.next().expect("close"), Token::Close("a".into()));
        assert_eq!(tok.next().expect("eof"), Token::Eof);
    }

    // Proves the sender's " via @bot" suffix is split off.
    #[test]
    fn via_split() {
        assert_eq!(
            split_via("Alice via @gif"),
            (Some("Alice".into()), Some("@gif".into()))
        );
        assert_eq!(split_via("Bob"), (Some("Bob".into()), None));
    }
}

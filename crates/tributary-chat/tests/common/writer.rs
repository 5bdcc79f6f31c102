//! Test-only writer: renders `Message`s the way Telegram Desktop writes its
//! JSON and HTML exports (and our CSV backup), so parsers can be checked
//! against known input. Shared by the tests and the bench example.
#![allow(dead_code)]

use std::io::{self, Write};

use tributary_chat::domain::backup_schema::{to_record, COLUMNS};
use tributary_chat::{Message, MessageDate, MessageKind};

pub const JSON_DATE: &str = "%Y-%m-%dT%H:%M:%S";
pub const HTML_DATE: &str = "%d.%m.%Y %H:%M:%S";

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Escapes text the way the exporter does (`\n` -> `<br>`).
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("<br>"),
            '"' => out.push_str("&quot;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn offset_str(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
}

fn html_title(d: &MessageDate) -> String {
    let mut t = d.local.format(HTML_DATE).to_string();
    if let Some(o) = d.offset_seconds {
        t.push_str(" UTC");
        t.push_str(&offset_str(o));
    }
    t
}

/// Splits `m.text` into plain and link segments (links found in order).
fn segments(m: &Message) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = m.text.as_str();
    for l in &m.links {
        if let Some(i) = rest.find(&l.text) {
            if i > 0 {
                out.push((rest[..i].to_owned(), None));
            }
            out.push((l.text.clone(), Some(l.href.clone())));
            rest = &rest[i + l.text.len()..];
        }
    }
    if !rest.is_empty() {
        out.push((rest.to_owned(), None));
    }
    out
}

/// Renders one message object of `result.json`.
pub fn json_message(m: &Message) -> String {
    let mut f: Vec<String> = Vec::new();
    f.push(format!("\"id\": {}", m.id));
    f.push(format!("\"type\": {}", js(m.kind.as_str())));
    let date = |f: &mut Vec<String>, key: &str, d: &Option<MessageDate>| {
        if let Some(d) = d {
            f.push(format!(
                "\"{key}\": {}",
                js(&d.local.format(JSON_DATE).to_string())
            ));
            if let Some(u) = d.utc() {
                f.push(format!("\"{key}_unixtime\": \"{}\"", u.timestamp()));
            }
        }
    };
    date(&mut f, "date", &m.date);
    date(&mut f, "edited", &m.edited);
    let opt = |f: &mut Vec<String>, key: &str, v: &Option<String>| {
        if let Some(v) = v {
            f.push(format!("\"{key}\": {}", js(v)));
        }
    };
    opt(&mut f, "actor", &m.actor);
    opt(&mut f, "actor_id", &m.actor_id);
    opt(&mut f, "action", &m.action);
    opt(&mut f, "from", &m.from);
    opt(&mut f, "from_id", &m.from_id);
    opt(&mut f, "forwarded_from", &m.forwarded_from);
    if let Some(r) = m.reply_to {
        f.push(format!("\"reply_to_message_id\": {r}"));
    }
    opt(&mut f, "via_bot", &m.via_bot);
    match m.media_type.as_deref() {
        None => {}
        Some("photo") => f.push("\"photo\": \"photos/photo_1.jpg\"".into()),
        Some("file") => f.push("\"file\": \"files/doc.pdf\"".into()),
        Some("poll") => {
            f.push("\"poll\": {\"question\": \"Q?\", \"closed\": false, \"answers\": []}".into())
        }
        Some("location") => {
            f.push("\"location_information\": {\"latitude\": 1.5, \"longitude\": 2.5}".into())
        }
        Some("contact") => f.push(
            "\"contact_information\": {\"first_name\": \"C\", \"phone_number\": \"+1\"}".into(),
        ),
        Some("game") => f.push("\"game_title\": \"G\"".into()),
        Some("invoice") => {
            f.push("\"invoice_information\": {\"title\": \"I\", \"amount\": 1}".into())
        }
        Some(other) => {
            f.push("\"file\": \"files/x\"".into());
            f.push(format!("\"media_type\": {}", js(other)));
        }
    }
    let segs = segments(m);
    let entity = |(t, href): &(String, Option<String>)| match href {
        Some(h) => format!(
            "{{\"type\": \"text_link\", \"text\": {}, \"href\": {}}}",
            js(t),
            js(h)
        ),
        None => format!("{{\"type\": \"plain\", \"text\": {}}}", js(t)),
    };
    if m.links.is_empty() {
        f.push(format!("\"text\": {}", js(&m.text)));
    } else {
        let parts: Vec<String> = segs
            .iter()
            .map(|s| match &s.1 {
                Some(_) => entity(s),
                None => js(&s.0),
            })
            .collect();
        f.push(format!("\"text\": [{}]", parts.join(", ")));
    }
    let ents: Vec<String> = segs.iter().map(entity).collect();
    f.push(format!("\"text_entities\": [{}]", ents.join(", ")));
    format!("{{\n   {}\n  }}", f.join(",\n   "))
}

/// Streams a single-chat `result.json`.
pub struct JsonWriter<W: Write> {
    w: W,
    first: bool,
}

impl<W: Write> JsonWriter<W> {
    pub fn begin(mut w: W, name: &str, id: i64) -> io::Result<Self> {
        write!(
            w,
            "{{\n \"name\": {},\n \"type\": \"private_group\",\n \"id\": {id},\n \"messages\": [\n",
            js(name)
        )?;
        Ok(JsonWriter { w, first: true })
    }

    pub fn message(&mut self, m: &Message) -> io::Result<()> {
        if !self.first {
            self.w.write_all(b",\n")?;
        }
        self.first = false;
        self.w.write_all(b"  ")?;
        self.w.write_all(json_message(m).as_bytes())
    }

    pub fn end(mut self) -> io::Result<W> {
        self.w.write_all(b"\n ]\n}\n")?;
        Ok(self.w)
    }
}

/// A whole single-chat `result.json` as a string.
pub fn json_export(name: &str, id: i64, msgs: &[Message]) -> String {
    let mut jw = JsonWriter::begin(Vec::new(), name, id).expect("write to vec");
    for m in msgs {
        jw.message(m).expect("write to vec");
    }
    String::from_utf8(jw.end().expect("write to vec")).expect("utf8")
}

fn media_html(kind: &str) -> String {
    let a = |class: &str| {
        format!("        <a class=\"{class} clearfix pull_left\" href=\"files/x\">\n         <img class=\"thumb\" src=\"files/x_thumb.jpg\" style=\"width: 260px; height: 195px\"/>\n        </a>\n")
    };
    let media = |class: &str, title: &str| {
        format!("        <a class=\"media clearfix pull_left block_link {class}\" href=\"files/x\">\n         <div class=\"fill pull_left\">\n         </div>\n         <div class=\"body\">\n          <div class=\"title bold\">\n{title}\n          </div>\n          <div class=\"status details\">\n1.2 KB\n          </div>\n         </div>\n        </a>\n")
    };
    let inner = match kind {
        "photo" => a("photo_wrap"),
        "video_file" => a("video_file_wrap"),
        "animation" => a("animated_wrap"),
        "sticker" => a("sticker_wrap"),
        "voice_message" => media("media_voice_message", "Voice message"),
        "audio_file" => media("media_audio_file", "Song"),
        "video_message" => media("media_video", "Video message"),
        "location" => media("media_location", "Location"),
        "contact" => media("media_contact", "Contact"),
        "game" => media("media_game", "Game"),
        "invoice" => media("media_invoice", "Invoice"),
        "poll" => "        <div class=\"media_poll\">\n         <div class=\"question bold\">\nQ?\n         </div>\n        </div>\n".to_owned(),
        _ => media("media_file", "doc.pdf"),
    };
    format!("       <div class=\"media_wrap clearfix\">\n{inner}       </div>\n")
}

/// Renders one message of an HTML page; `prev` is the previous message of
/// the same page (for the exporter's "joined" rule).
pub fn html_message(m: &Message, prev: Option<&Message>) -> String {
    if m.kind == MessageKind::Service {
        let text = if m.text.is_empty() {
            format!(
                "{} {}",
                m.actor.as_deref().unwrap_or("Someone"),
                m.action.as_deref().unwrap_or("did something")
            )
        } else {
            m.text.clone()
        };
        return format!(
            "     <div class=\"message service\" id=\"message{}\">\n      <div class=\"body details\">\n{}\n      </div>\n     </div>\n",
            m.id,
            html_escape(&text)
        );
    }
    let joined = prev.is_some_and(|p| {
        p.kind == MessageKind::Message
            && p.from == m.from
            && p.via_bot == m.via_bot
            && m.from.is_some()
    });
    let mut s = format!(
        "     <div class=\"message default clearfix{}\" id=\"message{}\">\n",
        if joined { " joined" } else { "" },
        m.id
    );
    if !joined {
        s.push_str("      <div class=\"pull_left userpic_wrap\">\n       <div class=\"userpic userpic2\" style=\"width: 42px; height: 42px\">\n        <div class=\"initials\" style=\"line-height: 42px\">\nX\n        </div>\n       </div>\n      </div>\n");
    }
    s.push_str("      <div class=\"body\">\n");
    if let Some(d) = &m.date {
        s.push_str(&format!(
            "       <div class=\"pull_right date details\" title=\"{}\">\n{}\n       </div>\n",
            html_title(d),
            d.local.format("%H:%M")
        ));
    }
    if !joined {
        let mut name = html_escape(m.from.as_deref().unwrap_or("Deleted Account"));
        if let Some(v) = &m.via_bot {
            name.push_str(" via ");
            name.push_str(&html_escape(v));
        }
        s.push_str(&format!(
            "       <div class=\"from_name\">\n{name}\n       </div>\n"
        ));
    }
    if let Some(fwd) = &m.forwarded_from {
        let same_fwd = joined && prev.is_some_and(|p| p.forwarded_from.as_ref() == Some(fwd));
        if !same_fwd {
            s.push_str("       <div class=\"pull_left forwarded userpic_wrap\">\n        <div class=\"userpic userpic3\" style=\"width: 42px; height: 42px\">\n        </div>\n       </div>\n");
        }
        s.push_str("       <div class=\"forwarded body\">\n");
        if !same_fwd {
            s.push_str(&format!(
                "        <div class=\"from_name\">\n{}<span class=\"date details\" title=\"10.01.2021 12:00:00 UTC+03:00\"> 10.01.2021 12:00:00</span>\n        </div>\n",
                html_escape(fwd)
            ));
        }
    }
    if let Some(r) = m.reply_to {
        s.push_str(&format!(
            "       <div class=\"reply_to details\">\nIn reply to <a href=\"#go_to_message{r}\" onclick=\"return GoToMessage({r})\">this message</a>\n       </div>\n"
        ));
    }
    if let Some(media) = &m.media_type {
        s.push_str(&media_html(media));
    }
    if !m.text.is_empty() {
        let body: String = segments(m)
            .iter()
            .map(|(t, href)| match href {
                Some(h) => format!("<a href=\"{}\">{}</a>", html_escape(h), html_escape(t)),
                None => html_escape(t),
            })
            .collect();
        s.push_str(&format!(
            "       <div class=\"text\">\n{body}\n       </div>\n"
        ));
    }
    if m.forwarded_from.is_some() {
        s.push_str("       </div>\n");
    }
    s.push_str("      </div>\n     </div>\n");
    s
}

pub fn html_page_start(chat_name: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n <head>\n  <meta charset=\"utf-8\"/>\n<title>Exported Data</title>\n  <meta content=\"width=device-width, initial-scale=1.0\" name=\"viewport\"/>\n  <link href=\"css/style.css\" rel=\"stylesheet\"/>\n  <script src=\"js/script.js\" type=\"text/javascript\"></script>\n </head>\n <body onload=\"CheckLocation();\">\n  <div class=\"page_wrap\">\n   <div class=\"page_header\">\n    <div class=\"content\">\n     <div class=\"text bold\">\n{}\n     </div>\n    </div>\n   </div>\n   <div class=\"page_body chat_page\">\n    <div class=\"history\">\n",
        html_escape(chat_name)
    )
}

pub const HTML_PAGE_END: &str = "    </div>\n   </div>\n  </div>\n </body>\n</html>\n";

/// A date separator (negative id) as the exporter writes between days.
pub fn html_separator(id: i64, day: &str) -> String {
    format!("     <div class=\"message service\" id=\"message{id}\">\n      <div class=\"body details\">\n{day}\n      </div>\n     </div>\n")
}

/// Renders pages of `per_page` messages: `messages.html`, `messages2.html`...
/// Returns (file name, content) pairs.
pub fn html_export(chat_name: &str, msgs: &[Message], per_page: usize) -> Vec<(String, String)> {
    let mut pages = Vec::new();
    for (n, chunk) in msgs.chunks(per_page.max(1)).enumerate() {
        let name = if n == 0 {
            "messages.html".to_owned()
        } else {
            format!("messages{}.html", n + 1)
        };
        let mut s = html_page_start(chat_name);
        s.push_str(&html_separator(-(n as i64) - 1, "1 January 2021"));
        let mut prev: Option<&Message> = None;
        for m in chunk {
            s.push_str(&html_message(m, prev));
            prev = Some(m);
        }
        s.push_str(HTML_PAGE_END);
        pages.push((name, s));
    }
    if pages.is_empty() {
        let mut s = html_page_start(chat_name);
        s.push_str(HTML_PAGE_END);
        pages.push(("messages.html".to_owned(), s));
    }
    pages
}

/// A CSV backup of `msgs`.
pub fn csv_backup(msgs: &[Message]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("write to vec");
    for m in msgs {
        w.write_record(to_record(m)).expect("write to vec");
    }
    String::from_utf8(w.into_inner().expect("flush to vec")).expect("utf8")
}

//! Directory walks, zip archives, CSV backups and broken files (spec
//! "Bad input never aborts silently").

mod common;

use common::{collect, fixture};
use tributary_chat::{parse_path, Error, MessageKind, Position};

// Proves a zip export is read entry by entry in page order, media and css
// inside it are ignored, and entries are named `archive.zip!entry`.
#[test]
fn zip_archive() {
    let c = collect(&fixture("zip/export.zip"));
    assert_eq!(c.summary.files, 3, "{:?}", c.files);
    assert_eq!(c.summary.files_ignored, 2);
    assert_eq!(c.summary.messages, 17);
    assert!(c.files[0].ends_with("export.zip!ChatExport_2023-03-02/messages.html"));
    assert!(c.files[1].ends_with("!ChatExport_2023-03-02/messages2.html"));
    assert!(c.files[2].ends_with("!ChatExport_2023-03-02/result.json"));
    let html_ids: Vec<i64> = c.messages[..10].iter().map(|m| m.id).collect();
    assert_eq!(html_ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
}

// Proves our CSV backup layout reads back (quoted commas, quotes and line
// breaks, offsets, links), and a bad record is skipped with its number.
#[test]
fn csv_backup() {
    let c = collect(&fixture("csv/backup.csv"));
    assert_eq!(c.summary.messages, 3);
    assert_eq!(c.summary.messages_skipped, 1);
    let m = &c.messages[0];
    assert_eq!(m.chat_id, Some(42));
    assert_eq!(m.text, "Mail me at dave@example.com, \"now\"\nsecond line");
    assert_eq!(m.links[0].href, "mailto:dave@example.com");
    let gif = &c.messages[1];
    assert_eq!(gif.chat_id, None);
    assert_eq!(
        gif.date.and_then(|d| d.offset_seconds),
        Some(-(5 * 3600 + 30 * 60))
    );
    assert_eq!(gif.reply_to, Some(3));
    assert_eq!(gif.via_bot.as_deref(), Some("@gif"));
    assert_eq!(c.messages[2].kind, MessageKind::Service);
    assert_eq!(c.messages[2].actor_id.as_deref(), Some("user555"));
    assert!(
        matches!(c.errors[0].position, Position::Record { record: 3, .. }),
        "{:?}",
        c.errors
    );
    assert!(
        c.errors[0].reason.contains("message_id"),
        "{}",
        c.errors[0].reason
    );
}

// Proves a directory mixing CSV, JSON, HTML and a zip is walked in a stable
// order; a truncated JSON is reported with line/column after delivering
// what it had, a message with a bad date is skipped alone, the walk goes on
// and the summary adds up.
#[test]
fn mixed_directory_with_broken_files() {
    let c = collect(&fixture("mixed"));
    let names: Vec<String> = c
        .files
        .iter()
        .map(|f| f.rsplit("mixed/").next().unwrap_or(f).to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "a_backup.csv",
            "b_json/result.json",
            "c_html/messages.html",
            "d_export.zip!ChatExport_2023-03-02/messages.html",
            "d_export.zip!ChatExport_2023-03-02/messages2.html",
            "d_export.zip!ChatExport_2023-03-02/result.json",
            "e_broken/messages.html",
            "e_broken/result.json",
        ]
    );
    let s = c.summary;
    assert_eq!((s.files, s.files_failed, s.files_ignored), (7, 1, 3));
    assert_eq!((s.messages, s.messages_skipped), (28, 3));
    assert_eq!(c.messages.len() as u64, s.messages);

    let broken_json = c
        .errors
        .iter()
        .find(|e| e.file.ends_with("e_broken/result.json"))
        .expect("truncated json reported");
    assert!(
        matches!(broken_json.position, Position::LineColumn { line, .. } if line > 1),
        "{broken_json:?}"
    );
    let bad_date = c
        .errors
        .iter()
        .find(|e| e.file.ends_with("e_broken/messages.html"))
        .expect("bad date reported");
    assert_eq!(
        bad_date.position,
        Position::Message {
            index: 0,
            id: Some(101)
        }
    );
    assert!(
        c.messages.iter().any(|m| m.id == 103),
        "message after the bad one"
    );
    // The truncated file still delivered its first three messages.
    let last3: Vec<i64> = c.messages[c.messages.len() - 3..]
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(last3, [1, 2, 3]);
}

// Proves a missing path is the only hard error, and it names the path.
#[test]
fn missing_path_is_an_error() {
    let err = parse_path(fixture("does/not/exist"), &mut |_| {}).expect_err("missing");
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("does/not/exist"));
}

// Proves a file that is not a zip but named `.zip` is reported, not fatal.
#[test]
fn corrupt_zip_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.zip"), b"PK\x03\x04 garbage").expect("write");
    std::fs::write(
        dir.path().join("result.json"),
        b"{\"name\":\"x\",\"id\":1,\"messages\":[{\"id\":1}]}",
    )
    .expect("write");
    let c = collect(dir.path());
    assert_eq!(c.summary.files_failed, 1);
    assert_eq!(c.summary.messages, 1);
    assert!(c.errors[0].file.ends_with("bad.zip"));
}

// Proves an HTML page cut inside a message delivers the complete messages
// before it, drops the incomplete one and reports the file.
#[test]
fn truncated_html_page_is_reported() {
    let page = std::fs::read_to_string(fixture("html/single_chat/messages.html")).expect("fixture");
    let cut = page.find("Thanks!").expect("marker");
    let c = common::collect_reader("messages.html", &page.as_bytes()[..cut]);
    let ids: Vec<i64> = c.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(c.summary.files_failed, 1);
    assert!(
        c.errors[0].reason.contains("inside message 4"),
        "{:?}",
        c.errors
    );
}

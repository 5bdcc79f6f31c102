//! Deciding what a file is, from its name and first bytes.

use crate::domain::backup_schema::COLUMNS;

/// Kinds of input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Telegram Desktop JSON export (`result.json`, any `*.json` object).
    JsonExport,
    /// One page of a Telegram Desktop HTML export (`messagesN.html`).
    HtmlExport,
    /// Our own CSV backup (header = [`COLUMNS`]).
    CsvBackup,
    /// Our own Parquet backup (schema in [`crate::parse::parquet`]).
    ParquetBackup,
    /// A zip archive (of any of the above).
    Zip,
    /// Anything else: media, stylesheets, other HTML pages of the export.
    Other,
}

/// Detects the kind of a file from its base name and first bytes (`head`,
/// any length; 64 KiB are passed by the walker).
///
/// Rules, in order:
/// 1. starts with the zip signature `PK\x03\x04` / `PK\x05\x06`, or is named
///    `*.zip` -> [`FileKind::Zip`];
/// 2. starts with the Parquet magic `PAR1`, or is named `*.parquet` ->
///    [`FileKind::ParquetBackup`] (a Parquet file of another schema, or a
///    `.parquet` that is not Parquet at all, is reported by the parser);
/// 3. `*.json` -> [`FileKind::JsonExport`] (if it is not an export object
///    the parser reports it);
/// 4. `messages.html`, `messagesN.html` -> [`FileKind::HtmlExport`]; any
///    other `*.html`/`*.htm` only if its head contains the export's
///    `<div class="history">` (so `export_results.html` and `lists/*.html`
///    are ignored);
/// 5. `*.csv` whose first line is exactly the backup header ->
///    [`FileKind::CsvBackup`] (other CSV files are ignored);
/// 6. otherwise [`FileKind::Other`].
pub fn detect(name: &str, head: &[u8]) -> FileKind {
    let lower = name.to_ascii_lowercase();
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") || lower.ends_with(".zip")
    {
        return FileKind::Zip;
    }
    if head.starts_with(b"PAR1") || lower.ends_with(".parquet") {
        return FileKind::ParquetBackup;
    }
    if lower.ends_with(".json") {
        return FileKind::JsonExport;
    }
    if lower.ends_with(".html") || lower.ends_with(".htm") {
        let stem = lower.trim_end_matches(".html").trim_end_matches(".htm");
        let is_page = stem
            .strip_prefix("messages")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if is_page || contains(head, b"<div class=\"history\">") {
            return FileKind::HtmlExport;
        }
        return FileKind::Other;
    }
    if lower.ends_with(".csv") {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
        let line = &head[..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == COLUMNS.join(",").as_bytes() {
            return FileKind::CsvBackup;
        }
    }
    FileKind::Other
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves each kind is recognized and look-alikes are not.
    #[test]
    fn kinds() {
        assert_eq!(detect("result.json", b"{"), FileKind::JsonExport);
        assert_eq!(detect("messages.html", b""), FileKind::HtmlExport);
        assert_eq!(detect("messages12.html", b""), FileKind::HtmlExport);
        assert_eq!(detect("export_results.html", b"<html>"), FileKind::Other);
        assert_eq!(
            detect("page.html", b"<div class=\"history\">"),
            FileKind::HtmlExport
        );
        assert_eq!(detect("a.bin", b"PK\x03\x04rest"), FileKind::Zip);
        let header = format!("{}\r\n1,2", COLUMNS.join(","));
        assert_eq!(detect("b.csv", header.as_bytes()), FileKind::CsvBackup);
        assert_eq!(detect("b.csv", b"a,b\n"), FileKind::Other);
        assert_eq!(detect("photo.jpg", b"\xFF\xD8"), FileKind::Other);
        assert_eq!(detect("x.bin", b"PAR1\x15\x04"), FileKind::ParquetBackup);
        assert_eq!(detect("b.PARQUET", b""), FileKind::ParquetBackup);
        assert_eq!(detect("par.txt", b"PAR"), FileKind::Other);
    }
}

//! Directory and zip traversal in a stable order.

use std::cmp::Ordering;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::{detect, parquet, parse_stream, run_parser, FileError, FileKind, ParseEvent, Summary};
use crate::error::{Error, Position, Result};

const BUF: usize = 1 << 16;

/// Compares names so that digit runs compare as numbers:
/// `messages.html < messages2.html < messages10.html`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                // `.` sorts first so that `messages.html` precedes `messages2.html`.
                let key = |c: u8| if c == b'.' { 0 } else { u16::from(c) + 1 };
                match key(*x).cmp(&key(*y)) {
                    Ordering::Equal => {
                        a = &a[1..];
                        b = &b[1..];
                    }
                    o => return o,
                }
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|c| **c == b'0').count();
    &d[n..]
}

/// Walks `dir` recursively, entries in [`natural_cmp`] order. Symlinks are
/// not followed (no cycles, nothing read from outside the tree): they are
/// counted as ignored, like anything that is neither a file nor a
/// directory.
pub(super) fn walk_dir(
    dir: &Path,
    on_event: &mut dyn FnMut(ParseEvent),
    summary: &mut Summary,
) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut entries = Vec::new();
    for entry in read {
        match entry {
            Ok(e) => entries.push(e),
            Err(e) => report(on_event, summary, &dir.display().to_string(), e.to_string()),
        }
    }
    entries.sort_by(|a, b| {
        natural_cmp(
            &a.file_name().to_string_lossy(),
            &b.file_name().to_string_lossy(),
        )
    });
    for entry in entries {
        let path = entry.path();
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                summary.files_ignored += 1;
                continue;
            }
            Ok(t) => t.is_dir(),
            Err(e) => {
                report(
                    on_event,
                    summary,
                    &path.display().to_string(),
                    e.to_string(),
                );
                continue;
            }
        };
        if is_dir {
            if let Err(e) = walk_dir(&path, on_event, summary) {
                report(
                    on_event,
                    summary,
                    &path.display().to_string(),
                    e.to_string(),
                );
            }
        } else {
            parse_file(&path, on_event, summary);
        }
    }
    Ok(())
}

fn report(on_event: &mut dyn FnMut(ParseEvent), summary: &mut Summary, file: &str, reason: String) {
    summary.files_failed += 1;
    on_event(ParseEvent::FileError(FileError {
        file: file.to_owned(),
        position: Position::Unknown,
        reason,
    }));
}

/// Parses one file on disk: a zip entry by entry, a Parquet backup in place
/// (it needs seeking), anything else as a stream.
pub(super) fn parse_file(path: &Path, on_event: &mut dyn FnMut(ParseEvent), summary: &mut Summary) {
    let display = path.display().to_string();
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match open_regular(path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            summary.files_ignored += 1;
            return;
        }
        Err(e) => return report(on_event, summary, &display, format!("cannot open: {e}")),
    };
    let mut reader = BufReader::with_capacity(BUF, file);
    let head_kind = match std::io::BufRead::fill_buf(&mut reader) {
        Ok(head) => detect(&base, head),
        Err(e) => return report(on_event, summary, &display, format!("cannot read: {e}")),
    };
    if head_kind == FileKind::Zip {
        parse_zip(reader.into_inner(), &display, on_event, summary);
    } else if head_kind == FileKind::ParquetBackup {
        let file = reader.into_inner();
        run_parser(&display, head_kind, on_event, summary, |sink| {
            parquet::parse_parquet_file(file, sink)
        });
    } else {
        parse_stream(&display, &base, &mut reader, on_event, summary);
    }
}

/// Opens `path` for reading only if it is a regular file: opened without
/// blocking (a FIFO would block `open` until a writer comes) and checked on
/// the open descriptor, so a FIFO or device named like an export is
/// skipped (`None`) instead of pinning a thread.
fn open_regular(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    Ok(file.metadata()?.is_file().then_some(file))
}

/// Parses every entry of a zip archive, in [`natural_cmp`] order of names.
fn parse_zip(
    file: File,
    display: &str,
    on_event: &mut dyn FnMut(ParseEvent),
    summary: &mut Summary,
) {
    let mut archive = match zip::ZipArchive::new(file) {
        Ok(a) => a,
        Err(e) => {
            let reason = Error::Zip {
                reason: e.to_string(),
            }
            .to_string();
            return report(on_event, summary, display, reason);
        }
    };
    let mut names: Vec<(String, usize)> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        match archive.name_for_index(i) {
            Some(Ok(n)) => names.push((n.into_owned(), i)),
            Some(Err(e)) => report(
                on_event,
                summary,
                &format!("{display}!#{i}"),
                format!("bad entry name: {e}"),
            ),
            None => {}
        }
    }
    names.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    for (name, index) in names {
        let entry_display = format!("{display}!{name}");
        if name.ends_with('/') {
            continue;
        }
        let entry = match archive.by_index(index) {
            Ok(e) => e,
            Err(e) => {
                report(
                    on_event,
                    summary,
                    &entry_display,
                    format!("bad zip entry: {e}"),
                );
                continue;
            }
        };
        let base = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let mut reader = BufReader::with_capacity(BUF, entry);
        parse_stream(&entry_display, &base, &mut reader, on_event, summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a FIFO and a symlink named like exports are skipped as ignored (a FIFO used to
    // block the import forever) while the regular file next to them is parsed.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn fifos_and_symlinks_are_ignored() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.json"),
            t.path().join("link.json"),
        )
        .unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(t.path().join("x.json"))
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::write(t.path().join("y.txt"), "not chat data").unwrap();
        let mut summary = Summary::default();
        let mut events = Vec::new();
        walk_dir(
            t.path(),
            &mut |e| events.push(format!("{e:?}")),
            &mut summary,
        )
        .unwrap();
        assert_eq!(summary.files_ignored, 3, "{summary:?} {events:?}");
        assert_eq!(summary.files_failed, 0, "{events:?}");
    }

    // Proves export page names sort in Telegram's page order.
    #[test]
    fn natural_order_of_pages() {
        let mut v = vec![
            "messages10.html",
            "messages2.html",
            "messages.html",
            "messages3.html",
            "chat_010",
            "chat_002",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "chat_002",
                "chat_010",
                "messages.html",
                "messages2.html",
                "messages3.html",
                "messages10.html"
            ]
        );
    }
}

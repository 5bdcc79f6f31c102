//! Import: the parser runs on a blocking thread and hands batches through a
//! bounded channel to the inserter, so memory stays bounded by a few
//! batches whatever the export size.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::ChatService;
use crate::error::{Error, Result};
use crate::parse::{parse_path, ParseEvent, Summary};
use crate::Message;

/// Reported errors kept in a report (the rest are only counted).
const MAX_REPORTED: usize = 1000;
/// Batches in flight between parser and inserter.
const CHANNEL: usize = 4;

/// A problem in one input file, as reported to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportedError {
    pub file: String,
    pub position: String,
    pub reason: String,
}

/// Progress of a running import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportProgress {
    /// File being parsed.
    pub file: Option<String>,
    pub files_started: u64,
    /// Messages parsed so far.
    pub parsed: u64,
    /// Messages stored so far (new ones only).
    pub inserted: u64,
    /// Problems reported so far.
    pub errors: u64,
}

/// Outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Files parsed to their end.
    pub files: u64,
    /// Files that broke part-way or could not be read.
    pub files_failed: u64,
    /// Files that are not chat data.
    pub files_ignored: u64,
    /// Messages parsed.
    pub parsed: u64,
    /// Messages skipped as unusable.
    pub skipped: u64,
    /// Messages newly stored.
    pub inserted: u64,
    /// Messages already stored (same chat and id), left as they were.
    pub duplicates: u64,
    /// The first problems, with file, position and reason.
    pub errors: Vec<ReportedError>,
    /// Problems not listed in `errors`.
    pub errors_not_listed: u64,
}

enum Event {
    File(String),
    Batch(Vec<Message>),
    Problem(ReportedError),
}

impl ChatService {
    /// Imports a file, directory tree or zip (JSON, HTML, our CSV backups),
    /// calling `progress` after every batch and file. Idempotent: a message
    /// whose (chat, id) is stored already is skipped and counted as a
    /// duplicate. A broken file is reported and the rest goes on.
    ///
    /// Cancellation: dropping the future stops storing at a batch boundary;
    /// committed batches stay (re-importing is harmless). The parser thread
    /// then reads on to the end of the walk without storing anything.
    ///
    /// # Errors
    /// [`Error::Io`] when `path` cannot be read at all, [`Error::Sql`] when
    /// storing fails (batches committed before stay).
    pub async fn import(
        &self,
        path: &Path,
        progress: &(dyn Fn(&ImportProgress) + Send + Sync),
    ) -> Result<ImportReport> {
        let batch_size = self.inner.settings.batch_size.clamp(1, 1000);
        let (tx, mut rx) = mpsc::channel::<Event>(CHANNEL);
        let stop = Arc::new(AtomicBool::new(false));
        let parser = {
            let path: PathBuf = path.to_owned();
            let stop = stop.clone();
            tokio::task::spawn_blocking(move || -> Result<Summary> {
                let mut batch = Vec::with_capacity(batch_size);
                let send = |e: Event| {
                    if !stop.load(Ordering::Relaxed) && tx.blocking_send(e).is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                };
                let summary = parse_path(&path, &mut |ev| match ev {
                    ParseEvent::Message(m) => {
                        batch.push(m);
                        if batch.len() >= batch_size {
                            send(Event::Batch(std::mem::replace(
                                &mut batch,
                                Vec::with_capacity(batch_size),
                            )));
                        }
                    }
                    ParseEvent::FileStart { file, .. } => send(Event::File(file)),
                    ParseEvent::FileError(f) => send(Event::Problem(ReportedError {
                        file: f.file,
                        position: f.position.to_string(),
                        reason: f.reason,
                    })),
                })?;
                if !batch.is_empty() {
                    send(Event::Batch(batch));
                }
                Ok(summary)
            })
        };
        let mut p = ImportProgress::default();
        let mut report = ImportReport::default();
        let stored: Result<()> = async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::File(f) => {
                        p.files_started += 1;
                        p.file = Some(f);
                    }
                    Event::Batch(b) => {
                        let out = self.inner.store.insert_batch(&b).await?;
                        p.parsed += b.len() as u64;
                        p.inserted += out.inserted;
                    }
                    Event::Problem(e) => {
                        p.errors += 1;
                        tracing::warn!(file = %e.file, position = %e.position, reason = %e.reason, "import: bad input skipped");
                        if report.errors.len() < MAX_REPORTED {
                            report.errors.push(e);
                        } else {
                            report.errors_not_listed += 1;
                        }
                    }
                }
                progress(&p);
            }
            Ok(())
        }
        .await;
        if stored.is_err() {
            stop.store(true, Ordering::Relaxed);
            rx.close();
        }
        let summary = parser
            .await
            .map_err(|e| Error::Task(format!("import parser: {e}")))?;
        stored?;
        let summary = summary?;
        report.files = summary.files;
        report.files_failed = summary.files_failed;
        report.files_ignored = summary.files_ignored;
        report.parsed = summary.messages;
        report.skipped = summary.messages_skipped;
        report.inserted = p.inserted;
        report.duplicates = summary.messages.saturating_sub(p.inserted);
        tracing::info!(path = %path.display(), parsed = report.parsed, inserted = report.inserted,
            duplicates = report.duplicates, files_failed = report.files_failed, "import finished");
        Ok(report)
    }
}

//! Backup to CSV (the layout of [`crate::domain::backup_schema`]) and
//! restore, which is an import of the CSV through the parser.
//!
//! Streaming: messages are read in keyset pages and written page by page;
//! memory holds one page. Names never collide:
//! `chat-backup-<UTC time>-<random>.csv`. A local file is written as
//! `NAME.partial` and renamed when complete; an object appears only when
//! its upload completed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{ChatService, ImportProgress, ImportReport};
use crate::domain::backup_schema::{to_record, COLUMNS};
use crate::domain::{chat_key, MessageFilter};
use crate::error::{Error, Result};

/// Messages read per page.
const PAGE: u32 = 5000;

/// Where a backup goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupTarget {
    /// A directory on the server's file system (created if missing).
    Dir(PathBuf),
    /// The object store, under the configured backup prefix.
    Objects,
}

/// What a restore reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreSource {
    /// A file or directory on the server's file system.
    Path(PathBuf),
    /// An object key under the backup prefix (as returned by a backup).
    Object(String),
}

/// Progress of a running backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupProgress {
    pub messages: u64,
    pub bytes: u64,
}

/// Outcome of a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    /// Path or object key written.
    pub location: String,
    pub messages: u64,
    pub bytes: u64,
}

fn backup_name() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("chat-backup-{now}-{}.csv", &rand[..12])
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::File { context, source }
}

impl ChatService {
    fn backup_objects(&self) -> Result<tributary_storage::Objects> {
        let objects = self.inner.objects.as_ref().ok_or_else(|| {
            Error::InvalidRequest("this service has no object store configured".into())
        })?;
        Ok(objects.with_prefix(&self.inner.settings.backup_prefix)?)
    }

    /// Writes every message matching `filter` as one CSV file (RFC 4180,
    /// header row) to `target`.
    ///
    /// # Errors
    /// [`Error::File`] / [`Error::Storage`] when writing fails (no complete
    /// file appears then), [`Error::Sql`], [`Error::InvalidRequest`].
    pub async fn backup(
        &self,
        filter: &MessageFilter,
        target: &BackupTarget,
        progress: &(dyn Fn(&BackupProgress) + Send + Sync),
    ) -> Result<BackupReport> {
        filter.validate()?;
        let name = backup_name();
        match target {
            BackupTarget::Dir(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(io_err(format!("create {}", dir.display())))?;
                let path = dir.join(&name);
                let partial = dir.join(format!("{name}.partial"));
                let file = tokio::fs::File::create(&partial)
                    .await
                    .map_err(io_err(format!("create {}", partial.display())))?;
                let out = self
                    .write_csv(filter, tokio::io::BufWriter::new(file), progress)
                    .await;
                match out {
                    Ok((messages, bytes)) => {
                        tokio::fs::rename(&partial, &path)
                            .await
                            .map_err(io_err(format!("rename {}", partial.display())))?;
                        Ok(BackupReport {
                            location: path.display().to_string(),
                            messages,
                            bytes,
                        })
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&partial).await;
                        Err(e)
                    }
                }
            }
            BackupTarget::Objects => {
                let objects = self.backup_objects()?;
                let writer = objects.writer(&name, None)?;
                let (messages, bytes) = self.write_csv(filter, writer, progress).await?;
                Ok(BackupReport {
                    location: name,
                    messages,
                    bytes,
                })
            }
        }
    }

    async fn write_csv<W: AsyncWrite + Unpin>(
        &self,
        filter: &MessageFilter,
        mut out: W,
        progress: &(dyn Fn(&BackupProgress) + Send + Sync),
    ) -> Result<(u64, u64)> {
        let werr = |source: std::io::Error| Error::File {
            context: "write backup".into(),
            source,
        };
        let csv_err = |e: csv::Error| Error::File {
            context: "encode backup".into(),
            source: std::io::Error::other(e),
        };
        let mut p = BackupProgress::default();
        let mut buf = csv::Writer::from_writer(Vec::with_capacity(1 << 20));
        buf.write_record(COLUMNS).map_err(csv_err)?;
        let mut after: Option<(String, i64)> = None;
        loop {
            let page = self.inner.store.scan(filter, after.as_ref(), PAGE).await?;
            for m in &page {
                buf.write_record(to_record(m)).map_err(csv_err)?;
            }
            let bytes = buf.into_inner().map_err(|e| werr(e.into_error()))?;
            buf = csv::Writer::from_writer(Vec::with_capacity(bytes.capacity()));
            out.write_all(&bytes).await.map_err(werr)?;
            p.bytes += bytes.len() as u64;
            p.messages += page.len() as u64;
            progress(&p);
            match page.last() {
                Some(last) if page.len() as u32 == PAGE => after = Some((chat_key(last), last.id)),
                _ => break,
            }
        }
        out.shutdown().await.map_err(werr)?;
        Ok((p.messages, p.bytes))
    }

    /// Imports a backup (or any export) back. Idempotent like any import.
    ///
    /// # Errors
    /// As [`ChatService::import`]; for an object, [`Error::Storage`] when it
    /// cannot be downloaded.
    pub async fn restore(
        &self,
        source: &RestoreSource,
        progress: &(dyn Fn(&ImportProgress) + Send + Sync),
    ) -> Result<ImportReport> {
        match source {
            RestoreSource::Path(p) => self.import(p, progress).await,
            RestoreSource::Object(key) => {
                let objects = self.backup_objects()?;
                let base = Path::new(key)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "backup.csv".into());
                let dir = std::env::temp_dir().join(format!(
                    "tributary-restore-{}",
                    uuid::Uuid::new_v4().simple()
                ));
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(io_err(format!("create {}", dir.display())))?;
                let local = dir.join(base);
                let result = async {
                    let mut stream = objects.get_stream(key).await?;
                    let mut file = tokio::fs::File::create(&local)
                        .await
                        .map_err(io_err(format!("create {}", local.display())))?;
                    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                        file.write_all(&chunk?)
                            .await
                            .map_err(io_err(format!("write {}", local.display())))?;
                    }
                    file.flush()
                        .await
                        .map_err(io_err(format!("write {}", local.display())))?;
                    self.import(&local, progress).await
                }
                .await;
                let _ = tokio::fs::remove_dir_all(&dir).await;
                result
            }
        }
    }
}

//! Backup to CSV (the layout of [`crate::domain::backup_schema`]) or
//! Parquet (the schema of [`crate::parse::parquet`]) and restore, which is
//! an import of the file through the parser (the kind is detected, so both
//! formats restore the same way).
//!
//! Streaming: messages are read in keyset pages of [`PAGE`] and written
//! page by page; CSV memory holds one page. Parquet writes one file with
//! one row group per page: each page is encoded into an in-memory buffer
//! on a blocking thread (the `parquet` writer is synchronous) while the
//! next page is read from the store, and the buffer is pushed to the async
//! output; memory holds about two pages. Names never collide:
//! `chat-backup-<UTC time>-<random>.csv|parquet`. A local file is written
//! as `NAME.partial` and renamed when complete; an object appears only when
//! its upload (multipart for large files) completed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{ChatService, ImportProgress, ImportReport};
use crate::domain::backup_schema::{to_record, COLUMNS};
use crate::domain::{chat_key, Message, MessageFilter};
use crate::error::{Error, Result};
use crate::parse::parquet::ParquetBackupEncoder;

/// Messages read per page (and per Parquet row group).
pub const PAGE: u32 = 5000;

/// File format of a backup.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupFormat {
    /// RFC 4180 CSV with a header row ([`crate::domain::backup_schema`]).
    #[default]
    Csv,
    /// One Parquet file, one row group per page ([`crate::parse::parquet`]).
    Parquet,
}

impl BackupFormat {
    /// File name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            BackupFormat::Csv => "csv",
            BackupFormat::Parquet => "parquet",
        }
    }
}

impl std::str::FromStr for BackupFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(BackupFormat::Csv),
            "parquet" => Ok(BackupFormat::Parquet),
            other => Err(format!(
                "backup format must be csv or parquet, got {other:?}"
            )),
        }
    }
}

/// Where a backup goes: `{"dir": "/path"}` or `"objects"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupTarget {
    /// A directory on the server's file system (created if missing).
    #[schema(value_type = String)]
    Dir(PathBuf),
    /// The object store, under the configured backup prefix.
    Objects,
}

/// What a restore reads: `{"path": "..."}` or `{"object": "key"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreSource {
    /// A file or directory on the server's file system.
    #[schema(value_type = String)]
    Path(PathBuf),
    /// An object key under the backup prefix (as returned by a backup).
    Object(String),
}

/// Progress of a running backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupProgress {
    pub messages: u64,
    pub bytes: u64,
}

/// Outcome of a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupReport {
    /// Path or object key written.
    pub location: String,
    pub messages: u64,
    pub bytes: u64,
}

fn backup_name(format: BackupFormat) -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("chat-backup-{now}-{}.{}", &rand[..12], format.extension())
}

fn task_err(e: tokio::task::JoinError) -> Error {
    Error::Task(format!("Parquet encoder: {e}"))
}

/// One page handed to the blocking encoder and what comes back.
type Encoded = (ParquetBackupEncoder, Result<Vec<u8>>, u64);

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

    /// Writes every message matching `filter` as one file in `format` (CSV:
    /// RFC 4180 with a header row; Parquet: one row group per page) to
    /// `target`.
    ///
    /// # Errors
    /// [`Error::File`] / [`Error::Storage`] when writing fails (no complete
    /// file appears then), [`Error::Sql`], [`Error::InvalidRequest`],
    /// [`Error::Task`] if the Parquet encoder thread dies.
    pub async fn backup(
        &self,
        filter: &MessageFilter,
        target: &BackupTarget,
        format: BackupFormat,
        progress: &(dyn Fn(&BackupProgress) + Send + Sync),
    ) -> Result<BackupReport> {
        filter.validate()?;
        let name = backup_name(format);
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
                    .write_backup(filter, format, tokio::io::BufWriter::new(file), progress)
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
                let (messages, bytes) = self.write_backup(filter, format, writer, progress).await?;
                Ok(BackupReport {
                    location: name,
                    messages,
                    bytes,
                })
            }
        }
    }

    async fn write_backup<W: AsyncWrite + Unpin>(
        &self,
        filter: &MessageFilter,
        format: BackupFormat,
        out: W,
        progress: &(dyn Fn(&BackupProgress) + Send + Sync),
    ) -> Result<(u64, u64)> {
        match format {
            BackupFormat::Csv => self.write_csv(filter, out, progress).await,
            BackupFormat::Parquet => self.write_parquet(filter, out, progress).await,
        }
    }

    /// One Parquet file, one row group per page. Encoding page N runs on a
    /// blocking thread while page N+1 is read from the store.
    async fn write_parquet<W: AsyncWrite + Unpin>(
        &self,
        filter: &MessageFilter,
        mut out: W,
        progress: &(dyn Fn(&BackupProgress) + Send + Sync),
    ) -> Result<(u64, u64)> {
        let werr = |source: std::io::Error| Error::File {
            context: "write backup".into(),
            source,
        };
        let mut p = BackupProgress::default();
        let mut encoder = Some(ParquetBackupEncoder::new()?);
        let mut pending: Option<tokio::task::JoinHandle<Encoded>> = None;
        let mut after: Option<(String, i64)> = None;
        loop {
            let page: Vec<Message> = self.inner.store.scan(filter, after.as_ref(), PAGE).await?;
            let more = page.len() as u32 == PAGE;
            after = page.last().map(|last| (chat_key(last), last.id));
            if let Some(job) = pending.take() {
                let (enc, bytes, n) = job.await.map_err(task_err)?;
                encoder = Some(enc);
                let bytes = bytes?;
                out.write_all(&bytes).await.map_err(werr)?;
                p.bytes += bytes.len() as u64;
                p.messages += n;
                progress(&p);
            }
            let mut enc = encoder
                .take()
                .ok_or_else(|| Error::Task("Parquet encoder lost".into()))?;
            pending = Some(tokio::task::spawn_blocking(move || {
                let bytes = enc.row_group(&page);
                (enc, bytes, page.len() as u64)
            }));
            if !more {
                break;
            }
        }
        if let Some(job) = pending.take() {
            let (enc, bytes, n) = job.await.map_err(task_err)?;
            encoder = Some(enc);
            let bytes = bytes?;
            out.write_all(&bytes).await.map_err(werr)?;
            p.bytes += bytes.len() as u64;
            p.messages += n;
        }
        let tail = encoder
            .take()
            .ok_or_else(|| Error::Task("Parquet encoder lost".into()))?
            .finish()?;
        out.write_all(&tail).await.map_err(werr)?;
        p.bytes += tail.len() as u64;
        out.shutdown().await.map_err(werr)?;
        progress(&p);
        Ok((p.messages, p.bytes))
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

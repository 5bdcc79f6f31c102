//! Uploads: an export (a file or a zip of a directory) streamed from the
//! client is spooled to a private temporary directory on the server, with
//! a size limit and an idle limit, imported from there and removed.
//! Memory stays bounded by one body chunk; nothing outside the spool is
//! read.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt as _;

use super::{ChatService, ImportProgress, ImportReport};
use crate::error::{Error, Result};

/// The file name an upload is stored under: the last component of `name`,
/// which import detection reads (`result.json`, `messages2.html`, a `.zip`).
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty or odd name.
pub fn upload_name(name: &str) -> Result<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty()
        || base == "."
        || base == ".."
        || base.len() > 200
        || base.chars().any(char::is_control)
    {
        return Err(Error::InvalidRequest(
            "name: a file name of 1 to 200 characters, no control characters".into(),
        ));
    }
    Ok(base.to_owned())
}

impl ChatService {
    /// Refuses an upload whose declared size (`Content-Length`, the gRPC
    /// start message's `size`) is over `chat.max_upload_bytes`, before
    /// anything is read.
    ///
    /// # Errors
    /// [`Error::TooLarge`].
    pub fn check_upload_size(&self, name: &str, declared: Option<u64>) -> Result<()> {
        let max = self.inner.settings.max_upload_bytes;
        match declared {
            Some(n) if n > max => Err(Error::TooLarge(format!(
                "upload {name}: {n} bytes, larger than chat.max_upload_bytes ({max} bytes)"
            ))),
            _ => Ok(()),
        }
    }

    /// Spools `body` (at most `chat.max_upload_bytes`; cut off after
    /// `chat.upload_idle_secs` without data) as `name` and imports it like
    /// [`ChatService::import`] does a server path; the spool is removed
    /// afterwards, whatever the outcome. The one upload path of the REST
    /// and gRPC APIs. With `declared`, a body of another length is refused
    /// before the import.
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::InvalidRequest`] for a broken-off,
    /// short or idle body, [`Error::File`] when the spool cannot be
    /// written, and the errors of [`ChatService::import`].
    pub async fn import_upload<S, E>(
        &self,
        name: &str,
        declared: Option<u64>,
        body: S,
        progress: &(dyn Fn(&ImportProgress) + Send + Sync),
    ) -> Result<ImportReport>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let name = upload_name(name)?;
        self.check_upload_size(&name, declared)?;
        let max = self.inner.settings.max_upload_bytes;
        let idle = Duration::from_secs(self.inner.settings.upload_idle_secs.max(1));
        let spool = tempfile::Builder::new()
            .prefix("tributary-chat-upload-")
            .tempdir()
            .map_err(|source| Error::File {
                context: "create the upload spool".into(),
                source,
            })?;
        let path = spool.path().join(&name);
        let file_err = |source| Error::File {
            context: "write the upload spool".into(),
            source,
        };
        let mut file = tokio::fs::File::create(&path).await.map_err(file_err)?;
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        loop {
            let chunk = match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    return Err(Error::InvalidRequest(format!(
                        "upload {name}: no data for {idle:?} after {size} bytes; cut off"
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Error::InvalidRequest(format!(
                        "upload {name}: body broke off after {size} bytes: {e}"
                    )))
                }
                Ok(Some(Ok(c))) => c,
            };
            size += chunk.len() as u64;
            if size > max {
                return Err(Error::TooLarge(format!(
                    "upload {name}: larger than chat.max_upload_bytes ({max} bytes)"
                )));
            }
            file.write_all(&chunk).await.map_err(file_err)?;
        }
        file.flush().await.map_err(file_err)?;
        drop(file);
        if let Some(n) = declared.filter(|n| *n != size) {
            return Err(Error::InvalidRequest(format!(
                "upload {name}: ended after {size} of the {n} bytes declared; not imported"
            )));
        }
        tracing::info!(name = %name, bytes = size, "upload spooled; importing");
        // File names in progress and report are given relative to the
        // spool: the client sees its own names, never a server path.
        let prefix = format!("{}/", spool.path().display());
        let local = |f: &str| f.strip_prefix(&prefix).unwrap_or(f).to_owned();
        let progress = |p: &ImportProgress| {
            let mut p = p.clone();
            p.file = p.file.as_deref().map(local);
            progress(&p);
        };
        let report = self.import(&path, &progress).await;
        drop(spool);
        let mut report = report?;
        for e in &mut report.errors {
            e.file = local(&e.file);
        }
        Ok(report)
    }
}

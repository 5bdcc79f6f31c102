//! The upload path: the body streams (gzip decoded on the fly) through
//! SHA-256, the [`Splitter`] and into a temporary object, chunk by chunk,
//! never whole in memory. Only a complete, well-formed body is moved to its
//! final, checksum-named object (`files/<sha256>`); any failure aborts and
//! removes the temporary object, so nothing half-stored stays.

use std::io::Write as _;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tributary_runtime::{ApiError, ErrorKind};

use super::ApiState;
use crate::domain::body::{BodyFormat, Splitter, SyntaxError};
use crate::events::{FileExtractError, FileExtractSuccess};
use crate::store::Stored;

/// Compressed bytes fed to the gzip decoder at a time (bounds the decoded
/// output held at once).
const GZIP_SLICE: usize = 8 * 1024;

/// Answer of an accepted upload (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    /// Id of this upload: `GET /api/imports/uploads/{request_id}`.
    pub request_id: String,
    /// SHA-256 of the decoded body, hex.
    pub checksum: String,
    /// Decoded body size, bytes.
    pub size: u64,
    /// Records in the body.
    pub records: u64,
    /// `object`, `array` or `ndjson`.
    pub format: String,
    /// The earlier upload that already imported the same bytes (nothing
    /// is processed again).
    pub duplicate_of: Option<String>,
    /// An earlier upload of the same bytes that never completed; this one
    /// carries its work on.
    pub resumes: Option<String>,
}

/// The body's encoding, from `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// gzip (one or more members).
    Gzip,
}

impl Encoding {
    /// From the header value (`None`: absent).
    ///
    /// # Errors
    /// 400 naming an encoding other than `gzip`/`identity`.
    pub fn parse(header: Option<&str>) -> Result<Self, ApiError> {
        match header.map(|h| h.trim().to_ascii_lowercase()) {
            None => Ok(Encoding::Identity),
            Some(h) if h.is_empty() || h == "identity" => Ok(Encoding::Identity),
            Some(h) if h == "gzip" || h == "x-gzip" => Ok(Encoding::Gzip),
            Some(h) => Err(ApiError::invalid(format!(
                "Content-Encoding: {h:?} is not supported (gzip or identity)"
            ))),
        }
    }
}

/// Why a body was refused.
enum Refusal {
    Syntax(SyntaxError),
    TooLarge(u64),
    Gzip(String),
    Truncated(String),
}

impl Refusal {
    fn event(&self, request_id: &str, kind: &str, name: &str) -> FileExtractError {
        let (line, column, reason) = match self {
            Refusal::Syntax(e) => (e.line as u64, e.column as u64, e.reason.clone()),
            Refusal::TooLarge(limit) => (0, 0, format!("body larger than {limit} bytes")),
            Refusal::Gzip(e) => (0, 0, format!("gzip: {e}")),
            Refusal::Truncated(e) => (0, 0, format!("the body ended early: {e}")),
        };
        FileExtractError {
            request_id: request_id.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            line,
            column,
            reason,
        }
    }

    fn answer(&self, event: &FileExtractError) -> ApiError {
        match self {
            Refusal::Syntax(_) => ApiError::invalid(format!(
                "line {}, column {}: {}",
                event.line, event.column, event.reason
            )),
            Refusal::TooLarge(_) => ApiError::new(ErrorKind::PayloadTooLarge, event.reason.clone()),
            Refusal::Gzip(_) | Refusal::Truncated(_) => ApiError::invalid(event.reason.clone()),
        }
    }
}

enum Failure {
    Refused(Refusal),
    Store(anyhow::Error),
}

/// Decodes, hashes, splits and writes one body.
struct Pipe {
    gzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    sha: Sha256,
    splitter: Splitter,
    size: u64,
    records: u64,
    limit: u64,
}

impl Pipe {
    /// Counts, hashes and splits decoded bytes (the size limit applies here).
    fn decoded(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        self.size += bytes.len() as u64;
        if self.size > self.limit {
            return Err(Refusal::TooLarge(self.limit));
        }
        self.sha.update(bytes);
        let done = self.splitter.push(bytes).map_err(Refusal::Syntax)?;
        self.records += done.len() as u64;
        Ok(())
    }

    /// Turns one chunk of the request body into decoded pieces.
    fn decode(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) -> Result<(), Refusal> {
        match &mut self.gzip {
            None => {
                self.decoded(chunk)?;
                out.push(Bytes::copy_from_slice(chunk));
            }
            Some(_) => {
                for slice in chunk.chunks(GZIP_SLICE) {
                    let piece = {
                        let Some(dec) = self.gzip.as_mut() else {
                            break;
                        };
                        dec.write_all(slice)
                            .map_err(|e| Refusal::Gzip(e.to_string()))?;
                        std::mem::take(dec.get_mut())
                    };
                    if !piece.is_empty() {
                        self.decoded(&piece)?;
                        out.push(Bytes::from(piece));
                    }
                }
            }
        }
        Ok(())
    }

    fn finish_gzip(&mut self) -> Result<Option<Bytes>, Refusal> {
        let Some(dec) = self.gzip.as_mut() else {
            return Ok(None);
        };
        dec.try_finish().map_err(|e| Refusal::Gzip(e.to_string()))?;
        let rest = std::mem::take(dec.get_mut());
        if rest.is_empty() {
            return Ok(None);
        }
        self.decoded(&rest)?;
        Ok(Some(Bytes::from(rest)))
    }
}

fn format_name(f: BodyFormat) -> &'static str {
    match f {
        BodyFormat::Object => "object",
        BodyFormat::Array => "array",
        BodyFormat::Ndjson => "ndjson",
    }
}

/// The object key of a stored body.
pub fn object_key(checksum: &str) -> String {
    format!("files/{checksum}")
}

/// Streams `body` of upload `request_id` (already `received` in the
/// store) to the object store and announces it. See the module docs.
///
/// # Errors
/// 400/413 for a refused body (after `FileExtractError`), 503 when the
/// object store or the database fails.
pub async fn ingest<S, E>(
    st: &ApiState,
    request_id: &str,
    kind: &str,
    name: &str,
    encoding: Encoding,
    body: S,
) -> Result<UploadAnswer, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let temp = format!("tmp/{request_id}");
    let mut pipe = Pipe {
        gzip: (encoding == Encoding::Gzip).then(|| flate2::write::MultiGzDecoder::new(Vec::new())),
        sha: Sha256::new(),
        splitter: Splitter::with_max_record(st.settings.max_record_bytes),
        size: 0,
        records: 0,
        limit: st.settings.max_body_bytes,
    };
    let format = stream_to(st, &temp, &mut pipe, body).await;
    let format = match format {
        Ok(f) => f,
        Err(failure) => {
            if let Err(e) = st.objects.delete(&temp).await {
                tracing::warn!(key = %temp, error = %e, "cannot remove the temporary object of a refused upload");
            }
            return Err(match failure {
                Failure::Refused(r) => {
                    let event = r.event(request_id, kind, name);
                    metrics::counter!(crate::metrics::UPLOADS, "kind" => kind.to_owned(), "outcome" => "refused").increment(1);
                    st.store
                        .refuse_upload(&event)
                        .await
                        .map_err(|e| ApiError::unavailable(anyhow::anyhow!(e)))?;
                    r.answer(&event)
                }
                Failure::Store(e) => {
                    if let Err(db) = st.store.abandon_upload(request_id, &format!("{e:#}")).await {
                        tracing::warn!(error = %db, "cannot mark the upload failed");
                    }
                    ApiError::unavailable(e)
                }
            });
        }
    };
    let checksum = format!("{:x}", std::mem::take(&mut pipe.sha).finalize());
    let key = object_key(&checksum);
    let placed = match st.objects.head(&key).await {
        Ok(_) => st.objects.delete(&temp).await,
        Err(tributary_storage::Error::NotFound { .. }) => st.objects.rename(&temp, &key).await,
        Err(e) => Err(e),
    };
    if let Err(e) = placed {
        let _ = st.objects.delete(&temp).await;
        let _ = st.store.abandon_upload(request_id, &e.to_string()).await;
        return Err(ApiError::unavailable(anyhow::anyhow!("object store: {e}")));
    }
    let event = FileExtractSuccess {
        request_id: request_id.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        object: format!("{}/{key}", st.objects.redacted_url().trim_end_matches('/')),
        key,
        size: pipe.size,
        checksum: checksum.clone(),
        records: pipe.records,
    };
    let outcome = st
        .store
        .store_upload(&event)
        .await
        .map_err(|e| ApiError::unavailable(anyhow::anyhow!(e)))?;
    let (duplicate_of, resumes) = match outcome {
        Stored::Duplicate(first) => (Some(first.request_id), None),
        Stored::New { resumes } => (None, resumes),
    };
    let outcome = if duplicate_of.is_some() {
        "duplicate"
    } else {
        "stored"
    };
    metrics::counter!(crate::metrics::UPLOADS, "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::counter!(crate::metrics::UPLOAD_BYTES, "kind" => kind.to_owned()).increment(pipe.size);
    tracing::info!(request_id, kind, name, size = pipe.size, records = pipe.records, %checksum, ?duplicate_of, "upload stored");
    Ok(UploadAnswer {
        request_id: request_id.to_owned(),
        checksum,
        size: pipe.size,
        records: pipe.records,
        format: format_name(format).to_owned(),
        duplicate_of,
        resumes,
    })
}

/// The streaming part: every chunk through the pipe into the temporary
/// object, which is completed only when the body ended well.
async fn stream_to<S, E>(
    st: &ApiState,
    temp: &str,
    pipe: &mut Pipe,
    body: S,
) -> Result<BodyFormat, Failure>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut writer = st
        .objects
        .writer(temp, None)
        .map_err(|e| Failure::Store(anyhow::anyhow!("object store: {e}")))?;
    let mut body = std::pin::pin!(body);
    let mut pieces = Vec::new();
    let outcome: Result<(), Failure> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Failure::Refused(Refusal::Truncated(e.to_string())))?;
            pieces.clear();
            pipe.decode(&chunk, &mut pieces).map_err(Failure::Refused)?;
            for p in &pieces {
                writer
                    .write_all(p)
                    .await
                    .map_err(|e| Failure::Store(anyhow::anyhow!("object store: {e}")))?;
            }
        }
        if let Some(rest) = pipe.finish_gzip().map_err(Failure::Refused)? {
            writer
                .write_all(&rest)
                .await
                .map_err(|e| Failure::Store(anyhow::anyhow!("object store: {e}")))?;
        }
        Ok(())
    }
    .await;
    let outcome = outcome.and_then(|()| {
        // Syntax is judged before the object is completed: a malformed or
        // empty body is never stored, not even for a moment.
        std::mem::take(&mut pipe.splitter)
            .finish()
            .map_err(|e| Failure::Refused(Refusal::Syntax(e)))
    });
    match outcome {
        Ok(format) => {
            writer
                .shutdown()
                .await
                .map_err(|e| Failure::Store(anyhow::anyhow!("object store: {e}")))?;
            Ok(format)
        }
        Err(f) => {
            if let Err(e) = writer.abort().await {
                tracing::warn!(key = temp, error = %e, "aborting the temporary object failed");
            }
            Err(f)
        }
    }
}

//! The object store port: blobs under string keys, S3 in production, a local
//! directory on one machine.
//!
//! Keys are `/`-separated paths relative to the handle's prefix (`a/b.json`);
//! a segment may not be empty, `.` or `..`. Listing is by path segments:
//! `list("a")` returns `a/x` and `a/b/y` but not `ab/z`.
//!
//! Failure: every operation returns [`Error::NotFound`] for a missing object
//! (except [`Objects::delete`], which is idempotent), [`Error::InvalidKey`] for
//! a bad key and [`Error::Objects`] when the store fails after the client's
//! own retries (S3: up to 10 retries with backoff, at most 3 minutes).
//! A `put` is atomic: readers see the old object or the whole new one.
//! Cancelling (dropping) a `put` leaves the old object; cancelling a multipart
//! upload leaves the old object and, on S3, an incomplete upload that the
//! bucket's lifecycle rule should expire (call [`ObjectWriter::abort`] to
//! remove it right away).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncWrite;
use tributary_platform::url::{redact, scheme};

use crate::error::one_line;
use crate::{Error, Result};

const PORT: &str = "objects";

/// Part size of multipart uploads: 5 MiB, the smallest part S3 accepts.
pub const DEFAULT_PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts uploaded concurrently by one multipart upload.
const MAX_CONCURRENCY: usize = 4;

/// Where the objects live.
///
/// * `file://DIR` — a local directory (created if missing). `file:///abs/dir`
///   is absolute, `file://rel/dir` is relative to the working directory.
/// * `s3://BUCKET/optional/prefix` — an S3 bucket (it must exist). Settings
///   not given here come from the usual `AWS_*` environment variables
///   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
///   `AWS_ENDPOINT`, ...). A custom `endpoint` uses path-style requests
///   (`ENDPOINT/BUCKET/key`), as MinIO, SeaweedFS and most S3-compatible
///   servers expect.
#[derive(Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectsConfig {
    /// `file://DIR` or `s3://BUCKET/optional/prefix`.
    pub url: String,
    /// S3 endpoint such as `http://127.0.0.1:8333`; `None` means AWS.
    pub endpoint: Option<String>,
    /// S3 region (e.g. `us-east-1`).
    pub region: Option<String>,
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key (never printed).
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint (test rigs, local servers).
    pub allow_http: bool,
}

impl std::fmt::Debug for ObjectsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectsConfig")
            .field("url", &redact(&self.url))
            .field("endpoint", &self.endpoint.as_deref().map(redact))
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl ObjectsConfig {
    /// A config with only a URL (a `file://` directory, or S3 configured
    /// through the environment).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Metadata of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the handle's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A handle to an object store and a key prefix inside it. Cloning is cheap
/// and shares the client.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("url", &self.url)
            .field("prefix", &self.prefix.as_ref())
            .finish()
    }
}

impl Objects {
    /// Builds the client for `config.url`. Does not contact the server (use
    /// the [`HealthCheck`](tributary_platform::health::HealthCheck) for that).
    ///
    /// # Errors
    /// [`Error::UnsupportedScheme`] / [`Error::InvalidUrl`] for a bad URL or
    /// S3 setting, [`Error::Io`] when the `file://` directory cannot be
    /// created.
    pub fn open(config: &ObjectsConfig) -> Result<Self> {
        let url = config.url.trim();
        let redacted = redact(url);
        let invalid = |reason: String| Error::InvalidUrl {
            port: PORT,
            url: redacted.clone(),
            reason,
        };
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match scheme(url).as_deref() {
            Some("file") => {
                let dir = url.get("file://".len()..).unwrap_or_default();
                if dir.is_empty() {
                    return Err(invalid("no directory after file://".into()));
                }
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    path: dir.clone(),
                    source,
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| invalid(one_line(&e)))?
                    .with_automatic_cleanup(true);
                (Arc::new(fs), "")
            }
            Some("s3") => {
                let rest = url.get("s3://".len()..).unwrap_or_default();
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid("no bucket after s3://".into()));
                }
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(config.allow_http)
                    .with_virtual_hosted_style_request(false)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_allow_http(config.allow_http),
                    );
                if let Some(v) = &config.endpoint {
                    b = b.with_endpoint(v);
                }
                if let Some(v) = &config.region {
                    b = b.with_region(v);
                }
                if let Some(v) = &config.access_key_id {
                    b = b.with_access_key_id(v);
                }
                if let Some(v) = &config.secret_access_key {
                    b = b.with_secret_access_key(v);
                }
                let s3 = b.build().map_err(|e| invalid(one_line(&e)))?;
                (Arc::new(s3), prefix)
            }
            _ => {
                return Err(Error::UnsupportedScheme {
                    port: PORT,
                    url: redacted,
                    expected: "file://DIR or s3://BUCKET/optional/prefix",
                })
            }
        };
        let prefix = Path::parse(prefix.trim_matches('/'))
            .map_err(|e| invalid(format!("bad prefix: {}", one_line(&e))))?;
        Ok(Self {
            store,
            prefix,
            url: redacted,
        })
    }

    /// A handle to the same store whose keys live under `sub` inside this
    /// handle's prefix (isolation per system, per test).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `sub` is not a valid key.
    pub fn with_prefix(&self, sub: &str) -> Result<Self> {
        let prefix = self.full_path(sub.trim_matches('/'))?;
        Ok(Self {
            store: Arc::clone(&self.store),
            prefix,
            url: self.url.clone(),
        })
    }

    /// The store URL (password masked) for logs.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// Stores `bytes` under `key`, replacing any object there, in one request.
    /// Use [`Objects::put_stream`] or [`Objects::writer`] above a few MiB.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::Objects`]; on error the old object
    /// (if any) is unchanged.
    pub async fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<()> {
        let path = self.key_path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes.into()))
            .await
            .map_err(|e| map_err(e, key))?;
        Ok(())
    }

    /// Reads the whole object into memory.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidKey`], [`Error::Objects`].
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.key_path(key)?;
        let got = self.store.get(&path).await.map_err(|e| map_err(e, key))?;
        got.bytes().await.map_err(|e| map_err(e, key))
    }

    /// Reads the object as a stream of chunks, without holding it in memory.
    /// A chunk error ends the stream (the reader must start over).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidKey`], [`Error::Objects`] when
    /// opening; later failures come as `Err` items.
    pub async fn get_stream(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = self.key_path(key)?;
        let got = self.store.get(&path).await.map_err(|e| map_err(e, key))?;
        let key = key.to_string();
        Ok(got.into_stream().map_err(move |e| map_err(e, &key)).boxed())
    }

    /// Size of the object, or [`Error::NotFound`].
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidKey`], [`Error::Objects`].
    pub async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let path = self.key_path(key)?;
        let meta = self.store.head(&path).await.map_err(|e| map_err(e, key))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: meta.size,
        })
    }

    /// Uploads a large object from a stream as a multipart upload with parts
    /// of `part_size` bytes ([`DEFAULT_PART_SIZE`] when `None`; S3 requires at
    /// least 5 MiB for every part but the last). The object appears only when
    /// the whole stream was uploaded. Returns the number of bytes written.
    ///
    /// # Errors
    /// A stream item error or an upload failure aborts the upload (the old
    /// object, if any, stays) and is returned; stream errors become
    /// [`Error::Source`].
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        stream: S,
        part_size: Option<usize>,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = self.key_path(key)?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| map_err(e, key))?;
        let mut write =
            WriteMultipart::new_with_chunk_size(upload, part_size.unwrap_or(DEFAULT_PART_SIZE));
        let mut stream = std::pin::pin!(stream);
        let mut total: u64 = 0;
        let failure = loop {
            match stream.next().await {
                None => break None,
                Some(Err(e)) => {
                    break Some(Error::Source {
                        key: key.to_string(),
                        source: e.into(),
                    })
                }
                Some(Ok(chunk)) => {
                    if let Err(e) = write.wait_for_capacity(MAX_CONCURRENCY).await {
                        break Some(map_err(e, key));
                    }
                    total += chunk.len() as u64;
                    write.put(chunk);
                }
            }
        };
        if let Some(err) = failure {
            if let Err(abort) = write.abort().await {
                tracing::warn!(key, error = %abort, "aborting multipart upload failed");
            }
            return Err(err);
        }
        write.finish().await.map_err(|e| map_err(e, key))?;
        Ok(total)
    }

    /// An [`AsyncWrite`] that uploads to `key`: small objects in one request
    /// on shutdown, larger ones as a multipart upload in `part_size` parts.
    /// The object appears only after `shutdown().await` returns `Ok`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; write errors come from the writer as
    /// `std::io::Error`.
    pub fn writer(&self, key: &str, part_size: Option<usize>) -> Result<ObjectWriter> {
        let path = self.key_path(key)?;
        let inner = BufWriter::with_capacity(
            Arc::clone(&self.store),
            path,
            part_size.unwrap_or(DEFAULT_PART_SIZE),
        )
        .with_max_concurrency(MAX_CONCURRENCY);
        Ok(ObjectWriter { inner })
    }

    /// Every object whose key starts with the path `prefix` (segment-wise;
    /// `""` lists everything under this handle), sorted by key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::Objects`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full = self.full_path(prefix.trim_matches('/'))?;
        let listed: Vec<_> = self
            .store
            .list(Some(&full))
            .try_collect()
            .await
            .map_err(|e| map_err(e, prefix))?;
        let mut out: Vec<ObjectInfo> = listed
            .into_iter()
            .filter_map(|meta| {
                let parts = meta.location.prefix_match(&self.prefix)?;
                let key = parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                Some(ObjectInfo {
                    key,
                    size: meta.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Removes the object. Removing a missing object succeeds (idempotent).
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::Objects`].
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.key_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e, key)),
        }
    }

    /// Moves the object at `from` to `to`, replacing any object there
    /// (readers of `to` see the old object or the whole new one). On S3 this
    /// is a server-side copy then a delete of `from`; on a directory a file
    /// rename.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `from` is missing, [`Error::InvalidKey`],
    /// [`Error::Objects`]; on error `to` is unchanged (on S3 `from` may
    /// remain after a failed delete; removing it again is idempotent).
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let src = self.key_path(from)?;
        let dst = self.key_path(to)?;
        self.store
            .rename(&src, &dst)
            .await
            .map_err(|e| map_err(e, from))
    }

    /// Lists at most one page under the prefix to prove the store answers
    /// and the bucket is accessible.
    ///
    /// # Errors
    /// [`Error::Objects`] with the store's reason.
    pub async fn ping(&self) -> Result<()> {
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| map_err(e, ""))?;
        Ok(())
    }

    fn key_path(&self, key: &str) -> Result<Path> {
        if key.trim_matches('/').is_empty() {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                reason: "empty key".into(),
            });
        }
        self.full_path(key)
    }

    fn full_path(&self, key: &str) -> Result<Path> {
        let rel = Path::parse(key).map_err(|e| Error::InvalidKey {
            key: key.to_string(),
            reason: one_line(&e),
        })?;
        Ok(Path::from_iter(self.prefix.parts().chain(rel.parts())))
    }
}

#[async_trait::async_trait]
impl tributary_platform::health::HealthCheck for Objects {
    fn name(&self) -> String {
        PORT.to_string()
    }

    /// A one-page listing of the prefix; fails with the store's reason.
    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| format!("{}: {e}", self.url))
    }
}

fn map_err(e: object_store::Error, key: &str) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound {
            key: key.to_string(),
        },
        object_store::Error::InvalidPath { source } => Error::InvalidKey {
            key: key.to_string(),
            reason: source.to_string(),
        },
        other => Error::Objects(other),
    }
}

/// Uploads one object through [`AsyncWrite`] (see [`Objects::writer`]).
/// Call `shutdown().await` to complete the object; dropping the writer without
/// it leaves the old object (call [`ObjectWriter::abort`] to also remove an
/// incomplete multipart upload). Writing after shutdown panics.
pub struct ObjectWriter {
    inner: BufWriter,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter").finish_non_exhaustive()
    }
}

impl ObjectWriter {
    /// Abandons the upload; nothing is stored.
    ///
    /// # Errors
    /// [`Error::Objects`] when the store cannot abort the multipart upload.
    pub async fn abort(mut self) -> Result<()> {
        self.inner.abort().await.map_err(|e| map_err(e, ""))
    }
}

impl AsyncWrite for ObjectWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! What client commands (`tributary <system> ...`) use to reach a running
//! service: an HTTP client and a gRPC interceptor that send the caller's
//! token (`TRIBUTARY_TOKEN`, else `auth.client_token`) as
//! `Authorization: Bearer TOKEN`.
//!
//! `https://` addresses work for both (a service with `[server]
//! tls_cert_file`): the server's certificate must chain to the Mozilla
//! roots, or to the PEM certificates in the file `TRIBUTARY_CA_FILE` names
//! (a private CA; those are then the only roots trusted).

use anyhow::Context as _;

/// The environment variable naming a PEM file of CA certificates clients trust.
pub const CA_FILE_ENV: &str = "TRIBUTARY_CA_FILE";

/// The PEM bytes of `TRIBUTARY_CA_FILE`, when set.
fn ca_file() -> anyhow::Result<Option<Vec<u8>>> {
    match std::env::var_os(CA_FILE_ENV).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(path) => std::fs::read(&path)
            .map(Some)
            .with_context(|| format!("{CA_FILE_ENV}={}", path.to_string_lossy())),
    }
}

/// A gRPC channel to `addr` (`host:port`, `http://host:port` or
/// `https://host:port`), connected; TLS for `https://` (module docs).
/// `what` names the service in errors.
///
/// # Errors
/// When the address does not parse, the CA file cannot be read, or the
/// service does not answer.
pub async fn grpc_channel(addr: &str, what: &str) -> anyhow::Result<tonic::transport::Channel> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(uri.clone())
        .with_context(|| format!("parse the {what} address {addr}"))?;
    if uri.starts_with("https://") {
        let tls = match ca_file()? {
            Some(pem) => tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => tonic::transport::ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint
            .tls_config(tls)
            .with_context(|| format!("TLS for {uri}"))?;
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("connect to {what} at {uri}"))
}

/// A `reqwest` client sending the caller's token with every request, and
/// trusting `TRIBUTARY_CA_FILE` when set.
///
/// # Errors
/// When the token is not a valid header value or the CA file is unreadable.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = tributary_platform::auth::client_authorization() {
        let mut v = reqwest::header::HeaderValue::from_str(&value)
            .context("TRIBUTARY_TOKEN / auth.client_token is not a valid header value")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(pem) = ca_file()? {
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{CA_FILE_ENV}: not a PEM certificate bundle"))?;
        builder = builder.tls_built_in_root_certs(false);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().context("build the HTTP client")
}

/// A tonic interceptor adding the caller's token to every call:
/// `FooClient::with_interceptor(channel, grpc_auth()?)`.
///
/// # Errors
/// When the token is not a valid metadata value.
pub fn grpc_auth() -> anyhow::Result<
    impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone,
> {
    let value = tributary_platform::auth::client_authorization()
        .map(|v| {
            tonic::metadata::MetadataValue::try_from(v.as_str())
                .context("TRIBUTARY_TOKEN / auth.client_token is not a valid metadata value")
        })
        .transpose()?;
    Ok(move |mut req: tonic::Request<()>| {
        if let Some(v) = &value {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    })
}

/// A running service's HTTP API as a client command reaches it: the base
/// URL, the caller's token on every request ([`http_client`]), and one
/// answer handling for every system (a refusal becomes an error naming the
/// status, the error code and the message of the shared error body).
#[derive(Debug, Clone)]
pub struct Api {
    what: &'static str,
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// The API of system `what` (for messages: "reach the docs API at ...")
    /// at `base` (`http://host:port`, a trailing `/` is dropped).
    ///
    /// # Errors
    /// When the token is not a valid header value.
    pub fn new(what: &'static str, base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            what,
            base: base.trim_end_matches('/').to_owned(),
            http: http_client()?,
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The HTTP client (it sends the token), to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `req`; a refusal (non-2xx) is an error (see [`check`]).
    ///
    /// # Errors
    /// When the API cannot be reached or refuses.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("reach the {} API at {}", self.what, self.base))?;
        check(resp).await
    }

    /// Sends `req` and reads the JSON answer.
    ///
    /// # Errors
    /// When the API cannot be reached, refuses, or answers something else.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        self.send(req)
            .await?
            .json()
            .await
            .with_context(|| format!("read the answer of the {} API at {}", self.what, self.base))
    }

    /// `GET base+path?query` and its JSON answer.
    ///
    /// # Errors
    /// As [`Api::call`].
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.call(self.http.get(self.url(path)).query(query)).await
    }

    /// `POST base+path` with a JSON `body`, and its JSON answer.
    ///
    /// # Errors
    /// As [`Api::call`].
    pub async fn post<B: serde::Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.call(self.http.post(self.url(path)).json(body)).await
    }
}

/// `resp` when it is a success; else an error "STATUS: code: message" from
/// the shared error body (or the raw text when the body is not one).
///
/// # Errors
/// When the status is not 2xx.
pub async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<crate::ErrorBody>(&text)
        .map(|b| format!("{}: {}", b.code, b.message))
        .unwrap_or(text);
    anyhow::bail!("{status}: {msg}")
}

/// Bytes per read of [`file_chunks`] (and so [`file_body`]).
const FILE_CHUNK: usize = 256 * 1024;

/// A request body that streams the open `file` from disk in 256 KiB reads
/// ([`file_chunks`]), so an upload of any size holds one chunk in memory;
/// `on_read(n)` is called after each read (a progress bar's `inc`). The
/// stream ends at the file's end or at its first read error.
pub fn file_body(
    file: tokio::fs::File,
    on_read: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> reqwest::Body {
    reqwest::Body::wrap_stream(file_chunks(file, on_read))
}

/// The open `file` as a stream of 256 KiB reads (the last one shorter),
/// calling `on_read(n)` after each; it ends at the file's end or with its
/// first read error. The one reader behind every upload, HTTP
/// ([`file_body`]) or gRPC (messages of one chunk each).
pub fn file_chunks(
    file: tokio::fs::File,
    on_read: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(Some(file), move |state| {
        let on_read = on_read.clone();
        async move {
            use tokio::io::AsyncReadExt as _;
            let mut f = state?;
            let mut buf = vec![0u8; FILE_CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    on_read(n as u64);
                    Some((Ok(bytes::Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

//! What client commands (`tributary <system> ...`) use to reach a running
//! service: an HTTP client and a gRPC interceptor that send the caller's
//! token (`TRIBUTARY_TOKEN`, else `auth.client_token`) as
//! `Authorization: Bearer TOKEN`.

use anyhow::Context as _;

/// A `reqwest` client sending the caller's token with every request.
///
/// # Errors
/// When the token is not a valid header value.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = tributary_platform::auth::client_authorization() {
        let mut v = reqwest::header::HeaderValue::from_str(&value)
            .context("TRIBUTARY_TOKEN / auth.client_token is not a valid header value")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .context("build the HTTP client")
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

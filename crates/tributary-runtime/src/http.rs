//! Shared HTTP server plumbing: every REST API is served by [`serve`],
//! which adds the same layers to each router:
//!
//! - a body limit ([`HttpLimits::body_limit`], 413 `resource_exhausted` past it);
//! - a time limit per request until its response starts
//!   ([`HttpLimits::request_timeout`], 504 `deadline_exceeded`);
//! - a request id: the client's `x-request-id` if it sent a sane one, else a
//!   new UUID, echoed in the response and recorded on the request's span;
//! - per-route metrics with bounded labels (the route template, never the
//!   raw path): `tributary_http_requests_total{service,method,route,status}`
//!   and `tributary_http_request_duration_seconds`;
//! - a JSON 404 `{"code":"not_found"}` for unknown routes;
//! - graceful shutdown: in-flight requests finish, new connections stop.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::{ApiError, ErrorKind};

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Limits of one HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Longest time until a response starts (streamed bodies may go on).
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Binds `addr` for the API `what`, naming both in the error.
///
/// # Errors
/// When the address cannot be bound (in use, not permitted).
pub async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the {what} on {addr}"))
}

/// Adds the shared layers (see the module docs) to `router`; `service`
/// labels the metrics.
pub fn layered(router: Router, service: &'static str, limits: HttpLimits) -> Router {
    let timeout = limits.request_timeout;
    router
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| plumbing(req, next, service, timeout),
        ))
        .layer(DefaultBodyLimit::max(limits.body_limit))
}

async fn plumbing(req: Request, next: Next, service: &'static str, timeout: Duration) -> Response {
    let t0 = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!("http", %method, %route, request_id = %id);
    let mut response = match tokio::time::timeout(timeout, next.run(req).instrument(span)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            ErrorKind::DeadlineExceeded,
            format!("no response within {timeout:?}"),
        )
        .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let status = response.status().as_u16().to_string();
    let labels = [
        ("service", service.to_owned()),
        ("method", method),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("tributary_http_requests_total", &labels).increment(1);
    metrics::histogram!("tributary_http_request_duration_seconds", &labels[..3])
        .record(t0.elapsed().as_secs_f64());
    response
}

/// `axum::Json` whose rejection is an [`ApiError`] (400 `invalid_argument`
/// naming the field and position, 413 past the body limit), so a bad body
/// gets the one error body like every other error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|j| Json(j.0))
            .map_err(ApiError::from)
    }
}

/// `axum::extract::Query` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(ApiError::from)
    }
}

/// `axum::extract::Path` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(ApiError::from)
    }
}

/// Serves `router` (with [`layered`]) on `listener` until `shutdown`,
/// then lets in-flight requests finish.
///
/// # Errors
/// When the server fails (the listener broke).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    service: &'static str,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, layered(router, service, limits))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .with_context(|| format!("{service} HTTP server"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        let router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/json",
                post(|Json(v): Json<serde_json::Value>| async move { v.to_string() }),
            );
        layered(
            router,
            "test",
            HttpLimits {
                body_limit: 16,
                request_timeout: Duration::from_millis(100),
            },
        )
    }

    async fn call(req: Request<Body>) -> (u16, String, Option<String>) {
        let resp = app().oneshot(req).await.expect("response");
        let status = resp.status().as_u16();
        let id = resp
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), id)
    }

    // Proves: the shared layers answer over-limit bodies 413, slow handlers 504, unknown routes 404, all with the one JSON body, and echo or assign a request id.
    #[tokio::test]
    async fn limits_and_errors_share_one_body() {
        let (s, body, id) = call(
            Request::post("/json")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"a":"0123456789abcdefghij"}"#))
                .expect("req"),
        )
        .await;
        assert_eq!(s, 413, "{body}");
        assert!(body.contains("\"code\":\"resource_exhausted\""), "{body}");
        assert!(id.is_some());

        let (s, body, _) = call(Request::get("/slow").body(Body::empty()).expect("req")).await;
        assert_eq!(s, 504, "{body}");
        assert!(body.contains("deadline_exceeded"), "{body}");

        let (s, body, id) = call(
            Request::get("/nope")
                .header(REQUEST_ID, "abc-123")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(s, 404);
        assert!(body.contains("\"code\":\"not_found\""), "{body}");
        assert_eq!(id.as_deref(), Some("abc-123"));

        let (s, body, _) = call(
            Request::post("/json")
                .header("content-type", "application/json")
                .body(Body::from("{"))
                .expect("req"),
        )
        .await;
        assert_eq!(s, 400);
        assert!(body.contains("invalid_argument"), "{body}");
    }
}

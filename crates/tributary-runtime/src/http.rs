//! Shared HTTP server plumbing: every REST API is served by [`serve`],
//! which adds the same layers to each router:
//!
//! - a body limit ([`HttpLimits::body_limit`], 413 `resource_exhausted` past it);
//! - a time limit per request until its response starts
//!   ([`HttpLimits::request_timeout`], 504 `deadline_exceeded`), except on
//!   upload routes ([`HttpLimits::untimed`]) that bound their own body reads;
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

use tributary_platform::auth::{Denied, Principal, Role};
use tributary_platform::telemetry::Series;

use crate::error::{ApiError, ErrorKind};

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Counter: requests answered, by `service`, `method`, `route` and `status`.
pub const REQUESTS: &str = "tributary_http_requests_total";
/// Histogram: seconds until the response started, by `service`, `method` and `route`.
pub const REQUEST_SECONDS: &str = "tributary_http_request_duration_seconds";

/// The series [`serve`] emits for the API `service`, to register at start
/// (`Service::metrics`). Method, route and status are known only once a
/// request arrives, so the request series are registered with `service`
/// alone: a 0 rate per API from the first scrape, and the API listed by
/// `label_values(tributary_http_requests_total, service)`.
pub fn series(service: &'static str) -> Vec<Series> {
    let mut out = vec![
        Series::counter(REQUESTS).label("service", service),
        Series::histogram(REQUEST_SECONDS).label("service", service),
    ];
    out.extend(tributary_platform::serve::series(service));
    out
}

/// Limits and access policy of one HTTP API.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Longest time until a response starts (streamed bodies may go on).
    pub request_timeout: Duration,
    /// Route templates (`"POST /api/x/upload"`) without that limit: large
    /// uploads, whose handlers bound each body read themselves (an idle
    /// client is cut off, a slow but steady one is not).
    pub untimed: &'static [&'static str],
    /// Roles of routes that differ from the default (`GET`/`HEAD` need
    /// `read`, other methods `write`): a `POST` search that only reads, a
    /// destructive operation that needs `admin`.
    pub roles: &'static [RouteRole],
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            untimed: &[],
            roles: &[],
        }
    }
}

/// The role a route needs: `RouteRole("POST", "/api/x/search", Role::Read)`;
/// the path is the route template as registered (`/api/items/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRole(pub &'static str, pub &'static str, pub Role);

/// Paths that stay open whatever `[auth]` says (probes).
const OPEN_PATHS: [&str; 4] = ["/livez", "/readyz", "/liveness", "/readiness"];

/// The role `method route` needs under `roles`.
pub fn needed_role(roles: &[RouteRole], method: &str, route: &str) -> Role {
    roles
        .iter()
        .find(|r| r.0.eq_ignore_ascii_case(method) && r.1 == route)
        .map_or_else(
            || match method {
                "GET" | "HEAD" | "OPTIONS" => Role::Read,
                _ => Role::Write,
            },
            |r| r.2,
        )
}

/// The access check of every request (see [`tributary_platform::auth`]):
/// `Host`/`Origin`, then the bearer token against the route's role.
fn access(
    req: &Request,
    route: &str,
    roles: &[RouteRole],
    local: Option<std::net::SocketAddr>,
) -> Result<Option<Principal>, ApiError> {
    if OPEN_PATHS.contains(&route) {
        return Ok(None);
    }
    let auth = tributary_platform::auth::current();
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let denied = |d: Denied| match d {
        Denied::Unauthenticated(_) => ApiError::new(ErrorKind::Unauthenticated, d.to_string()),
        _ => ApiError::new(ErrorKind::PermissionDenied, d.to_string()),
    };
    auth.check_host(header(axum::http::header::HOST), local)
        .and_then(|()| auth.check_host(header(axum::http::header::ORIGIN), local))
        .map_err(denied)?;
    let need = needed_role(roles, req.method().as_str(), route);
    auth.authorize(header(axum::http::header::AUTHORIZATION), need)
        .map(Some)
        .map_err(denied)
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
    layered_at(router, service, limits, None)
}

/// [`layered`] for a listener bound to `local` (its address is then an
/// accepted `Host` too).
pub fn layered_at(
    router: Router,
    service: &'static str,
    limits: HttpLimits,
    local: Option<std::net::SocketAddr>,
) -> Router {
    router
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| plumbing(req, next, service, limits, local),
        ))
        .layer(DefaultBodyLimit::max(limits.body_limit))
}

async fn plumbing(
    mut req: Request,
    next: Next,
    service: &'static str,
    limits: HttpLimits,
    local: Option<std::net::SocketAddr>,
) -> Response {
    let (timeout, roles) = (limits.request_timeout, limits.roles);
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
    let span = tracing::info_span!("http", %method, %route, request_id = %id, caller = tracing::field::Empty);
    let mut response = match access(&req, &route, roles, local) {
        Err(e) => {
            span.in_scope(|| tracing::info!(error = %e, "request refused"));
            e.into_response()
        }
        Ok(principal) => {
            if let Some(p) = principal {
                span.record("caller", p.name.as_str());
                req.extensions_mut().insert(p);
            }
            let untimed = limits
                .untimed
                .iter()
                .any(|r| r.split_once(' ') == Some((method.as_str(), route.as_str())));
            if untimed {
                next.run(req).instrument(span).await
            } else {
                match tokio::time::timeout(timeout, next.run(req).instrument(span)).await {
                    Ok(r) => r,
                    Err(_) => ApiError::new(
                        ErrorKind::DeadlineExceeded,
                        format!("no response within {timeout:?}"),
                    )
                    .into_response(),
                }
            }
        }
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
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(REQUEST_SECONDS, &labels[..3]).record(t0.elapsed().as_secs_f64());
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
    let local = listener.local_addr().ok();
    if let Some(addr) = local {
        tributary_platform::auth::current().check_bind(service, addr)?;
    }
    tributary_platform::serve::serve(
        listener,
        layered_at(router, service, limits, local),
        service,
        shutdown,
    )
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
                untimed: &[],
                roles: &[],
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

    // Proves: with tokens configured every route needs a token (401
    // without, `unauthenticated`), GET needs read and POST write (403,
    // `permission_denied`), a route override (POST search = read, wipe =
    // admin) wins, a foreign Host/Origin is refused even with a valid
    // token, and the probe paths stay open. (nextest runs each test in its
    // own process, so installing the policy here touches no other test.)
    #[tokio::test]
    async fn tokens_roles_and_hosts() {
        use tributary_platform::auth::{hash_token, Auth, AuthSettings, TokenSpec};
        let spec = |name: &str, role, token: &str| TokenSpec {
            name: name.into(),
            role,
            sha256: hash_token(token),
        };
        let auth = Auth::from_settings(&AuthSettings {
            tokens: vec![
                spec("reader", Role::Read, "r"),
                spec("writer", Role::Write, "w"),
                spec("ops", Role::Admin, "a"),
            ],
            ..AuthSettings::default()
        })
        .expect("auth");
        assert!(tributary_platform::auth::install(auth));
        const ROLES: &[RouteRole] = &[
            RouteRole("POST", "/search", Role::Read),
            RouteRole("POST", "/wipe", Role::Admin),
        ];
        let app = layered(
            Router::new()
                .route("/items", get(|| async { "list" }).post(|| async { "made" }))
                .route("/search", post(|| async { "found" }))
                .route("/wipe", post(|| async { "wiped" }))
                .route("/readyz", get(|| async { "ready" })),
            "test",
            HttpLimits {
                roles: ROLES,
                ..HttpLimits::default()
            },
        );
        let call = |method: &str, path: &str, token: Option<&str>, host: &str| {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("host", host);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let req = req.body(Body::empty()).expect("req");
            let app = app.clone();
            async move {
                let resp = app.oneshot(req).await.expect("response");
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let local = "127.0.0.1:8080";
        let (s, body) = call("GET", "/items", None, local).await;
        assert_eq!(s, 401, "{body}");
        assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");
        assert_eq!(call("GET", "/items", Some("nope"), local).await.0, 401);
        assert_eq!(call("GET", "/items", Some("r"), local).await.0, 200);
        let (s, body) = call("POST", "/items", Some("r"), local).await;
        assert_eq!(s, 403, "{body}");
        assert!(body.contains("\"code\":\"permission_denied\""), "{body}");
        assert!(body.contains("needs write"), "{body}");
        assert_eq!(call("POST", "/items", Some("w"), local).await.0, 200);
        assert_eq!(call("POST", "/search", Some("r"), local).await.0, 200);
        assert_eq!(call("POST", "/wipe", Some("w"), local).await.0, 403);
        assert_eq!(call("POST", "/wipe", Some("a"), local).await.0, 200);
        assert_eq!(
            call("GET", "/items", Some("a"), "rebound.attacker.example:8080")
                .await
                .0,
            403
        );
        assert_eq!(call("GET", "/readyz", None, local).await.0, 200);
    }
}

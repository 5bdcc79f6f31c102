//! The admin HTTP server every process runs: `/livez` (the process is up),
//! `/readyz` (every registered dependency answers), `/metrics` (Prometheus
//! text) and `/version`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;

/// Build information shown on `/version`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionInfo {
    /// Program name.
    pub name: &'static str,
    /// Semantic version.
    pub version: &'static str,
    /// Git commit, when known at build time.
    pub commit: Option<&'static str>,
    /// Deployment environment (from config).
    pub environment: String,
}

#[derive(Clone)]
struct AdminState {
    readiness: Readiness,
    version: VersionInfo,
}

/// The admin router (exposed for in-process tests).
///
/// `/livez` and `/readyz` are always open (probes); `/metrics` and
/// `/version` need a `read` token when `[auth]` has tokens, and their
/// `Host`/`Origin` is checked (see [`crate::auth`]).
pub fn router(readiness: Readiness, version: VersionInfo) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/version", get(version_handler))
        .route_layer(axum::middleware::from_fn(guard));
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(AdminState { readiness, version })
}

async fn guard(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let verdict = {
        let auth = crate::auth::current();
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        auth.check_host(header(header::HOST), None)
            .and_then(|()| auth.check_host(header(header::ORIGIN), None))
            .and_then(|()| auth.authorize(header(header::AUTHORIZATION), crate::auth::Role::Read))
    };
    match verdict {
        Ok(_) => next.run(req).await,
        Err(denied) => {
            let (status, code) = match denied {
                crate::auth::Denied::Unauthenticated(_) => {
                    (StatusCode::UNAUTHORIZED, "unauthenticated")
                }
                _ => (StatusCode::FORBIDDEN, "permission_denied"),
            };
            (
                status,
                Json(serde_json::json!({"code": code, "message": denied.to_string()})),
            )
                .into_response()
        }
    }
}

async fn readyz(State(st): State<AdminState>) -> Response {
    // Services first: a check that passes says nothing while a service is
    // still binding its port.
    let services = st.readiness.services();
    let results = st.readiness.run(Duration::from_secs(3)).await;
    let ready = results.iter().all(|r| r.ok)
        && services
            .iter()
            .all(|s| s.state == crate::health::ServiceState::Ready);
    for r in results.iter().filter(|r| !r.ok) {
        tracing::debug!(check = %r.name, error = ?r.error, "readiness check failed");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": ready, "services": services, "checks": results })),
    )
        .into_response()
}

async fn metrics_text() -> Response {
    let body = crate::telemetry::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn version_handler(State(st): State<AdminState>) -> Json<VersionInfo> {
    Json(st.version)
}

/// Binds `listen` (port 0 picks a free port) and serves the admin endpoints
/// until `shutdown` is cancelled. Returns the bound address and the task.
///
/// # Errors
/// When the address cannot be bound (in use, not permitted).
pub async fn serve(
    listen: SocketAddr,
    readiness: Readiness,
    version: VersionInfo,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    crate::auth::current()
        .check_bind("admin server", listen)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))?;
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind admin server on {listen}: {e}"),
        )
    })?;
    let addr = listener.local_addr()?;
    let app = router(readiness, version);
    let task = tokio::spawn(async move {
        let res = crate::serve::serve(listener, app, "admin", shutdown).await;
        if let Err(e) = res {
            tracing::error!(error = %e, "admin server stopped with an error");
        }
    });
    tracing::info!(%addr, "admin server listening (/livez /readyz /metrics /version)");
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthCheck;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tower::ServiceExt;

    struct Flag(Arc<AtomicBool>);

    #[async_trait::async_trait]
    impl HealthCheck for Flag {
        fn name(&self) -> String {
            "flag".into()
        }
        async fn check(&self) -> Result<(), String> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("down".into())
            }
        }
    }

    fn version() -> VersionInfo {
        VersionInfo {
            name: "t",
            version: "0",
            commit: None,
            environment: "test".into(),
        }
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    // Proves /readyz follows the registered checks while /livez stays 200.
    #[tokio::test]
    async fn readyz_follows_dependencies() {
        let up = Arc::new(AtomicBool::new(false));
        let readiness = Readiness::default();
        readiness.register(Arc::new(Flag(up.clone())));
        let app = router(readiness, version());
        assert_eq!(get(&app, "/livez").await.0, StatusCode::OK);
        let (s, body) = get(&app, "/readyz").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("down"), "{body}");
        up.store(true, Ordering::SeqCst);
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
    }

    // Proves /readyz stays 503 until every registered service says it is ready, and names each one.
    #[tokio::test]
    async fn readyz_waits_for_services() {
        let readiness = Readiness::default();
        let a = readiness.service("a-api");
        let b = readiness.service("b-worker");
        let app = router(readiness, version());
        let (s, body) = get(&app, "/readyz").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("\"a-api\"") && body.contains("starting"),
            "{body}"
        );
        a.listening(([127, 0, 0, 1], 4242).into());
        a.ready();
        assert_eq!(
            get(&app, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        b.ready();
        let (s, body) = get(&app, "/readyz").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.contains("127.0.0.1:4242"), "{body}");
        b.set(crate::health::ServiceState::Restarting("boom".into()));
        let (s, body) = get(&app, "/readyz").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("boom"), "{body}");
    }

    // Proves /metrics renders Prometheus text including a recorded counter.
    #[tokio::test]
    async fn metrics_are_rendered() {
        let _ = crate::telemetry::prometheus();
        metrics::counter!("tributary_admin_test_total").increment(3);
        let app = router(Readiness::default(), version());
        let (s, body) = get(&app, "/metrics").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("tributary_admin_test_total 3"), "{body}");
    }
}

//! Per-request scope for both APIs: a `request` span carrying the trace id
//! (the OpenTelemetry trace when OTLP export is on, continuing a W3C
//! `traceparent` header when the client sent one; otherwise the header's
//! trace id or a fresh one), and — when the server
//! allows it — the `log_level: debug` header/metadata, which runs that one
//! request under a DEBUG-level subscriber so its debug logs are written while
//! every other request keeps the process's filter.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::instrument::WithSubscriber;
use tracing::{Dispatch, Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header / gRPC metadata key that raises the log level of one request.
pub const LOG_LEVEL_HEADER: &str = "log_level";

/// Tower layer adding the request scope.
#[derive(Clone)]
pub struct RequestScopeLayer {
    debug: Option<Arc<Dispatch>>,
}

impl std::fmt::Debug for RequestScopeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestScopeLayer")
            .field("allow_request_log_level", &self.debug.is_some())
            .finish()
    }
}

impl RequestScopeLayer {
    /// `allow_debug`: honour `log_level: debug` (debug requests log JSON lines to stderr).
    pub fn new(allow_debug: bool) -> Self {
        Self::with_writer(allow_debug, std::io::stderr)
    }

    fn with_writer<W>(allow_debug: bool, writer: W) -> Self
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        let debug = allow_debug.then(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(writer)
                .finish();
            Arc::new(Dispatch::new(subscriber))
        });
        Self { debug }
    }
}

impl<S> tower::Layer<S> for RequestScopeLayer {
    type Service = RequestScope<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestScope {
            inner,
            debug: self.debug.clone(),
        }
    }
}

/// The service of [`RequestScopeLayer`].
#[derive(Clone)]
pub struct RequestScope<S> {
    inner: S,
    debug: Option<Arc<Dispatch>>,
}

impl<S> std::fmt::Debug for RequestScope<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestScope").finish_non_exhaustive()
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

fn header_trace_id(headers: &http::HeaderMap) -> Option<String> {
    // traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

/// Links `span` to the caller's trace and records its trace id.
fn attach_trace(span: &Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed; then the
        // header's trace id is still logged below.
        let _ = span.set_parent(parent);
    }
    let otel = span.context().span().span_context().trace_id();
    let id = if otel == TraceId::INVALID {
        header_trace_id(headers).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
    } else {
        otel.to_string()
    };
    span.record("trace_id", id.as_str());
}

impl<S, B> tower::Service<http::Request<B>> for RequestScope<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let wants_debug = req
            .headers()
            .get(LOG_LEVEL_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"debug"));
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        match (&self.debug, wants_debug) {
            (Some(dispatch), true) => {
                let dispatch = (**dispatch).clone();
                let (span, fut) = tracing::dispatcher::with_default(&dispatch, || {
                    let span = tracing::info_span!(
                        "request",
                        %method,
                        %path,
                        trace_id = tracing::field::Empty,
                        log_level = "debug"
                    );
                    attach_trace(&span, req.headers());
                    let fut = span.in_scope(|| self.inner.call(req));
                    (span, fut)
                });
                Box::pin(fut.instrument(span).with_subscriber(dispatch))
            }
            _ => {
                let span = tracing::info_span!("request", %method, %path, trace_id = tracing::field::Empty);
                attach_trace(&span, req.headers());
                let fut = span.in_scope(|| self.inner.call(req));
                Box::pin(fut.instrument(span))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tower::{Layer as _, Service as _};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Buf {
        type Writer = Buf;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// A handler that logs at debug level while its future runs.
    #[derive(Clone)]
    struct Handler;

    impl tower::Service<http::Request<()>> for Handler {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<(), Self::Error>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            Box::pin(async {
                tokio::task::yield_now().await;
                tracing::debug!("handler detail");
                Ok(())
            })
        }
    }

    async fn logs(allow: bool, header: Option<&'static str>) -> String {
        let buf = Buf::default();
        let mut svc = RequestScopeLayer::with_writer(allow, buf.clone()).layer(Handler);
        let mut req = http::Request::builder().uri("/v1/packages");
        if let Some(h) = header {
            req = req.header(LOG_LEVEL_HEADER, h);
        }
        let req = req.body(()).unwrap_or_else(|e| panic!("request: {e}"));
        let _ = svc.call(req).await;
        let out = buf
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&out).into_owned()
    }

    // Proves `log_level: debug` writes that request's debug logs (with its trace id)
    // only when the server allows it, and never for other requests.
    #[tokio::test]
    async fn request_log_level() {
        let out = logs(true, Some("debug")).await;
        assert!(
            out.contains("handler detail") && out.contains("trace_id"),
            "{out}"
        );
        assert!(!logs(true, None).await.contains("handler detail"));
        assert!(!logs(true, Some("info")).await.contains("handler detail"));
        assert!(!logs(false, Some("debug")).await.contains("handler detail"));
    }

    // Proves a W3C traceparent's trace id is taken (lower-cased) and junk is ignored.
    #[test]
    fn trace_id_from_traceparent() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
        );
        assert_eq!(
            header_trace_id(&h).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        h.insert("traceparent", http::HeaderValue::from_static("garbage"));
        assert_eq!(header_trace_id(&h), None);
    }
}

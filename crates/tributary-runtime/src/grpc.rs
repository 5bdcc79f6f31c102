//! Shared gRPC server plumbing: every gRPC API is served by a
//! [`GrpcServer`], which gives each one the same extras:
//!
//! - the standard `grpc.health.v1.Health` service, with every added service
//!   (and the overall `""` entry) reported `SERVING` while it runs and
//!   `NOT_SERVING` once shutdown begins;
//! - server reflection (v1 and v1alpha) over the system's descriptor sets
//!   plus the health service's, so `grpcurl` works without `.proto` files;
//! - limits ([`GrpcLimits`]): message size in both directions (apply them to
//!   each generated server with [`limit_messages!`](crate::limit_messages)),
//!   a deadline per call until its response starts, concurrent streams per
//!   connection, HTTP/2 keep-alive;
//! - the request scope ([`RequestScopeLayer`]): a span per call continuing
//!   the caller's W3C `traceparent`, per-request log level;
//! - access ([`tributary_platform::auth`]): `:authority`/`Origin` checked
//!   against the accepted hosts, then the bearer token (metadata
//!   `authorization: Bearer TOKEN`) against the method's role: methods named
//!   `Get*`, `List*`, `Search*`, `Describe*`, `Count*`, `Watch*` need
//!   `read`, others `write`, overrides with [`GrpcServer::role`]; health is
//!   open, reflection needs `read`;
//! - metrics per call with bounded labels: `tributary_grpc_requests_total{server,method,code}`
//!   and `tributary_grpc_request_duration_seconds{server,method}`, until the
//!   response body ends ([`GRPC_REQUESTS`] says where the code comes from);
//! - graceful shutdown: in-flight calls finish, new ones are refused.

use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;

use crate::scope::RequestScopeLayer;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tributary_platform::auth::{Denied, Role};
use tributary_platform::telemetry::Series;

/// Limits of one gRPC API.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    /// Largest message a call may send or receive, bytes (tonic's default
    /// for decoding is 4 MiB; encoding is unbounded unless set).
    pub max_message_bytes: usize,
    /// Longest time a call may take until its response starts (a client's
    /// shorter `grpc-timeout` wins). Streams may go on after that.
    pub request_timeout: Duration,
    /// Most concurrent calls (HTTP/2 streams) on one connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 ping interval that finds dead peers.
    pub keepalive_interval: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent_streams: 256,
            keepalive_interval: Duration::from_secs(30),
        }
    }
}

/// Applies the message-size limits of a [`GrpcLimits`] to a generated
/// tonic server: `limit_messages!(FooServer::new(api), limits)`.
#[macro_export]
macro_rules! limit_messages {
    ($server:expr, $limits:expr) => {{
        let limits: &$crate::grpc::GrpcLimits = &$limits;
        $server
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes)
    }};
}

/// A gRPC API being assembled: add services with [`GrpcServer::service`], then
/// [`GrpcServer::serve`] it.
pub struct GrpcServer {
    name: &'static str,
    limits: GrpcLimits,
    routes: RoutesBuilder,
    health: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
    descriptors: Vec<&'static [u8]>,
    roles: Vec<(&'static str, Role)>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("name", &self.name)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// An empty server for the API `name` (used in logs and errors, e.g.
    /// `chat gRPC API`).
    pub fn new(name: &'static str, limits: GrpcLimits) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Self {
            name,
            limits,
            routes,
            health,
            services: Vec::new(),
            descriptors: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// The limits this server was made with (for [`limit_messages!`](crate::limit_messages)).
    pub fn limits(&self) -> GrpcLimits {
        self.limits
    }

    /// Registers an encoded `FileDescriptorSet` for reflection (the
    /// `FILE_DESCRIPTOR_SET` a `build.rs` embeds).
    pub fn descriptors(mut self, set: &'static [u8]) -> Self {
        self.descriptors.push(set);
        self
    }

    /// Adds a generated service (wrap it in [`limit_messages!`](crate::limit_messages)
    /// first); health reports it by its full name.
    pub fn service<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes.add_service(svc);
        self.services.push(S::NAME);
        self
    }

    /// Sets the role `method` (`/package.Service/Method`) needs, overriding
    /// the default by name (e.g. `admin` for a restore).
    pub fn role(mut self, method: &'static str, role: Role) -> Self {
        self.roles.push((method, role));
        self
    }

    /// Names of the services added so far (without health and reflection).
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// Serves on `listener` until `shutdown` fires; in-flight calls finish.
    ///
    /// # Errors
    /// When the descriptor sets cannot be decoded (a build bug) or the
    /// server fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        scope: RequestScopeLayer,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let name = self.name;
        let mut reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        let mut reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for set in &self.descriptors {
            reflection_v1 = reflection_v1.register_encoded_file_descriptor_set(set);
            reflection_v1alpha = reflection_v1alpha.register_encoded_file_descriptor_set(set);
        }
        let reflection_v1 = reflection_v1
            .build_v1()
            .with_context(|| format!("build {name} reflection v1"))?;
        let reflection_v1alpha = reflection_v1alpha
            .build_v1alpha()
            .with_context(|| format!("build {name} reflection v1alpha"))?;

        let health = self.health.clone();
        for svc in &self.services {
            health
                .set_service_status(*svc, tonic_health::ServingStatus::Serving)
                .await;
        }
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;

        let mut routes = self.routes;
        routes
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let limits = self.limits;
        let local = listener.local_addr().ok();
        if let Some(addr) = local {
            tributary_platform::auth::current().check_bind(name, addr)?;
        }
        let mut known: Vec<String> = self.services.iter().map(|s| format!("/{s}/")).collect();
        known.extend(
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]
            .map(|s| format!("/{s}/")),
        );
        let metered = MetricsLayer {
            server: name,
            known: Arc::new(known),
        };
        let access = AccessLayer {
            roles: Arc::new(self.roles),
            local,
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let services = self.services;
        let stop = {
            let shutdown = shutdown.clone();
            let health = health.clone();
            async move {
                shutdown.cancelled().await;
                for svc in &services {
                    health
                        .set_service_status(*svc, tonic_health::ServingStatus::NotServing)
                        .await;
                }
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
            }
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some((cert, key)) =
            tributary_platform::tls::pem_pair(&tributary_platform::serve::current())?
        {
            let identity = tonic::transport::Identity::from_pem(cert, key);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .with_context(|| format!("{name} TLS"))?;
        }
        builder
            .timeout(limits.request_timeout)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .layer(scope)
            .layer(metered)
            .layer(access)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, stop)
            .await
            .with_context(|| format!("{name} server"))
    }
}

/// The role `path` (`/package.Service/Method`) needs: an override from
/// `roles`, else by the method's name (see the module docs). `None`: open.
pub fn method_role(roles: &[(&'static str, Role)], path: &str) -> Option<Role> {
    if path.starts_with("/grpc.health.v1.Health/") {
        return None;
    }
    if let Some((_, r)) = roles.iter().find(|(m, _)| *m == path) {
        return Some(*r);
    }
    if path.starts_with("/grpc.reflection.") {
        return Some(Role::Read);
    }
    let method = path.rsplit('/').next().unwrap_or(path);
    const READS: [&str; 6] = ["Get", "List", "Search", "Describe", "Count", "Watch"];
    if READS.iter().any(|p| method.starts_with(p)) {
        Some(Role::Read)
    } else {
        Some(Role::Write)
    }
}

#[derive(Clone)]
struct AccessLayer {
    roles: Arc<Vec<(&'static str, Role)>>,
    local: Option<std::net::SocketAddr>,
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            roles: self.roles.clone(),
            local: self.local,
        }
    }
}

/// The service of the access layer.
#[derive(Clone)]
struct Access<S> {
    inner: S,
    roles: Arc<Vec<(&'static str, Role)>>,
    local: Option<std::net::SocketAddr>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Access<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match check(&req, &self.roles, self.local) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

fn check<B>(
    req: &http::Request<B>,
    roles: &[(&'static str, Role)],
    local: Option<std::net::SocketAddr>,
) -> Result<(), tonic::Status> {
    let Some(need) = method_role(roles, req.uri().path()) else {
        return Ok(());
    };
    let auth = tributary_platform::auth::current();
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header(http::header::HOST).map(str::to_owned));
    let denied = |d: Denied| match d {
        Denied::Unauthenticated(_) => tonic::Status::unauthenticated(d.to_string()),
        _ => tonic::Status::permission_denied(d.to_string()),
    };
    auth.check_host(authority.as_deref(), local)
        .and_then(|()| auth.check_host(header(http::header::ORIGIN), local))
        .map_err(denied)?;
    auth.authorize(header(http::header::AUTHORIZATION), need)
        .map(|p| tracing::debug!(caller = %p.name, method = %req.uri().path(), "gRPC call allowed"))
        .map_err(|d| {
            let status = denied(d);
            tracing::info!(method = %req.uri().path(), error = %status.message(), "gRPC call refused");
            status
        })
}

/// Counter: calls answered, by `server`, `method` (the
/// `/package.Service/Method` path; `unknown` for a path no added service
/// serves, or an `UNIMPLEMENTED` call) and `code` (the gRPC status name,
/// e.g. `OK`, `NOT_FOUND`): the `grpc-status` of the response head when the
/// response is trailers-only (errors, refusals, unknown methods), else the
/// `grpc-status` of the trailers when the body sends them; a body that ends
/// without one counts as `UNKNOWN`, one dropped before its end (the client
/// cancelled or the connection broke) as `CANCELLED`, a body or service
/// failure as `INTERNAL`.
pub const GRPC_REQUESTS: &str = "tributary_grpc_requests_total";
/// Histogram: seconds from the call's arrival until its response body ended
/// (the trailers were sent, or the client went away), by `server` and `method`.
pub const GRPC_REQUEST_SECONDS: &str = "tributary_grpc_request_duration_seconds";

/// The series a [`GrpcServer`] named `server` emits, to register at start
/// (`Service::metrics`): the request series with `server` alone (method and
/// code are known only once a call arrives), so the server has a 0 rate
/// from the first scrape.
pub fn series(server: &'static str) -> Vec<Series> {
    vec![
        Series::counter(GRPC_REQUESTS).label("server", server),
        Series::histogram(GRPC_REQUEST_SECONDS).label("server", server),
    ]
}

/// The gRPC status name of the numeric `code` (`grpc-status`), as the gRPC
/// spec spells it; `UNKNOWN` for anything else.
pub fn code_name(code: &[u8]) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    std::str::from_utf8(code)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("UNKNOWN")
}

/// Records [`GRPC_REQUESTS`] and [`GRPC_REQUEST_SECONDS`] per call, when its response body ends.
#[derive(Clone)]
struct MetricsLayer {
    server: &'static str,
    /// `/package.Service/` prefixes of the served services.
    known: Arc<Vec<String>>,
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;
    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            server: self.server,
            known: self.known.clone(),
        }
    }
}

/// The service of the metrics layer.
#[derive(Clone)]
struct Metered<S> {
    inner: S,
    server: &'static str,
    known: Arc<Vec<String>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    R: http_body::Body + Send + 'static,
{
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let method = if self.known.iter().any(|p| path.starts_with(p.as_str())) {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        let mut call = Call {
            server: self.server,
            method,
            started: Instant::now(),
            code: None,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(response) => {
                    call.code = response
                        .headers()
                        .get("grpc-status")
                        .map(|v| code_name(v.as_bytes()));
                    Ok(response.map(|body| MeteredBody {
                        inner: body,
                        call: Some(call),
                    }))
                }
                Err(e) => {
                    call.finish("INTERNAL");
                    Err(e)
                }
            }
        })
    }
}

/// One call being measured.
struct Call {
    server: &'static str,
    method: String,
    started: Instant,
    /// From the response head (trailers-only) or the trailers.
    code: Option<&'static str>,
}

impl Call {
    fn finish(self, fallback: &'static str) {
        let code = self.code.unwrap_or(fallback);
        // An unimplemented method of a served service: keep the label bounded.
        let method = if code == "UNIMPLEMENTED" {
            "unknown".to_owned()
        } else {
            self.method
        };
        let labels = [
            ("server", self.server.to_owned()),
            ("method", method),
            ("code", code.to_owned()),
        ];
        metrics::counter!(GRPC_REQUESTS, &labels).increment(1);
        metrics::histogram!(GRPC_REQUEST_SECONDS, &labels[..2])
            .record(self.started.elapsed().as_secs_f64());
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when it ends.
    struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for MeteredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.finish("CANCELLED");
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(call) = this.call.take() {
                        let code = trailers.get("grpc-status").map(|v| code_name(v.as_bytes()));
                        Call {
                            code: code.or(call.code),
                            ..call
                        }
                        .finish("UNKNOWN");
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish("INTERNAL");
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish("UNKNOWN");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: health is open, reflection and reads need read, the rest
    // write, and an override wins.
    #[test]
    fn method_roles() {
        let roles = [("/x.v1.Backup/Restore", Role::Admin)];
        assert_eq!(method_role(&roles, "/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            method_role(
                &roles,
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            ),
            Some(Role::Read)
        );
        assert_eq!(method_role(&roles, "/x.v1.Chat/Search"), Some(Role::Read));
        assert_eq!(
            method_role(&roles, "/x.v1.Pkg/DescribePackageV1"),
            Some(Role::Read)
        );
        assert_eq!(
            method_role(&roles, "/x.v1.Pkg/CreatePackageV1"),
            Some(Role::Write)
        );
        assert_eq!(
            method_role(&roles, "/x.v1.Backup/Restore"),
            Some(Role::Admin)
        );
    }

    // Proves the metrics layer counts calls by method and gRPC status name,
    // from the trailers (OK) and from a trailers-only error (NOT_FOUND),
    // and times them.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn calls_are_counted_by_code() {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::HealthCheckRequest;

        let prom = tributary_platform::telemetry::prometheus();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = GrpcServer::new("metrics test gRPC", GrpcLimits::default());
        let task =
            tokio::spawn(server.serve(listener, RequestScopeLayer::new(false), shutdown.clone()));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        for _ in 0..2 {
            health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .unwrap();
        }
        let missing = health
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let expect = [
            r#"tributary_grpc_requests_total{server="metrics test gRPC",method="/grpc.health.v1.Health/Check",code="OK"} 2"#,
            r#"tributary_grpc_requests_total{server="metrics test gRPC",method="/grpc.health.v1.Health/Check",code="NOT_FOUND"} 1"#,
            r#"tributary_grpc_request_duration_seconds_count{server="metrics test gRPC",method="/grpc.health.v1.Health/Check"} 3"#,
        ];
        // The last call is recorded when its body ends, which may be just after the client saw it.
        let mut text = String::new();
        for _ in 0..50 {
            text = prom.render();
            if expect.iter().all(|l| text.lines().any(|t| t == *l)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for line in expect {
            assert!(text.lines().any(|t| t == line), "{line} missing in\n{text}");
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    // Proves status numbers map to the gRPC names.
    #[test]
    fn code_names() {
        assert_eq!(code_name(b"0"), "OK");
        assert_eq!(code_name(b"5"), "NOT_FOUND");
        assert_eq!(code_name(b"16"), "UNAUTHENTICATED");
        assert_eq!(code_name(b"17"), "UNKNOWN");
        assert_eq!(code_name(b"x"), "UNKNOWN");
    }
}

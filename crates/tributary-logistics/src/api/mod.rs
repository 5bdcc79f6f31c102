//! The public APIs of `logistics-api`: gRPC (with reflection and the
//! standard health service) and HTTP/JSON with an OpenAPI document. Both
//! call [`crate::service::PackageService`].

pub mod grpc;
pub mod http;

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use tributary_runtime::scope::RequestScopeLayer;

use crate::service::PackageService;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// gRPC address (port 0 picks a free port).
    pub grpc_listen: SocketAddr,
    /// HTTP address (port 0 picks a free port).
    pub http_listen: SocketAddr,
    /// Honour `log_level: debug` per request.
    pub allow_request_log_level: bool,
}

/// A running API server.
#[derive(Debug)]
pub struct RunningApi {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl RunningApi {
    /// Waits until both servers stopped (after the shutdown token fired and
    /// in-flight requests finished); the first error wins.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let res = joined
                .map_err(|e| anyhow::anyhow!("API server task panicked: {e}"))
                .and_then(|r| r);
            if first.is_ok() {
                first = res;
            }
        }
        first
    }
}

/// Binds both listeners and starts serving until `shutdown` fires.
///
/// # Errors
/// When an address cannot be bound.
pub async fn serve(
    svc: PackageService,
    cfg: &ApiConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningApi> {
    let scope = RequestScopeLayer::new(cfg.allow_request_log_level);
    let grpc_listener = TcpListener::bind(cfg.grpc_listen)
        .await
        .with_context(|| format!("bind gRPC listener on {}", cfg.grpc_listen))?;
    let http_listener = TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("bind HTTP listener on {}", cfg.http_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let mut tasks = JoinSet::new();
    let grpc_server = grpc::server(svc.clone(), tributary_runtime::grpc::GrpcLimits::default());
    let grpc_scope = scope.clone();
    let token = shutdown.clone();
    tasks.spawn(async move { grpc_server.serve(grpc_listener, grpc_scope, token).await });
    let app = http::router(svc).layer(scope);
    tasks.spawn(async move {
        tributary_runtime::http::serve(
            http_listener,
            app,
            "logistics-api",
            tributary_runtime::http::HttpLimits::default(),
            shutdown,
        )
        .await
    });
    tracing::info!(grpc = %grpc_addr, http = %http_addr, "logistics API listening");
    Ok(RunningApi {
        grpc_addr,
        http_addr,
        tasks,
    })
}

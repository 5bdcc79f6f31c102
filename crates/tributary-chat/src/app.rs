//! Running the chat system in a process: the REST and gRPC servers, the
//! outbox relay, the user-counter and audit consumers, and the audit shipper.

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::{self, RunnerConfig};
use tributary_bus::Bus;
use tributary_storage::{Database, Objects};

use crate::audit_layer::{self, AuditQueue};
use crate::consumers::{AuditHandler, UserCounterHandler, AUDIT_GROUP, USER_COUNTER_GROUP};
use crate::domain::events::{AUDIT_TOPIC, USER_COUNTER_TOPIC};
use crate::service::ChatService;
use crate::settings::ChatSettings;
use crate::store::ChatStore;

/// Backends the chat system runs on.
#[derive(Clone)]
pub struct Backends {
    pub db: Database,
    pub bus: Bus,
    /// Needed only for backups to the object store.
    pub objects: Option<Objects>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("db", &self.db)
            .field("bus", &self.bus.describe())
            .field(
                "objects",
                &self.objects.as_ref().map(|o| o.redacted_url().to_owned()),
            )
            .finish()
    }
}

/// Builds the store (running migrations) and the service.
///
/// # Errors
/// When migrations or topic creation fail.
pub async fn build(backends: &Backends, settings: &ChatSettings) -> anyhow::Result<ChatService> {
    let store = ChatStore::open(&backends.db)
        .await
        .context("migrate the chat tables")?;
    ChatService::new(
        store,
        backends.bus.clone(),
        backends.objects.clone(),
        settings.clone(),
    )
    .await
    .context("create the chat topics")
}

/// Runs everything until `shutdown`, then drains. `audit` is the queue of
/// this process's audit layer, if one is installed.
///
/// # Errors
/// When the REST or gRPC listener cannot bind or a consumer fails for good.
pub async fn run(
    backends: Backends,
    settings: ChatSettings,
    audit: Option<AuditQueue>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = build(&backends, &settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("bind the chat API on {}", settings.listen))?;
    let addr = listener.local_addr().context("chat API address")?;
    let grpc_listener = tokio::net::TcpListener::bind(settings.grpc_listen)
        .await
        .with_context(|| format!("bind the chat gRPC API on {}", settings.grpc_listen))?;
    let grpc_addr = grpc_listener.local_addr().context("chat gRPC address")?;
    tracing::info!(api = %format!("http://{addr}"), openapi = %format!("http://{addr}/openapi.json"),
        grpc = %grpc_addr, "chat API listening");

    let mut tasks = tokio::task::JoinSet::new();
    {
        let svc = service.clone();
        let token = shutdown.clone();
        tasks.spawn(async move { crate::api::grpc::serve(grpc_listener, svc, token).await });
    }
    {
        let router = crate::api::router(service.clone());
        let token = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
                .context("chat API server")
        });
    }
    {
        let svc = service.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            svc.relay(token).await;
            Ok(())
        });
    }
    {
        let bus = backends.bus.clone();
        let handler = Arc::new(UserCounterHandler::new(service.store().clone()));
        let token = shutdown.clone();
        tasks.spawn(async move {
            runner::run(
                bus,
                RunnerConfig::new(USER_COUNTER_GROUP, &[USER_COUNTER_TOPIC]),
                handler,
                token,
            )
            .await
            .context("user-counter consumer")
        });
    }
    {
        let store = service.store().clone();
        let users = settings.users.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            crate::consumers::prune_applied_events(store, users, token).await;
            Ok(())
        });
    }
    {
        let bus = backends.bus.clone();
        let handler = Arc::new(AuditHandler::new(service.store().clone()));
        let token = shutdown.clone();
        tasks.spawn(async move {
            runner::run(
                bus,
                RunnerConfig::new(AUDIT_GROUP, &[AUDIT_TOPIC]),
                handler,
                token,
            )
            .await
            .context("audit consumer")
        });
    }
    if let Some(queue) = audit {
        let bus = backends.bus.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            audit_layer::ship(queue, bus, token).await;
            Ok(())
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = match joined {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("chat task panicked: {e}")),
        };
        if let Err(e) = outcome {
            if result.is_ok() {
                // One part failed: stop the others and report it.
                shutdown.cancel();
                result = Err(e);
            }
        }
    }
    result
}

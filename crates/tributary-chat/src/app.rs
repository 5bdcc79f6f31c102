//! The parts each chat service runs: `chat-api` (REST and gRPC),
//! `chat-outbox` (count events to the bus), `chat-users` (the user-counter
//! consumer and its pruner) and `chat-audit` (the audit consumer). Each
//! builds the store and service with [`build`] (migrations run under the
//! storage crate's lock, so the services may start together).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tributary_bus::runner::{self, RunnerConfig};
use tributary_bus::Bus;
use tributary_platform::Started;
use tributary_runtime::http::{self, HttpLimits};
use tributary_storage::{Database, Objects};

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

/// `chat-api`: binds the REST and gRPC listeners (reported to `started`),
/// marks the service ready and serves both until `shutdown`, then drains.
/// If one server fails the other is stopped too and the error returned.
///
/// # Errors
/// When a listener cannot be bound or a server fails.
pub async fn serve_api(
    service: ChatService,
    settings: &ChatSettings,
    started: &Started,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = http::bind(settings.listen, "chat API").await?;
    let addr = listener.local_addr().context("chat API address")?;
    let grpc_listener = http::bind(settings.grpc_listen, "chat gRPC API").await?;
    let grpc_addr = grpc_listener.local_addr().context("chat gRPC address")?;
    started.listening(addr);
    started.listening(grpc_addr);
    started.ready();
    tracing::info!(api = %format!("http://{addr}"), openapi = %format!("http://{addr}/openapi.json"),
        grpc = %grpc_addr, "chat API listening");
    // A failing server stops its sibling, not the process.
    let stop = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let svc = service.clone();
        let token = stop.clone();
        tasks.spawn(async move { crate::api::grpc::serve(grpc_listener, svc, token).await });
    }
    {
        // The shared request scope: `traceparent` continued, trace id logged.
        let router = crate::api::router(service)
            .layer(tributary_runtime::scope::RequestScopeLayer::new(false));
        let token = stop.clone();
        tasks.spawn(async move {
            let limits = HttpLimits {
                roles: crate::api::rest::ROLES,
                untimed: crate::api::rest::UNTIMED,
                ..HttpLimits::default()
            };
            http::serve(listener, router, "chat-api", limits, token).await
        });
    }
    join_all(tasks, &stop).await
}

/// `chat-outbox`: the shared outbox relay of namespace `chat` (count
/// events to `user-message-counter`, key = user) until `shutdown`, then
/// drains. Registers the relay's readiness (red while publishing fails).
///
/// # Errors
/// Only when a relay task panics (backend trouble is retried).
pub async fn run_outbox(
    service: ChatService,
    bus: Bus,
    settings: &ChatSettings,
    readiness: &tributary_platform::Readiness,
    started: &Started,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let relay = tributary_runtime::outbox::Relay::new(
        service.store().outbox(),
        bus,
        settings.relay.clone(),
        tributary_runtime::outbox::plain(),
    );
    readiness.register(Arc::new(relay.health()));
    started.ready();
    relay.run(shutdown).await
}

/// `chat-users`: the user-counter consumer and the pruner of applied-event
/// ids, until `shutdown`.
///
/// # Errors
/// When the consumer fails for good.
pub async fn run_users(
    service: ChatService,
    bus: Bus,
    settings: &ChatSettings,
    started: &Started,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let handler = Arc::new(UserCounterHandler::new(service.store().clone()));
        let token = stop.clone();
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
        let token = stop.clone();
        tasks.spawn(async move {
            crate::consumers::prune_applied_events(store, users, token).await;
            Ok(())
        });
    }
    started.ready();
    join_all(tasks, &stop).await
}

/// `chat-audit`: the audit consumer (log records -> audit table) until `shutdown`.
///
/// # Errors
/// When the consumer fails for good.
pub async fn run_audit(
    service: ChatService,
    bus: Bus,
    started: &Started,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handler = Arc::new(AuditHandler::new(service.store().clone()));
    started.ready();
    runner::run(
        bus,
        RunnerConfig::new(AUDIT_GROUP, &[AUDIT_TOPIC]),
        handler,
        shutdown,
    )
    .await
    .context("audit consumer")
}

/// Waits for every task; the first failure cancels `stop` (the siblings)
/// and is returned.
async fn join_all(
    mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.unwrap_or_else(|e| Err(anyhow::anyhow!("chat task panicked: {e}")));
        if let Err(e) = outcome {
            if result.is_ok() {
                stop.cancel();
                result = Err(e);
            }
        }
    }
    result
}

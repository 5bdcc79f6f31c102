//! The chat system's contract: its settings section `[chat]`, its four
//! services, its CLI subcommand `tributary chat`, its topics and its
//! migrations (namespace `chat`).

use std::sync::Arc;

use tributary_platform::telemetry::Series;
use tributary_platform::Started;
use tributary_runtime::{series, Context, Service, SettingsSection, System, SystemCli, TopicSpec};

use crate::app::{self, Backends};
use crate::domain::events::{AUDIT_TOPIC, USER_COUNTER_TOPIC};
use crate::service::ChatService;
use crate::settings::ChatSettings;

/// The chat archive system.
pub fn system() -> System {
    System {
        name: "chat",
        about: "chat archive: Telegram exports, search, per-user counts, audit log, backups",
        settings: SettingsSection::of::<ChatSettings>(),
        services: vec![
            Arc::new(Api),
            Arc::new(Outbox),
            Arc::new(Users),
            Arc::new(Audit),
        ],
        cli: Some(SystemCli::new(cli)),
        topics: &[
            TopicSpec {
                name: USER_COUNTER_TOPIC,
                about: "per-user message count deltas (from the chat outbox)",
            },
            TopicSpec {
                name: AUDIT_TOPIC,
                about: "log records of every service (to the audit log)",
            },
        ],
        migrations: Some(crate::store::MIGRATIONS),
    }
}

async fn cli(cmd: crate::cli::Command, ctx: Arc<Context>) -> anyhow::Result<()> {
    crate::cli::run(cmd, &ctx.section::<ChatSettings>().server).await
}

/// Connects what every chat service needs and builds the service
/// (migrations, topics). The object store is optional (backups to it).
async fn build(ctx: &Context, objects: bool) -> anyhow::Result<(ChatService, Backends)> {
    let settings = ctx.section::<ChatSettings>();
    let backends = Backends {
        db: ctx.db().await?,
        bus: ctx.bus().await?,
        objects: if objects {
            match ctx.objects().await {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "chat: no object store; backups go to directories only");
                    None
                }
            }
        } else {
            None
        },
    };
    let service = app::build(&backends, &settings).await?;
    Ok((service, backends))
}

struct Api;

#[async_trait::async_trait]
impl Service for Api {
    fn name(&self) -> &'static str {
        "chat-api"
    }
    fn about(&self) -> &'static str {
        "chat archive REST API (+ /openapi.json) and gRPC API"
    }
    fn listens(&self) -> &'static [&'static str] {
        &["chat.listen", "chat.grpc_listen"]
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        let mut out = tributary_runtime::http::series("chat-api");
        out.extend(tributary_runtime::grpc::series(
            crate::api::grpc::GRPC_SERVER,
        ));
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let (service, _) = build(&ctx, true).await?;
        let settings = ctx.section::<ChatSettings>();
        app::serve_api(service, &settings, &started, ctx.shutdown.clone()).await
    }
}

struct Outbox;

#[async_trait::async_trait]
impl Service for Outbox {
    fn name(&self) -> &'static str {
        "chat-outbox"
    }
    fn about(&self) -> &'static str {
        "chat outbox relay: committed count events to user-message-counter"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        series::outbox(crate::store::OUTBOX_NAMESPACE)
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let (service, backends) = build(&ctx, false).await?;
        let settings = ctx.section::<ChatSettings>();
        app::run_outbox(
            service,
            backends.bus,
            &settings,
            &ctx.readiness,
            &started,
            ctx.shutdown.clone(),
        )
        .await
    }
}

struct Users;

#[async_trait::async_trait]
impl Service for Users {
    fn name(&self) -> &'static str {
        "chat-users"
    }
    fn about(&self) -> &'static str {
        "chat user counter: consumes count events into per-user counts (and prunes applied ids)"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        let mut out = series::consumer(crate::consumers::USER_COUNTER_GROUP, &[USER_COUNTER_TOPIC]);
        out.push(Series::counter(crate::consumers::APPLIED_IDS_PRUNED));
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let (service, backends) = build(&ctx, false).await?;
        let settings = ctx.section::<ChatSettings>();
        app::run_users(
            service,
            backends.bus,
            &settings,
            &started,
            ctx.shutdown.clone(),
        )
        .await
    }
}

struct Audit;

#[async_trait::async_trait]
impl Service for Audit {
    fn name(&self) -> &'static str {
        "chat-audit"
    }
    fn about(&self) -> &'static str {
        "chat audit consumer: log records of every service into the audit log"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        series::consumer(crate::consumers::AUDIT_GROUP, &[AUDIT_TOPIC])
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let (service, backends) = build(&ctx, false).await?;
        app::run_audit(service, backends.bus, &started, ctx.shutdown.clone()).await
    }
}

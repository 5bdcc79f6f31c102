//! The logistics system's contract: settings `[logistics]`, the services
//! `logistics-api` and `logistics-relay`, the CLI `tributary logistics`,
//! its topic and its migrations (namespace `logistics`).

use std::sync::Arc;

use tributary_platform::telemetry::Series;
use tributary_platform::Started;
use tributary_runtime::{Context, Service, SettingsSection, System, SystemCli, TopicSpec};

use crate::settings::LogisticsSettings;

/// The logistics system.
pub fn system() -> System {
    System {
        name: "logistics",
        about: "logistics packages: gRPC/HTTP CRUD with a transactional outbox relayed to the bus",
        settings: SettingsSection::of::<LogisticsSettings>(),
        services: vec![Arc::new(Api), Arc::new(Relay)],
        cli: Some(SystemCli::new(cli)),
        topics: &[TopicSpec {
            name: crate::relay::DEFAULT_TOPIC,
            about: "package events (created, updated, removed), keyed by package id",
        }],
        migrations: Some(crate::store::MIGRATIONS),
    }
}

async fn cli(cmd: crate::cli::Command, ctx: Arc<Context>) -> anyhow::Result<()> {
    let cli_ctx = crate::cli::CliContext {
        bus_url: ctx.settings.bus_url(),
        bus: ctx.settings.bus.clone(),
    };
    crate::cli::run(cmd, cli_ctx).await
}

struct Api;

#[async_trait::async_trait]
impl Service for Api {
    fn name(&self) -> &'static str {
        "logistics-api"
    }
    fn about(&self) -> &'static str {
        "logistics package API: gRPC (reflection, health) and HTTP/JSON with /openapi.json"
    }
    fn listens(&self) -> &'static [&'static str] {
        &["logistics.grpc_listen", "logistics.http_listen"]
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        let mut out = tributary_runtime::http::series("logistics-api");
        out.extend(tributary_runtime::grpc::series(
            crate::api::grpc::GRPC_SERVER,
        ));
        out.extend(crate::metrics::api_series());
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let db = ctx.db().await?;
        let settings = ctx.section::<LogisticsSettings>();
        crate::run_api(db, &settings, &started, ctx.shutdown.clone()).await
    }
}

struct Relay;

#[async_trait::async_trait]
impl Service for Relay {
    fn name(&self) -> &'static str {
        "logistics-relay"
    }
    fn about(&self) -> &'static str {
        "logistics outbox relay: package events to the bus topic omp-package-events"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        tributary_runtime::series::outbox(crate::store::OUTBOX_NAMESPACE)
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let db = ctx.db().await?;
        let bus = ctx.bus().await?;
        let settings = ctx.section::<LogisticsSettings>();
        crate::run_relay(
            db,
            bus,
            &settings,
            &ctx.readiness,
            &started,
            ctx.shutdown.clone(),
        )
        .await
    }
}

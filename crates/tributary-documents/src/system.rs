//! The documents system's contract: settings section `[docs]`, services
//! `docs-executor`, `docs-outbox` and `docs-api`, CLI `tributary docs`,
//! its topics and its migrations (namespace `docs`).

use std::sync::Arc;

use anyhow::Context as _;
use tributary_platform::telemetry::Series;
use tributary_platform::Started;
use tributary_runtime::http::{self, HttpLimits};
use tributary_runtime::{Context, Service, SettingsSection, System, SystemCli, TopicSpec};

use crate::api::{self, ApiState};
use crate::pipeline::Executor;
use crate::settings::{DocsSettings, DEAD_LETTER_TOPIC, INPUT_TOPIC, OUTPUT_TOPIC};
use crate::store::DocStore;

/// The documents system.
pub fn system() -> System {
    System {
        name: "docs",
        about: "documents: order- and duplicate-insensitive document-update merger",
        settings: SettingsSection::of::<DocsSettings>(),
        services: vec![Arc::new(ExecutorService), Arc::new(Outbox), Arc::new(Api)],
        cli: Some(SystemCli::new(cli)),
        topics: &[
            TopicSpec {
                name: INPUT_TOPIC,
                about: "document updates (wire shape, key = url), from the docs API's ingest route",
            },
            TopicSpec {
                name: OUTPUT_TOPIC,
                about: "merged documents whose state changed (key = url), from the docs outbox",
            },
            TopicSpec {
                name: DEAD_LETTER_TOPIC,
                about: "document updates that can never be applied (original bytes, dlq.* headers)",
            },
        ],
        migrations: Some(crate::store::MIGRATIONS),
    }
}

async fn cli(cmd: crate::cli::Command, ctx: Arc<Context>) -> anyhow::Result<()> {
    let listen = ctx.section::<DocsSettings>().http_listen;
    crate::cli::run(cmd, format!("http://{listen}")).await
}

async fn open_store(ctx: &Context) -> anyhow::Result<DocStore> {
    DocStore::open(&ctx.db().await?)
        .await
        .context("migrate the documents tables")
}

struct ExecutorService;

#[async_trait::async_trait]
impl Service for ExecutorService {
    fn name(&self) -> &'static str {
        "docs-executor"
    }
    fn about(&self) -> &'static str {
        "document-update executor: doc-updates-incoming -> merge -> documents table + outbox"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        crate::metrics::series()
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<DocsSettings>();
        let store = open_store(&ctx).await?;
        let cache = ctx.cache().await?.with_prefix("docs:");
        let bus = ctx.bus().await?;
        let executor = Arc::new(Executor::new(store, Some(cache), bus, settings));
        ctx.readiness.register(Arc::new(executor.health()));
        executor
            .run(move || started.ready(), ctx.shutdown.clone())
            .await
    }
}

struct Outbox;

#[async_trait::async_trait]
impl Service for Outbox {
    fn name(&self) -> &'static str {
        "docs-outbox"
    }
    fn about(&self) -> &'static str {
        "docs outbox relay: committed merged documents to doc-updates-outgoing"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        tributary_runtime::series::outbox(crate::store::OUTBOX_NAMESPACE)
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<DocsSettings>();
        let store = open_store(&ctx).await?;
        let relay = tributary_runtime::outbox::Relay::new(
            store.outbox(),
            ctx.bus().await?,
            settings.relay.clone(),
            tributary_runtime::outbox::plain(),
        );
        ctx.readiness.register(Arc::new(relay.health()));
        started.ready();
        relay.run(ctx.shutdown.clone()).await
    }
}

struct Api;

#[async_trait::async_trait]
impl Service for Api {
    fn name(&self) -> &'static str {
        "docs-api"
    }
    fn about(&self) -> &'static str {
        "docs REST API: documents, NDJSON ingest to doc-updates-incoming, stats (+ /openapi.json)"
    }
    fn listens(&self) -> &'static [&'static str] {
        &["docs.http_listen"]
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        http::series("docs-api")
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<DocsSettings>();
        let store = open_store(&ctx).await?;
        let bus = ctx.bus().await?;
        bus.create_topic(&settings.input_topic, settings.partitions)
            .await
            .with_context(|| format!("create the topic {}", settings.input_topic))?;
        let listener = http::bind(settings.http_listen, "docs API").await?;
        let addr = listener.local_addr().context("docs API address")?;
        started.listening(addr);
        started.ready();
        tracing::info!(api = %format!("http://{addr}"), "docs API listening");
        let router = api::router(ApiState {
            store,
            bus,
            settings,
        })
        .layer(tributary_runtime::scope::RequestScopeLayer::new(false));
        http::serve(
            listener,
            router,
            "docs-api",
            HttpLimits::default(),
            ctx.shutdown.clone(),
        )
        .await
    }
}

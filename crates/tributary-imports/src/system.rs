//! The imports system's contract: settings section `[imports]`, services
//! `imports-api`, `imports-processor` and `imports-outbox`, CLI
//! `tributary imports`, its topics and its migrations (namespace
//! `imports`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use tributary_bus::runner::{Backoff, RunnerConfig};
use tributary_bus::Record;
use tributary_platform::telemetry::Series;
use tributary_platform::Started;
use tributary_runtime::http;
use tributary_runtime::outbox::{Encoder, OutboxEvent};
use tributary_runtime::{Context, Service, SettingsSection, System, SystemCli, TopicSpec};
use tributary_storage::Objects;

use crate::api::{self, ApiState};
use crate::events::kind;
use crate::kinds::Kinds;
use crate::processor::Processor;
use crate::settings::{ImportsSettings, EVENTS_TOPIC, FILES_TOPIC};
use crate::store::UploadStore;

/// Key prefix of the imports objects inside the object store.
pub const OBJECTS_PREFIX: &str = "imports";

/// The imports system.
pub fn system() -> System {
    System {
        name: "imports",
        about: "file imports: upload JSON files -> object store -> events -> validation -> database",
        settings: SettingsSection::of::<ImportsSettings>(),
        services: vec![Arc::new(ApiService), Arc::new(ProcessorService), Arc::new(Outbox)],
        cli: Some(SystemCli::new(cli)),
        topics: &[
            TopicSpec {
                name: FILES_TOPIC,
                about: "FileExtractSuccess of every stored upload (key = upload name), from the imports outbox",
            },
            TopicSpec {
                name: "processedFile.dlq",
                about: "processedFile events the processor can never handle (original bytes, dlq.* headers)",
            },
            TopicSpec {
                name: EVENTS_TOPIC,
                about: "FileExtractError, ValidationError, ImportCompleted (key = name / request id), from the imports outbox",
            },
        ],
        migrations: Some(crate::store::MIGRATIONS),
    }
}

async fn cli(cmd: crate::cli::Command, ctx: Arc<Context>) -> anyhow::Result<()> {
    let listen = ctx.section::<ImportsSettings>().http_listen;
    crate::cli::run(cmd, format!("http://{listen}")).await
}

async fn open_store(ctx: &Context) -> anyhow::Result<UploadStore> {
    UploadStore::open(&ctx.db().await?)
        .await
        .context("migrate the imports tables")
}

async fn open_objects(ctx: &Context) -> anyhow::Result<Objects> {
    ctx.objects()
        .await?
        .with_prefix(OBJECTS_PREFIX)
        .context("the imports object prefix")
}

/// The relay's encoder: `FileExtractSuccess` to the files topic, every
/// other event to the relay's topic (the events topic); the event name in
/// the `type` header.
pub fn encoder(files_topic: String) -> Encoder {
    Arc::new(move |topic: &str, e: &OutboxEvent| {
        let to = if e.kind == kind::FILE_EXTRACT_SUCCESS {
            files_topic.as_str()
        } else {
            topic
        };
        Record::new(
            to,
            Bytes::copy_from_slice(&e.key),
            Bytes::copy_from_slice(&e.payload),
        )
        .header("type", e.kind.clone())
    })
}

/// The kind names the services will label their metrics with (the
/// built-in kinds when the configured ones do not load; the service then
/// fails at start with the reason).
fn kind_names(settings: &ImportsSettings) -> Vec<String> {
    Kinds::load(settings)
        .unwrap_or_else(|_| Kinds::builtin())
        .names()
}

/// The bus runner settings of the processor.
pub fn runner_config(settings: &ImportsSettings) -> RunnerConfig {
    let mut cfg = RunnerConfig::new(settings.group.clone(), &[settings.files_topic.as_str()]);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(settings.retry_base_ms.max(1)),
        max: Duration::from_millis(settings.retry_max_ms.max(settings.retry_base_ms.max(1))),
        max_retries: None,
    };
    cfg
}

struct ApiService;

#[async_trait::async_trait]
impl Service for ApiService {
    fn name(&self) -> &'static str {
        "imports-api"
    }
    fn about(&self) -> &'static str {
        "imports REST API: streaming uploads to the object store, status, errors, kinds, companies (+ /openapi.json)"
    }
    fn listens(&self) -> &'static [&'static str] {
        &["imports.http_listen"]
    }
    fn metrics(&self, ctx: &Context) -> Vec<Series> {
        let settings = ctx.section::<ImportsSettings>();
        let mut out = http::series("imports-api");
        out.extend(crate::metrics::api_series(&kind_names(&settings)));
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<ImportsSettings>();
        let store = open_store(&ctx).await?;
        let objects = open_objects(&ctx).await?;
        let bus = ctx.bus().await?;
        let kinds = Kinds::load(&settings)?;
        let listener = http::bind(settings.http_listen, "imports API").await?;
        let addr = listener.local_addr().context("imports API address")?;
        started.listening(addr);
        started.ready();
        tracing::info!(api = %format!("http://{addr}"), "imports API listening");
        let limits = api::limits(&settings);
        let router = api::router(ApiState {
            store,
            objects,
            bus,
            settings,
            kinds,
            started: Instant::now(),
        })
        .layer(tributary_runtime::scope::RequestScopeLayer::new(false));
        http::serve(
            listener,
            router,
            "imports-api",
            limits,
            ctx.shutdown.clone(),
        )
        .await
    }
}

struct ProcessorService;

#[async_trait::async_trait]
impl Service for ProcessorService {
    fn name(&self) -> &'static str {
        "imports-processor"
    }
    fn about(&self) -> &'static str {
        "imports processor: processedFile -> stream the body back, validate, load by natural key + outbox"
    }
    fn metrics(&self, ctx: &Context) -> Vec<Series> {
        let settings = ctx.section::<ImportsSettings>();
        let mut out =
            tributary_runtime::series::consumer(&settings.group, &[settings.files_topic.as_str()]);
        out.extend(crate::metrics::processor_series(&kind_names(&settings)));
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<ImportsSettings>();
        let store = open_store(&ctx).await?;
        let objects = open_objects(&ctx).await?;
        let bus = ctx.bus().await?;
        bus.create_topic(&settings.files_topic, settings.partitions)
            .await
            .with_context(|| format!("create the topic {}", settings.files_topic))?;
        let kinds = Kinds::load(&settings)?;
        let processor = Arc::new(Processor::new(store, objects, settings.clone(), kinds));
        ctx.readiness.register(Arc::new(processor.health()));
        started.ready();
        tributary_bus::runner::run(
            bus,
            runner_config(&settings),
            processor,
            ctx.shutdown.clone(),
        )
        .await
        .context("imports processor")
    }
}

struct Outbox;

#[async_trait::async_trait]
impl Service for Outbox {
    fn name(&self) -> &'static str {
        "imports-outbox"
    }
    fn about(&self) -> &'static str {
        "imports outbox relay: FileExtractSuccess to processedFile, the other import events to importEvents"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        tributary_runtime::series::outbox(crate::store::OUTBOX_NAMESPACE)
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<ImportsSettings>();
        let store = open_store(&ctx).await?;
        let bus = ctx.bus().await?;
        bus.create_topic(&settings.files_topic, settings.partitions)
            .await
            .with_context(|| format!("create the topic {}", settings.files_topic))?;
        let relay = tributary_runtime::outbox::Relay::new(
            store.outbox(),
            bus,
            settings.relay.clone(),
            encoder(settings.files_topic.clone()),
        );
        ctx.readiness.register(Arc::new(relay.health()));
        started.ready();
        relay.run(ctx.shutdown.clone()).await
    }
}

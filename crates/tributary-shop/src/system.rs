//! The shop system's contract: settings section `[shop]`, services
//! `shop-emulator`, `shop-filter`, `shop-api`, `shop-recommendations` and
//! `shop-sink`, CLI `tributary shop`, its topics and its migrations
//! (namespace `shop`).

use std::sync::Arc;

use anyhow::Context as _;
use tributary_bus::runner::RunnerConfig;
use tributary_platform::telemetry::Series;
use tributary_platform::Started;
use tributary_runtime::http::{self, HttpLimits};
use tributary_runtime::{Context, Service, SettingsSection, System, SystemCli, TopicSpec};

use crate::api::{self, ApiState};
use crate::pipeline::control::{replica_id, ControlView, Follower};
use crate::pipeline::filter::FilterHandler;
use crate::pipeline::join::JoinHandler;
use crate::pipeline::repartition::RepartitionHandler;
use crate::pipeline::sink::SinkHandler;
use crate::pipeline::{ensure_topics, ConsumerHealth};
use crate::settings::ShopSettings;
use crate::store::ShopStore;

/// The shop system.
pub fn system() -> System {
    System {
        name: "shop",
        about: "shop streams: product emulator, live filter, search prompts, windowed recommendations, sink",
        settings: SettingsSection::of::<ShopSettings>(),
        services: vec![
            Arc::new(EmulatorService),
            Arc::new(FilterService),
            Arc::new(ApiService),
            Arc::new(JoinService),
            Arc::new(SinkService),
        ],
        cli: Some(SystemCli::new(cli)),
        topics: &[
            TopicSpec {
                name: crate::settings::PRODUCTS_TOPIC,
                about: "products (key = product_id), from shop-emulator and the ingest route; poison to shop_products.dlq",
            },
            TopicSpec {
                name: crate::settings::FILTERED_TOPIC,
                about: "products that pass the live filter (key = product_id, event time in shop.event_time_ms), from shop-filter",
            },
            TopicSpec {
                name: crate::settings::PROMPTS_TOPIC,
                about: "search prompts {id, user_id, find} (key = id), from the ingest route; poison to analytic_products_find.dlq",
            },
            TopicSpec {
                name: crate::settings::RECOMMENDATIONS_TOPIC,
                about: "recommendations {prompt_id, user_id, find, product, matched_at} (key = prompt id, idempotent key in shop.key), from shop-recommendations",
            },
            TopicSpec {
                name: "shop-recommendations-prompts-repartition",
                about: "prompts re-keyed by the join key (`{shop.join_group}-prompts-repartition`), from shop-recommendations when shop.repartition is on (Kafka)",
            },
            TopicSpec {
                name: "shop-recommendations-products-repartition",
                about: "filtered products re-keyed by the join key (`{shop.join_group}-products-repartition`), from shop-recommendations when shop.repartition is on (Kafka)",
            },
            TopicSpec {
                name: crate::settings::CONTROL_TOPIC,
                about: "the filter (key `filter`), replica reports (`ack/...`) and start markers (`sync/...`); one partition, read from the start",
            },
        ],
        migrations: Some(crate::store::MIGRATIONS),
    }
}

async fn cli(cmd: crate::cli::Command, ctx: Arc<Context>) -> anyhow::Result<()> {
    let listen = ctx.section::<ShopSettings>().http_listen;
    crate::cli::run(cmd, format!("http://{listen}")).await
}

async fn open_store(ctx: &Context) -> anyhow::Result<ShopStore> {
    ShopStore::open(&ctx.db().await?)
        .await
        .context("migrate the shop tables")
}

fn runner(s: &ShopSettings, group: &str, topics: &[&str]) -> RunnerConfig {
    let mut cfg = RunnerConfig::new(group.to_owned(), topics);
    cfg.backoff = s.backoff();
    cfg
}

struct EmulatorService;

#[async_trait::async_trait]
impl Service for EmulatorService {
    fn name(&self) -> &'static str {
        "shop-emulator"
    }
    fn about(&self) -> &'static str {
        "shop emulator: generated products to shop_products at shop.emulator_rate per second"
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        crate::metrics::records(crate::pipeline::emulator::SERVICE, false)
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let s = ctx.section::<ShopSettings>();
        let bus = ctx.bus().await?;
        if !ensure_topics(&bus, &[(&s.products_topic, s.partitions)], &ctx.shutdown).await {
            return Ok(());
        }
        started.ready();
        crate::pipeline::emulator::run(
            bus,
            s.products_topic.clone(),
            s.emulator_rate,
            s.emulator_count,
            s.emulator_seed,
            ctx.shutdown.clone(),
        )
        .await;
        Ok(())
    }
}

struct FilterService;

#[async_trait::async_trait]
impl Service for FilterService {
    fn name(&self) -> &'static str {
        "shop-filter"
    }
    fn about(&self) -> &'static str {
        "shop filter: shop_products -> live name filter (control topic) -> analytic_products_filtered"
    }
    fn metrics(&self, ctx: &Context) -> Vec<Series> {
        let s = ctx.section::<ShopSettings>();
        let mut out =
            tributary_runtime::series::consumer(&s.filter_group, &[s.products_topic.as_str()]);
        out.extend(crate::metrics::records(
            crate::pipeline::filter::SERVICE,
            true,
        ));
        out.extend(crate::metrics::filter());
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let s = ctx.section::<ShopSettings>();
        let bus = ctx.bus().await?;
        let topics = [
            (s.products_topic.as_str(), s.partitions),
            (s.filtered_topic.as_str(), s.partitions),
        ];
        if !ensure_topics(&bus, &topics, &ctx.shutdown).await {
            return Ok(());
        }
        let view = ControlView::default();
        Follower {
            bus: bus.clone(),
            topic: s.control_topic.clone(),
            replica: replica_id(),
            ack: true,
            view: view.clone(),
        }
        .start(ctx.shutdown.clone())
        .await?;
        let health = ConsumerHealth::new("shop filter");
        ctx.readiness.register(Arc::new(health.clone()));
        let handler = Arc::new(FilterHandler::new(
            bus.clone(),
            s.filtered_topic.clone(),
            view,
            health,
        ));
        started.ready();
        tributary_bus::runner::run(
            bus,
            runner(&s, &s.filter_group, &[s.products_topic.as_str()]),
            handler,
            ctx.shutdown.clone(),
        )
        .await
        .context("shop filter")
    }
}

struct ApiService;

#[async_trait::async_trait]
impl Service for ApiService {
    fn name(&self) -> &'static str {
        "shop-api"
    }
    fn about(&self) -> &'static str {
        "shop REST API: NDJSON ingest of products and prompts, filter control, products, recommendations (+ /openapi.json); gRPC API: filter control, ingest"
    }
    fn listens(&self) -> &'static [&'static str] {
        &["shop.http_listen", "shop.grpc_listen"]
    }
    fn metrics(&self, _: &Context) -> Vec<Series> {
        // Its control-topic follower applies filter changes too.
        let mut out = http::series("shop-api");
        out.extend(tributary_runtime::grpc::series(api::grpc::GRPC_SERVER));
        out.push(Series::counter(crate::metrics::FILTER_CHANGES));
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let settings = ctx.section::<ShopSettings>();
        let store = open_store(&ctx).await?;
        let bus = ctx.bus().await?;
        let topics = [
            (settings.products_topic.as_str(), settings.partitions),
            (settings.prompts_topic.as_str(), settings.partitions),
        ];
        if !ensure_topics(&bus, &topics, &ctx.shutdown).await {
            return Ok(());
        }
        let control = ControlView::default();
        Follower {
            bus: bus.clone(),
            topic: settings.control_topic.clone(),
            replica: format!("api-{}", replica_id()),
            ack: false,
            view: control.clone(),
        }
        .start(ctx.shutdown.clone())
        .await?;
        let listener = http::bind(settings.http_listen, "shop API").await?;
        let addr = listener.local_addr().context("shop API address")?;
        let grpc_listener = http::bind(settings.grpc_listen, "shop gRPC API").await?;
        let grpc_addr = grpc_listener.local_addr().context("shop gRPC address")?;
        started.listening(addr);
        started.listening(grpc_addr);
        started.ready();
        tracing::info!(api = %format!("http://{addr}"), grpc = %grpc_addr, "shop API listening");
        let state = ApiState {
            store,
            bus,
            settings,
            control,
        };
        // A failing server stops its sibling, not the process.
        let stop = ctx.shutdown.child_token();
        let grpc = {
            let stop = stop.clone();
            let state = state.clone();
            async move {
                let r = api::grpc::serve(grpc_listener, state, stop.clone()).await;
                stop.cancel();
                r
            }
        };
        let rest = {
            let stop = stop.clone();
            let router =
                api::router(state).layer(tributary_runtime::scope::RequestScopeLayer::new(false));
            async move {
                let r = http::serve(
                    listener,
                    router,
                    "shop-api",
                    HttpLimits::default(),
                    stop.clone(),
                )
                .await;
                stop.cancel();
                r
            }
        };
        let (a, b) = tokio::join!(rest, grpc);
        a.context("shop REST API")?;
        b.context("shop gRPC API")
    }
}

struct JoinService;

#[async_trait::async_trait]
impl Service for JoinService {
    fn name(&self) -> &'static str {
        "shop-recommendations"
    }
    fn about(&self) -> &'static str {
        "shop recommendations: prompts x filtered products on the normalised name within the window -> personal_recom (state in SQL; on Kafka both inputs re-keyed through repartition topics, so replicas scale out)"
    }
    fn metrics(&self, ctx: &Context) -> Vec<Series> {
        let s = ctx.section::<ShopSettings>();
        let inputs = [s.prompts_topic.as_str(), s.filtered_topic.as_str()];
        let mut out = if s.repartitions(&ctx.settings.bus.url) {
            let (rp, rq) = s.repartition_topics();
            let mut out = tributary_runtime::series::consumer(&s.repartition_group(), &inputs);
            out.extend(tributary_runtime::series::consumer(
                &s.join_group,
                &[rp.as_str(), rq.as_str()],
            ));
            out.extend(crate::metrics::records(
                crate::pipeline::repartition::SERVICE,
                true,
            ));
            out
        } else {
            tributary_runtime::series::consumer(&s.join_group, &inputs)
        };
        out.extend(crate::metrics::records(
            crate::pipeline::join::SERVICE,
            true,
        ));
        out.extend(crate::metrics::join());
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let s = ctx.section::<ShopSettings>();
        let store = open_store(&ctx).await?;
        let bus = ctx.bus().await?;
        let repartition = s.repartitions(&ctx.settings.bus.url);
        let (rp, rq) = s.repartition_topics();
        let mut topics = vec![
            (s.prompts_topic.as_str(), s.partitions),
            (s.filtered_topic.as_str(), s.partitions),
            (s.recommendations_topic.as_str(), s.partitions),
        ];
        if repartition {
            // Co-partitioned: both with the same partition count.
            topics.push((rp.as_str(), s.partitions));
            topics.push((rq.as_str(), s.partitions));
        }
        if !ensure_topics(&bus, &topics, &ctx.shutdown).await {
            return Ok(());
        }
        let health = ConsumerHealth::new("shop recommendations");
        ctx.readiness.register(Arc::new(health.clone()));
        let (prompt_topics, join_inputs) = if repartition {
            (vec![rp.clone()], [rp.as_str(), rq.as_str()])
        } else {
            (
                vec![s.prompts_topic.clone()],
                [s.prompts_topic.as_str(), s.filtered_topic.as_str()],
            )
        };
        let handler = JoinHandler::open(
            store,
            bus.clone(),
            prompt_topics,
            s.recommendations_topic.clone(),
            s.join(),
            repartition,
            health.clone(),
        )
        .await
        .context("restore the join state")?;
        tracing::info!(
            repartition,
            inputs = ?join_inputs,
            "shop recommendations: {}",
            if repartition {
                "inputs re-keyed by the join key through repartition topics; state split by partition"
            } else {
                "one replica reads both inputs; state in one part"
            }
        );
        started.ready();
        let join = tributary_bus::runner::run(
            bus.clone(),
            runner(&s, &s.join_group, &join_inputs),
            Arc::new(handler),
            ctx.shutdown.clone(),
        );
        if !repartition {
            return join.await.context("shop recommendations");
        }
        let rekey = tributary_bus::runner::run(
            bus.clone(),
            runner(
                &s,
                &s.repartition_group(),
                &[s.prompts_topic.as_str(), s.filtered_topic.as_str()],
            ),
            Arc::new(RepartitionHandler::new(
                bus,
                s.prompts_topic.clone(),
                rp.clone(),
                rq.clone(),
                health,
            )),
            ctx.shutdown.clone(),
        );
        let (a, b) = tokio::join!(rekey, join);
        a.context("shop repartition")?;
        b.context("shop recommendations")
    }
}

struct SinkService;

#[async_trait::async_trait]
impl Service for SinkService {
    fn name(&self) -> &'static str {
        "shop-sink"
    }
    fn about(&self) -> &'static str {
        "shop sink: products, filtered products and recommendations upserted into their tables"
    }
    fn metrics(&self, ctx: &Context) -> Vec<Series> {
        let s = ctx.section::<ShopSettings>();
        let mut out = tributary_runtime::series::consumer(
            &s.sink_group,
            &[
                s.products_topic.as_str(),
                s.filtered_topic.as_str(),
                s.recommendations_topic.as_str(),
            ],
        );
        out.extend(crate::metrics::records(
            crate::pipeline::sink::SERVICE,
            true,
        ));
        out
    }
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()> {
        let s = ctx.section::<ShopSettings>();
        let store = open_store(&ctx).await?;
        let bus = ctx.bus().await?;
        let topics = [
            (s.products_topic.as_str(), s.partitions),
            (s.filtered_topic.as_str(), s.partitions),
            (s.recommendations_topic.as_str(), s.partitions),
        ];
        if !ensure_topics(&bus, &topics, &ctx.shutdown).await {
            return Ok(());
        }
        let health = ConsumerHealth::new("shop sink");
        ctx.readiness.register(Arc::new(health.clone()));
        let handler = SinkHandler::new(
            store,
            s.products_topic.clone(),
            s.filtered_topic.clone(),
            health,
        );
        started.ready();
        tributary_bus::runner::run(
            bus,
            runner(
                &s,
                &s.sink_group,
                &[
                    s.products_topic.as_str(),
                    s.filtered_topic.as_str(),
                    s.recommendations_topic.as_str(),
                ],
            ),
            Arc::new(handler),
            ctx.shutdown.clone(),
        )
        .await
        .context("shop sink")
    }
}

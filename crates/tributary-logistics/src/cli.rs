//! `tributary logistics ...`: client commands against a running
//! `logistics-api` (gRPC), `tail` (follows the topic and prints events as
//! JSON lines) and `bench`.

mod bench;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tributary_bus::{BusConfig, ConsumerOptions, StartFrom};

use crate::proto::v1 as pb;
use crate::proto::v1::logistic_package_api_service_client::LogisticPackageApiServiceClient;

pub use bench::BenchArgs;

/// `tributary logistics`.
#[derive(Debug, Args)]
pub struct Command {
    /// gRPC address of logistics-api.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_LOGISTICS_ADDR",
        default_value = "http://127.0.0.1:8082"
    )]
    pub addr: String,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// Logistics actions.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create a package; prints its id.
    Create {
        /// 1..32 characters.
        #[arg(long)]
        title: String,
        /// 1..32 characters.
        #[arg(long)]
        material: String,
        /// Maximum volume, cm³ (> 0).
        #[arg(long)]
        maximum_volume: f32,
        /// Reusable package.
        #[arg(long)]
        reusable: bool,
    },
    /// Print one package as JSON.
    Get {
        /// Package id.
        id: u64,
    },
    /// Print a page of packages as JSON lines.
    List {
        /// Rows to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Page size (0 = server default).
        #[arg(long, default_value_t = 0)]
        limit: u64,
        /// Cursor: only ids greater than this.
        #[arg(long)]
        after_id: Option<u64>,
    },
    /// Change fields of a package.
    Update {
        /// Package id.
        id: u64,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New material.
        #[arg(long)]
        material: Option<String>,
        /// New maximum volume.
        #[arg(long)]
        maximum_volume: Option<f32>,
        /// New reusable flag.
        #[arg(long)]
        reusable: Option<bool>,
    },
    /// Remove a package.
    Remove {
        /// Package id.
        id: u64,
    },
    /// Follow the event topic in a consumer group and print events as JSON lines.
    Tail {
        /// Consumer group (default: a new one per run).
        #[arg(long)]
        group: Option<String>,
        /// Start at the oldest retained event (default: only new events).
        #[arg(long)]
        from_beginning: bool,
        /// Topic.
        #[arg(long, default_value = crate::relay::DEFAULT_TOPIC)]
        topic: String,
    },
    /// Measure create throughput over gRPC and relay throughput/latency.
    Bench(BenchArgs),
}

/// What the client commands need besides their arguments.
#[derive(Debug, Clone)]
pub struct CliContext {
    /// Bus URL in effect (for `tail`).
    pub bus_url: String,
    /// Bus settings.
    pub bus: BusConfig,
}

/// Runs a client command; output goes to stdout.
///
/// # Errors
/// When the server cannot be reached or answers with an error (its status is shown).
pub async fn run(cmd: Command, ctx: CliContext) -> anyhow::Result<()> {
    match cmd.action {
        Action::Tail {
            group,
            from_beginning,
            topic,
        } => tail(&ctx, group, from_beginning, &topic).await,
        Action::Bench(args) => bench::run(args).await,
        other => client(&cmd.addr, other).await,
    }
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

async fn client(addr: &str, action: Action) -> anyhow::Result<()> {
    let channel = tributary_runtime::client::grpc_channel(addr, "logistics-api").await?;
    let mut c = LogisticPackageApiServiceClient::with_interceptor(
        channel,
        tributary_runtime::client::grpc_auth()?,
    );
    match action {
        Action::Create {
            title,
            material,
            maximum_volume,
            reusable,
        } => {
            let r = c
                .create_package_v1(pb::CreatePackageV1Request {
                    title,
                    material,
                    maximum_volume,
                    reusable,
                })
                .await
                .map_err(status)?;
            println!("{}", json!({"id": r.into_inner().id}));
        }
        Action::Get { id } => {
            let r = c
                .describe_package_v1(pb::DescribePackageV1Request { id })
                .await
                .map_err(status)?;
            if let Some(p) = r.into_inner().package {
                println!("{}", package_json(&p));
            }
        }
        Action::List {
            offset,
            limit,
            after_id,
        } => {
            let r = c
                .list_packages_v1(pb::ListPackagesV1Request {
                    offset,
                    limit,
                    after_id,
                })
                .await
                .map_err(status)?;
            for p in r.into_inner().packages {
                println!("{}", package_json(&p));
            }
        }
        Action::Update {
            id,
            title,
            material,
            maximum_volume,
            reusable,
        } => {
            let r = c
                .update_package_v1(pb::UpdatePackageV1Request {
                    id,
                    title,
                    material,
                    maximum_volume,
                    reusable,
                })
                .await
                .map_err(status)?;
            println!("{}", json!({"ok": r.into_inner().ok}));
        }
        Action::Remove { id } => {
            let r = c
                .remove_package_v1(pb::RemovePackageV1Request { id })
                .await
                .map_err(status)?;
            println!("{}", json!({"ok": r.into_inner().ok}));
        }
        Action::Tail { .. } | Action::Bench(_) => {}
    }
    Ok(())
}

fn ts(t: Option<&prost_types::Timestamp>) -> serde_json::Value {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map_or(serde_json::Value::Null, |d| json!(d.to_rfc3339()))
}

fn package_json(p: &pb::Package) -> serde_json::Value {
    json!({
        "id": p.id, "title": p.title, "material": p.material,
        "maximum_volume": p.maximum_volume, "reusable": p.reusable,
        "created": ts(p.created.as_ref()), "updated": ts(p.updated.as_ref()),
    })
}

/// Decodes a published event into the JSON line `tail` prints.
///
/// # Errors
/// When the bytes are not a `PackageEvent`.
pub fn event_json(value: &[u8]) -> anyhow::Result<serde_json::Value> {
    let e: pb::PackageEvent = prost::Message::decode(value).context("decode PackageEvent")?;
    let kind = pb::EventType::try_from(e.r#type)
        .map_or_else(|_| e.r#type.to_string(), |t| t.as_str_name().to_string());
    let payload: serde_json::Value = serde_json::from_slice(&e.payload)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&e.payload)));
    Ok(json!({
        "id": e.id, "package_id": e.package_id, "type": kind,
        "created": ts(e.created.as_ref()), "payload": payload,
    }))
}

async fn tail(
    ctx: &CliContext,
    group: Option<String>,
    from_beginning: bool,
    topic: &str,
) -> anyhow::Result<()> {
    // The embedded bus belongs to the running process: follow it read-only
    // (nothing is committed, so `--group` does not resume there).
    let (bus, read_only) = match tributary_bus::connect(&ctx.bus_url, &ctx.bus).await {
        Err(tributary_bus::Error::Locked { .. }) => (
            tributary_bus::connect_read_only(&ctx.bus_url, &ctx.bus).await?,
            true,
        ),
        other => (other?, false),
    };
    let group = group.unwrap_or_else(|| {
        format!(
            "logistics-tail-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let options = ConsumerOptions {
        start_from: if from_beginning {
            StartFrom::Earliest
        } else {
            StartFrom::Latest
        },
        ..ConsumerOptions::default()
    };
    let mut consumer = bus.subscribe(&group, &[topic.to_string()], options).await?;
    eprintln!(
        "following {topic} on {} as group {group}{}; Ctrl-C stops",
        bus.describe(),
        if read_only {
            " (read-only: another process owns the embedded bus; offsets are not committed)"
        } else {
            ""
        }
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            m = consumer.recv() => {
                let m = m?;
                match event_json(&m.value) {
                    Ok(mut line) => {
                        line["partition"] = json!(m.partition);
                        line["offset"] = json!(m.offset);
                        println!("{line}");
                    }
                    Err(e) => eprintln!("partition {} offset {}: {e:#}", m.partition, m.offset),
                }
                if !read_only {
                    consumer.store(&m)?;
                }
            }
        }
    }
    consumer.close().await?;
    Ok(())
}

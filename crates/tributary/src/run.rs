//! Running commands: load settings, set up telemetry, start the admin
//! server and services, wait for shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tributary_platform::admin::{self, VersionInfo};
use tributary_platform::{shutdown, telemetry};

use crate::cli::{BenchCommand, Cli, Command};
use crate::context::Context;
use crate::services::{self, Service};
use crate::settings::Settings;

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    let mut settings: Settings =
        tributary_platform::config::load(cli.config.as_deref()).context("load configuration")?;
    match cli.command {
        Command::Config => {
            println!("{settings:#?}");
            Ok(())
        }
        Command::Services => {
            let all = services::registry();
            if all.is_empty() {
                println!("no services are registered in this build");
            }
            for s in all {
                println!("{:<24} {}", s.name(), s.about());
            }
            Ok(())
        }
        Command::Up(args) => {
            if let Some(dir) = args.data_dir {
                settings.data_dir = dir;
            }
            serve(
                settings,
                services::registry(),
                true,
                crate::audit::UP_PROCESS,
            )
            .await
        }
        Command::Serve(args) => {
            let Some(svc) = services::find(&args.service) else {
                let known: Vec<&str> = services::registry().iter().map(|s| s.name()).collect();
                bail!(
                    "unknown service {:?}; known services: {}",
                    args.service,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            };
            let process = svc.name();
            serve(settings, vec![svc], false, process).await
        }
        Command::Logistics(cmd) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            let ctx = tributary_logistics::cli::CliContext {
                bus_url: settings.bus_url(),
                bus: settings.bus.clone(),
            };
            tributary_logistics::cli::run(cmd, ctx).await
        }
        Command::Chat(cmd) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            tributary_chat::cli::run(cmd, &settings.chat.server).await
        }
        Command::Bench(BenchCommand::Bus(args)) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            crate::bench::bus(args).await
        }
    }
}

/// Starts telemetry with the audit layer, the backends (all of them for
/// `up`), the admin server, the audit shipper and `services`; returns
/// after shutdown once every service has drained and the shipper has sent
/// what they logged while stopping. `process` names the process in audit
/// records (see [`crate::audit`]).
async fn serve(
    settings: Settings,
    services: Vec<Arc<dyn Service>>,
    all_backends: bool,
    process: &str,
) -> anyhow::Result<()> {
    let (audit_layers, audit_queue) = crate::audit::layers(&settings, process);
    let _guard = telemetry::init(&settings.telemetry, audit_layers)?;
    let _ = telemetry::prometheus();
    metrics::gauge!("tributary_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let ctx = Arc::new(Context::new(settings, shutdown::on_signals()));
    let token = ctx.shutdown.clone();
    if all_backends {
        std::fs::create_dir_all(&ctx.settings.data_dir).with_context(|| {
            format!("create data directory {}", ctx.settings.data_dir.display())
        })?;
        ctx.db().await?;
        ctx.bus().await?;
        ctx.objects().await?;
        ctx.cache().await?;
    }
    let version = VersionInfo {
        name: "tributary",
        version: env!("CARGO_PKG_VERSION"),
        commit: option_env!("TRIBUTARY_GIT_COMMIT"),
        environment: ctx.settings.environment.clone(),
    };
    let (addr, admin_task) = admin::serve(
        ctx.settings.admin.listen,
        ctx.readiness.clone(),
        version,
        token.clone(),
    )
    .await?;
    tracing::info!(
        admin = %format!("http://{addr}"),
        services = ?services.iter().map(|s| s.name()).collect::<Vec<_>>(),
        data_dir = %ctx.settings.data_dir.display(),
        "tributary is up; Ctrl-C stops it"
    );
    // One shipper per process, stopped only after the services have drained.
    let stop_shipping = tributary_platform::CancellationToken::new();
    let shipper = audit_queue.map(|queue| {
        tokio::spawn(crate::audit::run_shipper(
            ctx.clone(),
            queue,
            stop_shipping.clone(),
        ))
    });
    let mut tasks = tokio::task::JoinSet::new();
    for svc in services {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let name = svc.name();
            let res = svc.run(ctx).await;
            (name, res)
        });
    }
    let mut failed = None;
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            joined = tasks.join_next(), if !tasks.is_empty() => match joined {
                Some(Ok((name, Ok(())))) => tracing::info!(service = name, "service finished"),
                Some(Ok((name, Err(e)))) => {
                    tracing::error!(service = name, error = %format!("{e:#}"), "service failed; stopping");
                    failed = Some(e.context(format!("service {name} failed")));
                    token.cancel();
                    break;
                }
                Some(Err(e)) => {
                    failed = Some(anyhow::anyhow!("a service panicked: {e}"));
                    token.cancel();
                    break;
                }
                None => {}
            },
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((name, Err(e))) = joined {
            tracing::error!(service = name, error = %format!("{e:#}"), "service failed while stopping");
        }
    }
    stop_shipping.cancel();
    if let Some(shipper) = shipper {
        // Bounded: the shipper drains for at most 5 s.
        let _ = tokio::time::timeout(Duration::from_secs(10), shipper).await;
    }
    let _ = admin_task.await;
    tracing::info!("stopped");
    failed.map_or(Ok(()), Err)
}

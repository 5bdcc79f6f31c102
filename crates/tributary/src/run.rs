//! Running commands: load settings, set up telemetry, start the admin
//! server and services, wait for shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tributary_platform::admin::{self, VersionInfo};
use tributary_platform::{shutdown, telemetry, CancellationToken};
use tributary_runtime::supervise::{self, Mode};
use tributary_runtime::system::{self, all_services};
use tributary_runtime::{Context, Service, Settings, System};

use crate::cli::{BenchCommand, Cli, Command, Invocation};

/// Process name of `tributary up` (every service in one process), used
/// for audit records logged outside any service.
pub const UP_PROCESS: &str = "tributary";

pub async fn main(invocation: Invocation, systems: Vec<System>) -> anyhow::Result<()> {
    system::check(&systems).map_err(|e| anyhow::anyhow!("this build's system list: {e}"))?;
    match invocation {
        Invocation::System {
            config,
            name,
            matches,
        } => {
            let settings =
                Settings::load(config.as_deref(), &systems).context("load configuration")?;
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            tributary_platform::auth::set_client_token(&settings.auth);
            let ctx = Arc::new(Context::new(settings, CancellationToken::new()));
            let Some(cli) = systems
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.cli.as_ref())
            else {
                bail!("system {name} has no client commands");
            };
            cli.run(matches, ctx).await
        }
        Invocation::Builtin(cli) => builtin(cli, systems).await,
    }
}

async fn builtin(cli: Cli, systems: Vec<System>) -> anyhow::Result<()> {
    let mut settings =
        Settings::load(cli.config.as_deref(), &systems).context("load configuration")?;
    match cli.command {
        Command::Config => {
            print!("{settings:#?}");
            Ok(())
        }
        Command::Services(args) => {
            for sys in &systems {
                for s in &sys.services {
                    if args.json {
                        let line = serde_json::json!({
                            "name": s.name(), "system": sys.name, "about": s.about(),
                            "listens": s.listens(),
                        });
                        println!("{line}");
                    } else {
                        println!("{:<20} {}", s.name(), s.about());
                    }
                }
            }
            Ok(())
        }
        Command::Migrate(args) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            let ctx = Context::new(settings, CancellationToken::new());
            let db = ctx.db().await?;
            // The shared outbox's table first: system migrations may move rows into it.
            let sets = std::iter::once(("outbox", &tributary_runtime::outbox::MIGRATIONS)).chain(
                systems
                    .iter()
                    .filter_map(|s| s.migrations.as_ref().map(|m| (s.name, m))),
            );
            for (name, m) in sets {
                let report = db
                    .migrate(m)
                    .await
                    .with_context(|| format!("migrate {name}"))?;
                if args.json {
                    let line = serde_json::json!({
                        "namespace": name, "applied": report.applied, "adopted": report.adopted,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{:<12} applied {:?}, adopted {:?}",
                        name, report.applied, report.adopted
                    );
                }
            }
            Ok(())
        }
        Command::Up(args) => {
            if let Some(dir) = args.data_dir {
                settings.data_dir = dir;
            }
            serve(settings, all_services(&systems), Mode::Up, UP_PROCESS).await
        }
        Command::Serve(args) => {
            let all = all_services(&systems);
            let mut chosen: Vec<Arc<dyn Service>> = Vec::with_capacity(args.services.len());
            for name in &args.services {
                let Some(svc) = all.iter().find(|s| s.name() == name).cloned() else {
                    let known: Vec<&str> = all.iter().map(|s| s.name()).collect();
                    bail!(
                        "unknown service {name:?}; known services: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    );
                };
                if chosen.iter().any(|c| c.name() == svc.name()) {
                    bail!("service {name:?} is named twice");
                }
                chosen.push(svc);
            }
            let process = args.services.join("+");
            serve(settings, chosen, Mode::Serve, &process).await
        }
        Command::Bench(BenchCommand::Bus(args)) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            crate::bench::bus(args).await
        }
        Command::Bench(BenchCommand::Docs(args)) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            crate::bench_docs::docs(args).await
        }
        Command::Bench(BenchCommand::Imports(args)) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            crate::bench_imports::imports(*args).await
        }
        Command::Bench(BenchCommand::Shop(args)) => {
            let _guard = telemetry::init(&settings.telemetry, Vec::new())?;
            crate::bench_shop::shop(args).await
        }
    }
}

/// Starts telemetry with the audit layer, the backends (all of them for
/// `up`), the admin server, the audit shipper and `services`; returns
/// after shutdown once every service has drained and the shipper has sent
/// what they logged while stopping. `process` names the process in audit
/// records logged outside any service.
async fn serve(
    settings: Settings,
    services: Vec<Arc<dyn Service>>,
    mode: Mode,
    process: &str,
) -> anyhow::Result<()> {
    let (audit_layers, audit_queue) = if settings.audit.enabled {
        let (layer, queue) = tributary_runtime::audit::audit_layer(&settings.audit, process);
        (vec![Box::new(layer) as telemetry::BoxLayer], Some(queue))
    } else {
        (Vec::new(), None)
    };
    let _guard = telemetry::init(&settings.telemetry, audit_layers)?;
    let auth =
        tributary_platform::auth::Auth::from_settings(&settings.auth).context("load [auth]")?;
    tributary_platform::auth::install(auth);
    // A TLS setting that cannot work stops the start here, naming the file,
    // instead of every listener failing on its own later.
    tributary_platform::tls::pem_pair(&settings.server).context("load [server] TLS")?;
    tributary_platform::serve::install(settings.server.clone());
    let _ = telemetry::prometheus();
    metrics::gauge!("tributary_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let ctx = Arc::new(Context::new(settings, shutdown::on_signals()));
    let token = ctx.shutdown.clone();
    // Before the admin server: every series a dashboard queries is in the first scrape.
    let series = tributary_runtime::series::register_at_start(&ctx, &services, mode);
    // Before the admin server: /readyz is 503 until each of them is ready.
    let registered = supervise::register(&ctx, services);
    if mode == Mode::Up {
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
        services = ?registered,
        metric_series = series,
        data_dir = %ctx.settings.data_dir.display(),
        "tributary is starting; /readyz turns 200 once every service is ready; Ctrl-C stops it"
    );
    // One shipper per process, stopped only after the services have drained.
    let stop_shipping = CancellationToken::new();
    let shipper = audit_queue.map(|queue| {
        tokio::spawn(tributary_runtime::audit::run_shipper(
            ctx.clone(),
            queue,
            stop_shipping.clone(),
        ))
    });
    let result = supervise::run(ctx.clone(), registered, mode).await;
    token.cancel();
    stop_shipping.cancel();
    if let Some(shipper) = shipper {
        // Bounded: the shipper drains for at most 5 s.
        let _ = tokio::time::timeout(Duration::from_secs(10), shipper).await;
    }
    let _ = admin_task.await;
    tracing::info!("stopped");
    result
}

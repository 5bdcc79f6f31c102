//! The system contract: what every system crate exports, and the one list
//! the binary keeps.
//!
//! A system crate has one function `pub fn system() -> System` that names
//! the system and lists its settings section, services, CLI subcommand,
//! topics and migrations. The binary holds `[chat::system(), ...]`; the
//! settings tree, `tributary services`, `serve NAME`, `up`, the CLI,
//! `tributary config`, `tributary migrate` and the README's configuration
//! check are all derived from that list.

use std::sync::Arc;

use futures::future::BoxFuture;
use tributary_platform::telemetry::Series;
use tributary_platform::Started;
use tributary_storage::Migrations;

use crate::context::Context;
use crate::settings::SettingsSection;

/// A long-running part of a system: an API server, a consumer, a relay.
/// Each one is separately servable (`tributary serve NAME`) and scalable
/// (run more replicas of that command).
#[async_trait::async_trait]
pub trait Service: Send + Sync {
    /// Name used by `tributary serve NAME`: `<system>-<part>`.
    fn name(&self) -> &'static str;
    /// One line for `tributary services`.
    fn about(&self) -> &'static str;
    /// Settings keys of the addresses this service binds (e.g.
    /// `chat.listen`), so tools and tests can move them all to free ports.
    fn listens(&self) -> &'static [&'static str] {
        &[]
    }
    /// The metric series this service emits, with the label values it will
    /// use (its topics, outbox namespace, API name, ...), registered at zero
    /// when the process starts, before the service runs, so every series a
    /// dashboard or alert queries is in `/metrics` from the first scrape.
    /// Building blocks supply their part: [`crate::http::series`],
    /// [`crate::series::consumer`], [`crate::series::outbox`].
    fn metrics(&self, ctx: &Context) -> Vec<Series> {
        let _ = ctx;
        Vec::new()
    }
    /// Runs until `ctx.shutdown` is cancelled, then drains and returns.
    /// Calls `started.listening(addr)` for every bound listener and
    /// `started.ready()` once it accepts work (migrations done, listeners
    /// bound, consumers joined); `/readyz` is 503 until then.
    ///
    /// An error means the service failed: under `serve` the process exits
    /// non-zero, under `up` the service alone is restarted with backoff.
    async fn run(&self, ctx: Arc<Context>, started: Started) -> anyhow::Result<()>;
}

/// A topic a system uses, created by its services on start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: &'static str,
    /// What flows on it.
    pub about: &'static str,
}

type CliRun = Box<
    dyn Fn(clap::ArgMatches, Arc<Context>) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync,
>;

/// A system's client subcommand (`tributary <system> ...`), made from a
/// clap `Args` type and its runner with [`SystemCli::new`].
pub struct SystemCli {
    augment: fn(clap::Command) -> clap::Command,
    run: CliRun,
}

impl std::fmt::Debug for SystemCli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemCli").finish_non_exhaustive()
    }
}

impl SystemCli {
    /// The subcommand whose arguments are `A`, run by `run`.
    pub fn new<A, F>(run: fn(A, Arc<Context>) -> F) -> Self
    where
        A: clap::Args + clap::FromArgMatches + Send + 'static,
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            augment: A::augment_args,
            run: Box::new(move |matches, ctx| {
                let parsed = A::from_arg_matches(&matches);
                Box::pin(async move {
                    let args = parsed.map_err(|e| anyhow::anyhow!("{e}"))?;
                    run(args, ctx).await
                })
            }),
        }
    }

    /// The clap subcommand named `name` with help `about`.
    pub fn command(&self, name: &'static str, about: &'static str) -> clap::Command {
        (self.augment)(clap::Command::new(name).about(about))
    }

    /// Parses `matches` (of [`SystemCli::command`]) and runs the command.
    ///
    /// # Errors
    /// Whatever the command fails with.
    pub async fn run(&self, matches: clap::ArgMatches, ctx: Arc<Context>) -> anyhow::Result<()> {
        (self.run)(matches, ctx).await
    }
}

/// Everything a system plugs in. See the module docs.
pub struct System {
    /// Lowercase name: the settings section, the CLI subcommand, the
    /// migration namespace and the prefix of every service name.
    pub name: &'static str,
    /// One line for help texts.
    pub about: &'static str,
    /// Its typed settings section (`[name]`, `TRIBUTARY__NAME__KEY`).
    pub settings: SettingsSection,
    /// Its services, in start order.
    pub services: Vec<Arc<dyn Service>>,
    /// Its client subcommand, if any.
    pub cli: Option<SystemCli>,
    /// The topics it produces to or consumes from.
    pub topics: &'static [TopicSpec],
    /// Its migrations (namespace = `name`), applied by its services on
    /// start and by `tributary migrate`.
    pub migrations: Option<Migrations<'static>>,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("name", &self.name)
            .field(
                "services",
                &self.services.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Every service of `systems`, in order.
pub fn all_services(systems: &[System]) -> Vec<Arc<dyn Service>> {
    systems
        .iter()
        .flat_map(|s| s.services.iter().cloned())
        .collect()
}

/// Checks the contract: names unique, every service named `<system>-...`,
/// migration namespaces equal to the system name.
///
/// # Errors
/// A message naming the first violation.
pub fn check(systems: &[System]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for sys in systems {
        if !seen.insert(sys.name.to_owned()) {
            return Err(format!("system {:?} is listed twice", sys.name));
        }
        if let Some(m) = &sys.migrations {
            if m.namespace != sys.name {
                return Err(format!(
                    "system {:?} migrates namespace {:?}; it must be its own name",
                    sys.name, m.namespace
                ));
            }
        }
        for svc in &sys.services {
            let name = svc.name();
            if !name.starts_with(&format!("{}-", sys.name)) {
                return Err(format!(
                    "service {name:?} of system {:?} must be named {}-<part>",
                    sys.name, sys.name
                ));
            }
            if !seen.insert(name.to_owned()) {
                return Err(format!("service {name:?} is listed twice"));
            }
        }
    }
    Ok(())
}

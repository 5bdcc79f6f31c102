//! Running services in a process: each in its own task and `service` span,
//! reporting its state to `/readyz`.
//!
//! - Under `serve` ([`Mode::Serve`]) a failing service is logged once with
//!   its cause, shows `failed` on `/readyz`, and the process stops with a
//!   non-zero exit so the orchestrator restarts it.
//! - Under `up` ([`Mode::Up`]) a failing service is restarted alone with
//!   exponential backoff (1 s doubling to 60 s, reset after a minute of
//!   healthy running) and shows `restarting` with its cause meanwhile; the
//!   other services keep running.
//!
//! A service that returns before shutdown counts as failed: services run
//! until the process stops. A panic counts as a failure too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument as _;
use tributary_platform::{ServiceState, Started};

use crate::context::Context;
use crate::system::Service;

/// Counter: restarts of a failed service under `up`, by `service`.
pub const RESTARTS: &str = "tributary_service_restarts_total";

/// How failures are handled; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every service in one process (`tributary up`): restart with backoff.
    Up,
    /// One service per process (`tributary serve NAME`): exit non-zero.
    Serve,
}

/// Backoff before restart number `failures + 1`.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.min(6)))
        .min(Duration::from_secs(60))
}

/// Services registered for `/readyz` (state `starting`), not yet running.
/// Register them before the admin server starts, so `/readyz` can never
/// answer 200 for a process whose services have not started.
pub struct Registered(Vec<(Arc<dyn Service>, Started)>);

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(s, _)| s.name()))
            .finish()
    }
}

/// Registers every service with the process's readiness (see [`Registered`]).
pub fn register(ctx: &Context, services: Vec<Arc<dyn Service>>) -> Registered {
    Registered(
        services
            .into_iter()
            .map(|svc| {
                let started = ctx.readiness.service(svc.name());
                (svc, started)
            })
            .collect(),
    )
}

/// Runs the `registered` services until `ctx.shutdown` is cancelled (or,
/// under [`Mode::Serve`], one fails), then waits for every one to drain.
///
/// # Errors
/// Under [`Mode::Serve`], the first service failure (with the service's
/// name); under [`Mode::Up`], only failures while stopping.
pub async fn run(ctx: Arc<Context>, registered: Registered, mode: Mode) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (svc, started) in registered.0 {
        tasks.spawn(supervise(svc, ctx.clone(), started, mode));
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(anyhow::anyhow!("supervisor task failed: {e}")));
        if let Err(e) = result {
            if first_error.is_none() {
                // Serve: one failing service stops the process.
                ctx.shutdown.cancel();
                first_error = Some(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn supervise(
    svc: Arc<dyn Service>,
    ctx: Arc<Context>,
    started: Started,
    mode: Mode,
) -> anyhow::Result<()> {
    let name = svc.name();
    let mut failures: u32 = 0;
    loop {
        started.set(ServiceState::Starting);
        let t0 = Instant::now();
        let span = tracing::info_span!(crate::audit::SERVICE_SPAN, service = name);
        let task = {
            let (svc, ctx, started) = (svc.clone(), ctx.clone(), started.clone());
            tokio::spawn(async move { svc.run(ctx, started).await }.instrument(span.clone()))
        };
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("the service panicked: {e}")),
        };
        let stopping = ctx.shutdown.is_cancelled();
        let error = match result {
            Ok(()) if stopping => {
                started.set(ServiceState::Stopped);
                tracing::info!(service = name, "service stopped");
                return Ok(());
            }
            Ok(()) => anyhow::anyhow!("the service returned before shutdown"),
            Err(e) => e,
        };
        let cause = format!("{error:#}");
        if stopping {
            started.set(ServiceState::Failed(cause.clone()));
            tracing::error!(parent: &span, service = name, error = %cause, "service failed while stopping");
            return Err(error.context(format!("service {name} failed while stopping")));
        }
        match mode {
            Mode::Serve => {
                started.set(ServiceState::Failed(cause.clone()));
                tracing::error!(parent: &span, service = name, error = %cause, "service failed; the process stops");
                return Err(error.context(format!("service {name} failed")));
            }
            Mode::Up => {
                if t0.elapsed() > Duration::from_secs(60) {
                    failures = 0;
                }
                let delay = backoff(failures);
                failures = failures.saturating_add(1);
                metrics::counter!(RESTARTS, "service" => name).increment(1);
                tracing::error!(parent: &span, service = name, error = %cause, restart_in = ?delay,
                    attempt = failures, "service failed; restarting it, the other services keep running");
                started.set(ServiceState::Restarting(cause));
                tokio::select! {
                    () = ctx.shutdown.cancelled() => {
                        started.set(ServiceState::Stopped);
                        return Ok(());
                    }
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: restart delays double from 1 s and stop at 60 s.
    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(6), Duration::from_secs(60));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }
}

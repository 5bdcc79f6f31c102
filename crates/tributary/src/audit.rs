//! Audit log shipping for every service of a server process.
//!
//! A server process (`tributary up`, `tributary serve NAME`) installs the
//! chat system's audit layer (when `chat.audit.enabled`) and runs exactly
//! one shipper, whichever services it runs: every WARN+ record (by
//! default) of the process goes to `audit-create-log` on the process's bus,
//! where the chat audit consumer stores it. The chat service is therefore
//! started without a shipper of its own.
//!
//! The `service` field of a record names who logged it, from its tracing
//! target: code of a system crate `tributary_<system>` (e.g.
//! `tributary_logistics::relay`) is that system (`logistics`); anything
//! else (the platform, bus and storage crates, libraries, this binary) is
//! the process: the service name under `serve NAME`, `tributary` under
//! `up`, where one process runs every service.
//!
//! The audit log is best-effort: the shipper connects to the bus in the
//! background (retrying with backoff) and does not add the bus to
//! `/readyz` of services that do not use it otherwise; until it is
//! connected, records wait in the layer's bounded queue.

use std::sync::Arc;
use std::time::Duration;

use tributary_chat::audit_layer::{audit_layer, ship, AuditQueue};
use tributary_chat::domain::events::AUDIT_TOPIC;
use tributary_platform::telemetry::BoxLayer;
use tributary_platform::CancellationToken;

use crate::context::Context;
use crate::settings::Settings;

/// Process name of `tributary up` (every service in one process).
pub const UP_PROCESS: &str = "tributary";

/// The audit layer for a process called `process` (when auditing is
/// enabled) and the queue to hand to [`run_shipper`].
pub fn layers(settings: &Settings, process: &str) -> (Vec<BoxLayer>, Option<AuditQueue>) {
    if !settings.chat.audit.enabled {
        return (Vec::new(), None);
    }
    let systems = systems();
    let process = process.to_owned();
    let (layer, queue) = audit_layer(&settings.chat.audit);
    let layer = layer.with_service_namer(move |target| service_of(target, &systems, &process));
    (vec![Box::new(layer)], Some(queue))
}

/// The systems of this build: the part before `-` of every service name
/// (`logistics-api` -> `logistics`).
fn systems() -> Vec<String> {
    let mut out: Vec<String> = crate::services::registry()
        .iter()
        .map(|s| s.name().split('-').next().unwrap_or(s.name()).to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The `service` of a record logged under `target`; see the module docs.
fn service_of(target: &str, systems: &[String], process: &str) -> String {
    let krate = target.split("::").next().unwrap_or(target);
    match krate.strip_prefix("tributary_") {
        Some(system) if systems.iter().any(|s| s == system) => system.to_owned(),
        _ => process.to_owned(),
    }
}

/// Ships `queue` until `stop`, then drains it (bounded, see
/// [`tributary_chat::audit_layer::ship`]). Connects to the process's bus
/// first, retrying with backoff, and creates the audit topic (idempotent)
/// so records logged before the chat service starts are not refused.
pub async fn run_shipper(ctx: Arc<Context>, queue: AuditQueue, stop: CancellationToken) {
    let mut failures: u32 = 0;
    let bus = loop {
        let attempt = async {
            let bus = ctx.bus_unchecked().await?;
            bus.create_topic(AUDIT_TOPIC, ctx.settings.chat.partitions.max(1))
                .await
                .map_err(|e| anyhow::anyhow!("create topic {AUDIT_TOPIC}: {e}"))?;
            anyhow::Ok(bus)
        };
        match attempt.await {
            Ok(bus) => break bus,
            Err(e) if failures == 0 => {
                tracing::warn!(error = %format!("{e:#}"), "audit shipper cannot reach the bus yet; records wait in its queue");
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "audit shipper still cannot reach the bus")
            }
        }
        let delay = Duration::from_millis(500)
            .saturating_mul(2u32.saturating_pow(failures.min(6)))
            .min(Duration::from_secs(30));
        failures = failures.saturating_add(1);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    };
    ship(queue, bus, stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: records of a system crate are named after the system, and
    // everything else after the process that logged it.
    #[test]
    fn service_names_follow_the_logging_crate() {
        let known = vec!["chat".to_owned(), "logistics".to_owned()];
        let name = |t: &str, p: &str| service_of(t, &known, p);
        assert_eq!(name("tributary_logistics::relay", "tributary"), "logistics");
        assert_eq!(name("tributary_chat", "logistics-api"), "chat");
        assert_eq!(name("tributary_bus::runner", "chat"), "chat");
        assert_eq!(name("tributary::run", UP_PROCESS), "tributary");
        assert_eq!(name("sqlx::query", "logistics-relay"), "logistics-relay");
        assert_eq!(name("tributary_platform::admin", "chat"), "chat");
        assert_eq!(systems(), known, "the systems of this build");
    }
}

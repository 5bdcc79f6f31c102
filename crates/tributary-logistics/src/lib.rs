//! Logistics: CRUD for packages over gRPC (`logistic_package_api.v1`) and
//! HTTP/JSON, with a transactional outbox (every write and its event in one
//! transaction) and a relay publishing the events at least once, in order
//! per package, to the bus topic `omp-package-events`.
//!
//! | folder / file | what lives there |
//! |---|---|
//! | `domain/` | validated values, packages, events, paging |
//! | `store/` | the repository over PostgreSQL and SQLite, outbox claims |
//! | `service.rs` | the operations both APIs call (validation, metrics) |
//! | `api/grpc`, `api/http` | the two public APIs (+ reflection, health, OpenAPI) |
//! | `relay/` | outbox relay: consumers, producers, cleaner |
//! | `cli.rs` | `tributary logistics ...` client commands and the bench |
//! | `proto/` (crate root) | the protobuf contract, compiled in `build.rs` |

pub mod api;
pub mod cli;
pub mod domain;
mod error;
pub mod metrics;
pub mod proto;
pub mod relay;
pub mod service;
mod settings;
pub mod store;
mod system;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tributary_bus::Bus;
use tributary_platform::{Readiness, Started};
use tributary_storage::Database;

pub use error::{Error, Result};
pub use settings::LogisticsSettings;
pub use system::system;

/// Runs `logistics-api` until `shutdown` fires: migrates, serves gRPC and
/// HTTP (reporting both addresses to `started`), drains in-flight requests.
///
/// # Errors
/// When migrations fail or a listener cannot be bound.
pub async fn run_api(
    db: Database,
    settings: &LogisticsSettings,
    started: &Started,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = store::Store::new(db);
    store.migrate().await?;
    let svc = service::PackageService::new(store, settings.page_limits());
    let cfg = api::ApiConfig {
        grpc_listen: settings.grpc_listen,
        http_listen: settings.http_listen,
        allow_request_log_level: settings.allow_request_log_level,
    };
    let running = api::serve(svc, &cfg, shutdown).await?;
    started.listening(running.grpc_addr);
    started.listening(running.http_addr);
    started.ready();
    running.wait().await
}

/// Runs `logistics-relay` until `shutdown` fires, then drains. Registers the
/// relay's readiness check (red while publishing fails).
///
/// # Errors
/// When migrations fail or a relay task panics.
pub async fn run_relay(
    db: Database,
    bus: Bus,
    settings: &LogisticsSettings,
    readiness: &Readiness,
    started: &Started,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = store::Store::new(db);
    store.migrate().await?;
    let relay = relay::relay(&store, bus, settings.relay.clone());
    readiness.register(Arc::new(relay.health()));
    started.ready();
    relay.run(shutdown).await
}

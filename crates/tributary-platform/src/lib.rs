//! Platform: what every Tributary process shares — typed configuration,
//! telemetry (logs, traces, metrics), the admin HTTP server (`/livez`,
//! `/readyz`, `/metrics`), readiness checks and graceful shutdown.
//!
//! This crate has no internal dependencies; ports, adapters and systems build on it.

pub mod admin;
pub mod auth;
pub mod config;
pub mod health;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod url;

pub use health::{CheckResult, HealthCheck, Readiness, ServiceState, ServiceStatus, Started};
pub use shutdown::CancellationToken;

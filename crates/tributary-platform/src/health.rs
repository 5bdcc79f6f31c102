//! Readiness checks: every dependency a process uses registers one, and
//! `/readyz` answers 200 only when all of them answer.

use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A dependency that can say whether it answers right now.
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    /// Short stable name shown on `/readyz` (e.g. `sql`, `bus`, `objects`, `cache`).
    fn name(&self) -> String;
    /// `Ok` when the dependency answers; `Err` with a one-line reason otherwise.
    /// Must not take longer than a few seconds; the caller applies a timeout too.
    async fn check(&self) -> Result<(), String>;
}

/// The result of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Whether it answered.
    pub ok: bool,
    /// Reason when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where one service of the process is in its life.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum ServiceState {
    /// Running its start-up (migrations, binding, joining its group).
    Starting,
    /// Accepting work: its listeners are bound, its consumers joined.
    Ready,
    /// Failed with this cause; waiting to be restarted (under `up`).
    Restarting(String),
    /// Failed with this cause for good (the process is stopping).
    Failed(String),
    /// Drained and stopped (shutdown).
    Stopped,
}

/// What `/readyz` shows of one service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceStatus {
    /// Service name (`chat-api`, ...).
    pub name: String,
    /// Its state (`ready` is the only state that counts as ready).
    #[serde(flatten)]
    pub state: ServiceState,
    /// Addresses it accepts connections on, once ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<std::net::SocketAddr>,
}

/// The handle a running service reports its start-up through: it calls
/// [`Started::listening`] for every bound address and [`Started::ready`]
/// once it accepts work. Until then `/readyz` of its process is 503.
#[derive(Clone)]
pub struct Started {
    status: Arc<RwLock<ServiceStatus>>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Started").field(&self.snapshot()).finish()
    }
}

impl Started {
    fn update(&self, f: impl FnOnce(&mut ServiceStatus)) {
        f(&mut self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Records an address the service has bound (shown on `/readyz`).
    pub fn listening(&self, addr: std::net::SocketAddr) {
        self.update(|s| s.listening.push(addr));
    }

    /// Marks the service ready: every listener bound, migrations done,
    /// consumers joined.
    pub fn ready(&self) {
        self.update(|s| s.state = ServiceState::Ready);
    }

    /// Sets the state (used by the supervisor: restarting, failed, stopped).
    /// A new start clears the recorded addresses.
    pub fn set(&self, state: ServiceState) {
        self.update(|s| {
            if state == ServiceState::Starting {
                s.listening.clear();
            }
            s.state = state;
        });
    }

    /// The current status.
    pub fn snapshot(&self) -> ServiceStatus {
        self.status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The set of checks of one process, and the state of each of its services.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<Arc<dyn HealthCheck>>>>,
    services: Arc<RwLock<Vec<Started>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}

impl Readiness {
    /// Adds a check.
    pub fn register(&self, check: Arc<dyn HealthCheck>) {
        self.checks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(check);
    }

    /// Registers a service (state `starting`) and returns its handle.
    pub fn service(&self, name: &str) -> Started {
        let started = Started {
            status: Arc::new(RwLock::new(ServiceStatus {
                name: name.to_owned(),
                state: ServiceState::Starting,
                listening: Vec::new(),
            })),
        };
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(started.clone());
        started
    }

    /// The status of every registered service.
    pub fn services(&self) -> Vec<ServiceStatus> {
        self.services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(Started::snapshot)
            .collect()
    }

    /// Runs every check concurrently with a per-check `timeout`.
    pub async fn run(&self, timeout: Duration) -> Vec<CheckResult> {
        let checks: Vec<_> = self
            .checks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let futs = checks.into_iter().map(|c| async move {
            let name = c.name();
            match tokio::time::timeout(timeout, c.check()).await {
                Ok(Ok(())) => CheckResult {
                    name,
                    ok: true,
                    error: None,
                },
                Ok(Err(e)) => CheckResult {
                    name,
                    ok: false,
                    error: Some(e),
                },
                Err(_) => CheckResult {
                    name,
                    ok: false,
                    error: Some(format!("no answer within {timeout:?}")),
                },
            }
        });
        futures::future::join_all(futs).await
    }
}

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

/// The set of checks of one process.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<Arc<dyn HealthCheck>>>>,
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

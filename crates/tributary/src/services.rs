//! The services this binary can run. Each system registers its services in
//! [`registry`]; `tributary up` runs all of them, `tributary serve NAME` one.

use std::sync::Arc;

use crate::context::Context;

/// A long-running part of a system (an API server, a consumer, a relay).
#[async_trait::async_trait]
pub trait Service: Send + Sync {
    /// Name used by `tributary serve NAME`.
    fn name(&self) -> &'static str;
    /// One line for `tributary services`.
    fn about(&self) -> &'static str;
    /// Runs until `ctx.shutdown` is cancelled, then drains and returns.
    /// Gets its backends from `ctx` (which registers them for `/readyz`).
    async fn run(&self, ctx: Arc<Context>) -> anyhow::Result<()>;
}

/// Every service of every system, in start order.
pub fn registry() -> Vec<Arc<dyn Service>> {
    // Systems add their services here.
    let mut all: Vec<Arc<dyn Service>> = Vec::new();
    all.extend(crate::systems::logistics::services());
    all.extend(crate::systems::chat::services());
    all
}

/// Finds a service by name.
pub fn find(name: &str) -> Option<Arc<dyn Service>> {
    registry().into_iter().find(|s| s.name() == name)
}

//! Logistics services: `logistics-api` (gRPC + HTTP) and `logistics-relay`
//! (outbox -> bus).

use std::sync::Arc;

use crate::context::Context;
use crate::services::Service;

/// The logistics services in start order.
pub fn services() -> Vec<Arc<dyn Service>> {
    vec![Arc::new(Api), Arc::new(Relay)]
}

struct Api;

#[async_trait::async_trait]
impl Service for Api {
    fn name(&self) -> &'static str {
        "logistics-api"
    }
    fn about(&self) -> &'static str {
        "logistics package API: gRPC (reflection, health) and HTTP/JSON with /openapi.json"
    }
    async fn run(&self, ctx: Arc<Context>) -> anyhow::Result<()> {
        let db = ctx.db().await?;
        tributary_logistics::run_api(db, &ctx.settings.logistics, ctx.shutdown.clone()).await
    }
}

struct Relay;

#[async_trait::async_trait]
impl Service for Relay {
    fn name(&self) -> &'static str {
        "logistics-relay"
    }
    fn about(&self) -> &'static str {
        "logistics outbox relay: package events to the bus topic omp-package-events"
    }
    async fn run(&self, ctx: Arc<Context>) -> anyhow::Result<()> {
        let db = ctx.db().await?;
        let bus = ctx.bus().await?;
        tributary_logistics::run_relay(
            db,
            bus,
            &ctx.settings.logistics,
            &ctx.readiness,
            ctx.shutdown.clone(),
        )
        .await
    }
}

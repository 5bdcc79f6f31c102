//! Chat archive service: `chat` runs the REST API (with /openapi.json), the
//! outbox relay of user-count events, the user-counter and audit consumers,
//! and the audit shipper of this process's log records.

use std::sync::{Arc, Mutex};

use tributary_chat::app::{self, Backends};
use tributary_chat::audit_layer::{audit_layer, AuditQueue};
use tributary_platform::telemetry::BoxLayer;

use crate::context::Context;
use crate::services::Service;

/// The queue of the audit layer installed by [`telemetry_layers`], taken
/// by the `chat` service, which ships it.
static AUDIT_QUEUE: Mutex<Option<AuditQueue>> = Mutex::new(None);

/// Extra tracing layers for server processes: the audit shipper's layer,
/// when enabled. Records queue up (bounded, dropped and counted when full)
/// until the `chat` service starts shipping them.
pub fn telemetry_layers(settings: &crate::settings::Settings) -> Vec<BoxLayer> {
    if !settings.chat.audit.enabled {
        return Vec::new();
    }
    let (layer, queue) = audit_layer(&settings.chat.audit);
    if let Ok(mut slot) = AUDIT_QUEUE.lock() {
        *slot = Some(queue);
    }
    vec![Box::new(layer)]
}

/// The chat services in start order.
pub fn services() -> Vec<Arc<dyn Service>> {
    vec![Arc::new(Chat)]
}

struct Chat;

#[async_trait::async_trait]
impl Service for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }
    fn about(&self) -> &'static str {
        "chat archive: REST API + /openapi.json, user-counter and audit consumers, audit shipper"
    }
    async fn run(&self, ctx: Arc<Context>) -> anyhow::Result<()> {
        let backends = Backends {
            db: ctx.db().await?,
            bus: ctx.bus().await?,
            objects: match ctx.objects().await {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "chat: no object store; backups go to directories only");
                    None
                }
            },
        };
        let queue = AUDIT_QUEUE.lock().ok().and_then(|mut q| q.take());
        app::run(
            backends,
            ctx.settings.chat.clone(),
            queue,
            ctx.shutdown.clone(),
        )
        .await
    }
}

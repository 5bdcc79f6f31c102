//! Chat archive service: `chat` runs the REST and gRPC APIs, the outbox
//! relay of user-count events, and the user-counter and audit consumers.
//! The audit records of the process (of every service in it, chat
//! included) are shipped by the process's one shipper, see
//! [`crate::audit`], so the chat service runs none of its own.

use std::sync::Arc;

use tributary_chat::app::{self, Backends};

use crate::context::Context;
use crate::services::Service;

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
        "chat archive: REST API + /openapi.json, gRPC, user-counter and audit consumers"
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
        // `None`: the process's shipper already ships this service's records.
        app::run(
            backends,
            ctx.settings.chat.clone(),
            None,
            ctx.shutdown.clone(),
        )
        .await
    }
}

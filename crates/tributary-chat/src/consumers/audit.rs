//! `audit-create-log` -> the audit table.

use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::Message;

use crate::domain::events::AuditEvent;
use crate::store::ChatStore;

/// Stores log records; a known record id is ignored (redelivery).
#[derive(Debug, Clone)]
pub struct AuditHandler {
    store: ChatStore,
}

impl AuditHandler {
    pub fn new(store: ChatStore) -> Self {
        AuditHandler { store }
    }
}

#[async_trait::async_trait]
impl Handler for AuditHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let ev: AuditEvent = serde_json::from_slice(&message.value)
            .map_err(|e| HandlerError::Permanent(format!("not an audit event: {e}")))?;
        self.store
            .insert_audit(&ev)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::Retryable(e.to_string()))
    }
}

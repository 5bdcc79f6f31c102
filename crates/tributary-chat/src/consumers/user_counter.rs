//! `user-message-counter` -> per-user counts.

use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::Message;

use crate::domain::events::UserCountEvent;
use crate::store::ChatStore;

/// Applies count deltas; an event id seen before is ignored, so
/// redelivery changes nothing.
#[derive(Debug, Clone)]
pub struct UserCounterHandler {
    store: ChatStore,
}

impl UserCounterHandler {
    pub fn new(store: ChatStore) -> Self {
        UserCounterHandler { store }
    }
}

#[async_trait::async_trait]
impl Handler for UserCounterHandler {
    #[tracing::instrument(name = "user_counter", skip_all, fields(topic = %message.topic, partition = message.partition, offset = message.offset))]
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let ev: UserCountEvent = serde_json::from_slice(&message.value)
            .map_err(|e| HandlerError::Permanent(format!("not a user count event: {e}")))?;
        self.store
            .apply_count_event(&ev)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::Retryable(e.to_string()))
    }
}

//! Stream lifecycle events on NATS, for the chat gateway and anyone else who cares.

use onair_domain::contracts::subjects;
use onair_domain::{StreamId, UserId};
use serde::Serialize;

use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct LifecycleEvent<'a> {
    /// `started`, `live`, `ended`, `failed`.
    pub event: &'a str,
    pub stream_id: StreamId,
    pub user_id: UserId,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    /// Publish best-effort: the database is the record; the event only saves others a poll.
    pub(crate) async fn publish_lifecycle(&self, event: &str, stream_id: StreamId, user_id: UserId) {
        let ev = LifecycleEvent { event, stream_id, user_id, at: chrono::Utc::now() };
        let Ok(payload) = serde_json::to_vec(&ev) else { return };
        let subject = subjects::stream_lifecycle(&self.config.nats.nats_prefix);
        if let Err(e) = self.nats.publish(subject, payload.into()).await {
            tracing::warn!(stream_id = %stream_id, error = %e, "could not publish lifecycle event");
            return;
        }
        // On the wire before the request that caused it answers.
        if let Err(e) = self.nats.flush().await {
            tracing::warn!(stream_id = %stream_id, error = %e, "could not flush lifecycle event");
        }
    }
}

//! Shared state of one gateway replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use onair_domain::UserId;
use sqlx::PgPool;

use crate::config::ChatConfig;
use crate::hub::Hub;
use crate::jwks::Keys;
use crate::metrics::ChatMetrics;

pub struct Inner {
    pub config: ChatConfig,
    /// Main database: streams, users, followers, moderation.
    pub db: PgPool,
    /// Chat history (may be the same database).
    pub chat_db: PgPool,
    pub redis: redis::aio::ConnectionManager,
    /// Rate limits, slow mode and repeats: in Redis, or in memory while Redis does not answer.
    pub limits: onair_infra::Limits,
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// The JetStream stream over the chat subjects.
    pub js_stream: String,
    pub keys: Keys,
    pub hub: Hub,
    pub metrics: ChatMetrics,
    pub registry: prometheus_client::registry::Registry,
    pub readiness: onair_web::Readiness,
    /// Open sockets per signed-in user on this replica.
    pub sockets_by_user: Mutex<HashMap<UserId, usize>>,
    /// Set when the gateway shuts down: every socket closes with a reconnect hint.
    pub draining: tokio::sync::watch::Sender<bool>,
    /// Sockets open on this replica (what a shutdown waits for).
    pub open_sockets: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
pub struct ChatState(pub(crate) Arc<Inner>);

impl std::ops::Deref for ChatState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ChatState {
    pub fn redis(&self) -> redis::aio::ConnectionManager {
        self.redis.clone()
    }

    /// Name of the JetStream stream for a NATS prefix (stream names allow no dots or colons).
    pub fn stream_name(prefix: &str) -> String {
        let clean: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_uppercase();
        if clean.is_empty() { "ONAIR_CHAT".to_owned() } else { format!("ONAIR_CHAT_{clean}") }
    }
}

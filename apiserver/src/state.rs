//! Shared state handed to every handler.

use std::sync::Arc;
use std::time::Duration;

use onair_auth::{KeyRing, Verifier};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::config::ApiConfig;
use crate::orchestrator::Orchestrator;
use crate::passwords::Passwords;

/// Each stream's public JSON (`GET /api/streams/{id}`), already serialised (`None`: the stream
/// does not exist).
pub type StreamCache = moka::future::Cache<onair_domain::StreamId, Option<axum::body::Bytes>>;

/// Counters beyond the per-route HTTP metrics.
pub struct AppMetrics {
    pub auth_events:
        prometheus_client::metrics::family::Family<AuthLabels, prometheus_client::metrics::counter::Counter>,
    pub stream_cache:
        prometheus_client::metrics::family::Family<CacheLabels, prometheus_client::metrics::counter::Counter>,
    pub samples_taken: prometheus_client::metrics::counter::Counter,
    pub rate_limited:
        prometheus_client::metrics::family::Family<ScopeLabels, prometheus_client::metrics::counter::Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct AuthLabels {
    pub event: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: &'static str,
}

impl AppMetrics {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = Self {
            auth_events: Default::default(),
            stream_cache: Default::default(),
            samples_taken: Default::default(),
            rate_limited: Default::default(),
        };
        registry.register("auth_events", "Registrations, logins, refreshes by outcome", m.auth_events.clone());
        registry.register("stream_cache_lookups", "Stream state cache lookups by hit/miss", m.stream_cache.clone());
        registry.register("analytics_samples", "Analytics sampling rounds this replica took", m.samples_taken.clone());
        registry.register(
            "rate_limited_requests",
            "Requests refused by a rate limit, by scope",
            m.rate_limited.clone(),
        );
        m
    }

    pub fn auth(&self, event: &'static str, outcome: &'static str) {
        self.auth_events.get_or_create(&AuthLabels { event, outcome }).inc();
    }
}

pub struct Inner {
    pub config: ApiConfig,
    /// The primary: every write, and reads that must see them.
    pub db: PgPool,
    /// The read replica when configured (else the primary): search, profiles, lists.
    pub read_db: PgPool,
    pub redis: redis::aio::ConnectionManager,
    pub nats: async_nats::Client,
    pub keys: KeyRing,
    pub verifier: Verifier,
    pub passwords: Passwords,
    pub orchestrator: Arc<dyn Orchestrator>,
    pub stream_cache: StreamCache,
    /// Rate limits: in Redis, or in memory while Redis does not answer.
    pub limits: onair_infra::Limits,
    /// The last good answer of each stream's state (`streams::STALE_FOR`), for when loading fails.
    pub stream_stale: StreamCache,
    pub internal_token: SecretString,
    pub metrics: AppMetrics,
    pub readiness: onair_web::Readiness,
    pub registry: prometheus_client::registry::Registry,
    /// The recordings store, when recording is on (`ONAIR_RECORDINGS_URL`).
    pub recordings: Option<Arc<crate::recorded::Recordings>>,
    /// The `/vod` and `/clip` routes' lookups (`recorded::LOOKUP_TTL`).
    pub playback_lookups: crate::recorded::Lookups,
    /// Delivery bases, playback signing keys and the bases' circuit breaker.
    pub delivery: crate::cdn::Delivery,
}

/// Cheap to clone: everything sits behind one `Arc`.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub(crate) fn access_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.access_token_ttl_secs)
    }

    pub(crate) fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::days(self.config.refresh_token_ttl_days)
    }

    pub(crate) fn viewer_window(&self) -> Duration {
        Duration::from_secs(self.config.viewer_window_secs)
    }

    pub(crate) fn redis(&self) -> redis::aio::ConnectionManager {
        self.redis.clone()
    }
}

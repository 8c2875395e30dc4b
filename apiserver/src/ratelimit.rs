//! Fixed-window rate limits in Redis, shared by every replica.
//!
//! Redis is ephemeral state: if it is unreachable the limit fails open (logged and counted)
//! rather than locking everyone out.

use std::time::Duration;

use onair_domain::contracts::redis_keys;

use crate::error::ApiError;
use crate::state::{AppState, ScopeLabels};

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub scope: &'static str,
    pub max: u32,
    pub window: Duration,
    pub message: &'static str,
}

impl AppState {
    /// Count one request against `limit` for `subject`; refuse with 429 past the limit.
    pub(crate) async fn rate_limit(&self, limit: Limit, subject: &str) -> Result<(), ApiError> {
        let key = redis_keys::rate_limit(&self.config.redis.redis_prefix, limit.scope, subject);
        let (n, ttl_ms) = self.limits.hit(&mut self.redis(), &key, limit.window.as_millis() as u64).await;
        if n > u64::from(limit.max) {
            self.metrics.rate_limited.get_or_create(&ScopeLabels { scope: limit.scope }).inc();
            return Err(ApiError::RateLimited {
                retry_after: (ttl_ms.max(0) as u64).div_ceil(1000).max(1),
                message: limit.message,
            });
        }
        Ok(())
    }

    pub(crate) async fn rate_clear(&self, limit: Limit, subject: &str) {
        let key = redis_keys::rate_limit(&self.config.redis.redis_prefix, limit.scope, subject);
        self.limits.release(&mut self.redis(), &[key]).await;
    }

    pub(crate) fn login_ip_limit(&self) -> Limit {
        Limit {
            scope: "login_ip",
            max: self.config.login_per_ip_per_minute,
            window: Duration::from_secs(60),
            message: "too many login attempts from this address; wait and try again",
        }
    }

    pub(crate) fn login_account_limit(&self) -> Limit {
        Limit {
            scope: "login_account",
            max: self.config.login_failures_per_account,
            window: Duration::from_secs(15 * 60),
            message: "too many login attempts for this account; wait and try again",
        }
    }

    pub(crate) fn register_ip_limit(&self) -> Limit {
        Limit {
            scope: "register_ip",
            max: self.config.register_per_ip_per_hour,
            window: Duration::from_secs(3600),
            message: "too many accounts created from this address; wait and try again",
        }
    }

    pub(crate) fn heartbeat_ip_limit(&self) -> Limit {
        Limit {
            scope: "heartbeat_ip",
            max: self.config.heartbeats_per_ip_per_minute,
            window: Duration::from_secs(60),
            message: "too many heartbeats from this address",
        }
    }

    pub(crate) fn clip_user_limit(&self) -> Limit {
        Limit {
            scope: "clip_user",
            max: self.config.clips_per_user_per_hour,
            window: Duration::from_secs(3600),
            message: "too many clips made in the last hour; wait and try again",
        }
    }
}

//! What rate limits remember (logins and registrations per address, chat sends, slow mode,
//! repeated messages): in Redis, shared by every replica; while Redis does not answer, in this
//! replica's memory, so a Redis outage leaves requests limited per replica instead of refused
//! (the fault suite measured 10 s of refused chat for a 10 s Redis pause before this) or let
//! through unlimited. After a failed call, Redis is left alone for [`RETRY_REDIS_AFTER`], so
//! requests do not each wait out a timeout, and the outage is one WARN line, not one per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the memory stands in after Redis failed to answer, before Redis is asked again.
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(2);
/// Keys remembered in memory at most; past it the expired ones go, then (under a flood of
/// distinct keys) everything: the fallback forgets rather than grows.
const MAX_LOCAL_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Limits {
    local: Mutex<HashMap<String, Entry>>,
    redis_down_until: Mutex<Option<Instant>>,
}

struct Entry {
    count: u64,
    until: Instant,
}

/// [`crate::hit`]'s answer: hits in the window so far, and ms until the window ends.
pub type Hit = (u64, i64);

impl Limits {
    /// Count one hit on `key` in a window of `window_ms` (opened by the first hit).
    pub async fn hit(&self, redis: &mut redis::aio::ConnectionManager, key: &str, window_ms: u64) -> Hit {
        if self.redis_up() {
            match crate::hit(redis, key, window_ms).await {
                Ok(hit) => return hit,
                Err(e) => self.redis_failed(&e),
            }
        }
        self.local_hit(key, Duration::from_millis(window_ms), Instant::now())
    }

    /// Take `key` for `ttl_ms` unless someone holds it: `None` when taken now, else the ms left
    /// on the holder's claim (slow mode, repeated messages).
    pub async fn claim(&self, redis: &mut redis::aio::ConnectionManager, key: &str, ttl_ms: u64) -> Option<i64> {
        if self.redis_up() {
            let set: redis::RedisResult<Option<String>> =
                redis::cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(ttl_ms).query_async(redis).await;
            match set {
                Ok(Some(_)) => return None,
                Ok(None) => match redis::cmd("PTTL").arg(key).query_async::<i64>(redis).await {
                    Ok(ttl) => return Some(ttl.max(1)),
                    // Held, for how long unknown: still held.
                    Err(e) => {
                        self.redis_failed(&e);
                        return Some(1_000);
                    }
                },
                Err(e) => self.redis_failed(&e),
            }
        }
        let (n, left) = self.local_hit(key, Duration::from_millis(ttl_ms), Instant::now());
        (n > 1).then_some(left.max(1))
    }

    /// Forget claims of a send that did not go out.
    pub async fn release(&self, redis: &mut redis::aio::ConnectionManager, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            for k in keys {
                local.remove(k);
            }
        }
        if self.redis_up() {
            let r: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(redis).await;
            if let Err(e) = r {
                self.redis_failed(&e);
            }
        }
    }

    fn redis_up(&self) -> bool {
        let mut down = self.redis_down_until.lock().unwrap_or_else(|e| e.into_inner());
        match *down {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *down = None;
                true
            }
            None => true,
        }
    }

    fn redis_failed(&self, e: &redis::RedisError) {
        let mut down = self.redis_down_until.lock().unwrap_or_else(|e| e.into_inner());
        if down.is_none() {
            tracing::warn!(error = %e, "Redis did not answer: rate limits kept in this replica's memory for now");
        }
        *down = Some(Instant::now() + RETRY_REDIS_AFTER);
    }

    fn local_hit(&self, key: &str, window: Duration, now: Instant) -> Hit {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if local.len() >= MAX_LOCAL_KEYS && !local.contains_key(key) {
            local.retain(|_, e| e.until > now);
            // Room for a tenth more before the next sweep, so a flood of new keys does not
            // sweep the whole map on every one.
            if local.len() >= MAX_LOCAL_KEYS / 10 * 9 {
                local.clear();
            }
        }
        let e = local.entry(key.to_owned()).or_insert(Entry { count: 0, until: now + window });
        if e.until <= now {
            *e = Entry { count: 0, until: now + window };
        }
        e.count += 1;
        (e.count, e.until.saturating_duration_since(now).as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_counts_hits_per_window() {
        let l = Limits::default();
        let t = Instant::now();
        let w = Duration::from_secs(30);
        assert_eq!(l.local_hit("a", w, t).0, 1);
        assert_eq!(l.local_hit("a", w, t + Duration::from_secs(1)), (2, 29_000));
        assert_eq!(l.local_hit("b", w, t).0, 1, "keys apart");
        assert_eq!(l.local_hit("a", w, t + Duration::from_secs(31)).0, 1, "a new window");
    }

    #[test]
    fn the_memory_stays_bounded() {
        let l = Limits::default();
        let t = Instant::now();
        for i in 0..MAX_LOCAL_KEYS + 10 {
            l.local_hit(&i.to_string(), Duration::from_secs(30), t);
        }
        assert!(l.local.lock().unwrap().len() <= MAX_LOCAL_KEYS);
    }
}

#![doc = include_str!("../README.md")]

use std::time::Duration;

mod limits;

pub use limits::{Hit, Limits};

use futures::FutureExt as _;
use onair_config::{NatsArgs, RedisArgs};
use onair_web::{Check, Readiness};
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A Postgres pool; `what` names the database in errors ("Postgres", "the chat database", ...).
pub async fn pg_pool(url: &str, max_connections: u32, what: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {what}: {e}"))
}

/// A reconnecting Redis connection.
pub async fn redis(args: &RedisArgs) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(args.redis_url.expose_secret())?;
    redis::aio::ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("connecting to Redis: {e}"))
}

/// A reconnecting NATS client.
pub async fn nats(args: &NatsArgs) -> anyhow::Result<async_nats::Client> {
    async_nats::connect(args.nats_url.expose_secret()).await.map_err(|e| anyhow::anyhow!("connecting to NATS: {e}"))
}

/// `/readyz` checks for the three dependencies every service has.
pub fn readiness(db: &PgPool, redis: &redis::aio::ConnectionManager, nats: &async_nats::Client) -> Readiness {
    let (db, redis, nats) = (db.clone(), redis.clone(), nats.clone());
    Readiness::new(vec![
        Check {
            name: "postgres",
            run: Box::new(move || {
                let db = db.clone();
                async move { sqlx::query("SELECT 1").execute(&db).await.map(|_| ()).map_err(|e| e.to_string()) }.boxed()
            }),
        },
        Check {
            name: "redis",
            run: Box::new(move || {
                let mut r = redis.clone();
                async move { redis::cmd("PING").query_async::<String>(&mut r).await.map(|_| ()).map_err(|e| e.to_string()) }
                    .boxed()
            }),
        },
        Check {
            name: "nats",
            run: Box::new(move || {
                let n = nats.clone();
                async move { n.flush().await.map_err(|e| e.to_string()) }.boxed()
            }),
        },
    ])
}

/// INCR the bucket and start its window on the first hit; returns (count, ms left in window).
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

/// Count one hit in the fixed window `key` (`window_ms` long): (hits so far, ms until it resets).
pub async fn hit(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    window_ms: u64,
) -> redis::RedisResult<(u64, i64)> {
    redis::Script::new(HIT).key(key).arg(window_ms).invoke_async(conn).await
}

/// Concurrent viewers of `stream`: player sessions seen within `window` (heartbeats from the API,
/// playlist fetches at the media origin; both write the same sorted set).
pub async fn current_viewers(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    stream: onair_domain::StreamId,
    window: Duration,
) -> redis::RedisResult<i64> {
    let key = onair_domain::contracts::redis_keys::viewer_sessions(prefix, stream);
    let since = chrono::Utc::now().timestamp_millis() - window.as_millis() as i64;
    redis::cmd("ZCOUNT").arg(&key).arg(since).arg("+inf").query_async(redis).await
}

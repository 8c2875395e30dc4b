#![doc = include_str!("../README.md")]

//! Configuration pieces every service flattens into its own `clap` arguments. Each field
//! reads a flag or an `ONAIR_*` variable, and defaults to what runs on one machine.

use secrecy::SecretString;

/// `value_parser` for a flag whose value is a secret (a password, a key, a URL that may carry
/// either): kept as a `SecretString`, so Debug and logs never show it.
pub fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

/// Postgres: a primary URL and an optional read replica for read-only queries.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Primary database URL (may carry a password, so it is a secret and never logged).
    #[arg(long = "database-url", env = "ONAIR_DATABASE_URL", default_value = "postgres://localhost/onair", value_parser = secret)]
    pub database_url: SecretString,
    /// Read replica for read-only queries (search, profiles, history); defaults to the primary.
    #[arg(long = "database-read-url", env = "ONAIR_DATABASE_READ_URL", value_parser = secret)]
    pub database_read_url: Option<SecretString>,
    /// Connections per pool.
    #[arg(long = "database-max-connections", env = "ONAIR_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

/// Redis: ephemeral state (viewer sessions, rate limits, hot counters).
#[derive(clap::Args, Debug, Clone)]
pub struct RedisArgs {
    #[arg(long = "redis-url", env = "ONAIR_REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = secret)]
    pub redis_url: SecretString,
    /// Prefix of every key onair writes, so several installs (or tests) share one Redis.
    #[arg(long = "redis-prefix", env = "ONAIR_REDIS_PREFIX", default_value = "onair:")]
    pub redis_prefix: String,
}

/// NATS: chat fan-out and lifecycle events.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    #[arg(long = "nats-url", env = "ONAIR_NATS_URL", default_value = "nats://127.0.0.1:4222", value_parser = secret)]
    pub nats_url: SecretString,
    /// Prefix of every subject onair uses (empty in production; unique per test).
    #[arg(long = "nats-prefix", env = "ONAIR_NATS_PREFIX", default_value = "")]
    pub nats_prefix: String,
}

/// The HLS origin's delivery settings (the media workers'; the operator hands the same to every
/// media pod): which signed playback URLs it accepts, which edges skip its direct-viewer limit,
/// and that limit.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OriginArgs {
    /// Keys that verify signed playback URLs, `kid:secret,…` (base64 secrets of 32 bytes or more;
    /// the apiserver signs with the first of the same list). Unset: `/hls/{stream}/t/{token}/…` is refused.
    #[arg(long, env = "ONAIR_PLAYBACK_KEYS", value_parser = secret)]
    pub playback_keys: Option<SecretString>,
    /// What edges (CDN, caching proxies) send in `x-onair-edge` to be exempt from the origin's
    /// direct-viewer capacity. Unset: every request is metered.
    #[arg(long, env = "ONAIR_EDGE_SECRET", value_parser = secret)]
    pub edge_secret: Option<SecretString>,
    /// Direct viewers' playback requests per second, all streams together (0: no limit). Past
    /// it the origin answers 503 + Retry-After: what keeps it up when every CDN fails and their
    /// viewers fall back to it at once.
    #[arg(long, env = "ONAIR_ORIGIN_REQUESTS_PER_SEC", default_value_t = 0)]
    pub origin_requests_per_sec: u64,
    /// Direct viewers' playback bytes per second, all streams together (0: no limit).
    #[arg(long, env = "ONAIR_ORIGIN_BYTES_PER_SEC", default_value_t = 0)]
    pub origin_bytes_per_sec: u64,
    /// Direct viewers' playback requests per second for one stream (0: no limit).
    #[arg(long, env = "ONAIR_ORIGIN_STREAM_REQUESTS_PER_SEC", default_value_t = 0)]
    pub origin_stream_requests_per_sec: u64,
    /// Direct viewers' playback bytes per second for one stream (0: no limit).
    #[arg(long, env = "ONAIR_ORIGIN_STREAM_BYTES_PER_SEC", default_value_t = 0)]
    pub origin_stream_bytes_per_sec: u64,
}

/// Log output.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// `text` for people, `json` for log pipelines. The filter comes from `RUST_LOG`.
    #[arg(long = "log-format", env = "ONAIR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl LogArgs {
    pub fn json(&self) -> bool {
        self.log_format == "json"
    }
}

/// Parse a service's config group from an argument list (tests, and `onair up` composing its
/// services' configs); `ONAIR_*` variables still fill what the list leaves out.
pub fn parse_args<C, I, T>(name: &str, args: I) -> Result<C, clap::Error>
where
    C: clap::Args,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    struct Wrapper<C: clap::Args> {
        #[command(flatten)]
        config: C,
    }
    use clap::Parser as _;
    let argv = std::iter::once(std::ffi::OsString::from(name)).chain(args.into_iter().map(Into::into));
    Wrapper::<C>::try_parse_from(argv).map(|w| w.config)
}

impl DatabaseArgs {
    /// The primary URL with a user filled in (see [`with_default_user`]).
    pub fn primary_url(&self) -> String {
        use secrecy::ExposeSecret as _;
        with_default_user(self.database_url.expose_secret())
    }

    /// The read replica's URL, if one is configured.
    pub fn read_url(&self) -> Option<String> {
        use secrecy::ExposeSecret as _;
        self.database_read_url.as_ref().map(|u| with_default_user(u.expose_secret()))
    }
}

/// `postgres://localhost/onair` names no user; like `psql`, use `$PGUSER`, else the login
/// user (`$USER`), so the default works with a local trust/peer setup.
pub fn with_default_user(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') || authority.is_empty() {
        return url.to_owned();
    }
    let user = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".to_owned());
    format!("{scheme}://{user}@{rest}")
}

#[cfg(test)]
mod tests {
    use super::with_default_user;

    #[test]
    fn fills_in_a_user_only_when_missing() {
        assert_eq!(with_default_user("postgres://a:b@host/db"), "postgres://a:b@host/db");
        assert_eq!(with_default_user("not a url"), "not a url");
        let filled = with_default_user("postgres://localhost/onair");
        assert!(filled.starts_with("postgres://") && filled.ends_with("@localhost/onair"), "{filled}");
    }
}

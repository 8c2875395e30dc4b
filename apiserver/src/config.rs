//! The apiserver's configuration: flags and `ONAIR_*` variables with single-machine defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use onair_config::{DatabaseArgs, NatsArgs, RedisArgs, secret};
use secrecy::SecretString;

#[derive(clap::Args, Debug, Clone)]
pub struct ApiConfig {
    /// Address to listen on (`:0` picks a free port).
    #[arg(long = "listen", env = "ONAIR_APISERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub nats: NatsArgs,

    /// Directory of Ed25519 signing keys (`<kid>.pem`); one is generated when it is empty.
    #[arg(long, env = "ONAIR_JWT_KEYS_DIR", default_value = ".onair/keys")]
    pub jwt_keys_dir: PathBuf,
    /// Key id that signs new tokens; default: the newest (last by name).
    #[arg(long, env = "ONAIR_JWT_ACTIVE_KID")]
    pub jwt_active_kid: Option<String>,
    /// Refuse to start without keys instead of generating one (production).
    #[arg(long, env = "ONAIR_JWT_REQUIRE_KEYS", default_value_t = false)]
    pub jwt_require_keys: bool,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "ONAIR_ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl_secs: i64,
    /// Refresh-token lifetime in days (sliding: each use issues a new one).
    #[arg(long, env = "ONAIR_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: i64,
    /// Mark the refresh cookie `Secure` (on whenever the public URL is https).
    #[arg(long, env = "ONAIR_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,

    /// Shared secret media workers send on internal routes. Unset: a random one is generated
    /// at start (and handed to local workers by the local orchestrator).
    #[arg(long, env = "ONAIR_INTERNAL_TOKEN", value_parser = secret)]
    pub internal_token: Option<SecretString>,

    /// RTMP ingest base URL shown to streamers (the key is appended by OBS).
    #[arg(long, env = "ONAIR_INGEST_URL", default_value = "rtmp://127.0.0.1:1935/live")]
    pub ingest_url: String,
    /// Base URL of HLS playback (the media worker, or a CDN in front of it); a stream plays at
    /// `{base}/{stream_id}/master.m3u8`.
    #[arg(long, env = "ONAIR_PLAYBACK_BASE_URL", default_value = "http://127.0.0.1:8090/hls")]
    pub playback_base_url: String,
    /// Delivery bases (CDNs, edges) in front of the origin, each standing for its `/hls`:
    /// `name=url@weight,…` (e.g. `cdn-a=https://a.example/hls@3,cdn-b=https://b.example/hls`).
    /// Viewers get them in a per-session weighted order, the origin (`--playback-base-url`) last.
    #[arg(long, env = "ONAIR_PLAYBACK_BASES", default_value = "")]
    pub playback_bases: String,
    /// Keys that sign playback URLs for channels that require them, `kid:secret,…` (base64
    /// secrets of 32 bytes or more; the first signs, all verify). The media workers (and edges
    /// that verify) hold the same list.
    #[arg(long, env = "ONAIR_PLAYBACK_KEYS", value_parser = secret)]
    pub playback_keys: Option<SecretString>,
    /// How long a signed playback URL opens, in seconds (players ask for a new one before).
    #[arg(long, env = "ONAIR_PLAYBACK_TOKEN_TTL", default_value_t = 21_600)]
    pub playback_token_ttl_secs: u64,
    /// Failure reports (distinct viewer sessions) within the breaker window that take a
    /// delivery base out of new viewers' lists...
    #[arg(long, env = "ONAIR_DELIVERY_BREAKER_FAILURES", default_value_t = 5)]
    pub delivery_breaker_failures: u32,
    /// ... when they are at least this share (percent) of the base's reports in the window.
    #[arg(long, env = "ONAIR_DELIVERY_BREAKER_PERCENT", default_value_t = 20)]
    pub delivery_breaker_percent: u32,
    /// The breaker's window, in seconds.
    #[arg(long, env = "ONAIR_DELIVERY_BREAKER_WINDOW", default_value_t = 30)]
    pub delivery_breaker_window_secs: u64,
    /// How long a failing base stays out of new lists before it is tried again, in seconds.
    #[arg(long, env = "ONAIR_DELIVERY_BREAKER_COOLDOWN", default_value_t = 30)]
    pub delivery_breaker_cooldown_secs: u64,

    /// What runs the media: `recording` (nothing; tests), `kubernetes` (a LiveStream per
    /// stream, for the operator). `onair up` uses its local worker whatever this says.
    #[arg(long, env = "ONAIR_ORCHESTRATOR", default_value = "recording", value_parser = ["recording", "kubernetes"])]
    pub orchestrator: String,
    /// Namespace the Kubernetes orchestrator creates LiveStreams and key Secrets in.
    #[arg(long, env = "ONAIR_STREAMS_NAMESPACE", default_value = "default")]
    pub streams_namespace: String,
    /// Take the client address from the last `X-Forwarded-For` entry, the one a trusted proxy in
    /// front of us appended (only enable behind such a proxy).
    #[arg(long, env = "ONAIR_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Login attempts per client IP per minute.
    #[arg(long, env = "ONAIR_LOGIN_PER_IP_PER_MINUTE", default_value_t = 20)]
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account (by the name tried) per 15 minutes; a success resets the count.
    #[arg(long, env = "ONAIR_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    pub login_failures_per_account: u32,
    /// Registrations per client IP per hour.
    #[arg(long, env = "ONAIR_REGISTER_PER_IP_PER_HOUR", default_value_t = 10)]
    pub register_per_ip_per_hour: u32,
    /// Viewer heartbeats per client IP per minute.
    #[arg(long, env = "ONAIR_HEARTBEATS_PER_IP_PER_MINUTE", default_value_t = 600)]
    pub heartbeats_per_ip_per_minute: u32,

    /// Seconds between analytics samples.
    #[arg(long, env = "ONAIR_SAMPLE_INTERVAL", default_value_t = 10)]
    pub sample_interval_secs: u64,
    /// A viewer session counts as watching for this many seconds after its last heartbeat.
    #[arg(long, env = "ONAIR_VIEWER_WINDOW", default_value_t = 30)]
    pub viewer_window_secs: u64,
    /// How long a stream's public state may be served from memory.
    #[arg(long, env = "ONAIR_STREAM_CACHE_MS", default_value_t = 1000)]
    pub stream_cache_ms: u64,

    /// Browser origins allowed to call the API (CORS); empty allows none cross-origin.
    #[arg(long, env = "ONAIR_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Where broadcasts are recorded (`ONAIR_RECORDINGS_*`, the media workers' store too): the
    /// apiserver makes each ended recording a VOD, serves it under `/vod/` and deletes what
    /// retention or the streamer removes. Empty: no recording.
    #[command(flatten)]
    pub recordings: onair_recording::RecordingsArgs,
    /// Public base URL of VOD playback (`{base}/vod/{id}/master.m3u8`): the address viewers
    /// reach this server at, or a CDN in front of it. Unset: this server's own address.
    #[arg(long, env = "ONAIR_VOD_BASE_URL")]
    pub vod_base_url: Option<String>,
    /// Seconds after a stream's end its worker may still be storing segments: past it, a
    /// recording whose worker never said it was done (the pod died) is made a VOD anyway.
    #[arg(long, env = "ONAIR_RECORDING_FLUSH_GRACE", default_value_t = 900)]
    pub recording_flush_grace_secs: u64,
    /// Seconds between looks for ended recordings to make VODs of.
    #[arg(long, env = "ONAIR_FINALIZE_INTERVAL", default_value_t = 10)]
    pub finalize_interval_secs: u64,
    /// Seconds between retention runs (expired VODs deleted, queued objects removed).
    #[arg(long, env = "ONAIR_RETENTION_INTERVAL", default_value_t = 60)]
    pub retention_interval_secs: u64,
    /// Days a free channel's VOD is kept after its broadcast ended.
    #[arg(long, env = "ONAIR_VOD_RETENTION_DAYS", default_value_t = 30)]
    pub vod_retention_days: u32,
    /// Days a partner channel's VOD is kept after its broadcast ended.
    #[arg(long, env = "ONAIR_VOD_RETENTION_DAYS_PARTNER", default_value_t = 60)]
    pub vod_retention_days_partner: u32,
    /// Clips a signed-in user may make per hour.
    #[arg(long, env = "ONAIR_CLIPS_PER_USER_PER_HOUR", default_value_t = 10)]
    pub clips_per_user_per_hour: u32,

    /// Run background tasks (analytics sampler, partition upkeep). Tests drive them by hand.
    #[arg(long, env = "ONAIR_BACKGROUND_TASKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub background_tasks: bool,
}

impl ApiConfig {
    /// Parse from an argument list (tests, and `onair up` composing its children's config).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        onair_config::parse_args("apiserver", args)
    }
}

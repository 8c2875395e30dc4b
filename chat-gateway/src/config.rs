//! The chat gateway's configuration.

use std::net::SocketAddr;

use onair_config::{DatabaseArgs, NatsArgs, RedisArgs, secret};
use secrecy::{ExposeSecret as _, SecretString};

#[derive(clap::Args, Debug, Clone)]
pub struct ChatConfig {
    /// Address to listen on (`:0` picks a free port).
    #[arg(long = "listen", env = "ONAIR_CHAT_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The main database (streams, users, followers, moderation rules).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Chat history's own database (database per domain); defaults to the main one.
    #[arg(long, env = "ONAIR_CHAT_DATABASE_URL", value_parser = secret)]
    pub chat_database_url: Option<SecretString>,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Where the apiserver publishes its token-signing public keys.
    #[arg(long, env = "ONAIR_JWKS_URL", default_value_t = default_jwks_url())]
    pub jwks_url: String,
    /// Browser origins allowed to open sockets; empty allows any (single-machine default).
    #[arg(long, env = "ONAIR_CHAT_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Outbound coalescing tick: a busy room's messages within one tick go out in one frame.
    #[arg(long, env = "ONAIR_CHAT_TICK_MS", default_value_t = 50)]
    pub tick_ms: u64,
    /// Messages a user may send per window, across all replicas.
    #[arg(long, env = "ONAIR_CHAT_RATE", default_value_t = 20)]
    pub rate_messages: u32,
    /// Messages a moderator may send per window.
    #[arg(long, env = "ONAIR_CHAT_MOD_RATE", default_value_t = 100)]
    pub mod_rate_messages: u32,
    /// The rate window in seconds.
    #[arg(long, env = "ONAIR_CHAT_RATE_WINDOW", default_value_t = 30)]
    pub rate_window_secs: u64,
    /// New sockets per client IP per minute.
    #[arg(long, env = "ONAIR_CHAT_CONNECTS_PER_IP", default_value_t = 120)]
    pub connects_per_ip_per_minute: u32,
    /// Open sockets per signed-in user on this replica.
    #[arg(long, env = "ONAIR_CHAT_SOCKETS_PER_USER", default_value_t = 10)]
    pub sockets_per_user: usize,
    /// Frames a socket may have queued before it is dropped as a slow consumer.
    #[arg(long, env = "ONAIR_CHAT_OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,
    /// Seconds between server pings; a socket silent for three of them is closed.
    #[arg(long, env = "ONAIR_CHAT_PING_SECS", default_value_t = 20)]
    pub ping_secs: u64,
    /// Run the JetStream -> Postgres persister in this process.
    #[arg(long, env = "ONAIR_CHAT_PERSISTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub persister: bool,
}

impl ChatConfig {
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        onair_config::parse_args("chat-gateway", args)
    }

    pub fn chat_db_url(&self) -> String {
        self.chat_database_url
            .as_ref()
            .map(|u| onair_config::with_default_user(u.expose_secret()))
            .unwrap_or_else(|| self.database.primary_url())
    }
}

/// The apiserver's JWKS on one machine (`ONAIR_JWKS_URL` points elsewhere).
fn default_jwks_url() -> String {
    format!("http://127.0.0.1:8080{}", onair_domain::contracts::http::JWKS_PATH)
}

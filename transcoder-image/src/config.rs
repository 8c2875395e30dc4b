//! The media worker's configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use onair_config::{RedisArgs, secret};
use secrecy::SecretString;

/// What a media worker does. One machine runs `all`; on Kubernetes a stream has one `ingest`
/// pod (the publisher, the source passed through, the HLS origin) and `transcode` pods, each
/// encoding a subset of the ladder from the ingest pod's relay and uploading it to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    All,
    Ingest,
    Transcode,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MediaConfig {
    /// RTMP ingest address (OBS publishes to `rtmp://HOST:PORT/live/{stream_key}`).
    #[arg(long = "rtmp-listen", env = "ONAIR_RTMP_LISTEN", default_value = "127.0.0.1:1935")]
    pub rtmp_listen: SocketAddr,
    /// HTTP address serving HLS (`/hls/{stream_id}/master.m3u8`), health and metrics.
    #[arg(long = "http-listen", env = "ONAIR_MEDIA_LISTEN", default_value = "127.0.0.1:8090")]
    pub http_listen: SocketAddr,
    /// The apiserver, for stream-key checks and status reports.
    #[arg(long, env = "ONAIR_APISERVER_URL", default_value = "http://127.0.0.1:8080")]
    pub apiserver_url: String,
    /// Shared secret for the apiserver's internal routes.
    #[arg(long, env = "ONAIR_INTERNAL_TOKEN", value_parser = secret)]
    pub internal_token: SecretString,
    /// Signed playback URLs, edges, and the origin's direct-viewer capacity.
    #[command(flatten)]
    pub origin: onair_config::OriginArgs,
    /// Where HLS output is written (one folder per stream).
    #[arg(long, env = "ONAIR_MEDIA_DIR", default_value = ".onair/media")]
    pub media_dir: PathBuf,
    #[arg(long, env = "ONAIR_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: String,
    /// Renditions by height, top first; none is encoded above the source's height.
    #[arg(long, env = "ONAIR_LADDER", default_value = "720p,480p,360p")]
    pub ladder: String,
    /// x264 preset for partner streams (better quality per bit, more CPU).
    #[arg(long, env = "ONAIR_X264_PRESET", default_value = "veryfast")]
    pub x264_preset: String,
    /// x264 preset for free-tier streams (cheaper, so more streams fit a machine).
    #[arg(long, env = "ONAIR_X264_PRESET_FREE", default_value = "superfast")]
    pub x264_preset_free: String,
    /// Seconds an ended stream's playlists and last segments stay on disk (players finishing,
    /// a CDN revalidating) before its folder is removed.
    #[arg(long, env = "ONAIR_MEDIA_RETENTION", default_value_t = 600)]
    pub retention_secs: u64,
    /// Seconds an RTMP connection may send nothing (a stalled publisher, a truncated handshake)
    /// before it is dropped.
    #[arg(long, env = "ONAIR_RTMP_READ_TIMEOUT", default_value_t = 15)]
    pub rtmp_read_timeout_secs: u64,
    /// RTMP connections handled at once; more wait in the listen backlog until one ends.
    #[arg(long, env = "ONAIR_RTMP_MAX_CONNECTIONS", default_value_t = crate::accept::DEFAULT_MAX_CONNECTIONS)]
    pub rtmp_max_connections: usize,
    /// RTMP connections from one address at once (0: no limit); more are closed at once. Behind
    /// a load balancer that hides client addresses (SNAT), raise it or keep client addresses.
    #[arg(long, env = "ONAIR_RTMP_MAX_PER_IP", default_value_t = crate::accept::DEFAULT_MAX_PER_IP)]
    pub rtmp_max_per_ip: usize,
    /// Seconds a new RTMP connection has to finish its handshake and ask to publish, however
    /// steadily it trickles bytes (the read timeout bounds each read, not the whole).
    #[arg(long, env = "ONAIR_RTMP_PUBLISH_DEADLINE", default_value_t = onair_rtmp::DEFAULT_PUBLISH_DEADLINE_SECS)]
    pub rtmp_publish_deadline_secs: u64,
    /// Seconds a publisher may be gone before the stream ends.
    #[arg(long, env = "ONAIR_RECONNECT_GRACE", default_value_t = 30)]
    pub reconnect_grace_secs: u64,
    /// Serve only this stream (a per-stream pod on Kubernetes): other streams' publishers are
    /// refused even with a valid key.
    #[arg(long = "stream-id", env = "ONAIR_STREAM_ID")]
    pub only_stream: Option<uuid::Uuid>,
    /// Hex SHA-256 of the only stream key this worker accepts (from the LiveStream's Secret):
    /// a wrong key is refused here, before the apiserver is asked.
    #[arg(long, env = "ONAIR_STREAM_KEY_HASH")]
    pub stream_key_hash: Option<String>,
    /// Let the key hash alone admit a publisher when the apiserver does not know the stream (a
    /// LiveStream applied with kubectl, no apiserver row). Off: the apiserver must confirm the
    /// key too, so a rotated key or an ended stream is refused even while the hash matches.
    #[arg(long, env = "ONAIR_TRUST_KEY_HASH", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_key_hash: bool,
    /// Tier of a per-stream pod's stream when the apiserver does not know it (a LiveStream
    /// applied directly): `free` or `partner`, for the encoder preset.
    #[arg(long, env = "ONAIR_TIER", default_value = "free", value_parser = ["free", "partner"])]
    pub tier: String,
    /// Who may play a per-stream pod's stream when the apiserver does not say (a LiveStream
    /// applied directly, or an apiserver that does not answer the key check under
    /// `--trust-key-hash`): `public`, or `signed`/`followers` (plain paths refused).
    #[arg(long, env = "ONAIR_PLAYBACK_ACCESS", default_value = "public", value_parser = ["public", "signed", "followers"])]
    pub playback_access: String,
    /// The ladder level a stream starts at (the operator sets `Reduced` for free streams and
    /// changes it as the audience grows; one machine runs the full ladder).
    #[arg(long, env = "ONAIR_INITIAL_LEVEL", default_value = "full", value_parser = str::parse::<onair_domain::LadderLevel>)]
    pub initial_level: onair_domain::LadderLevel,
    /// A viewer session counts as watching for this many seconds after its last request.
    #[arg(long, env = "ONAIR_VIEWER_WINDOW", default_value_t = 30)]
    pub viewer_window_secs: u64,
    /// `low`: LL-HLS (~200 ms parts, blocking playlist reload, fragmented MP4); `normal`:
    /// standard HLS with 1 s MPEG-TS segments. In split roles the ingest pod and its transcode
    /// pods must agree (the operator gives them the LiveStream's `spec.latency`).
    #[arg(long, env = "ONAIR_LATENCY", value_enum, default_value = "normal")]
    pub latency: Latency,
    /// Seconds an encoder may stay under 0.9x real time before its stream sheds a ladder level
    /// (one machine: `--role all`; on Kubernetes the operator sheds); 0 never sheds.
    #[arg(long, env = "ONAIR_SHED_AFTER", default_value_t = 30)]
    pub shed_after_secs: u64,
    /// `all` (one process does everything), `ingest` or `transcode` (split roles, one stream).
    #[arg(long, env = "ONAIR_MEDIA_ROLE", value_enum, default_value = "all")]
    pub role: Role,
    /// A transcode pod's renditions (`720p,480p`): the subset of `--ladder` it encodes.
    #[arg(long, env = "ONAIR_RENDITIONS")]
    pub renditions: Option<String>,
    /// A transcode pod's name among the stream's transcoders (its master playlist part and its
    /// reports to the origin).
    #[arg(long = "transcoder-part", env = "ONAIR_TRANSCODER_PART", default_value = "t0")]
    pub part: String,
    /// A transcode pod's ingest pod: the source relay and the HLS origin it uploads to.
    #[arg(long, env = "ONAIR_SOURCE_URL")]
    pub source_url: Option<String>,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Where broadcasts are recorded (`ONAIR_RECORDINGS_*`). An LL-HLS worker that packages
    /// (`all`, `ingest`) records every stream it packages.
    #[command(flatten)]
    pub recordings: onair_recording::RecordingsArgs,
    /// Megabytes of recorded segments held while they wait to be stored (~6 min of a full
    /// ladder at the default); past it a stream's segments are dropped until it drains.
    #[arg(long, env = "ONAIR_RECORDING_QUEUE_MB", default_value_t = 256)]
    pub recording_queue_mb: u64,
    /// Objects stored at once.
    #[arg(long, env = "ONAIR_RECORDING_CONCURRENCY", default_value_t = 4)]
    pub recording_concurrency: usize,
    /// Seconds the oldest unstored segment may wait before the stream's recording is `behind`.
    #[arg(long, env = "ONAIR_RECORDING_BEHIND_SECS", default_value_t = 10)]
    pub recording_behind_secs: u64,
    /// Seconds an ended stream's recording may take to finish storing before it is given up.
    #[arg(long, env = "ONAIR_RECORDING_FLUSH_TIMEOUT", default_value_t = 600)]
    pub recording_flush_timeout_secs: u64,
    /// Seconds of a live stream viewers can rewind (`/hls/{id}/dvr/master.m3u8`, from the
    /// recording); 0 turns rewinding off.
    #[arg(long, env = "ONAIR_DVR_WINDOW", default_value_t = 1800)]
    pub dvr_window_secs: u64,
}

/// How close to the live edge a worker's playlists keep players.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Latency {
    Low,
    Normal,
}

impl MediaConfig {
    /// The origin's direct-viewer capacity, as configured.
    pub fn origin_rates(&self) -> crate::capacity::Rates {
        let o = &self.origin;
        crate::capacity::Rates {
            requests: o.origin_requests_per_sec,
            bytes: o.origin_bytes_per_sec,
            stream_requests: o.origin_stream_requests_per_sec,
            stream_bytes: o.origin_stream_bytes_per_sec,
        }
    }

    /// Whether this worker's media is LL-HLS (see `ll.rs`): packaged here (one machine, an
    /// ingest pod) or streamed to the ingest pod (a transcode pod).
    pub fn low_latency(&self) -> bool {
        self.latency == Latency::Low
    }

    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        onair_config::parse_args("media", args)
    }
}

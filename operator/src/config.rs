//! The operator's configuration: what every media pod gets, and where the public URLs point.

use std::net::SocketAddr;

use onair_config::secret;
use secrecy::SecretString;

#[derive(clap::Args, Debug, Clone)]
pub struct OperatorConfig {
    /// The stream namespaces to watch, comma-separated; empty watches every namespace (the
    /// chart's `streams.watchAllNamespaces`, which needs a ClusterRole).
    #[arg(long, env = "ONAIR_OPERATOR_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub namespaces: Vec<String>,
    /// Address for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long = "listen", env = "ONAIR_OPERATOR_LISTEN", default_value = "0.0.0.0:8083")]
    pub listen: SocketAddr,
    /// The media worker image (the `onair` binary with ffmpeg).
    #[arg(long, env = "ONAIR_MEDIA_IMAGE", default_value = "ghcr.io/onair/onair:0.1.0")]
    pub media_image: String,
    #[arg(long, env = "ONAIR_MEDIA_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    pub image_pull_policy: String,
    /// The apiserver as media pods and the operator reach it (key checks, status reports).
    #[arg(long, env = "ONAIR_APISERVER_URL", default_value = "http://onair-apiserver:8080")]
    pub apiserver_url: String,
    /// The internal token, for the worker's and the apiserver's internal routes.
    #[arg(long, env = "ONAIR_INTERNAL_TOKEN", value_parser = secret)]
    pub internal_token: SecretString,
    /// The Secret (in each LiveStream's namespace) media pods read `internal-token` and
    /// `redis-url` from. The operator writes it into every namespace it runs a stream in, so a
    /// namespace needs nothing but its LiveStreams (and no token is rendered by Helm).
    #[arg(long, env = "ONAIR_MEDIA_SECRET", default_value = "onair-media")]
    pub media_secret: String,
    /// Redis as media pods reach it (viewer counts), written into the media Secret.
    #[arg(long = "redis-url", env = "ONAIR_REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = secret)]
    pub media_redis_url: SecretString,
    /// Service type of each stream's RTMP Service (ClusterIP, NodePort or LoadBalancer).
    #[arg(long, env = "ONAIR_INGEST_SERVICE_TYPE", default_value = "ClusterIP", value_parser = ["ClusterIP", "NodePort", "LoadBalancer"])]
    pub ingest_service_type: String,
    /// Public RTMP base URL (`rtmp://ingest.example.com/live`); empty: from the ingest
    /// Service's load-balancer address, else its cluster DNS name.
    #[arg(long, env = "ONAIR_PUBLIC_INGEST_URL", default_value = "")]
    pub public_ingest_url: String,
    /// Public HLS base (`https://onair.example.com/hls`): playback URLs are
    /// `{base}/{stream id}/master.m3u8`.
    #[arg(long, env = "ONAIR_PLAYBACK_BASE_URL", default_value = "http://onair.local/hls")]
    pub playback_base_url: String,
    /// Ingress class for the per-stream playback route (`/hls/{stream id}` -> the stream's HLS
    /// Service); empty: no Ingress is made (route playback some other way).
    #[arg(long, env = "ONAIR_PLAYBACK_INGRESS_CLASS", default_value = "")]
    pub playback_ingress_class: String,
    /// Host of the playback Ingress rules (the chart's entry point host).
    #[arg(long, env = "ONAIR_PLAYBACK_HOST", default_value = "")]
    pub playback_host: String,
    /// Seconds between status refreshes (viewers, renditions) of running streams.
    #[arg(long, env = "ONAIR_OPERATOR_RESYNC_SECS", default_value_t = 15)]
    pub resync_secs: u64,
    /// Transcode CPU budget for the streams this operator runs, in millicores; 0: no budget.
    /// When it runs out, free streams drop to passthrough before new streams queue.
    #[arg(long, env = "ONAIR_TRANSCODE_BUDGET", default_value_t = 0)]
    pub transcode_budget_millicores: u32,
    /// Millicores of renditions one transcode pod takes before the next rendition gets another
    /// pod (each pod decodes the source once: fewer, fuller pods decode less).
    #[arg(long, env = "ONAIR_TRANSCODE_POD_MILLICORES", default_value_t = 2000)]
    pub transcode_pod_millicores: u32,
    /// Viewers at which a free stream gets its full ladder.
    #[arg(long, env = "ONAIR_FULL_LADDER_AT", default_value_t = 50)]
    pub full_ladder_at: i64,
    /// Viewers under which a full stream goes back to reduced (after the hold).
    #[arg(long, env = "ONAIR_REDUCE_LADDER_BELOW", default_value_t = 20)]
    pub reduce_ladder_below: i64,
    /// Seconds a ladder level holds before it may step down.
    #[arg(long, env = "ONAIR_LADDER_HOLD_SECS", default_value_t = 600)]
    pub ladder_hold_secs: u64,
    /// Lease for leader election; empty disables it (one replica only).
    #[arg(long, env = "ONAIR_OPERATOR_LEASE", default_value = "onair-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "")]
    pub identity: String,
    /// The recordings store ingest pods upload to (`ONAIR_RECORDINGS_*`, the apiserver's too);
    /// its keys reach them through the media Secret. Empty: nothing is recorded.
    #[command(flatten)]
    pub recordings: onair_recording::RecordingsArgs,
    /// What every media pod serves HLS with: signed playback keys and the edge secret (through
    /// the media Secret), the origin's direct-viewer capacity.
    #[command(flatten)]
    pub origin: onair_config::OriginArgs,
}

impl OperatorConfig {
    /// The namespaces to watch, or `None` for all of them.
    pub fn watched_namespaces(&self) -> Option<Vec<String>> {
        let list: Vec<String> =
            self.namespaces.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        (!list.is_empty()).then_some(list)
    }

    pub fn audience_policy(&self) -> crate::scaling::AudiencePolicy {
        crate::scaling::AudiencePolicy {
            full_at: self.full_ladder_at,
            reduce_below: self.reduce_ladder_below,
            hold: std::time::Duration::from_secs(self.ladder_hold_secs),
        }
    }

    pub fn budget(&self) -> Option<u32> {
        (self.transcode_budget_millicores > 0).then_some(self.transcode_budget_millicores)
    }

    /// Whether ingest pods record.
    pub fn records(&self) -> bool {
        !self.recordings.url.trim().is_empty()
    }

    /// Refuses a recordings store pods cannot share: a directory (`file://` or a path) is on
    /// each pod's own disk and goes with it.
    pub fn check(&self) -> anyhow::Result<()> {
        let url = self.recordings.url.trim();
        if self.records() && (url.starts_with("file:") || !url.contains("://")) {
            anyhow::bail!(
                "ONAIR_RECORDINGS_URL {url:?}: media pods cannot share a directory; use s3://bucket[/prefix]"
            );
        }
        Ok(())
    }

    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        onair_config::parse_args("operator", args)
    }
}

//! The media worker (`onair media`): the composition root. It builds the shared state (config,
//! apiserver client, Redis, metrics, ladder, a transcode pod's assignment), binds the RTMP and
//! HTTP listeners, and hands them to `server.rs`. Nothing else in the crate depends on it; the
//! module map is in the crate's README.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::TcpListener;

use crate::api::ApiClient;
use crate::config::{MediaConfig, Role};
use crate::ladder::parse_ladder;
use crate::metrics::MediaMetrics;
use crate::server;
use crate::state::{Inner, WorkerState};
use crate::transcoders::Transcoders;

pub struct MediaWorker {
    rtmp: TcpListener,
    http: TcpListener,
    state: WorkerState,
}

impl MediaWorker {
    pub async fn build(mut config: MediaConfig) -> anyhow::Result<Self> {
        let ladder = parse_ladder(&config.ladder).map_err(|e| anyhow::anyhow!("--ladder: {e}"))?;
        let api = ApiClient::new(&config.apiserver_url, config.internal_token.clone())?;
        let redis = onair_infra::redis(&config.redis).await?;
        tokio::fs::create_dir_all(&config.media_dir).await?;
        let mut registry = onair_telemetry::registry("media");
        let metrics = MediaMetrics::register(&mut registry);
        let rtmp = TcpListener::bind(config.rtmp_listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.rtmp_listen))?;
        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.http_listen))?;
        // The addresses really bound (a port of 0 is chosen now): LL-HLS encoders stream to the
        // HTTP one; tests and the platform read both.
        config.http_listen = http.local_addr()?;
        config.rtmp_listen = rtmp.local_addr()?;
        if config.role == Role::Transcode && (config.only_stream.is_none() || config.source_url.is_none()) {
            anyhow::bail!("a transcode worker needs --stream-id and --source-url");
        }
        // Until the operator says otherwise (through the ingest pod), the flag's renditions.
        let assigned = match &config.renditions {
            Some(list) => {
                let names: Vec<String> =
                    list.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
                if let Some(n) = names.iter().find(|n| !ladder.iter().any(|r| &r.name == *n)) {
                    anyhow::bail!("--renditions: {n} is not in the ladder");
                }
                Some(names)
            }
            None => None,
        };
        let recorder = open_recorder(&config, &mut registry)?;
        let playback_keys = match &config.origin.playback_keys {
            Some(spec) => {
                use secrecy::ExposeSecret as _;
                Some(onair_playback_token::Keyring::parse(spec.expose_secret()).map_err(anyhow::Error::from)?)
            }
            None => None,
        };
        let capacity = crate::capacity::Capacity::new(config.origin_rates());
        // What an earlier run of this worker left of restricted streams stays restricted.
        let signed_only = crate::state::load_signed_only(&config.media_dir);
        if !signed_only.is_empty() {
            tracing::info!(streams = signed_only.len(), "signed-only streams found in the media folder");
        }
        let state = WorkerState::new(Inner {
            config,
            api,
            redis,
            metrics,
            registry,
            ladder,
            slots: Default::default(),
            feeds: Mutex::default(),
            transcoders: Transcoders::default(),
            assigned: Mutex::new(assigned),
            ll: crate::ll_streams::LlStreams::default(),
            recorder,
            playback_keys,
            signed_only: Mutex::new(signed_only),
            capacity,
        });
        Ok(Self { rtmp, http, state })
    }

    /// The bound RTMP address.
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.state.config.rtmp_listen
    }

    /// The bound HTTP address (HLS, health, metrics, internal routes).
    pub fn http_addr(&self) -> SocketAddr {
        self.state.config.http_listen
    }

    /// Where publishers send this worker a stream (the key appended): `rtmp://{addr}/live`.
    pub fn ingest_url(&self) -> String {
        format!("rtmp://{}/{}", self.rtmp_addr(), crate::rtmp::APP)
    }

    /// This worker's HLS base: a stream plays at `{base}/{stream_id}/master.m3u8`.
    pub fn playback_base_url(&self) -> String {
        format!("http://{}/hls", self.http_addr())
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        server::run(self.rtmp, self.http, self.state, shutdown).await
    }
}

/// The recorder, when this worker packages LL-HLS (`all`, `ingest`) and recording is on. A
/// transcode pod streams its renditions into its ingest pod's store: that one records them.
fn open_recorder(
    config: &MediaConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<Option<std::sync::Arc<crate::record::Recorder>>> {
    if !config.low_latency() || config.role == Role::Transcode {
        return Ok(None);
    }
    let cwd = std::env::current_dir()?;
    let Some(store_config) = config.recordings.store_config(&cwd)? else {
        tracing::info!("recording is off (ONAIR_RECORDINGS_URL is empty)");
        return Ok(None);
    };
    let store = onair_recording::open(&store_config)?;
    tracing::info!(url = %store_config.url, "recording broadcasts");
    let recorder_config = crate::record::RecorderConfig {
        queue_bytes: config.recording_queue_mb.saturating_mul(1 << 20),
        concurrency: config.recording_concurrency,
        behind: std::time::Duration::from_secs(config.recording_behind_secs),
        dvr_window: std::time::Duration::from_secs(config.dvr_window_secs),
    };
    Ok(Some(crate::record::Recorder::new(store, recorder_config, registry)))
}

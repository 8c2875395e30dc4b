//! The media worker's Prometheus metrics (publishers, refusals, encoder health, restarts) and
//! their labels. A leaf: the ingest gateway counts its refusals with the same labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream_id: String,
}

pub struct MediaMetrics {
    pub publishers: Gauge,
    pub refused: Family<ReasonLabels, Counter>,
    /// ffmpeg's `speed=` per stream: under 1.0 the encoder falls behind real time.
    pub encode_speed: Family<StreamLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub dropped_frames: Family<StreamLabels, Gauge>,
    pub restarts: Counter,
    /// Ladder levels shed because an encoder stayed under real time (one machine).
    pub sheds: Counter,
    /// Signed playback URLs refused (bad, expired or unknown-key tokens).
    pub playback_tokens_refused: Counter,
    /// Direct viewers' requests refused over the origin's capacity.
    pub origin_refused: Family<CapacityLabels, Counter>,
    /// Playback requests the origin answered, from edges and from viewers directly.
    pub origin_requests: Family<FromLabels, Counter>,
    pub origin_bytes: Family<FromLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FromLabels {
    /// `edge` (it presented the edge secret) or `direct`.
    pub from: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapacityLabels {
    /// `total` or `stream`.
    pub scope: &'static str,
    /// `requests` or `bytes`.
    pub kind: &'static str,
}

impl MediaMetrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = MediaMetrics {
            publishers: Gauge::default(),
            refused: Family::default(),
            encode_speed: Family::default(),
            dropped_frames: Family::default(),
            restarts: Counter::default(),
            sheds: Counter::default(),
            playback_tokens_refused: Counter::default(),
            origin_refused: Family::default(),
            origin_requests: Family::default(),
            origin_bytes: Family::default(),
        };
        registry.register(
            "origin_playback_requests",
            "Playback requests the origin answered, from edges or directly from viewers",
            metrics.origin_requests.clone(),
        );
        registry.register(
            "origin_playback_bytes",
            "Playback bytes the origin answered, from edges or directly from viewers",
            metrics.origin_bytes.clone(),
        );
        registry.register(
            "origin_capacity_refused",
            "Direct viewers' playback requests refused over the origin's capacity, by limit",
            metrics.origin_refused.clone(),
        );
        registry.register(
            "playback_tokens_refused",
            "Signed playback URLs refused (bad, expired or unknown key)",
            metrics.playback_tokens_refused.clone(),
        );
        registry.register("publishers", "Publishers connected", metrics.publishers.clone());
        registry.register("refused_publishers", "Publishers refused, by reason", metrics.refused.clone());
        registry.register("encode_speed", "ffmpeg encode speed (1.0 = real time)", metrics.encode_speed.clone());
        registry.register("dropped_frames", "Frames ffmpeg dropped", metrics.dropped_frames.clone());
        registry.register("transcoder_restarts", "ffmpeg restarts after a crash", metrics.restarts.clone());
        registry.register(
            "ladder_sheds",
            "Ladder levels shed: an encoder stayed under real time",
            metrics.sheds.clone(),
        );
        metrics
    }

    pub fn origin_served(&self, from: &'static str, bytes: u64) {
        self.origin_requests.get_or_create(&FromLabels { from }).inc();
        self.origin_bytes.get_or_create(&FromLabels { from }).inc_by(bytes);
    }

    pub fn origin_refused(&self, r: crate::capacity::Refusal) {
        self.origin_refused.get_or_create(&CapacityLabels { scope: r.scope, kind: r.kind }).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }
}

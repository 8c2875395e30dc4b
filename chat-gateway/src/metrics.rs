//! The gateway's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

pub struct ChatMetrics {
    pub connections: Gauge,
    pub rooms: Gauge,
    pub messages_in: Counter,
    /// Frames written to sockets.
    pub deliveries: Counter,
    /// Frames that carried more than one event.
    pub coalesced_frames: Counter,
    pub rejected: Family<ReasonLabels, Counter>,
    pub slow_consumer_disconnects: Counter,
    pub publish_seconds: Histogram,
    pub persisted: Counter,
    /// Seconds between a message's timestamp and its insert, for the last batch.
    pub persister_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ChatMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            connections: Gauge::default(),
            rooms: Gauge::default(),
            messages_in: Counter::default(),
            deliveries: Counter::default(),
            coalesced_frames: Counter::default(),
            rejected: Family::default(),
            slow_consumer_disconnects: Counter::default(),
            publish_seconds: Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            persisted: Counter::default(),
            persister_lag_seconds: Gauge::default(),
        };
        r.register("connections", "Open WebSocket connections", m.connections.clone());
        r.register("rooms", "Rooms with local sockets (and a NATS subscription)", m.rooms.clone());
        r.register("messages_in", "Messages accepted from clients", m.messages_in.clone());
        r.register("deliveries", "Frames written to sockets", m.deliveries.clone());
        r.register("coalesced_frames", "Frames that carried several events", m.coalesced_frames.clone());
        r.register("rejected_messages", "Messages refused, by reason", m.rejected.clone());
        r.register(
            "slow_consumer_disconnects",
            "Sockets closed for not keeping up",
            m.slow_consumer_disconnects.clone(),
        );
        r.register("nats_publish_seconds", "JetStream publish round trip", m.publish_seconds.clone());
        r.register("persisted_messages", "Messages written to chat_messages", m.persisted.clone());
        r.register(
            "persister_lag_seconds",
            "Age of the newest message in the last persisted batch",
            m.persister_lag_seconds.clone(),
        );
        m
    }

    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }
}

//! The operator's Prometheus metrics (`/metrics`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    pub by_phase: Family<PhaseLabels, Gauge>,
    /// LiveStreams whose latest spec generation the operator has not reconciled yet.
    pub queue_depth: Gauge,
    pub leader: Gauge,
    /// Transcode budget in millicores (0: none), and what the plan uses of it.
    pub budget: Gauge,
    pub budget_used: Gauge,
    /// Streams waiting for capacity, by tier.
    pub queued: Family<TierLabels, Gauge>,
    /// Ladder changes applied, by reason (`audience`, `capacity`).
    pub decisions: Family<ReasonLabels, Counter>,
    /// Per running stream: the plan's transcode cost and the renditions its worker reports.
    pub stream_cost: Family<StreamLabels, Gauge>,
    pub stream_renditions: Family<StreamLabels, Gauge>,
    /// LiveStreams in namespaces this operator does not watch (they never run), per namespace.
    pub unwatched: Family<NamespaceLabels, Gauge>,
    pub registry: Registry,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// `namespace/name` of the LiveStream.
    pub livestream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub tier: &'static str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = onair_telemetry::registry("operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let by_phase = Family::<PhaseLabels, Gauge>::default();
        let queue_depth = Gauge::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register("reconcile_errors", "Failed reconciles by reason", errors.clone());
        registry.register("reconcile_duration_seconds", "Time per reconcile", duration.clone());
        registry.register("livestreams", "LiveStreams by phase", by_phase.clone());
        registry.register(
            "queue_depth",
            "LiveStreams whose latest generation is not reconciled yet",
            queue_depth.clone(),
        );
        registry.register("leader", "1 while this replica holds the lease", leader.clone());
        let budget = Gauge::default();
        let budget_used = Gauge::default();
        let queued = Family::<TierLabels, Gauge>::default();
        let decisions = Family::<ReasonLabels, Counter>::default();
        registry.register("transcode_budget_millicores", "Transcode CPU budget (0: none)", budget.clone());
        registry.register("transcode_used_millicores", "Transcode CPU the plan runs", budget_used.clone());
        registry.register("queued_streams", "LiveStreams waiting for capacity, by tier", queued.clone());
        registry.register("scaling_decisions", "Ladder changes applied, by reason", decisions.clone());
        let stream_cost = Family::<StreamLabels, Gauge>::default();
        let stream_renditions = Family::<StreamLabels, Gauge>::default();
        registry.register("stream_cost_millicores", "Planned transcode CPU per running stream", stream_cost.clone());
        registry.register(
            "stream_renditions",
            "Renditions a running stream's worker produces",
            stream_renditions.clone(),
        );
        let unwatched = Family::<NamespaceLabels, Gauge>::default();
        registry.register(
            "unwatched_livestreams",
            "LiveStreams in namespaces this operator does not watch (they never run), at start-up",
            unwatched.clone(),
        );
        Self {
            unwatched,
            reconciles,
            errors,
            duration,
            by_phase,
            queue_depth,
            leader,
            budget,
            budget_used,
            queued,
            decisions,
            stream_cost,
            stream_renditions,
            registry,
        }
    }

    pub fn observe_reconcile(&self, took: Duration, error: Option<String>) {
        self.duration.observe(took.as_secs_f64());
        let result = if error.is_some() { "error" } else { "ok" };
        self.reconciles.get_or_create(&ResultLabels { result }).inc();
        if let Some(reason) = error {
            self.errors.get_or_create(&ReasonLabels { reason }).inc();
        }
    }

    pub fn scaling_decision(&self, reason: &str) {
        self.decisions.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
    }

    /// Per-stream cost and renditions from a plan; streams that are gone drop out.
    pub fn per_stream<'a>(&self, streams: impl Iterator<Item = (String, u32, usize)> + 'a) {
        self.stream_cost.clear();
        self.stream_renditions.clear();
        for (livestream, cost, renditions) in streams {
            self.stream_cost.get_or_create(&StreamLabels { livestream: livestream.clone() }).set(i64::from(cost));
            self.stream_renditions.get_or_create(&StreamLabels { livestream }).set(renditions as i64);
        }
    }

    /// LiveStreams per namespace that no controller of this operator watches.
    pub fn unwatched(&self, per_namespace: &std::collections::BTreeMap<String, usize>) {
        self.unwatched.clear();
        for (namespace, n) in per_namespace {
            self.unwatched.get_or_create(&NamespaceLabels { namespace: namespace.clone() }).set(*n as i64);
        }
    }

    /// Record a plan's totals.
    pub fn planned(&self, budget: Option<u32>, used: u64, queued: [u64; 2]) {
        self.budget.set(i64::from(budget.unwrap_or(0)));
        self.budget_used.set(used as i64);
        self.queued.get_or_create(&TierLabels { tier: "partner" }).set(queued[0] as i64);
        self.queued.get_or_create(&TierLabels { tier: "free" }).set(queued[1] as i64);
    }

    /// Recount phases and pending generations from the controller's cache.
    pub fn count<'a>(&self, objects: impl Iterator<Item = &'a onair_crds::LiveStream>) {
        use onair_crds::Phase;
        let mut counts = [0i64; 8];
        let mut pending = 0;
        let all = [
            Phase::Pending,
            Phase::Queued,
            Phase::Starting,
            Phase::Ready,
            Phase::Live,
            Phase::Ending,
            Phase::Ended,
            Phase::Failed,
        ];
        for ls in objects {
            let status = ls.status.as_ref();
            let phase = status.and_then(|s| s.phase).unwrap_or_default();
            if let Some(i) = all.iter().position(|p| *p == phase) {
                counts[i] += 1;
            }
            if status.and_then(|s| s.observed_generation) != ls.metadata.generation {
                pending += 1;
            }
        }
        for (p, n) in all.iter().zip(counts) {
            self.by_phase.get_or_create(&PhaseLabels { phase: p.as_str() }).set(n);
        }
        self.queue_depth.set(pending);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_stream_series_follow_the_plan_and_drop_ended_streams() {
        let m = Metrics::new();
        m.per_stream([("s/a".to_string(), 630, 3), ("s/b".to_string(), 120, 1)].into_iter());
        let text = onair_telemetry::encode(&m.registry);
        assert!(text.contains("onair_operator_stream_cost_millicores{livestream=\"s/a\"} 630"), "{text}");
        assert!(text.contains("onair_operator_stream_renditions{livestream=\"s/b\"} 1"), "{text}");
        m.per_stream([("s/b".to_string(), 30, 1)].into_iter());
        let text = onair_telemetry::encode(&m.registry);
        assert!(!text.contains("livestream=\"s/a\""), "an ended stream's series is gone");
        assert!(text.contains("onair_operator_stream_cost_millicores{livestream=\"s/b\"} 30"));
    }
}

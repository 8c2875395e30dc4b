//! Reconcile throughput and memory at 1,000 and 10,000 LiveStreams, against the in-memory
//! Kubernetes API (so this measures the operator, not a network). Run:
//!
//!     cargo bench -p onair-operator --bench reconcile
//!
//! Prints, per size: first-pass reconciles/s (every object created), steady-state
//! reconciles/s (nothing changes: the resync path), and memory.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use onair_crds::LiveStream;
use onair_operator::status::WorkerObs;
use onair_operator::{Context, MediaApi, Metrics, OperatorConfig, controller};
use onair_testkit::kube_fake::FakeApi;
use serde_json::json;

struct IdleMedia;

#[async_trait::async_trait]
impl MediaApi for IdleMedia {
    async fn state(&self, _: &str, _: uuid::Uuid) -> Result<WorkerObs, String> {
        Ok(WorkerObs::default())
    }
    async fn stop(&self, _: &str, _: uuid::Uuid) -> Result<(), String> {
        Ok(())
    }
    async fn report_ended(&self, _: uuid::Uuid) -> Result<(), String> {
        Ok(())
    }
    async fn assign(&self, _: &str, _: uuid::Uuid, _: &onair_operator::controller::Parts) -> Result<(), String> {
        Ok(())
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

fn livestream(i: usize) -> serde_json::Value {
    let id = uuid::Uuid::from_u128(0x0195e4a0_0000_7000_8000_000000000000 + i as u128);
    json!({
        "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
        "metadata": {"name": format!("s{i}"), "namespace": "streams", "uid": format!("uid-{i}"), "generation": 1,
                     "finalizers": ["onair.dev/end-stream"]},
        "spec": {"streamId": id, "userId": id, "channel": format!("c{i}"), "streamKeySecret": {"name": format!("s{i}-key")}},
    })
}

async fn pass(ctx: &Arc<Context>, objects: &[Arc<LiveStream>]) -> f64 {
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(objects.iter().cloned())
        .map(|ls| controller::reconcile(ls, ctx.clone()))
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "every reconcile succeeds");
    objects.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "| LiveStreams | first pass (creates) | steady state (resync) | RSS of the cache | process RSS (incl. fake API copies) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in [1_000usize, 10_000] {
        let base = rss_kib();
        let api = FakeApi::new().without_recording();
        api.namespace("streams");
        let config = OperatorConfig::from_args(["--internal-token", "t"]).unwrap();
        let ctx = Arc::new(Context::new(api.client(), config, Arc::new(IdleMedia), Arc::new(Metrics::new())));
        let before_cache = rss_kib();
        let objects: Vec<Arc<LiveStream>> =
            (0..n).map(|i| Arc::new(serde_json::from_value::<LiveStream>(livestream(i)).unwrap())).collect();
        let cache_kib = rss_kib().saturating_sub(before_cache);
        for i in 0..n {
            api.put(&format!("/apis/onair.dev/v1alpha1/namespaces/streams/livestreams/s{i}"), livestream(i));
            api.put(
                &format!("/api/v1/namespaces/streams/secrets/s{i}-key"),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}-key")}, "data": {"keyHash": "YQ=="}}),
            );
        }
        let first = pass(&ctx, &objects).await;
        // The controller would now see the status it wrote; reconcile those objects again.
        let updated: Vec<Arc<LiveStream>> = (0..n)
            .map(|i| {
                let v = api.get(&format!("/apis/onair.dev/v1alpha1/namespaces/streams/livestreams/s{i}")).unwrap();
                Arc::new(serde_json::from_value::<LiveStream>(v).unwrap())
            })
            .collect();
        let steady = pass(&ctx, &updated).await;
        let total = rss_kib().saturating_sub(base);
        println!(
            "| {n} | {first:.0}/s | {steady:.0}/s | {:.1} MiB ({:.1} KiB each) | {:.0} MiB |",
            cache_kib as f64 / 1024.0,
            cache_kib as f64 / n as f64,
            total as f64 / 1024.0
        );
        drop((objects, updated, ctx, api));
    }
}

//! The reconcile loop against an in-memory API server: the apply, status, finalizer and
//! deletion paths, and what API errors do.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use onair_crds::LiveStream;
use onair_operator::plan::Decision;
use onair_operator::scaling::{Admission, LadderLevel};
use onair_operator::status::{TranscoderObs, WorkerObs};
use onair_operator::{Context, MediaApi, Metrics, OperatorConfig, controller, rbac};
use onair_testkit::kube_fake::{self as fake, FakeApi, Fault};
use serde_json::{Value, json};

const NS: &str = "streams";
const LS_PATH: &str = "/apis/onair.dev/v1alpha1/namespaces/streams/livestreams/alice";
const STREAM: &str = "0195e4a0-0000-7000-8000-000000000001";

/// The media worker and the apiserver as the operator sees them: scripted answers, and a log
/// of what was asked, in order.
#[derive(Default)]
struct FakeMedia {
    worker: Mutex<Option<WorkerObs>>,
    apiserver_down: Mutex<bool>,
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl MediaApi for FakeMedia {
    async fn state(&self, base: &str, _: uuid::Uuid) -> Result<WorkerObs, String> {
        self.calls.lock().unwrap().push(format!("state {base}"));
        self.worker.lock().unwrap().clone().ok_or_else(|| "unreachable".to_string())
    }
    async fn stop(&self, _: &str, stream: uuid::Uuid) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("stop {stream}"));
        Ok(())
    }
    async fn assign(&self, _: &str, stream: uuid::Uuid, parts: &controller::Parts) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("assign {stream} {}", serde_json::to_string(parts).unwrap()));
        Ok(())
    }
    async fn report_ended(&self, stream: uuid::Uuid) -> Result<(), String> {
        if *self.apiserver_down.lock().unwrap() {
            return Err("connection refused".into());
        }
        self.calls.lock().unwrap().push(format!("ended {stream}"));
        Ok(())
    }
}

struct Env {
    api: FakeApi,
    media: Arc<FakeMedia>,
    ctx: Arc<Context>,
}

fn config() -> OperatorConfig {
    OperatorConfig::from_args(["--internal-token", "secret-token", "--media-image", "onair:test"]).unwrap()
}

fn env() -> Env {
    env_with(config())
}

fn env_with(config: OperatorConfig) -> Env {
    // As the operator's Role has it (rbac.rs, which the chart must match): update on
    // livestreams/finalizers lets it block their deletion from the objects it owns.
    let api = FakeApi::new().enforce_owner_references();
    if onair_operator::rbac::allows(rbac::STREAM_NAMESPACE, "onair.dev", "livestreams/finalizers", "update", None) {
        api.grant_finalizers(controller::MANAGER, "livestreams.onair.dev");
    }
    api.namespace(NS);
    let media = Arc::new(FakeMedia::default());
    let mut ctx = Context::new(api.client(), config, media.clone(), Arc::new(Metrics::new()));
    ctx.api_timeout = Duration::from_millis(500);
    Env { api, media, ctx: Arc::new(ctx) }
}

fn livestream(spec: Value, finalizer: bool) -> Value {
    let mut s = json!({
        "streamId": STREAM, "userId": "0195e4a0-0000-7000-8000-000000000002",
        "channel": "alice", "streamKeySecret": {"name": "alice-key"},
    });
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    let mut meta = json!({"name": "alice", "namespace": NS, "uid": "uid-1", "generation": 1, "resourceVersion": "1"});
    if finalizer {
        meta["finalizers"] = json!(["onair.dev/end-stream"]);
    }
    json!({"apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream", "metadata": meta, "spec": s})
}

impl Env {
    fn with_secret(self) -> Self {
        self.api.put(
            "/api/v1/namespaces/streams/secrets/alice-key",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alice-key", "namespace": NS},
                   "data": {"keyHash": "YWJj"}}),
        );
        self
    }

    fn with_pod(self, ready: bool) -> Self {
        self.api.put(
            "/api/v1/namespaces/streams/pods/alice-ingest-1",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "alice-ingest-1", "namespace": NS, "labels": {
                       "app.kubernetes.io/name": "onair-media", "app.kubernetes.io/component": "media",
                       "app.kubernetes.io/instance": "alice", "onair.dev/livestream": "alice",
                       "onair.dev/role": "ingest"}},
                   "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}),
        );
        self
    }

    /// Store `obj` as the LiveStream and reconcile what the controller would see.
    async fn reconcile(&self, obj: Value) -> Result<Action, controller::Error> {
        self.api.put(LS_PATH, obj.clone());
        let ls: LiveStream = serde_json::from_value(obj).unwrap();
        controller::reconcile(Arc::new(ls), self.ctx.clone()).await
    }

    /// Reconcile the stored LiveStream again (as after a watch event).
    async fn again(&self) -> Result<Action, controller::Error> {
        let obj = self.api.get(LS_PATH).unwrap();
        self.reconcile(obj).await
    }

    fn status(&self) -> Value {
        self.api.get(LS_PATH).unwrap()["status"].clone()
    }

    fn applied(&self, kind_path: &str) -> Vec<fake::Recorded> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::PATCH && r.path.contains(kind_path) && r.query.contains("fieldManager"))
            .collect()
    }

    /// The Events published (each one accepted by the API: publishing errors are only logged).
    fn events(&self) -> Vec<(String, String)> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/events"))
            .inspect(|r| {
                let name = r.body["metadata"]["name"].as_str().unwrap_or_default();
                let stored = format!("/apis/events.k8s.io/v1/namespaces/{NS}/events/{name}");
                assert!(self.api.get(&stored).is_some(), "Event refused by the API: {}", r.body);
            })
            .map(|r| {
                (r.body["reason"].as_str().unwrap_or("").to_string(), r.body["type"].as_str().unwrap_or("").to_string())
            })
            .collect()
    }

    fn condition(&self, kind: &str) -> (String, String) {
        let c = self.status()["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).cloned().unwrap();
        (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string())
    }
}

#[tokio::test]
async fn a_new_livestream_gets_the_finalizer_before_anything_runs() {
    let env = env().with_secret();
    let action = env.reconcile(livestream(json!({}), false)).await.unwrap();
    assert_eq!(action, Action::await_change());
    let reqs = env.api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!((reqs[0].method.clone(), reqs[0].path.as_str()), (Method::PATCH, LS_PATH));
    assert_eq!(env.api.get(LS_PATH).unwrap()["metadata"]["finalizers"], json!(["onair.dev/end-stream"]));
}

#[tokio::test]
async fn apply_creates_the_media_objects_and_writes_status_and_events() {
    let env = env().with_secret();
    let action = env.reconcile(livestream(json!({}), true)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(5)), "starting streams are looked at again soon");

    let dep = env.applied("/deployments/alice-ingest");
    assert_eq!(dep.len(), 1);
    assert!(
        dep[0].query.contains("fieldManager=onair-operator") && dep[0].query.contains("force=true"),
        "{}",
        dep[0].query
    );
    let body = &dep[0].body;
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(body["metadata"]["labels"]["onair.dev/stream-id"], STREAM);
    assert_eq!(body["spec"]["replicas"], 1);
    // A free stream without a plan starts at what it earns (reduced): one transcode pod, 360p.
    let transcode = env.applied("/deployments/alice-transcode-0");
    assert_eq!(transcode.len(), 1);
    let env_vars = transcode[0].body["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    assert!(env_vars.as_array().unwrap().contains(&json!({"name": "ONAIR_TRANSCODER_PART", "value": "t0"})));
    assert_eq!(env.status()["transcoders"], json!([{"name": "t0", "renditions": ["360p"], "millicores": 150}]));
    assert_eq!(env.applied("/services/alice-ingest").len(), 1);
    assert_eq!(env.applied("/services/alice-hls").len(), 1);
    assert!(env.api.requests().iter().any(|r| r.method == Method::DELETE && r.path.contains("poddisruptionbudgets")));

    let st = env.status();
    assert_eq!(st["phase"], "Starting");
    assert_eq!(st["observedGeneration"], 1);
    assert_eq!(st["ingestUrl"], "rtmp://alice-ingest.streams.svc.cluster.local:1935/live");
    assert_eq!(st["playbackUrl"], format!("http://onair.local/hls/{STREAM}/master.m3u8"));
    assert_eq!(env.condition("Ready"), ("False".into(), "PodStarting".into()));
    assert_eq!(env.condition("SpecValid").0, "True");
    assert_eq!(env.events(), [("Starting".to_string(), "Normal".to_string())]);

    // Nothing changed: the same intents again, no status write, no new event.
    env.api.take_requests();
    env.again().await.unwrap();
    assert!(env.applied("/livestreams/alice/status").is_empty(), "an unchanged status is not rewritten");
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn a_ready_pod_with_a_publisher_makes_the_stream_live() {
    let env = env().with_secret().with_pod(true);
    *env.media.worker.lock().unwrap() = Some(WorkerObs {
        publishing: true,
        stopped: false,
        renditions: vec!["source".into(), "720p".into(), "480p".into()],
        viewers: Some(42),
        ..Default::default()
    });
    let action = env.reconcile(livestream(json!({"tier": "Partner"}), true)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(15)), "live streams refresh viewers on the resync period");
    let st = env.status();
    assert_eq!(st["phase"], "Live");
    assert_eq!(st["viewers"], 42);
    assert_eq!(st["renditions"], json!(["source", "720p", "480p"]));
    assert_eq!(st["pods"], json!(["alice-ingest-1"]));
    assert!(st["startedAt"].is_string());
    assert_eq!(env.condition("IngestConnected").0, "True");
    assert_eq!(env.condition("Transcoding").0, "True");
    assert_eq!(env.applied("/poddisruptionbudgets/alice-media").len(), 1, "partner streams get a PDB");
    let calls = env.media.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            "state http://alice-hls.streams.svc:8090".to_string(),
            format!("assign {STREAM} {{\"t0\":[\"720p\",\"480p\",\"360p\"]}}"),
        ],
        "a partner gets the full ladder, handed to its transcoder through the ingest pod"
    );
    assert_eq!(env.events(), [("Live".to_string(), "Normal".to_string())]);
}

#[tokio::test]
async fn a_missing_secret_fails_the_stream_with_a_reason_and_backs_off() {
    let env = env();
    let first = env.reconcile(livestream(json!({}), true)).await.unwrap();
    assert_eq!(env.status()["phase"], "Failed");
    assert_eq!(env.condition("Ready"), ("False".into(), "SecretNotFound".into()));
    assert!(env.applied("/deployments").is_empty(), "nothing runs without the key");
    assert_eq!(env.events(), [("Failed".to_string(), "Warning".to_string())]);
    let second = env.again().await.unwrap();
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)), "looked at again, less often");

    // The Secret appears: the stream recovers on the next look.
    let env = env.with_secret();
    env.again().await.unwrap();
    assert_eq!(env.status()["phase"], "Starting");
}

#[tokio::test]
async fn an_invalid_spec_fails_once_and_waits_for_a_change() {
    let env = env().with_secret();
    let obj =
        livestream(json!({"ladder": {"renditions": [{"name": "odd", "height": 481, "videoBitrateKbps": 900}]}}), true);
    let action = env.reconcile(obj).await.unwrap();
    assert_eq!(action, Action::await_change(), "no retry loop on a spec only a person can fix");
    assert_eq!(env.status()["phase"], "Failed");
    let spec_valid = env.condition("SpecValid");
    assert_eq!(spec_valid, ("False".into(), "InvalidSpec".into()));
    let msg =
        env.status()["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "SpecValid").unwrap()["message"]
            .clone();
    assert!(msg.as_str().unwrap().starts_with("spec.ladder.renditions: odd: height must be even"), "{msg}");
    assert!(env.applied("/deployments").is_empty());
}

#[tokio::test]
async fn suspend_ends_the_stream_then_scales_the_media_to_zero() {
    let env = env().with_secret().with_pod(true);
    let mut obj = livestream(json!({"suspend": true}), true);
    obj["status"] = json!({"phase": "Live"});
    env.reconcile(obj).await.unwrap();
    let calls = env.media.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [format!("stop {STREAM}"), format!("ended {STREAM}")],
        "playlist finished, then the apiserver told"
    );
    let dep = env.applied("/deployments/alice-ingest");
    assert_eq!(dep[0].body["spec"]["replicas"], 0);
    assert!(env.applied("/deployments/alice-transcode").is_empty(), "nothing transcodes a stopped stream");
    assert_eq!(env.status()["phase"], "Ending");
    assert_eq!(env.events(), [("Ending".to_string(), "Normal".to_string())]);

    // The pod is gone: Ended, with an end time; no second stop.
    env.api.remove("/api/v1/namespaces/streams/pods/alice-ingest-1");
    env.api.take_requests();
    let action = env.again().await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(env.status()["phase"], "Ended");
    assert!(env.status()["endedAt"].is_string());
    assert_eq!(env.media.calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn deletion_ends_the_stream_before_the_finalizer_is_removed() {
    let env = env().with_secret().with_pod(true);
    let mut obj = livestream(json!({}), true);
    obj["metadata"]["deletionTimestamp"] = json!("2026-11-24T00:00:00Z");
    obj["status"] = json!({"phase": "Live"});

    *env.media.apiserver_down.lock().unwrap() = true;
    let err = env.reconcile(obj.clone()).await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert_eq!(
        env.api.get(LS_PATH).unwrap()["metadata"]["finalizers"],
        json!(["onair.dev/end-stream"]),
        "kept until the apiserver hears it"
    );

    *env.media.apiserver_down.lock().unwrap() = false;
    env.reconcile(obj).await.unwrap();
    assert!(env.api.get(LS_PATH).is_none(), "a deleted object goes with its last finalizer");
    let calls = env.media.calls.lock().unwrap().clone();
    assert_eq!(calls.last().unwrap(), &format!("ended {STREAM}"));
    assert!(calls.contains(&format!("stop {STREAM}")));
    assert!(env.events().iter().any(|(r, _)| r == "Deleted"));
}

#[tokio::test]
async fn api_errors_are_errors_with_reasons_not_panics() {
    let table: Vec<(Method, &str, Fault, &str)> = vec![
        (Method::PATCH, "/deployments/", Fault::Status(409), "api_409"),
        (Method::GET, "/pods", Fault::Status(500), "api_500"),
        (Method::GET, "/secrets/", Fault::Status(503), "api_503"),
        (Method::PATCH, "/livestreams/alice/status", Fault::Status(404), "api_404"),
        (Method::GET, "/secrets/", Fault::Hang, "timeout"),
    ];
    for (method, path, fault, reason) in table {
        let env = env().with_secret();
        env.api.fault(method.clone(), path, fault);
        let err = env.reconcile(livestream(json!({}), true)).await.unwrap_err();
        assert_eq!(err.reason(), reason, "{method} {path}");
        let action = controller::error_policy(
            Arc::new(serde_json::from_value(livestream(json!({}), true)).unwrap()),
            &err,
            env.ctx.clone(),
        );
        assert_eq!(action, Action::requeue(Duration::from_secs(5)), "{reason}: retried with backoff");
        let metrics = onair_telemetry::encode(&env.ctx.metrics.registry);
        assert!(
            metrics.contains(&format!("onair_operator_reconcile_errors_total{{reason=\"{reason}\"}} 1")),
            "{metrics}"
        );
        // The fault clears: the next reconcile converges.
        env.api.clear_faults();
        env.again().await.unwrap();
        assert_eq!(env.status()["phase"], "Starting", "{reason}");
    }
}

#[tokio::test]
async fn a_restarted_operator_converges_to_the_same_objects() {
    let env = env().with_secret();
    env.reconcile(livestream(json!({}), true)).await.unwrap();
    let first: Vec<_> = env
        .api
        .take_requests()
        .into_iter()
        .filter(|r| r.query.contains("fieldManager"))
        .map(|r| (r.path, r.body))
        .collect();
    // A new operator process (fresh context, no memory) over the same cluster state.
    let mut ctx = Context::new(env.api.client(), config(), env.media.clone(), Arc::new(Metrics::new()));
    ctx.api_timeout = Duration::from_millis(500);
    let restarted = Env { api: env.api.clone(), media: env.media.clone(), ctx: Arc::new(ctx) };
    restarted.again().await.unwrap();
    let second: Vec<_> = restarted
        .api
        .requests()
        .into_iter()
        .filter(|r| r.query.contains("fieldManager"))
        .map(|r| (r.path, r.body))
        .collect();
    let objects =
        |v: &Vec<(String, Value)>| v.iter().filter(|(p, _)| !p.ends_with("/status")).cloned().collect::<Vec<_>>();
    assert_eq!(objects(&first), objects(&second), "the same intents, by name: nothing duplicated");
    assert!(
        restarted.api.requests().iter().all(|r| r.method != Method::POST || r.path.contains("/events")),
        "nothing created by POST"
    );
}

#[tokio::test]
async fn a_queued_stream_gets_its_objects_but_no_pod_until_admitted() {
    let env = env().with_secret();
    env.ctx
        .plan
        .write()
        .unwrap()
        .insert(format!("{NS}/alice"), Decision { wanted: LadderLevel::Reduced, admission: Admission::Queued(2) });
    let action = env.reconcile(livestream(json!({}), true)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(5)), "looked at again soon");
    assert_eq!(env.applied("/deployments/alice-ingest")[0].body["spec"]["replicas"], 0);
    assert!(env.applied("/deployments/alice-transcode").is_empty(), "no transcoder takes capacity while queued");
    let st = env.status();
    assert_eq!((st["phase"].as_str(), st["queuePosition"].as_i64()), (Some("Queued"), Some(2)));
    assert_eq!(env.condition("Throttled"), ("True".into(), "WaitingForCapacity".into()));
    assert_eq!(env.events(), [("Queued".to_string(), "Normal".to_string())]);

    // Capacity frees: the next plan admits it and the pod is asked for.
    env.ctx.plan.write().unwrap().insert(
        format!("{NS}/alice"),
        Decision { wanted: LadderLevel::Reduced, admission: Admission::Run(LadderLevel::Reduced) },
    );
    env.api.take_requests();
    env.again().await.unwrap();
    assert_eq!(env.applied("/deployments/alice-ingest")[0].body["spec"]["replicas"], 1);
    assert_eq!(env.applied("/deployments/alice-transcode-0").len(), 1);
    assert_eq!(env.status()["phase"], "Starting");
    assert_eq!(env.status()["ladderLevel"], "Reduced");
}

#[tokio::test]
async fn the_plans_ladder_becomes_transcode_pods_with_an_event() {
    let env = env().with_secret().with_pod(true);
    *env.media.worker.lock().unwrap() = Some(WorkerObs {
        publishing: true,
        renditions: vec!["source".into(), "360p".into()],
        viewers: Some(80),
        ..Default::default()
    });
    env.ctx.plan.write().unwrap().insert(
        format!("{NS}/alice"),
        Decision { wanted: LadderLevel::Full, admission: Admission::Run(LadderLevel::Full) },
    );
    let mut obj = livestream(json!({"scaling": {"minTranscoders": 1, "maxTranscoders": 4}}), true);
    obj["status"] = json!({"phase": "Live", "ladderLevel": "Reduced",
                           "transcoders": [{"name": "t0", "renditions": ["360p"], "millicores": 100}]});
    env.reconcile(obj).await.unwrap();
    // 360p stays on its pod (its request has no room for more); the rest gets a new pod.
    let calls = env.media.calls.lock().unwrap().clone();
    assert!(calls.contains(&format!("assign {STREAM} {{\"t0\":[\"360p\"],\"t1\":[\"720p\",\"480p\"]}}")), "{calls:?}");
    assert!(
        env.applied("/deployments/alice-transcode-0").len() == 1
            && env.applied("/deployments/alice-transcode-1").len() == 1
    );
    let t1 = &env.applied("/deployments/alice-transcode-1")[0].body;
    assert_eq!(t1["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "570m");
    assert!(env.events().iter().any(|(r, _)| r == "LadderChanged"), "{:?}", env.events());
    assert_eq!(env.status()["ladderLevel"], "Full");

    // Degraded by the budget to passthrough: the transcode pods go, the reason says so.
    env.ctx.plan.write().unwrap().insert(
        format!("{NS}/alice"),
        Decision { wanted: LadderLevel::Full, admission: Admission::Run(LadderLevel::Passthrough) },
    );
    for name in ["alice-transcode-0", "alice-transcode-1"] {
        let applied = env.applied(&format!("/deployments/{name}"))[0].body.clone();
        env.api.put(&format!("/apis/apps/v1/namespaces/streams/deployments/{name}"), applied);
    }
    env.media.calls.lock().unwrap().clear();
    env.again().await.unwrap();
    let deleted: Vec<String> = env
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::DELETE && r.path.contains("/deployments/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(
        deleted.contains(&"alice-transcode-0".to_string()) && deleted.contains(&"alice-transcode-1".to_string()),
        "{deleted:?}"
    );
    assert!(
        env.media.calls.lock().unwrap().contains(&format!("assign {STREAM} {{}}")),
        "the ingest pod ends their renditions"
    );
    assert_eq!(env.condition("Throttled"), ("True".into(), "CapacityDegraded".into()));
    assert_eq!(env.condition("Degraded"), ("True".into(), "CapacityDegraded".into()));
    let metrics = onair_telemetry::encode(&env.ctx.metrics.registry);
    assert!(metrics.contains("onair_operator_scaling_decisions_total{reason=\"capacity\"} 1"), "{metrics}");
}

#[tokio::test]
async fn with_a_budget_a_stream_the_plan_has_not_seen_waits_for_it() {
    let mut config = config();
    config.transcode_budget_millicores = 10_000;
    let env = env_with(config).with_secret();
    env.reconcile(livestream(json!({}), true)).await.unwrap();
    assert_eq!(env.applied("/deployments/alice-ingest")[0].body["spec"]["replicas"], 0, "nothing skips the queue");
    assert_eq!(env.status()["phase"], "Queued");
    let msg =
        env.status()["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Throttled").unwrap()["message"]
            .clone();
    assert_eq!(msg, "waiting for the next capacity plan");
}

fn slow_worker(speed: f64) -> WorkerObs {
    WorkerObs {
        publishing: true,
        renditions: vec!["source".into(), "720p".into(), "480p".into(), "360p".into()],
        viewers: Some(200),
        transcoders: vec![TranscoderObs {
            part: "t0".into(),
            renditions: vec!["720p".into(), "480p".into(), "360p".into()],
            encode_speed: Some(speed),
        }],
        ..Default::default()
    }
}

fn slow_status() -> Value {
    json!({"phase": "Live", "ladderLevel": "Full", "transcoders": [
        {"name": "t0", "renditions": ["720p", "480p", "360p"], "millicores": 600, "slowSince": "2020-01-01T00:00:00Z"}]})
}

#[tokio::test]
async fn a_transcoder_that_keeps_falling_behind_moves_its_top_rendition_to_a_new_pod() {
    let env = env().with_secret().with_pod(true);
    *env.media.worker.lock().unwrap() = Some(slow_worker(0.7));
    let mut obj = livestream(json!({"tier": "Partner", "scaling": {"minTranscoders": 1, "maxTranscoders": 2}}), true);
    obj["status"] = slow_status();
    env.reconcile(obj).await.unwrap();
    let st = env.status();
    assert_eq!(st["transcoders"][0]["renditions"], json!(["480p", "360p"]));
    assert_eq!(
        (st["transcoders"][1]["name"].clone(), st["transcoders"][1]["renditions"].clone()),
        (json!("t1"), json!(["720p"]))
    );
    assert_eq!(env.applied("/deployments/alice-transcode-1").len(), 1);
    assert!(env.events().contains(&("Rebalanced".to_string(), "Warning".to_string())), "{:?}", env.events());
    assert_eq!(st["ladderCap"], Value::Null, "nothing shed");
    let metrics = onair_telemetry::encode(&env.ctx.metrics.registry);
    assert!(metrics.contains("onair_operator_scaling_decisions_total{reason=\"slow_encode_move\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_transcoder_that_keeps_falling_behind_with_nowhere_to_go_sheds_with_a_warning() {
    let env = env().with_secret().with_pod(true);
    *env.media.worker.lock().unwrap() = Some(slow_worker(0.7));
    let mut obj = livestream(json!({"tier": "Partner"}), true);
    obj["status"] = slow_status();
    env.reconcile(obj).await.unwrap();
    assert_eq!(env.status()["ladderCap"], "Reduced");
    assert_eq!(env.condition("Degraded"), ("True".into(), "SlowEncode".into()));
    assert!(env.events().contains(&("Shed".to_string(), "Warning".to_string())), "{:?}", env.events());
}

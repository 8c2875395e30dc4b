//! Every object the operator generates, for a matrix of LiveStreams (each preset, a custom
//! ladder, suspended, the longest allowed name, split roles, a partner with its PDB, the
//! playback Ingress, explicit resources), applied to the in-memory API server, which refuses
//! what a real one refuses. With `ONAIR_K8S_OBJECTS_DIR` set (as `scripts/test.sh` does), they
//! are also written there as YAML, one file per case, for `scripts/k8s-checks.sh` to check with
//! `kubernetes-validate` and the CRD's schema and CEL rules: tools no one here wrote.

#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use onair_crds::LiveStream;
use onair_operator::OperatorConfig;
use onair_operator::desired::{self, MAX_NAME_LEN};
use onair_operator::scaling::Part;
use onair_testkit::kube_fake::FakeApi;
use serde_json::{Value, json};

const NS: &str = "onair-streams";

fn livestream(name: &str, spec: Value) -> LiveStream {
    let mut s = json!({
        "streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
        "channel": "alice", "streamKeySecret": {"name": "alice-key"},
    });
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    serde_json::from_value(json!({"apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
        "metadata": {"name": name, "namespace": NS, "uid": "0195e4a0-aaaa-7000-8000-000000000001"}, "spec": s}))
    .unwrap()
}

fn part(n: usize, renditions: &[&str], millicores: u32) -> Part {
    Part { name: format!("t{n}"), renditions: renditions.iter().map(|r| r.to_string()).collect(), millicores }
}

/// (case, LiveStream, the transcode parts the autoscaler assigned).
fn matrix() -> Vec<(&'static str, LiveStream, Vec<Part>)> {
    let longest = "a".repeat(MAX_NAME_LEN - 1) + "z";
    vec![
        (
            "preset-full",
            livestream("full", json!({"ladder": {"preset": "Full"}})),
            vec![part(0, &["1080p", "720p"], 900)],
        ),
        ("preset-standard", livestream("standard", json!({})), vec![part(0, &["720p", "480p", "360p"], 700)]),
        (
            "preset-economy",
            livestream("economy", json!({"ladder": {"preset": "Economy"}})),
            vec![part(0, &["360p"], 150)],
        ),
        (
            "custom-ladder",
            livestream(
                "custom",
                json!({"ladder": {"renditions": [
                    {"name": "360p", "height": 360, "videoBitrateKbps": 800},
                    {"name": "720p", "height": 720, "videoBitrateKbps": 3000},
                    {"name": "540p", "height": 540, "videoBitrateKbps": 2000},
                ]}, "latency": "Normal"}),
            ),
            vec![part(0, &["720p", "540p", "360p"], 800)],
        ),
        ("suspended", livestream("paused", json!({"suspend": true})), vec![]),
        ("passthrough", livestream("source-only", json!({})), vec![]),
        (
            "longest-name",
            livestream(&longest, json!({"tier": "Partner"})),
            (0..16).map(|i| part(i, &["360p"], 150)).collect(),
        ),
        (
            "split-roles",
            livestream(
                "split",
                json!({"ladder": {"preset": "Full"}, "scaling": {"minTranscoders": 1, "maxTranscoders": 3}}),
            ),
            vec![part(0, &["1080p"], 2000), part(1, &["720p", "480p"], 1400), part(2, &["360p"], 150)],
        ),
        (
            "partner-resources",
            livestream(
                "partner",
                json!({"tier": "Partner", "resources": {"requests": {"cpu": "700m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}}),
            ),
            vec![part(0, &["720p", "480p", "360p"], 700)],
        ),
    ]
}

fn config() -> OperatorConfig {
    let mut c = OperatorConfig::from_args(["--internal-token", "internal-token-value", "--namespaces", NS]).unwrap();
    c.playback_ingress_class = "nginx".into();
    c.playback_host = "onair.example.com".into();
    c
}

/// Every object for one case, as JSON, in apply order.
fn objects(ls: &LiveStream, parts: &[Part], config: &OperatorConfig) -> Vec<Value> {
    let d = desired::desired(ls, config, parts);
    let mut out = vec![serde_json::to_value(&d.ingest).unwrap()];
    out.extend(d.transcoders.iter().map(|t| serde_json::to_value(t).unwrap()));
    out.push(serde_json::to_value(&d.ingest_service).unwrap());
    out.push(serde_json::to_value(&d.hls_service).unwrap());
    out.extend(d.pdb.iter().map(|p| serde_json::to_value(p).unwrap()));
    out.extend(d.ingress.iter().map(|i| serde_json::to_value(i).unwrap()));
    out
}

fn api_resource(obj: &Value) -> ApiResource {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), obj["apiVersion"].as_str().unwrap().to_string()),
    };
    let kind = obj["kind"].as_str().unwrap().to_string();
    let plural = match kind.as_str() {
        "Ingress" => "ingresses".to_string(),
        "PodDisruptionBudget" => "poddisruptionbudgets".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    let api_version = obj["apiVersion"].as_str().unwrap().to_string();
    ApiResource { group, version, api_version, kind, plural }
}

#[tokio::test]
async fn every_generated_object_is_accepted_by_the_api_server_and_dumped_for_the_validators() {
    let config = config();
    let fake = FakeApi::new();
    let client = fake.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let dump = std::env::var_os("ONAIR_K8S_OBJECTS_DIR").map(std::path::PathBuf::from);
    if let Some(dir) = &dump {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut applied = 0;
    for (case, ls, parts) in matrix() {
        assert_eq!(desired::validate(&ls), Ok(()), "{case}");
        // The LiveStream first (its schema and CEL are checked by the validators), then what
        // the operator makes for it.
        let lss: Api<LiveStream> = Api::namespaced(client.clone(), NS);
        let pp = PatchParams::apply("onair-objects-test").force();
        lss.patch(&ls.metadata.name.clone().unwrap(), &pp, &Patch::Apply(&ls)).await.unwrap();
        let mut docs = vec![serde_json::to_value(&ls).unwrap()];
        for obj in objects(&ls, &parts, &config) {
            let ar = api_resource(&obj);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            let pp = PatchParams::apply(desired::MANAGED_BY).force();
            if let Err(e) = api.patch(&name, &pp, &Patch::Apply(&obj)).await {
                panic!("{case}: the API server refuses {} {name}: {e}", ar.kind);
            }
            applied += 1;
            docs.push(obj);
        }
        if let Some(dir) = &dump {
            let yaml: Vec<String> = docs.iter().map(|d| serde_saphyr::to_string(d).unwrap()).collect();
            std::fs::write(dir.join(format!("operator-{case}.yaml")), yaml.join("---\n")).unwrap();
        }
    }
    // The namespace's media Secret.
    let secret = serde_json::to_value(desired::media_secret(NS, &config)).unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &api_resource(&secret));
    api.patch(&config.media_secret, &PatchParams::apply("onair-operator").force(), &Patch::Apply(&secret))
        .await
        .unwrap();
    if let Some(dir) = &dump {
        std::fs::write(dir.join("operator-media-secret.yaml"), serde_saphyr::to_string(&secret).unwrap()).unwrap();
    }
    assert!(applied >= 40, "the matrix applied {applied} objects");
}

#[test]
fn the_longest_name_keeps_every_object_name_within_its_limit() {
    let config = config();
    let (_, ls, parts) = matrix().into_iter().find(|(c, _, _)| *c == "longest-name").unwrap();
    for obj in objects(&ls, &parts, &config) {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let limit = if obj["kind"] == "Service" { 63 } else { 253 };
        assert!(name.len() <= limit, "{} {name}: {} > {limit}", obj["kind"], name.len());
        // Pod names add a ReplicaSet hash and a suffix to the Deployment's: a 63-character
        // label keeps `kubectl` and DNS happy.
        if obj["kind"] == "Deployment" {
            assert!(name.len() <= 63, "{name}");
        }
    }
}

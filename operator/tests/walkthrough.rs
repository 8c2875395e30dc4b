//! The platform team's walkthrough, literally: the README's install (which namespaces the
//! operator watches) and the commands in the header of `examples/livestream.yaml`, run against
//! the in-memory API server with the operator's reconcile and a scripted media worker standing
//! in for the pods. A README or example that drifts from what the chart and the code do fails
//! here. Every request the operator makes on the way is checked against `rbac::STREAM_NAMESPACE`
//! (the chart's Role, by `tests/packaging.rs`), and every grant there must be used by the code.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http::Method;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use onair_crds::LiveStream;
use onair_operator::rbac::{self, Grant};
use onair_operator::status::WorkerObs;
use onair_operator::{Context, MediaApi, Metrics, OperatorConfig, controller};
use onair_testkit::kube_fake::{FakeApi, Recorded};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Shell lines with `\` continuations joined.
fn joined(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut continues = false;
    for line in lines {
        let piece = line.trim().trim_end_matches('\\').trim().to_string();
        match out.last_mut() {
            Some(last) if continues => {
                last.push(' ');
                last.push_str(&piece);
            }
            _ => out.push(piece),
        }
        continues = line.trim_end().ends_with('\\');
    }
    out
}

/// What the README's install does, as far as the operator is concerned.
struct Install {
    /// `kubectl create namespace X` before the install.
    namespaces: Vec<String>,
    /// What the operator watches: `streams.namespaces`, else the release namespace.
    watched: Vec<String>,
}

fn readme_install() -> Install {
    let readme = read("README.md");
    let block = readme
        .split("```sh")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("helm upgrade --install"))
        .expect("the README's install block");
    let commands = joined(block.lines().map(|l| l.split(" # ").next().unwrap().to_string()));
    let namespaces = commands
        .iter()
        .filter_map(|c| c.strip_prefix("kubectl create namespace "))
        .map(|n| n.trim().to_string())
        .collect();
    let helm = commands.iter().find(|c| c.starts_with("helm upgrade --install")).unwrap();
    let words: Vec<&str> = helm.split_whitespace().collect();
    let release_ns =
        words.windows(2).find(|w| w[0] == "-n" || w[0] == "--namespace").map(|w| w[1].to_string()).unwrap();
    let watched = match helm.split("streams.namespaces={").nth(1) {
        Some(rest) => rest.split('}').next().unwrap().split(',').map(|n| n.trim().to_string()).collect(),
        None => vec![release_ns],
    };
    assert!(!helm.contains("watchAllNamespaces"), "the walkthrough follows a namespace list");
    Install { namespaces, watched }
}

/// The example's header commands, each with the comment after it (what it should show).
fn example_commands() -> Vec<(String, String)> {
    let text = read("examples/livestream.yaml");
    let lines = text.lines().take_while(|l| l.starts_with('#')).filter_map(|l| l.strip_prefix("#   "));
    joined(lines.map(str::to_string))
        .into_iter()
        .map(|c| match c.split_once("  # ") {
            Some((cmd, comment)) => (cmd.trim().to_string(), comment.trim().to_string()),
            None => (c.trim().to_string(), String::new()),
        })
        .collect()
}

/// The media worker as the operator sees it through the ingest pod.
#[derive(Default)]
struct Worker {
    state: Mutex<Option<WorkerObs>>,
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl MediaApi for Worker {
    async fn state(&self, _: &str, _: uuid::Uuid) -> Result<WorkerObs, String> {
        self.state.lock().unwrap().clone().ok_or_else(|| "unreachable".to_string())
    }
    async fn stop(&self, _: &str, stream: uuid::Uuid) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("stop {stream}"));
        Ok(())
    }
    async fn assign(&self, _: &str, _: uuid::Uuid, _: &controller::Parts) -> Result<(), String> {
        Ok(())
    }
    async fn report_ended(&self, stream: uuid::Uuid) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("ended {stream}"));
        Ok(())
    }
}

/// One permission a request used: group, resource (with subresource), verb, object name.
type Use = (String, String, String, Option<String>);

/// What a recorded request asks of RBAC.
fn uses(r: &Recorded) -> Vec<Use> {
    let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.first() {
        Some(&"api") => ("", &segs[2..]),
        Some(&"apis") => (segs[1], &segs[3..]),
        _ => panic!("not an API path: {}", r.path),
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 { &rest[2..] } else { rest };
    let resource = match rest.get(2) {
        Some(sub) => format!("{}/{sub}", rest[0]),
        None => rest[0].to_string(),
    };
    let name = rest.get(1).map(|n| n.to_string());
    let verbs: &[&str] = match r.method {
        Method::GET if name.is_some() => &["get"],
        Method::GET => &["list"],
        Method::POST => &["create"],
        Method::PUT => &["update"],
        Method::DELETE => &["delete"],
        // Server-side apply creates what does not exist yet.
        Method::PATCH if r.query.contains("fieldManager") && !resource.contains('/') => &["patch", "create"],
        Method::PATCH => &["patch"],
        _ => panic!("unexpected method {}", r.method),
    };
    let mut out: Vec<Use> =
        verbs.iter().map(|v| (group.to_string(), resource.clone(), v.to_string(), name.clone())).collect();
    // Owner references that block deletion need update on the owner's finalizers.
    let owners = r.body["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    if owners.iter().any(|o| o["blockOwnerDeletion"] == true && o["kind"] == "LiveStream") {
        out.push(("onair.dev".into(), "livestreams/finalizers".into(), "update".into(), None));
    }
    out
}

struct Walk {
    api: FakeApi,
    worker: Arc<Worker>,
    ctx: Arc<Context>,
    /// Every permission the operator's requests used.
    used: BTreeSet<Use>,
}

impl Walk {
    /// One reconcile of the stored LiveStream, as the controller would run it on a watch event;
    /// only the operator's requests are counted.
    async fn reconcile(&mut self, ns: &str, name: &str) -> Option<Value> {
        let path = format!("/apis/onair.dev/v1alpha1/namespaces/{ns}/livestreams/{name}");
        let obj = self.api.get(&path)?;
        self.api.take_requests();
        let ls: LiveStream = serde_json::from_value(obj).unwrap();
        controller::reconcile(Arc::new(ls), self.ctx.clone()).await.unwrap();
        for r in self.api.take_requests() {
            for u in uses(&r) {
                let (g, res, verb, n) = &u;
                assert!(
                    rbac::allows(rbac::STREAM_NAMESPACE, g, res, verb, n.as_deref()),
                    "the operator's {} {} needs {verb} on {g}/{res} ({n:?}), which its Role does not grant",
                    r.method,
                    r.path
                );
                self.used.insert(u);
            }
        }
        self.api.get(&path)
    }

    /// The kubelet's part: a ready pod for each Deployment that wants one, none for those at 0.
    fn kubelet(&self, ns: &str) {
        let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments/");
        for suffix in ["ingest", "transcode-0"] {
            let pod = format!("/api/v1/namespaces/{ns}/pods/demo-{suffix}-1");
            let Some(dep) = self.api.get(&format!("{deployments}demo-{suffix}")) else {
                self.api.remove(&pod);
                continue;
            };
            if dep["spec"]["replicas"] == 0 {
                self.api.remove(&pod);
                continue;
            }
            let labels = dep["spec"]["template"]["metadata"]["labels"].clone();
            self.api.put(
                &pod,
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": format!("demo-{suffix}-1"), "namespace": ns, "labels": labels},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            );
        }
    }

    fn phase(obj: &Option<Value>) -> String {
        obj.as_ref().and_then(|o| o["status"]["phase"].as_str()).unwrap_or("").to_string()
    }

    /// Reconcile (with the kubelet in between) until the phase is `want`; the phases seen.
    async fn until(&mut self, ns: &str, name: &str, want: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut obj = None;
        for _ in 0..10 {
            obj = self.reconcile(ns, name).await;
            let phase = Self::phase(&obj);
            if seen.last() != Some(&phase) {
                seen.push(phase.clone());
            }
            if phase == want {
                return seen;
            }
            self.kubelet(ns);
        }
        let status = obj.map(|o| o["status"].clone()).unwrap_or_default();
        panic!("{name} never reached {want}: {seen:?}; status {status:#}");
    }
}

/// `kubectl -n NS VERB...`: the namespace and the rest.
fn kubectl(cmd: &str) -> (String, Vec<String>) {
    let words: Vec<String> = shell_words(cmd);
    assert_eq!(words[0], "kubectl", "{cmd}");
    assert_eq!(words[1], "-n", "every kubectl line names its namespace: {cmd}");
    (words[2].clone(), words[3..].to_vec())
}

/// Split a command line on spaces outside quotes and `$(...)`, dropping the quotes (enough for
/// the example's lines).
fn shell_words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for c in cmd.chars() {
        match c {
            '\'' | '"' if quote.is_none() => quote = Some(c),
            '\'' | '"' if quote == Some(c) => quote = None,
            '(' if quote.is_none() => {
                depth += 1;
                cur.push(c);
            }
            ')' if quote.is_none() => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ' ' if quote.is_none() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Run the README install and the example's commands; `edit` changes the example's object
/// before it is applied (to walk the same steps with another tier); `pause_twice` resumes the
/// suspended stream and suspends it again before deleting it (a repeated Event becomes a
/// series: a PATCH). Returns what was used.
async fn walk(edit: impl Fn(&mut Value), pause_twice: bool) -> BTreeSet<Use> {
    let install = readme_install();
    // The operator as the chart runs it under the README's values: the namespaces it watches,
    // the playback Ingress on (the chart's default).
    let config = OperatorConfig::from_args([
        "--internal-token",
        "internal",
        "--namespaces",
        &install.watched.join(","),
        "--playback-ingress-class",
        "nginx",
        "--playback-host",
        "onair.example.com",
    ])
    .unwrap();
    let watched = config.watched_namespaces().unwrap();
    // A cluster enforcing owner references: the operator's objects block their LiveStream's
    // deletion only if its Role lets it update livestreams/finalizers.
    let api = FakeApi::new().enforce_owner_references();
    if rbac::allows(rbac::STREAM_NAMESPACE, "onair.dev", "livestreams/finalizers", "update", None) {
        api.grant_finalizers(controller::MANAGER, "livestreams.onair.dev");
    }
    let worker = Arc::new(Worker::default());
    let ctx = Arc::new(Context::new(api.client(), config, worker.clone(), Arc::new(Metrics::new())));
    let mut walk = Walk { api: api.clone(), worker, ctx, used: BTreeSet::new() };
    let client = api.client();
    for ns in &install.namespaces {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &obj).await.unwrap();
    }

    let commands = example_commands();
    assert!(commands.len() >= 6, "the example's header lists the steps: {commands:?}");
    let key = "live_walkthroughKey0123456789abcdefghijklmnop".to_string();
    let mut name = String::new();
    let mut ended_seen = false;
    for (cmd, comment) in &commands {
        if cmd.starts_with("KEY=") {
            continue; // the key is ours: `key` above
        }
        if cmd.starts_with("ffmpeg ") {
            // The publisher: to the ingest URL the status gives, with the key.
            let (ns, rest) = kubectl(cmd.split("$(").nth(1).unwrap().split(')').next().unwrap());
            assert_eq!(rest[..3], ["get", "lst", name.as_str()], "{cmd}");
            assert!(rest.contains(&"jsonpath={.status.ingestUrl}".to_string()), "{cmd}");
            let obj = walk.reconcile(&ns, &name).await.unwrap();
            let ingest = obj["status"]["ingestUrl"].as_str().unwrap();
            assert!(ingest.starts_with("rtmp://") && ingest.ends_with("/live"), "{ingest}");
            assert!(cmd.contains("/$KEY"), "publishes with the key: {cmd}");
            *walk.worker.state.lock().unwrap() = Some(WorkerObs {
                publishing: true,
                renditions: vec!["source".into(), "360p".into()],
                viewers: Some(3),
                ..Default::default()
            });
            continue;
        }
        let (ns, rest) = kubectl(cmd);
        assert!(
            watched.contains(&ns),
            "`{cmd}` works in {ns}, which the README's install does not watch ({watched:?}): it would never run"
        );
        let words: Vec<&str> = rest.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["create", "secret", "generic", secret, literal] => {
                let (k, v) = literal.strip_prefix("--from-literal=").unwrap().split_once('=').unwrap();
                assert_eq!(k, "keyHash", "the key Secret holds keyHash: {cmd}");
                assert!(v.contains("sha256sum") && v.contains("$KEY"), "the hash of the key, never the key: {cmd}");
                let hash = onair_domain::contracts::stream_key::hash_hex(&key);
                let obj: Secret = serde_json::from_value(json!({"metadata": {"name": secret},
                    "stringData": {"keyHash": hash}}))
                .unwrap();
                Api::<Secret>::namespaced(client.clone(), &ns).create(&PostParams::default(), &obj).await.unwrap();
            }
            ["apply", "-f", file] => {
                let mut obj: Value = serde_saphyr::from_str(&read(file)).unwrap();
                if let Some(in_file) = obj["metadata"]["namespace"].as_str() {
                    // kubectl refuses a -n that contradicts the file.
                    assert_eq!(in_file, ns, "{file} says namespace {in_file}, the command -n {ns}");
                }
                edit(&mut obj);
                name = obj["metadata"]["name"].as_str().unwrap().to_string();
                let api: Api<LiveStream> = Api::namespaced(client.clone(), &ns);
                let ls: LiveStream = serde_json::from_value(obj).unwrap();
                api.patch(&name, &PatchParams::apply("kubectl").force(), &Patch::Apply(&ls)).await.unwrap();
            }
            ["get", "lst", n, "-w"] => {
                assert_eq!(*n, name);
                // "Starting -> Ready": the phases the watch shows, in order.
                let want: Vec<&str> = comment.split("->").map(str::trim).collect();
                let seen = walk.until(&ns, &name, want.last().unwrap()).await;
                let mut at = 0;
                for w in &want {
                    at += seen[at..].iter().position(|s| s == w).unwrap_or_else(|| panic!("{w} not in {seen:?}"));
                }
            }
            ["get", "lst", n] => {
                assert_eq!(*n, name);
                let want = comment.split([',', ' ']).next().unwrap();
                walk.until(&ns, &name, want).await;
                let obj =
                    walk.api.get(&format!("/apis/onair.dev/v1alpha1/namespaces/{ns}/livestreams/{name}")).unwrap();
                if comment.contains("viewers") {
                    assert_eq!(obj["status"]["viewers"], 3, "{comment}");
                }
                if comment.contains("renditions") {
                    assert!(!obj["status"]["renditions"].as_array().unwrap().is_empty(), "{comment}");
                }
            }
            ["patch", "lst", n, "--type", "merge", "-p", body] => {
                assert_eq!(*n, name);
                let path = format!("/apis/onair.dev/v1alpha1/namespaces/{ns}/livestreams/{name}");
                let patch: Value = serde_json::from_str(body).unwrap();
                let api: Api<LiveStream> = Api::namespaced(client.clone(), &ns);
                let before = walk.api.get(&path).unwrap();
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
                let after = walk.api.get(&path).unwrap();
                assert_ne!(before["spec"], after["spec"], "the merge patch changed the spec");
                let want = comment.split_whitespace().next().unwrap();
                walk.until(&ns, &name, want).await;
                ended_seen = want == "Ended";
                if pause_twice {
                    // Resume (the publisher is still there: Live again), then the same patch.
                    let resume = json!({"spec": {"suspend": false}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&resume)).await.unwrap();
                    walk.until(&ns, &name, "Live").await;
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
                    walk.until(&ns, &name, want).await;
                }
            }
            ["delete", "lst", n] => {
                assert_eq!(*n, name);
                let path = format!("/apis/onair.dev/v1alpha1/namespaces/{ns}/livestreams/{name}");
                let api: Api<LiveStream> = Api::namespaced(client.clone(), &ns);
                api.delete(&name, &DeleteParams::default()).await.unwrap();
                let held = walk.api.get(&path).expect("the finalizer holds the object until the stream ended");
                assert!(held["metadata"]["deletionTimestamp"].is_string());
                assert!(walk.reconcile(&ns, &name).await.is_none(), "gone once the finalizer ran");
                let calls = walk.worker.calls.lock().unwrap().clone();
                assert!(calls.iter().any(|c| c.starts_with("ended ")), "the apiserver heard the end: {calls:?}");
            }
            other => panic!("the walkthrough does not know `{other:?}` ({cmd}): teach it, or fix the example"),
        }
    }
    assert!(ended_seen && !name.is_empty(), "the example goes live, suspends to Ended and deletes");
    walk.used
}

#[tokio::test]
async fn the_readme_and_example_work_as_written_and_use_every_grant_of_the_operators_role() {
    let mut used = walk(|_| {}, false).await;
    // The same steps for a partner stream (the PDB path), paused twice (an Event series).
    used.extend(walk(|obj| obj["spec"]["tier"] = json!("Partner"), true).await);

    let watched: BTreeSet<(&str, &str)> = rbac::WATCHED.iter().copied().collect();
    let mut unused = Vec::new();
    for Grant { group, resource, verbs, .. } in rbac::STREAM_NAMESPACE {
        for verb in *verbs {
            // The controllers' watches are not reconciles: the walkthrough cannot see them.
            if matches!(*verb, "list" | "watch") && watched.contains(&(*group, *resource)) {
                continue;
            }
            if !used.iter().any(|(g, r, v, _)| g == group && r == resource && v == verb) {
                unused.push(format!("{verb} {group}/{resource}"));
            }
        }
    }
    assert!(unused.is_empty(), "the operator's Role grants what its code never uses: {unused:?}");
}

#[tokio::test]
async fn a_stream_in_a_namespace_the_install_does_not_watch_is_reported_not_ignored() {
    let install = readme_install();
    let in_example: BTreeSet<String> =
        example_commands().iter().filter(|(c, _)| c.starts_with("kubectl ")).map(|(c, _)| kubectl(c).0).collect();
    for ns in &in_example {
        assert!(install.watched.contains(ns), "example uses {ns}; the README install watches {:?}", install.watched);
        assert!(install.namespaces.contains(ns), "the README creates {ns} before the install");
    }

    // What main did: the example in onair-streams, the operator watching its own namespace.
    let api = FakeApi::new();
    for ns in ["onair", "onair-streams"] {
        api.namespace(ns);
    }
    let example: LiveStream = serde_saphyr::from_str(&read("examples/livestream.yaml")).unwrap();
    let lss: Api<LiveStream> = Api::namespaced(api.client(), "onair-streams");
    lss.patch("demo", &PatchParams::apply("kubectl"), &Patch::Apply(&example)).await.unwrap();
    let metrics = Metrics::new();
    let only_own = vec!["onair".to_string()];
    onair_operator::scope::report_unwatched(api.client(), Some(&only_own), &metrics).await;
    let text = onair_telemetry::encode(&metrics.registry);
    assert!(text.contains(r#"onair_operator_unwatched_livestreams{namespace="onair-streams"} 1"#), "{text}");

    // Watching it: nothing to report.
    let metrics = Metrics::new();
    onair_operator::scope::report_unwatched(api.client(), Some(&install.watched), &metrics).await;
    assert!(!onair_telemetry::encode(&metrics.registry).contains("unwatched_livestreams{"));

    // A cluster that does not grant the cluster-wide list: the operator starts all the same.
    api.fault(Method::GET, "/apis/onair.dev/v1alpha1/livestreams", onair_testkit::kube_fake::Fault::Status(403));
    let metrics = Metrics::new();
    onair_operator::scope::report_unwatched(api.client(), Some(&only_own), &metrics).await;
    assert!(!onair_telemetry::encode(&metrics.registry).contains("unwatched_livestreams{"));
}

#[test]
fn the_walkthrough_reads_the_steps_it_runs() {
    let steps: Vec<String> = example_commands().into_iter().map(|(c, _)| c).collect();
    for needle in ["create secret generic", "apply -f examples/livestream.yaml", "-w", "patch lst", "delete lst"] {
        assert!(steps.iter().any(|s| s.contains(needle)), "no `{needle}` step in {steps:?}");
    }
}

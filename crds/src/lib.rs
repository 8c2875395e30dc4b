//! The `LiveStream` custom resource (`onair.dev/v1alpha1`): the contract between whoever wants a
//! stream to run (the apiserver's Kubernetes orchestrator, a platform team's `kubectl apply`) and
//! the operator that runs it.
//!
//! The schema in `crds/livestream.yaml` is generated from these types (`onair crd`); a test in
//! this crate fails when the committed file is stale. Rules the apiserver can enforce (ranges,
//! enums, immutability, fields that must agree) live in the schema as CEL, so a bad object is
//! refused at `kubectl apply` time; what only the operator can judge (a Secret that does not
//! exist) ends in phase `Failed` with a condition naming the field.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod conditions;

pub use conditions::{ConditionType, set_condition};

/// What a platform team (or the apiserver) asks for: one live channel's media.
// The print columns repeat `type_` by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "onair.dev",
    version = "v1alpha1",
    kind = "LiveStream",
    doc = "One channel's live media: ingest, the HLS ladder and where to watch it.",
    namespaced,
    shortname = "lst",
    category = "onair",
    status = "LiveStreamStatus",
    derive = "PartialEq",
    printcolumn(name = "Channel", type_ = "string", json_path = ".spec.channel"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Viewers", type_ = "integer", json_path = ".status.viewers"),
    printcolumn(name = "Ladder", type_ = "string", json_path = ".status.ladderLevel"),
    printcolumn(name = "Renditions", type_ = "string", json_path = ".status.renditions", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[cfg_attr(test, kube(cel))]
#[serde(rename_all = "camelCase")]
pub struct LiveStreamSpec {
    /// The apiserver's stream id (a UUID). Fixed for the resource's life.
    #[x_kube(validation = Rule::new("self == oldSelf").message("streamId is immutable"))]
    pub stream_id: uuid::Uuid,
    /// The owning user's id (a UUID). Fixed for the resource's life.
    #[x_kube(validation = Rule::new("self == oldSelf").message("userId is immutable"))]
    pub user_id: uuid::Uuid,
    /// The channel (the owner's username), for people reading `kubectl get`.
    #[schemars(length(min = 1, max = 64))]
    pub channel: String,
    /// The Secret holding the stream key's SHA-256 hash (never the key itself).
    pub stream_key_secret: SecretKeyRef,
    /// The rendition ladder: a named preset or an explicit list (exactly one).
    #[serde(default)]
    pub ladder: Ladder,
    #[serde(default)]
    pub latency: LatencyMode,
    #[serde(default)]
    pub tier: StreamTier,
    /// Who may play it: `Public` from plain URLs; `Signed` and `Followers` only from the signed,
    /// expiring ones the apiserver hands out (the media refuses plain paths). The channel's
    /// choice when the broadcast started, so it is fixed for the resource's life.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("playbackAccess is fixed for the broadcast"))]
    pub playback_access: PlaybackAccess,
    #[serde(default)]
    pub scaling: Scaling,
    /// Resources for each transcode pod; the operator's cost model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Stop the media (the playlist is ended, the pods go) without deleting the resource.
    #[serde(default)]
    pub suspend: bool,
}

/// A key in a Secret in the LiveStream's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default = "default_key_hash_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_key_hash_key() -> String {
    "keyHash".into()
}

/// Either a preset name or explicit renditions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.preset) != has(self.renditions)").message("set exactly one of ladder.preset and ladder.renditions"))]
pub struct Ladder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<LadderPreset>,
    /// Names and heights are unique; any order (players get them top first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(r, self.exists_one(o, o.height == r.height))").message("rendition heights must be unique")
    )]
    pub renditions: Option<Vec<Rendition>>,
}

impl Default for Ladder {
    fn default() -> Self {
        Self { preset: Some(LadderPreset::Standard), renditions: None }
    }
}

impl Ladder {
    /// The renditions this ladder stands for, top first.
    pub fn resolve(&self) -> Vec<Rendition> {
        match (&self.renditions, self.preset) {
            (Some(r), _) => {
                let mut r = r.clone();
                r.sort_by_key(|r| std::cmp::Reverse(r.height));
                r
            }
            (None, Some(p)) => p.renditions(),
            (None, None) => LadderPreset::Standard.renditions(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LadderPreset {
    /// 1080p, 720p, 480p, 360p.
    Full,
    /// 720p, 480p, 360p — what `onair up` encodes.
    Standard,
    /// 480p, 360p: for small nodes and free tiers.
    Economy,
}

impl LadderPreset {
    pub fn renditions(self) -> Vec<Rendition> {
        let all = [(1080, 6000), (720, 3000), (480, 1400), (360, 800)];
        let from = match self {
            Self::Full => 0,
            Self::Standard => 1,
            Self::Economy => 2,
        };
        all[from..]
            .iter()
            .map(|&(h, b)| Rendition { name: format!("{h}p"), height: h, video_bitrate_kbps: b })
            .collect()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rendition {
    #[schemars(length(min = 1, max = 16), regex(pattern = r"^[a-z0-9]+$"))]
    pub name: String,
    #[schemars(range(min = 144, max = 2160))]
    pub height: u32,
    #[schemars(range(min = 100, max = 20000))]
    pub video_bitrate_kbps: u32,
}

/// How close to the live edge players are kept.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum LatencyMode {
    /// LL-HLS: 200 ms parts with blocking playlist reload; players sit ~1 s behind the publisher.
    #[default]
    Low,
    /// Standard HLS: 1 s segments, players ~3 segments behind (~3.5 s); fewer requests per viewer.
    Normal,
}

impl LatencyMode {
    /// The media worker's `--latency` value.
    pub fn worker_arg(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum StreamTier {
    #[default]
    Free,
    Partner,
}

/// Who may play a stream (the apiserver's `playback_access`, in the resource's spelling).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum PlaybackAccess {
    #[default]
    Public,
    Signed,
    Followers,
}

impl PlaybackAccess {
    /// The media worker's `--playback-access` value.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Signed => "signed",
            Self::Followers => "followers",
        }
    }
}

/// Bounds for the stream's transcode pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minTranscoders <= self.maxTranscoders").message("scaling.minTranscoders must not exceed scaling.maxTranscoders"))]
pub struct Scaling {
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub min_transcoders: u32,
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub max_transcoders: u32,
}

fn one() -> u32 {
    1
}

impl Default for Scaling {
    fn default() -> Self {
        Self { min_transcoders: 1, max_transcoders: 1 }
    }
}

/// How much of its ladder a stream gets (the operator decides it, the workers carry it out).
pub use onair_domain::LadderLevel;

/// Where a stream is in its life. Ordered as a stream normally moves through them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum Phase {
    /// Seen, nothing created yet.
    #[default]
    Pending,
    /// Waiting for capacity.
    Queued,
    /// The pods are created; the ingest pod is not ready yet.
    Starting,
    /// The ingest pod is ready and waits for the publisher.
    Ready,
    /// A publisher is connected and renditions are being produced.
    Live,
    /// Suspended or deleted: the playlist is being finished.
    Ending,
    /// The media is gone; the resource stays until deleted (or resumed).
    Ended,
    /// Cannot run as specified; a condition says why.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Queued => "Queued",
            Self::Starting => "Starting",
            Self::Ready => "Ready",
            Self::Live => "Live",
            Self::Ending => "Ending",
            Self::Ended => "Ended",
            Self::Failed => "Failed",
        }
    }
}

/// What the operator last observed. Written only through the status subresource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LiveStreamStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// RTMP base URL the streamer publishes to (`{ingestUrl}/{stream key}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// HLS master playlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<i64>,
    /// Renditions being produced right now, top first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    /// How much of the ladder runs now (the autoscaler's decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder_level: Option<LadderLevel>,
    /// When `ladderLevel` last changed (the hysteresis hold counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_since: Option<Time>,
    /// The publisher's picture height, as last seen: no rendition is made above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_height: Option<u32>,
    /// The stream's transcode pods: what each encodes and how fast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcoders: Vec<TranscoderStatus>,
    /// The highest level allowed after a transcode pod could not keep up, and since when: the
    /// top of the ladder was shed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder_cap: Option<LadderLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_since: Option<Time>,
    /// Place in the capacity queue while `Queued` (1 is next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
}

/// One of a stream's transcode pods, as the operator assigned it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TranscoderStatus {
    /// Its part name (`t0`; its Deployment is `{name}-transcode-0`).
    pub name: String,
    /// The renditions it encodes, top first (changed at run time, without a restart).
    pub renditions: Vec<String>,
    /// The CPU it was given when it was made, in millicores (fixed for the pod's life).
    #[serde(default)]
    pub millicores: u32,
    /// Its last reported encode speed (1.0 = real time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_speed: Option<f64>,
    /// Since when it has run slower than real time (cleared when it keeps up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_since: Option<Time>,
}

/// The CustomResourceDefinition a real API server accepts as written: the derived schema with
/// two things a Kubernetes server reads differently from JSON Schema fixed up.
///
/// - An optional enum (`Option<Phase>`) is `nullable: true` with an `enum` list; the API server
///   checks an explicit `null` against that list (OpenAPI 3.0 semantics), so `null` must be in it
///   or `{"preset": null}` (what some tools send to clear a field) is refused.
/// - schemars names Rust integer widths (`uint32`); Kubernetes knows only `int32`/`int64`
///   and warns on anything else, so unsigned widths become the signed format that holds them
///   (the schema's `minimum` keeps them non-negative).
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = LiveStream::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let mut value = serde_json::to_value(&*schema).unwrap_or_default();
            kubernetes_schema(&mut value);
            if let Ok(fixed) = serde_json::from_value(value) {
                *schema = fixed;
            }
        }
    }
    crd
}

/// Walk a derived JSON schema and rewrite what Kubernetes reads differently (see [`crd`]).
fn kubernetes_schema(node: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = node else {
        if let Value::Array(items) = node {
            items.iter_mut().for_each(kubernetes_schema);
        }
        return;
    };
    if map.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    if let Some(Value::String(format)) = map.get("format") {
        match kubernetes_int_format(format) {
            Some(k8s) => drop(map.insert("format".into(), Value::String(k8s.into()))),
            None if format.starts_with("int") || format.starts_with("uint") => drop(map.remove("format")),
            None => {}
        }
    }
    for (key, child) in map.iter_mut() {
        // `enum` and `default` hold data, not schemas.
        if key != "enum" && key != "default" && key != "example" {
            kubernetes_schema(child);
        }
    }
}

/// The Kubernetes integer format that holds a schemars integer format, if any.
fn kubernetes_int_format(format: &str) -> Option<&'static str> {
    match format {
        "int32" | "int8" | "int16" | "uint8" | "uint16" => Some("int32"),
        "int64" | "uint32" => Some("int64"),
        _ => None,
    }
}

/// The CustomResourceDefinition as YAML, as committed in `crds/livestream.yaml`.
pub fn crd_yaml() -> String {
    let crd = crd();
    let body = serde_saphyr::to_string(&crd).unwrap_or_else(|e| format!("# cannot render the CRD: {e}\n"));
    format!("# Generated from crds/src/lib.rs by `onair crd`; do not edit.\n---\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> serde_json::Value {
        json!({
            "streamId": "0195e4a0-0000-7000-8000-000000000001",
            "userId": "0195e4a0-0000-7000-8000-000000000002",
            "channel": "alice",
            "streamKeySecret": {"name": "alice-key"},
        })
    }

    fn object(spec: serde_json::Value) -> LiveStream {
        serde_json::from_value(json!({
            "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
            "metadata": {"name": "alice", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn committed_crd_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/livestream.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "crds/livestream.yaml is stale: run `cargo run -p onair-cli -- crd > crds/livestream.yaml`"
        );
    }

    #[test]
    fn identity_matches_the_domain_contract() {
        let crd = crd();
        assert_eq!(crd.spec.group, "onair.dev");
        assert_eq!(crd.spec.names.kind, "LiveStream");
        assert_eq!(crd.spec.names.short_names, Some(vec!["lst".to_string()]));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
        let columns: Vec<_> = v.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        assert!(columns.contains(&"Phase") && columns.contains(&"Viewers") && columns.contains(&"Age"));
    }

    #[test]
    fn conditions_merge_by_type_and_defaults_are_in_the_schema() {
        let yaml = crd_yaml();
        let v: serde_json::Value = serde_json::to_value(crd()).unwrap();
        let status = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        let conditions = &status["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
        let spec = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["latency"]["default"], "Low");
        assert_eq!(spec["properties"]["tier"]["default"], "Free");
        assert_eq!(spec["properties"]["suspend"]["default"], false);
        assert!(yaml.contains("x-kubernetes-validations"));
    }

    #[test]
    fn a_minimal_spec_gets_the_defaults() {
        let ls = object(spec());
        assert_eq!(ls.spec.ladder, Ladder::default());
        assert_eq!(ls.spec.latency, LatencyMode::Low);
        assert_eq!(ls.spec.tier, StreamTier::Free);
        assert_eq!(ls.spec.scaling, Scaling::default());
        assert_eq!(ls.spec.stream_key_secret.key, "keyHash");
        assert!(!ls.spec.suspend);
        let names: Vec<_> = ls.spec.ladder.resolve().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["720p", "480p", "360p"]);
    }

    #[test]
    fn cel_accepts_a_valid_object() {
        let mut s = spec();
        s["ladder"] = json!({"renditions": [
            {"name": "480p", "height": 480, "videoBitrateKbps": 1400},
            {"name": "720p", "height": 720, "videoBitrateKbps": 3000},
        ]});
        s["scaling"] = json!({"minTranscoders": 1, "maxTranscoders": 3});
        let ls = object(s);
        assert!(ls.validate_cel().is_ok(), "{:?}", ls.validate_cel());
        let names: Vec<_> = ls.spec.ladder.resolve().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["720p", "480p"], "resolve orders top first");
    }

    #[test]
    fn cel_refuses_what_must_hold_together() {
        let table = [
            (
                "both ladder forms",
                json!({"ladder": {"preset": "Full", "renditions": [{"name": "a", "height": 480, "videoBitrateKbps": 900}]}}),
                "exactly one",
            ),
            ("no ladder form", json!({"ladder": {}}), "exactly one"),
            ("min above max", json!({"scaling": {"minTranscoders": 4, "maxTranscoders": 2}}), "must not exceed"),
            (
                "duplicate heights",
                json!({"ladder": {"renditions": [
                    {"name": "a", "height": 480, "videoBitrateKbps": 900},
                    {"name": "b", "height": 480, "videoBitrateKbps": 800},
                ]}}),
                "unique",
            ),
        ];
        for (case, patch, want) in table {
            let mut s = spec();
            for (k, v) in patch.as_object().unwrap() {
                s[k] = v.clone();
            }
            let ls = object(s);
            let err = ls.validate_cel().expect_err(case);
            assert!(format!("{err:?}").contains(want), "{case}: {err:?}");
        }
    }

    #[test]
    fn cel_keeps_ids_immutable() {
        let old = object(spec());
        let mut s = spec();
        s["streamId"] = json!("0195e4a0-0000-7000-8000-0000000000ff");
        let changed = object(s);
        let err = changed.validate_cel_update(&old).expect_err("stream id changed");
        assert!(format!("{err:?}").contains("streamId is immutable"), "{err:?}");
        let mut s = spec();
        s["suspend"] = json!(true);
        s["tier"] = json!("Partner");
        assert!(object(s).validate_cel_update(&old).is_ok(), "suspend and tier may change");
        let mut s = spec();
        s["playbackAccess"] = json!("Followers");
        let err = object(s).validate_cel_update(&old).expect_err("playback access changed");
        assert!(format!("{err:?}").contains("playbackAccess is fixed"), "{err:?}");
    }

    /// Every schema node of the CRD, depth first.
    fn nodes(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        match v {
            serde_json::Value::Object(m) => {
                out.push(v.clone());
                m.iter().filter(|(k, _)| *k != "enum" && *k != "default").for_each(|(_, c)| nodes(c, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| nodes(c, out)),
            _ => {}
        }
    }

    #[test]
    fn every_nullable_enum_accepts_an_explicit_null() {
        let v = serde_json::to_value(crd()).unwrap();
        let mut all = Vec::new();
        nodes(&v["spec"]["versions"][0]["schema"]["openAPIV3Schema"], &mut all);
        let enums: Vec<_> = all.iter().filter(|n| n["nullable"] == true && n.get("enum").is_some()).collect();
        assert!(enums.len() >= 4, "preset, phase, ladderLevel, ladderCap at least: {}", enums.len());
        for e in enums {
            assert!(e["enum"].as_array().unwrap().contains(&serde_json::Value::Null), "{e}");
        }
    }

    #[test]
    fn formats_are_ones_kubernetes_knows() {
        let v = serde_json::to_value(crd()).unwrap();
        let mut all = Vec::new();
        nodes(&v, &mut all);
        let known = ["int32", "int64", "float", "double", "byte", "date", "date-time", "password", "uuid"];
        for n in all {
            if let Some(f) = n.get("format").and_then(|f| f.as_str()) {
                assert!(known.contains(&f), "format {f} is not one Kubernetes knows: {n}");
            }
        }
    }

    #[test]
    fn the_ladder_text_says_what_the_schema_enforces() {
        // The rule only demands unique heights; the operator sorts (resolve), so any order runs.
        let v = serde_json::to_value(crd()).unwrap();
        let renditions = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["ladder"]
            ["properties"]["renditions"];
        let text = renditions["description"].as_str().unwrap();
        assert!(!text.contains("decreasing"), "the schema does not enforce an order: {text}");
        let mut s = spec();
        s["ladder"] = json!({"renditions": [
            {"name": "360p", "height": 360, "videoBitrateKbps": 800},
            {"name": "720p", "height": 720, "videoBitrateKbps": 3000},
            {"name": "480p", "height": 480, "videoBitrateKbps": 1400},
        ]});
        let ls = object(s);
        assert!(ls.validate_cel().is_ok());
        let heights: Vec<_> = ls.spec.ladder.resolve().into_iter().map(|r| r.height).collect();
        assert_eq!(heights, [720, 480, 360]);
    }
}

//! What a `LiveStream` should have running, as pure functions of its spec, the operator's
//! configuration and the autoscaler's assignment of renditions to pods: the ingest Deployment
//! (the publisher, the source passed through, the stream's HLS origin), one Deployment per
//! transcode pod, the RTMP and HLS Services in front of the ingest pod, a PodDisruptionBudget
//! for partner streams and, when configured, the playback Ingress. Applied with Server-Side
//! Apply, so these are full intents: whatever is left out here is removed from the live object.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
    SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource as _, ResourceExt as _};
use onair_crds::{LiveStream, PlaybackAccess, StreamTier};
use secrecy::ExposeSecret as _;

use crate::config::OperatorConfig;
use crate::scaling::Part;

pub const RTMP_PORT: i32 = 1935;
pub const HTTP_PORT: i32 = 8090;
pub const MEDIA_DIR: &str = "/var/lib/onair/media";
/// The image's non-root user (see transcoder-image/Dockerfile).
pub const MEDIA_UID: i64 = 10001;
/// Names get suffixes up to `-transcode-15` and must stay DNS labels (63 characters).
pub const MAX_NAME_LEN: usize = 50;

pub const LABEL_STREAM_ID: &str = "onair.dev/stream-id";
pub const LABEL_LIVESTREAM: &str = "onair.dev/livestream";
/// `ingest` or `transcode`.
pub const LABEL_ROLE: &str = "onair.dev/role";
/// A transcode pod's part (`t0`).
pub const LABEL_PART: &str = "onair.dev/part";
pub const MANAGED_BY: &str = "onair-operator";

/// Every object made for one LiveStream.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub ingest: Deployment,
    /// One per transcode pod, in part order.
    pub transcoders: Vec<Deployment>,
    pub ingest_service: Service,
    pub hls_service: Service,
    pub pdb: Option<PodDisruptionBudget>,
    pub ingress: Option<Ingress>,
}

/// Keys of the media Secret every media pod reads (`secret_env` below).
pub const MEDIA_SECRET_TOKEN_KEY: &str = "internal-token";
pub const MEDIA_SECRET_REDIS_KEY: &str = "redis-url";
/// The recordings store's keys, when the operator was given them (else the pods' environment).
pub const MEDIA_SECRET_RECORDINGS_KEY_ID: &str = "recordings-access-key-id";
pub const MEDIA_SECRET_RECORDINGS_SECRET_KEY: &str = "recordings-secret-access-key";
/// Signed playback URLs' keys and the edge secret, when the operator was given them.
pub const MEDIA_SECRET_PLAYBACK_KEYS: &str = "playback-keys";
pub const MEDIA_SECRET_EDGE_SECRET: &str = "edge-secret";

/// The Secret media pods in `namespace` read the internal token and Redis from. Shared by
/// every stream of the namespace, so owned by none of them (it outlives each stream).
pub fn media_secret(namespace: &str, config: &OperatorConfig) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(config.media_secret.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".to_string(), MANAGED_BY.to_string()),
                ("app.kubernetes.io/part-of".to_string(), "onair".to_string()),
            ])),
            ..Default::default()
        },
        data: Some({
            let mut data = BTreeMap::from([
                (MEDIA_SECRET_TOKEN_KEY.to_string(), bytes(config.internal_token.expose_secret())),
                (MEDIA_SECRET_REDIS_KEY.to_string(), bytes(config.media_redis_url.expose_secret())),
            ]);
            if let (Some(id), Some(secret)) = (&config.recordings.access_key_id, &config.recordings.secret_access_key) {
                data.insert(MEDIA_SECRET_RECORDINGS_KEY_ID.to_string(), bytes(id.expose_secret()));
                data.insert(MEDIA_SECRET_RECORDINGS_SECRET_KEY.to_string(), bytes(secret.expose_secret()));
            }
            if let Some(keys) = &config.origin.playback_keys {
                data.insert(MEDIA_SECRET_PLAYBACK_KEYS.to_string(), bytes(keys.expose_secret()));
            }
            if let Some(edge) = &config.origin.edge_secret {
                data.insert(MEDIA_SECRET_EDGE_SECRET.to_string(), bytes(edge.expose_secret()));
            }
            data
        }),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Object names for a LiveStream called `name`.
pub fn media_name(name: &str) -> String {
    format!("{name}-media")
}
/// The RTMP Service and the ingest Deployment.
pub fn ingest_name(name: &str) -> String {
    format!("{name}-ingest")
}
pub fn hls_name(name: &str) -> String {
    format!("{name}-hls")
}
/// A transcode pod's Deployment: part `t3` is `{name}-transcode-3`.
pub fn transcode_name(name: &str, part: &str) -> String {
    format!("{name}-transcode-{}", part.trim_start_matches('t'))
}

/// The labels on every object (and pod) of a LiveStream.
pub fn labels(ls: &LiveStream) -> BTreeMap<String, String> {
    let mut l = selector(ls);
    l.insert("app.kubernetes.io/part-of".into(), "onair".into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert(LABEL_STREAM_ID.into(), ls.spec.stream_id.to_string());
    l
}

/// The labels that pick one role's pods (and a transcode pod's part).
fn role_selector(ls: &LiveStream, role: &str, part: Option<&str>) -> BTreeMap<String, String> {
    let mut l = selector(ls);
    l.insert(LABEL_ROLE.into(), role.into());
    if let Some(p) = part {
        l.insert(LABEL_PART.into(), p.into());
    }
    l
}

/// The labels that pick all of a LiveStream's pods.
pub fn selector(ls: &LiveStream) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "onair-media".to_string()),
        ("app.kubernetes.io/component".to_string(), "media".to_string()),
        ("app.kubernetes.io/instance".to_string(), ls.name_any()),
        (LABEL_LIVESTREAM.to_string(), ls.name_any()),
    ])
}

pub fn selector_string(ls: &LiveStream) -> String {
    selector(ls).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn meta(ls: &LiveStream, name: String) -> ObjectMeta {
    let owner = OwnerReference {
        api_version: LiveStream::api_version(&()).into_owned(),
        kind: LiveStream::kind(&()).into_owned(),
        name: ls.name_any(),
        uid: ls.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    ObjectMeta {
        name: Some(name),
        namespace: ls.namespace(),
        labels: Some(labels(ls)),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

/// The `--ladder` argument of the worker for this spec (`720p:3000k,480p:1400k`).
pub fn ladder_arg(ls: &LiveStream) -> String {
    ls.spec
        .ladder
        .resolve()
        .iter()
        .map(|r| format!("{}p:{}k", r.height, r.video_bitrate_kbps))
        .collect::<Vec<_>>()
        .join(",")
}

fn resources(millicores: u32, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(format!("{millicores}m"))),
            ("memory".into(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity(memory_limit.into()))])),
        ..Default::default()
    }
}

/// A transcode pod's CPU request when the spec names none: what the autoscaler's cost model
/// said its renditions take when it was made (see `scaling::pack`). It does not follow later
/// changes of its renditions: a changed pod template would restart the pod.
pub fn transcode_resources(part: &Part) -> ResourceRequirements {
    resources(part.millicores.max(crate::scaling::MIN_POD_MILLICORES), "256Mi", "1Gi")
}

/// The ingest pod remuxes (no encode) and decodes a keyframe now and then for the thumbnail.
pub const INGEST_MILLICORES: u32 = 100;

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// Where an ingest pod stores what it records (nothing when the operator has no store). Transcode
/// pods stream their renditions into the ingest pod's packager: it is the one uploader.
fn recording_env(config: &OperatorConfig) -> Vec<EnvVar> {
    if !config.records() {
        return Vec::new();
    }
    let r = &config.recordings;
    let mut vars = vec![
        env("ONAIR_RECORDINGS_URL", r.url.trim()),
        env("ONAIR_RECORDINGS_REGION", r.region.clone()),
        env("ONAIR_RECORDINGS_VIRTUAL_HOSTED", r.virtual_hosted_style.to_string()),
    ];
    if let Some(endpoint) = r.endpoint.as_deref().filter(|e| !e.is_empty()) {
        vars.push(env("ONAIR_RECORDINGS_ENDPOINT", endpoint));
    }
    if let Some(allow) = r.allow_http {
        vars.push(env("ONAIR_RECORDINGS_ALLOW_HTTP", allow.to_string()));
    }
    if r.access_key_id.is_some() && r.secret_access_key.is_some() {
        vars.push(secret_env("ONAIR_RECORDINGS_ACCESS_KEY_ID", &config.media_secret, MEDIA_SECRET_RECORDINGS_KEY_ID));
        vars.push(secret_env(
            "ONAIR_RECORDINGS_SECRET_ACCESS_KEY",
            &config.media_secret,
            MEDIA_SECRET_RECORDINGS_SECRET_KEY,
        ));
    }
    vars
}

/// How a media pod serves HLS: the keys of signed URLs and the edge secret (from the media
/// Secret), the direct-viewer capacity (0s are left out: the worker's default is no limit).
fn origin_env(config: &OperatorConfig) -> Vec<EnvVar> {
    let o = &config.origin;
    let mut vars = Vec::new();
    if o.playback_keys.is_some() {
        vars.push(secret_env("ONAIR_PLAYBACK_KEYS", &config.media_secret, MEDIA_SECRET_PLAYBACK_KEYS));
    }
    if o.edge_secret.is_some() {
        vars.push(secret_env("ONAIR_EDGE_SECRET", &config.media_secret, MEDIA_SECRET_EDGE_SECRET));
    }
    for (name, rate) in [
        ("ONAIR_ORIGIN_REQUESTS_PER_SEC", o.origin_requests_per_sec),
        ("ONAIR_ORIGIN_BYTES_PER_SEC", o.origin_bytes_per_sec),
        ("ONAIR_ORIGIN_STREAM_REQUESTS_PER_SEC", o.origin_stream_requests_per_sec),
        ("ONAIR_ORIGIN_STREAM_BYTES_PER_SEC", o.origin_stream_bytes_per_sec),
    ] {
        if rate > 0 {
            vars.push(env(name, rate.to_string()));
        }
    }
    vars
}

/// The apiserver labels the LiveStreams it creates; a platform team's own have no row there.
pub fn made_by_apiserver(ls: &LiveStream) -> bool {
    ls.labels().get("app.kubernetes.io/managed-by").is_some_and(|m| m == "onair-apiserver")
}

/// Whether the media should run: not suspended. (Ending on deletion is the finalizer's job.)
pub fn wants_media(ls: &LiveStream) -> bool {
    !ls.spec.suspend
}

/// One media worker Deployment: the hardened pod every role shares, with the role's flags.
fn worker(
    ls: &LiveStream,
    config: &OperatorConfig,
    name: String,
    select: BTreeMap<String, String>,
    role_env: Vec<EnvVar>,
    resources: ResourceRequirements,
) -> Deployment {
    let spec = &ls.spec;
    let http_probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    let mut env_vars = vec![
        env("ONAIR_RTMP_LISTEN", format!("0.0.0.0:{RTMP_PORT}")),
        env("ONAIR_MEDIA_LISTEN", format!("0.0.0.0:{HTTP_PORT}")),
        env("ONAIR_APISERVER_URL", config.apiserver_url.clone()),
        env("ONAIR_MEDIA_DIR", MEDIA_DIR),
        env("ONAIR_STREAM_ID", spec.stream_id.to_string()),
        env("ONAIR_TIER", if spec.tier == StreamTier::Partner { "partner" } else { "free" }),
        // The ingest pod and its transcode pods agree on LL-HLS or standard HLS.
        env("ONAIR_LATENCY", spec.latency.worker_arg()),
        env("ONAIR_LOG_FORMAT", "json"),
    ];
    // A restricted stream's pods refuse its plain playback paths whatever the apiserver says (or
    // when it cannot). Absent for public ones, the default: an operator upgrade leaves the pod
    // templates of running public streams as they were (a changed template restarts them).
    if spec.playback_access != PlaybackAccess::Public {
        env_vars.push(env("ONAIR_PLAYBACK_ACCESS", spec.playback_access.flag()));
    }
    env_vars.extend(role_env);
    env_vars.extend(origin_env(config));
    env_vars.extend([
        secret_env("ONAIR_INTERNAL_TOKEN", &config.media_secret, MEDIA_SECRET_TOKEN_KEY),
        secret_env("ONAIR_REDIS_URL", &config.media_secret, MEDIA_SECRET_REDIS_KEY),
    ]);
    let container = Container {
        name: "media".into(),
        image: Some(config.media_image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        args: Some(vec!["media".into()]),
        env: Some(env_vars),
        ports: Some(vec![
            ContainerPort { name: Some("rtmp".into()), container_port: RTMP_PORT, ..Default::default() },
            ContainerPort { name: Some("http".into()), container_port: HTTP_PORT, ..Default::default() },
        ]),
        readiness_probe: Some(http_probe("/readyz", 2, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        resources: Some(resources),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount { name: "media".into(), mount_path: MEDIA_DIR.into(), ..Default::default() },
            VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..Default::default() },
        ]),
        ..Default::default()
    };
    let mut pod_labels = labels(ls);
    pod_labels.extend(select.clone());
    let empty_dir = |name: &str, size: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource { size_limit: Some(Quantity(size.into())), ..Default::default() }),
        ..Default::default()
    };
    // The Deployment carries its role (and part) too: the operator finds its transcoders by it.
    let mut metadata = meta(ls, name);
    metadata.labels.get_or_insert_with(BTreeMap::new).extend(select.clone());
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(if wants_media(ls) { 1 } else { 0 }),
            selector: LabelSelector { match_labels: Some(select), ..Default::default() },
            // One publisher, one pod (one part, one pod): never two workers racing.
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(MEDIA_UID),
                        run_as_group: Some(MEDIA_UID),
                        fs_group: Some(MEDIA_UID),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    volumes: Some(vec![empty_dir("media", "2Gi"), empty_dir("tmp", "64Mi")]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

/// Everything `ls` should have, with its renditions assigned to transcode pods as `parts` says.
pub fn desired(ls: &LiveStream, config: &OperatorConfig, parts: &[Part]) -> Desired {
    let name = ls.name_any();
    let spec = &ls.spec;
    let ingest = worker(
        ls,
        config,
        ingest_name(&name),
        role_selector(ls, "ingest", None),
        [
            env("ONAIR_MEDIA_ROLE", "ingest"),
            // Streams the apiserver made are confirmed by it too; others have only the hash.
            env("ONAIR_TRUST_KEY_HASH", (!made_by_apiserver(ls)).to_string()),
            secret_env("ONAIR_STREAM_KEY_HASH", &spec.stream_key_secret.name, &spec.stream_key_secret.key),
        ]
        .into_iter()
        .chain(recording_env(config))
        .collect(),
        resources(INGEST_MILLICORES, "128Mi", "512Mi"),
    );
    let source_url =
        format!("http://{}.{}.svc:{HTTP_PORT}", hls_name(&name), ls.namespace().unwrap_or_else(|| "default".into()));
    let transcoders = parts
        .iter()
        .map(|part| {
            worker(
                ls,
                config,
                transcode_name(&name, &part.name),
                role_selector(ls, "transcode", Some(&part.name)),
                vec![
                    env("ONAIR_MEDIA_ROLE", "transcode"),
                    env("ONAIR_LADDER", ladder_arg(ls)),
                    env("ONAIR_TRANSCODER_PART", part.name.clone()),
                    env("ONAIR_SOURCE_URL", source_url.clone()),
                ],
                spec.resources.clone().unwrap_or_else(|| transcode_resources(part)),
            )
        })
        .collect();
    let service = |svc_name: String, type_: &str, port_name: &str, port: i32| Service {
        metadata: meta(ls, svc_name),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(role_selector(ls, "ingest", None)),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port,
                target_port: Some(IntOrString::String(port_name.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    let ingest_service = service(ingest_name(&name), &config.ingest_service_type, "rtmp", RTMP_PORT);
    let hls_service = service(hls_name(&name), "ClusterIP", "http", HTTP_PORT);
    // A partner's live stream is not evicted by a voluntary disruption (a node drain waits for
    // the broadcast to end or for the drain's timeout): neither its ingest pod nor its transcode
    // pods. Free streams are restarted elsewhere: the publisher reconnects through the gateway,
    // and viewers keep the source and the other renditions while a transcode pod moves.
    let pdb = (spec.tier == StreamTier::Partner && wants_media(ls)).then(|| PodDisruptionBudget {
        metadata: meta(ls, media_name(&name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(0)),
            selector: Some(LabelSelector { match_labels: Some(selector(ls)), ..Default::default() }),
            ..Default::default()
        }),
        status: None,
    });
    let ingress = (!config.playback_ingress_class.is_empty()).then(|| Ingress {
        metadata: meta(ls, hls_name(&name)),
        spec: Some(IngressSpec {
            ingress_class_name: Some(config.playback_ingress_class.clone()),
            rules: Some(vec![IngressRule {
                host: (!config.playback_host.is_empty()).then(|| config.playback_host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(format!("/hls/{}", spec.stream_id)),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: hls_name(&name),
                                port: Some(ServiceBackendPort { name: Some("http".into()), ..Default::default() }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        status: None,
    });
    Desired { ingest, transcoders, ingest_service, hls_service, pdb, ingress }
}

/// What the operator itself refuses in a spec the schema let through (an object created
/// before a schema rule existed, or a rule the apiserver cannot express): the field and why.
pub fn validate(ls: &LiveStream) -> Result<(), (String, String)> {
    let name = ls.name_any();
    if name.len() > MAX_NAME_LEN {
        return Err(("metadata.name".into(), format!("at most {MAX_NAME_LEN} characters (objects get suffixes)")));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(("metadata.name".into(), "must start with a letter (Service names are DNS labels)".into()));
    }
    let ladder = ls.spec.ladder.resolve();
    if ladder.is_empty() {
        return Err(("spec.ladder".into(), "has no renditions".into()));
    }
    let mut heights: Vec<u32> = ladder.iter().map(|r| r.height).collect();
    heights.dedup();
    if heights.len() != ladder.len() {
        return Err(("spec.ladder.renditions".into(), "rendition heights must be unique".into()));
    }
    if let Some(r) = ladder.iter().find(|r| !(144..=2160).contains(&r.height) || r.height % 2 == 1) {
        return Err(("spec.ladder.renditions".into(), format!("{}: height must be even and within 144-2160", r.name)));
    }
    if ls.spec.scaling.min_transcoders > ls.spec.scaling.max_transcoders {
        return Err(("spec.scaling".into(), "minTranscoders must not exceed maxTranscoders".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn config() -> OperatorConfig {
        OperatorConfig::from_args(["--internal-token", "t", "--media-image", "onair:test"]).unwrap()
    }

    /// Only the ingest pod uploads, with the store's keys from the media Secret, never inline;
    /// without a store no pod hears of recording.
    #[test]
    fn the_ingest_pod_records_with_keys_from_the_media_secret() {
        let mut c = OperatorConfig::from_args([
            "--internal-token",
            "t",
            "--recordings-url",
            "s3://vods/prod",
            "--recordings-endpoint",
            "http://minio:9000",
            "--recordings-access-key-id",
            "AKID",
            "--recordings-secret-access-key",
            "SECRET",
        ])
        .unwrap();
        let part = Part { name: "t0".into(), renditions: vec!["360p".into()], millicores: 100 };
        let d = desired(&ls(json!({})), &c, std::slice::from_ref(&part));
        let env = env_of(&d.ingest);
        assert_eq!(env["ONAIR_RECORDINGS_URL"]["value"], "s3://vods/prod");
        assert_eq!(env["ONAIR_RECORDINGS_ENDPOINT"]["value"], "http://minio:9000");
        assert_eq!(
            env["ONAIR_RECORDINGS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"],
            json!({"name": "onair-media", "key": MEDIA_SECRET_RECORDINGS_SECRET_KEY, "optional": false})
        );
        assert!(env.values().all(|e| e.get("value") != Some(&json!("SECRET"))), "keys are never inlined");
        assert!(!env_of(&d.transcoders[0]).contains_key("ONAIR_RECORDINGS_URL"), "transcode pods do not upload");
        let secret = media_secret("streams", &c);
        let data = secret.data.unwrap();
        assert_eq!(data[MEDIA_SECRET_RECORDINGS_SECRET_KEY].0, b"SECRET");
        assert_eq!(data[MEDIA_SECRET_RECORDINGS_KEY_ID].0, b"AKID");
        c.check().unwrap();

        let plain = config();
        let d = desired(&ls(json!({})), &plain, &[part]);
        assert!(!env_of(&d.ingest).keys().any(|k| k.starts_with("ONAIR_RECORDINGS")));
        assert_eq!(media_secret("streams", &plain).data.unwrap().len(), 2);
        // A directory is each pod's own: refused.
        for dir in ["file:///data/rec", ".onair/recordings"] {
            c.recordings.url = dir.into();
            assert!(c.check().is_err(), "{dir}");
        }
    }

    /// Media pods verify signed playback URLs and know their edges with values from the media
    /// Secret, never inline; the direct-viewer capacity is plain; unset, none of it appears.
    #[test]
    fn media_pods_get_the_origin_settings_with_secrets_from_the_media_secret() {
        let c = OperatorConfig::from_args([
            "--internal-token",
            "t",
            "--playback-keys",
            "k1:KEYSECRET",
            "--edge-secret",
            "EDGESECRET",
            "--origin-requests-per-sec",
            "500",
        ])
        .unwrap();
        let part = Part { name: "t0".into(), renditions: vec!["360p".into()], millicores: 100 };
        let d = desired(&ls(json!({})), &c, std::slice::from_ref(&part));
        let env = env_of(&d.ingest);
        assert_eq!(
            env["ONAIR_PLAYBACK_KEYS"]["valueFrom"]["secretKeyRef"],
            json!({"name": "onair-media", "key": MEDIA_SECRET_PLAYBACK_KEYS, "optional": false})
        );
        assert_eq!(
            env["ONAIR_EDGE_SECRET"]["valueFrom"]["secretKeyRef"],
            json!({"name": "onair-media", "key": MEDIA_SECRET_EDGE_SECRET, "optional": false})
        );
        assert_eq!(env["ONAIR_ORIGIN_REQUESTS_PER_SEC"]["value"], "500");
        assert!(!env.contains_key("ONAIR_ORIGIN_BYTES_PER_SEC"), "an unset limit is left out");
        let inlined = |v: &str| env.values().any(|e| e.get("value") == Some(&json!(v)));
        assert!(!inlined("k1:KEYSECRET") && !inlined("EDGESECRET"), "secrets are never inlined");
        let data = media_secret("streams", &c).data.unwrap();
        assert_eq!(data[MEDIA_SECRET_PLAYBACK_KEYS].0, b"k1:KEYSECRET");
        assert_eq!(data[MEDIA_SECRET_EDGE_SECRET].0, b"EDGESECRET");

        let d = desired(&ls(json!({})), &config(), &[part]);
        let env = env_of(&d.ingest);
        assert!(
            !env.keys()
                .any(|k| k.starts_with("ONAIR_ORIGIN") || k == "ONAIR_PLAYBACK_KEYS" || k == "ONAIR_EDGE_SECRET")
        );
    }

    fn ls(spec: serde_json::Value) -> LiveStream {
        let mut base = json!({
            "streamId": "0195e4a0-0000-7000-8000-000000000001",
            "userId": "0195e4a0-0000-7000-8000-000000000002",
            "channel": "alice",
            "streamKeySecret": {"name": "alice-key"},
        });
        for (k, v) in spec.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(json!({
            "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
            "metadata": {"name": "alice", "namespace": "streams", "uid": "u-1", "generation": 3},
            "spec": base,
        }))
        .unwrap()
    }

    fn env_of(dep: &Deployment) -> BTreeMap<String, serde_json::Value> {
        let c = &dep.spec.template.spec.as_ref().unwrap().containers[0];
        c.env.iter().flatten().map(|e| (e.name.clone(), serde_json::to_value(e).unwrap())).collect()
    }

    fn part(name: &str, renditions: &[&str]) -> Part {
        let renditions: Vec<String> = renditions.iter().map(|r| r.to_string()).collect();
        let millicores =
            crate::scaling::SOURCE_DECODE_COST + renditions.iter().map(|r| crate::scaling::cost_of(r)).sum::<u32>();
        Part { name: name.into(), renditions, millicores }
    }

    fn cpu(dep: &Deployment) -> Quantity {
        let c = &dep.spec.template.spec.as_ref().unwrap().containers[0];
        c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].clone()
    }

    #[test]
    fn a_default_stream_gets_a_hardened_ingest_pod_transcode_pods_and_two_services() {
        let stream = ls(json!({}));
        let parts = [part("t0", &["720p", "480p"]), part("t1", &["360p"])];
        let d = desired(&stream, &config(), &parts);
        let ingest = &d.ingest;
        assert_eq!(ingest.metadata.name.as_deref(), Some("alice-ingest"));
        assert_eq!(ingest.metadata.namespace.as_deref(), Some("streams"));
        let owner = &ingest.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("LiveStream", "u-1", Some(true)));
        for dep in std::iter::once(ingest).chain(&d.transcoders) {
            let spec = &dep.spec;
            assert_eq!(spec.replicas, Some(1));
            assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
            let pod = spec.template.spec.as_ref().unwrap();
            let c = &pod.containers[0];
            assert_eq!(c.image.as_deref(), Some("onair:test"));
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(
                (sc.read_only_root_filesystem, sc.run_as_non_root, sc.allow_privilege_escalation),
                (Some(true), Some(true), Some(false))
            );
            assert_eq!(sc.capabilities.as_ref().unwrap().drop, Some(vec!["ALL".to_string()]));
            assert_eq!(pod.security_context.as_ref().unwrap().run_as_user, Some(MEDIA_UID));
            assert_eq!(c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/readyz"));
            let env = env_of(dep);
            assert_eq!(env["ONAIR_STREAM_ID"]["value"], "0195e4a0-0000-7000-8000-000000000001");
            assert_eq!(env["ONAIR_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"], "onair-media");
            assert!(env.values().all(|e| e.get("value") != Some(&json!("t"))), "the internal token is never inlined");
            // The pod template's labels satisfy its own selector.
            let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
                assert_eq!(labels.get(k), Some(v), "{k}");
            }
            assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGED_BY);
            assert_eq!(labels[LABEL_STREAM_ID], "0195e4a0-0000-7000-8000-000000000001");
        }
        let env = env_of(ingest);
        assert_eq!(env["ONAIR_MEDIA_ROLE"]["value"], "ingest");
        assert_eq!(env["ONAIR_TRUST_KEY_HASH"]["value"], "true", "not made by the apiserver: the hash decides");
        assert_eq!(
            env["ONAIR_STREAM_KEY_HASH"]["valueFrom"]["secretKeyRef"],
            json!({"name": "alice-key", "key": "keyHash", "optional": false})
        );
        assert_eq!(cpu(ingest), Quantity("100m".into()), "the ingest pod only remuxes");

        let names: Vec<_> = d.transcoders.iter().map(|t| t.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["alice-transcode-0", "alice-transcode-1"]);
        let t0 = env_of(&d.transcoders[0]);
        assert_eq!(t0["ONAIR_MEDIA_ROLE"]["value"], "transcode");
        assert!(!t0.contains_key("ONAIR_RENDITIONS"), "renditions come at run time: changing them restarts nothing");
        assert_eq!(t0["ONAIR_TRANSCODER_PART"]["value"], "t0");
        assert_eq!(t0["ONAIR_SOURCE_URL"]["value"], "http://alice-hls.streams.svc:8090");
        assert_eq!(t0["ONAIR_LADDER"]["value"], "720p:3000k,480p:1400k,360p:800k");
        assert!(!t0.contains_key("ONAIR_STREAM_KEY_HASH"), "a transcode pod never sees the key");
        // CPU requests follow the cost model: the source's decode (60m) + 350m + 160m; 60m + 90m.
        assert_eq!(
            (cpu(&d.transcoders[0]), cpu(&d.transcoders[1])),
            (Quantity("570m".into()), Quantity("150m".into()))
        );
        let t1_select = d.transcoders[1].spec.selector.match_labels.as_ref().unwrap();
        assert_eq!((t1_select[LABEL_ROLE].as_str(), t1_select[LABEL_PART].as_str()), ("transcode", "t1"));

        // Both Services reach the ingest pod only.
        for svc in [&d.ingest_service, &d.hls_service] {
            let select = svc.spec.as_ref().unwrap().selector.as_ref().unwrap();
            assert_eq!(select[LABEL_ROLE], "ingest");
        }
        assert_eq!(d.ingest_service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, RTMP_PORT);
        assert_eq!(d.ingest_service.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"));
        assert_eq!(d.hls_service.metadata.name.as_deref(), Some("alice-hls"));
        assert!(d.pdb.is_none(), "free streams get no PDB");
        assert!(d.ingress.is_none(), "no Ingress unless a class is configured");
        assert!(desired(&stream, &config(), &[]).transcoders.is_empty(), "passthrough: the ingest pod alone");
    }

    #[test]
    fn the_spec_drives_ladder_resources_pdb_and_replicas() {
        let table: Vec<(&str, serde_json::Value, &str, Option<i32>, bool)> = vec![
            ("economy preset", json!({"ladder": {"preset": "Economy"}}), "480p:1400k,360p:800k", Some(1), false),
            (
                "explicit ladder",
                json!({"ladder": {"renditions": [{"name": "low", "height": 240, "videoBitrateKbps": 300}, {"name": "hd", "height": 1080, "videoBitrateKbps": 6500}]}}),
                "1080p:6500k,240p:300k",
                Some(1),
                false,
            ),
            ("partner", json!({"tier": "Partner"}), "720p:3000k,480p:1400k,360p:800k", Some(1), true),
            (
                "suspended partner",
                json!({"tier": "Partner", "suspend": true}),
                "720p:3000k,480p:1400k,360p:800k",
                Some(0),
                false,
            ),
        ];
        for (case, spec, ladder, replicas, pdb) in table {
            let d = desired(&ls(spec), &config(), &[part("t0", &["360p"])]);
            assert_eq!(env_of(&d.transcoders[0])["ONAIR_LADDER"]["value"], ladder, "{case}");
            assert_eq!(d.ingest.spec.replicas, replicas, "{case}");
            assert_eq!(d.transcoders[0].spec.replicas, replicas, "{case}");
            assert_eq!(d.pdb.is_some(), pdb, "{case}");
            if let Some(pdb) = d.pdb {
                let select = pdb.spec.unwrap().selector.unwrap().match_labels.unwrap();
                assert!(!select.contains_key(LABEL_ROLE), "a partner's PDB covers every pod of the stream");
            }
        }
        let custom = ls(json!({"resources": {"requests": {"cpu": "3"}}}));
        let d = desired(&custom, &config(), &[part("t0", &["360p"])]);
        assert_eq!(cpu(&d.transcoders[0]), Quantity("3".into()), "the spec's resources are per transcode pod");
        assert_eq!(cpu(&d.ingest), Quantity("100m".into()));
    }

    #[test]
    fn a_configured_ingress_class_routes_the_streams_playback_path() {
        let mut config = config();
        config.playback_ingress_class = "nginx".into();
        config.playback_host = "onair.example.com".into();
        let d = desired(&ls(json!({})), &config, &[]);
        let ing = d.ingress.unwrap();
        let rule = &ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("onair.example.com"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(path.path.as_deref(), Some("/hls/0195e4a0-0000-7000-8000-000000000001"));
        assert_eq!(path.backend.service.as_ref().unwrap().name, "alice-hls");
    }

    /// A restricted stream's pods know it without the apiserver; a public one's templates carry
    /// nothing new (an operator upgrade must not change, and so restart, running pods).
    #[test]
    fn a_restricted_streams_pods_are_told_who_may_play_it() {
        let part = Part { name: "t0".into(), renditions: vec!["360p".into()], millicores: 100 };
        let d = desired(&ls(json!({"playbackAccess": "Followers"})), &config(), std::slice::from_ref(&part));
        assert_eq!(env_of(&d.ingest)["ONAIR_PLAYBACK_ACCESS"]["value"], "followers");
        let d = desired(&ls(json!({})), &config(), &[part]);
        assert!(!env_of(&d.ingest).contains_key("ONAIR_PLAYBACK_ACCESS"));
    }

    /// Kubernetes' `Prefix` match: the path's `/`-separated elements begin the request's.
    fn prefix_matches(prefix: &str, request: &str) -> bool {
        let elements = |p: &str| p.split('/').filter(|e| !e.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        elements(request).starts_with(&elements(prefix))
    }

    /// Signed links of restricted channels reach the stream's pod through the same route as
    /// plain ones: the token rides inside the stream's directory.
    #[test]
    fn the_streams_ingress_routes_its_signed_links() {
        let mut config = config();
        config.playback_ingress_class = "nginx".into();
        let d = desired(&ls(json!({})), &config, &[]);
        let ing = d.ingress.unwrap();
        let route = ing.spec.unwrap().rules.unwrap()[0].http.as_ref().unwrap().paths[0].path.clone().unwrap();
        let stream = "0195e4a0-0000-7000-8000-000000000001";
        let ring = onair_playback_token::Keyring::parse("k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
        let token = ring.sign(stream, "viewer-0001", 2_000_000_000).unwrap();
        let dir =
            onair_playback_token::signed_dir(&onair_domain::contracts::playback::stream_dir("/hls", stream), &token);
        for file in ["master.m3u8", "720p/index.m3u8", "dvr/master.m3u8"] {
            let path = format!("{dir}/{file}");
            assert!(prefix_matches(&route, &path), "{route} does not route {path}");
        }
        let other = "/hls/0195e4a0-0000-7000-8000-000000000002/t/x/master.m3u8";
        assert!(!prefix_matches(&route, other), "another stream's links go elsewhere");
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&ls(json!({}))).is_ok());
        let mut long = ls(json!({}));
        long.metadata.name = Some("a".repeat(51));
        assert_eq!(validate(&long).unwrap_err().0, "metadata.name");
        let odd = ls(json!({"ladder": {"renditions": [{"name": "odd", "height": 481, "videoBitrateKbps": 900}]}}));
        let (field, why) = validate(&odd).unwrap_err();
        assert_eq!(field, "spec.ladder.renditions");
        assert!(why.contains("even"), "{why}");
        let dup = ls(json!({"ladder": {"renditions": [
            {"name": "a", "height": 480, "videoBitrateKbps": 900}, {"name": "b", "height": 480, "videoBitrateKbps": 800}]}}));
        assert_eq!(validate(&dup).unwrap_err().1, "rendition heights must be unique");
        let scaling = ls(json!({"scaling": {"minTranscoders": 3, "maxTranscoders": 1}}));
        assert_eq!(validate(&scaling).unwrap_err().0, "spec.scaling");
    }
}

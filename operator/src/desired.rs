//! What a `LiveStream` should have running, as pure functions of its spec and the operator's
//! configuration: the media Deployment, its two Services, a PodDisruptionBudget for partner
//! streams and, when configured, the playback Ingress. Applied with Server-Side Apply, so these
//! are full intents: whatever is left out here is removed from the live object.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
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
use onair_crds::{LiveStream, StreamTier};

use crate::config::OperatorConfig;

pub const RTMP_PORT: i32 = 1935;
pub const HTTP_PORT: i32 = 8090;
pub const MEDIA_DIR: &str = "/var/lib/onair/media";
/// The image's non-root user (see transcoder-image/Dockerfile).
pub const MEDIA_UID: i64 = 10001;
/// Names get `-ingest`/`-media` suffixes and must stay DNS labels (63 characters).
pub const MAX_NAME_LEN: usize = 50;

pub const LABEL_STREAM_ID: &str = "onair.dev/stream-id";
pub const LABEL_LIVESTREAM: &str = "onair.dev/livestream";
pub const MANAGED_BY: &str = "onair-operator";

/// Every object made for one LiveStream.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub deployment: Deployment,
    pub ingest_service: Service,
    pub hls_service: Service,
    pub pdb: Option<PodDisruptionBudget>,
    pub ingress: Option<Ingress>,
}

/// Object names for a LiveStream called `name`.
pub fn media_name(name: &str) -> String {
    format!("{name}-media")
}
pub fn ingest_name(name: &str) -> String {
    format!("{name}-ingest")
}
pub fn hls_name(name: &str) -> String {
    format!("{name}-hls")
}

/// The labels on every object (and pod) of a LiveStream.
pub fn labels(ls: &LiveStream) -> BTreeMap<String, String> {
    let mut l = selector(ls);
    l.insert("app.kubernetes.io/part-of".into(), "onair".into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert(LABEL_STREAM_ID.into(), ls.spec.stream_id.to_string());
    l
}

/// The labels that pick a LiveStream's pods.
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

/// CPU request when the spec names none: what the autoscaler's cost model says the full
/// ladder takes (measured, see `scaling::rendition_cost`), with a floor for tiny ladders.
pub fn default_resources(ls: &LiveStream) -> ResourceRequirements {
    let millicores = crate::scaling::cost(crate::scaling::LadderLevel::Full, &ls.spec.ladder.resolve()).max(250);
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(format!("{millicores}m"))),
            ("memory".into(), Quantity("256Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity("1Gi".into()))])),
        ..Default::default()
    }
}

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

/// The apiserver labels the LiveStreams it creates; a platform team's own have no row there.
pub fn made_by_apiserver(ls: &LiveStream) -> bool {
    ls.labels().get("app.kubernetes.io/managed-by").is_some_and(|m| m == "onair-apiserver")
}

/// Whether the media should run: not suspended. (Ending on deletion is the finalizer's job.)
pub fn wants_media(ls: &LiveStream) -> bool {
    !ls.spec.suspend
}

pub fn desired(ls: &LiveStream, config: &OperatorConfig) -> Desired {
    let name = ls.name_any();
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
    let container = Container {
        name: "media".into(),
        image: Some(config.media_image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        args: Some(vec!["media".into()]),
        env: Some(vec![
            env("ONAIR_RTMP_LISTEN", format!("0.0.0.0:{RTMP_PORT}")),
            env("ONAIR_MEDIA_LISTEN", format!("0.0.0.0:{HTTP_PORT}")),
            env("ONAIR_APISERVER_URL", config.apiserver_url.clone()),
            env("ONAIR_MEDIA_DIR", MEDIA_DIR),
            env("ONAIR_LADDER", ladder_arg(ls)),
            env("ONAIR_STREAM_ID", spec.stream_id.to_string()),
            env("ONAIR_TIER", if spec.tier == StreamTier::Partner { "partner" } else { "free" }),
            // Streams the apiserver made are confirmed by it too; others have only the hash.
            env("ONAIR_TRUST_KEY_HASH", (!made_by_apiserver(ls)).to_string()),
            // Where the encoder starts; the capacity plan moves it at run time (`PUT .../level`),
            // so the pod template never changes with the audience.
            env("ONAIR_INITIAL_LEVEL", format!("{:?}", crate::plan::initial_level(spec.tier)).to_lowercase()),
            env("ONAIR_LOG_FORMAT", "json"),
            secret_env("ONAIR_STREAM_KEY_HASH", &spec.stream_key_secret.name, &spec.stream_key_secret.key),
            secret_env("ONAIR_INTERNAL_TOKEN", &config.media_secret, "internal-token"),
            secret_env("ONAIR_REDIS_URL", &config.media_secret, "redis-url"),
        ]),
        ports: Some(vec![
            ContainerPort { name: Some("rtmp".into()), container_port: RTMP_PORT, ..Default::default() },
            ContainerPort { name: Some("http".into()), container_port: HTTP_PORT, ..Default::default() },
        ]),
        readiness_probe: Some(http_probe("/readyz", 2, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        resources: Some(spec.resources.clone().unwrap_or_else(|| default_resources(ls))),
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
    let pod_labels = labels(ls);
    let deployment = Deployment {
        metadata: meta(ls, media_name(&name)),
        spec: DeploymentSpec {
            replicas: Some(if wants_media(ls) { 1 } else { 0 }),
            selector: LabelSelector { match_labels: Some(selector(ls)), ..Default::default() },
            // One publisher, one pod: never two workers racing for the same stream.
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
                    volumes: Some(vec![
                        Volume {
                            name: "media".into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("2Gi".into())),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("64Mi".into())),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    };
    let service = |svc_name: String, type_: &str, port_name: &str, port: i32| Service {
        metadata: meta(ls, svc_name),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(selector(ls)),
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
    // the broadcast to end or for the drain's timeout); free streams are restarted elsewhere and
    // their publisher reconnects.
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
    Desired { deployment, ingest_service, hls_service, pdb, ingress }
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

    fn env_of(d: &Desired) -> BTreeMap<String, serde_json::Value> {
        let c = &d.deployment.spec.template.spec.as_ref().unwrap().containers[0];
        c.env.iter().flatten().map(|e| (e.name.clone(), serde_json::to_value(e).unwrap())).collect()
    }

    #[test]
    fn a_default_stream_gets_a_hardened_media_pod_and_two_services() {
        let d = desired(&ls(json!({})), &config());
        let dep = &d.deployment;
        assert_eq!(dep.metadata.name.as_deref(), Some("alice-media"));
        assert_eq!(dep.metadata.namespace.as_deref(), Some("streams"));
        let owner = &dep.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("LiveStream", "u-1", Some(true)));
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
        assert_eq!(c.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/healthz"));
        let env = env_of(&d);
        assert_eq!(env["ONAIR_LADDER"]["value"], "720p:3000k,480p:1400k,360p:800k");
        assert_eq!(env["ONAIR_STREAM_ID"]["value"], "0195e4a0-0000-7000-8000-000000000001");
        assert_eq!(env["ONAIR_INITIAL_LEVEL"]["value"], "reduced", "a free stream starts at the reduced ladder");
        assert_eq!(env["ONAIR_TRUST_KEY_HASH"]["value"], "true", "not made by the apiserver: the hash decides");
        assert_eq!(
            env["ONAIR_STREAM_KEY_HASH"]["valueFrom"]["secretKeyRef"],
            json!({"name": "alice-key", "key": "keyHash", "optional": false})
        );
        assert_eq!(env["ONAIR_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"], "onair-media");
        assert!(env.values().all(|e| e.get("value") != Some(&json!("t"))), "the internal token is never inlined");
        // The 3-rendition default ladder asks for what the cost model says: 0.63 cores.
        let req = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(req["cpu"], Quantity("630m".into()));
        assert_eq!(d.ingest_service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, RTMP_PORT);
        assert_eq!(d.ingest_service.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"));
        assert_eq!(d.hls_service.metadata.name.as_deref(), Some("alice-hls"));
        assert_eq!(d.hls_service.spec.as_ref().unwrap().selector.as_ref(), Some(&selector(&ls(json!({})))));
        assert!(d.pdb.is_none(), "free streams get no PDB");
        assert!(d.ingress.is_none(), "no Ingress unless a class is configured");
        for l in
            [&dep.metadata.labels, &d.ingest_service.metadata.labels, &spec.template.metadata.as_ref().unwrap().labels]
        {
            let l = l.as_ref().unwrap();
            assert_eq!(l["app.kubernetes.io/managed-by"], MANAGED_BY);
            assert_eq!(l[LABEL_STREAM_ID], "0195e4a0-0000-7000-8000-000000000001");
        }
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
            let d = desired(&ls(spec), &config());
            assert_eq!(env_of(&d)["ONAIR_LADDER"]["value"], ladder, "{case}");
            assert_eq!(d.deployment.spec.replicas, replicas, "{case}");
            assert_eq!(d.pdb.is_some(), pdb, "{case}");
        }
        let custom = ls(json!({"resources": {"requests": {"cpu": "3"}}}));
        let d = desired(&custom, &config());
        let c = &d.deployment.spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"], Quantity("3".into()));
    }

    #[test]
    fn a_configured_ingress_class_routes_the_streams_playback_path() {
        let mut config = config();
        config.playback_ingress_class = "nginx".into();
        config.playback_host = "onair.example.com".into();
        let d = desired(&ls(json!({})), &config);
        let ing = d.ingress.unwrap();
        let rule = &ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("onair.example.com"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(path.path.as_deref(), Some("/hls/0195e4a0-0000-7000-8000-000000000001"));
        assert_eq!(path.backend.service.as_ref().unwrap().name, "alice-hls");
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

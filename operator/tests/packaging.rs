//! What can be checked of the chart and the image without Helm, a container engine or a
//! cluster: templates only name values that exist, env vars the code reads, RBAC that covers
//! every kind the operator applies, the CRD the chart ships is the generated one, and the
//! Dockerfile's user, paths and ports are the ones the operator's pods expect.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use onair_operator::desired;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn templates() -> Vec<(String, String)> {
    let dir = root().join("charts/onair/templates");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// `.Values.a.b` (and `$.Values.a.b`) references in a template.
fn value_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(".Values.") {
        let rest = &text[i + ".Values.".len()..];
        let path: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_').collect();
        out.insert(path.trim_end_matches('.').to_string());
    }
    out
}

fn values() -> Value {
    serde_saphyr::from_str(&read("charts/onair/values.yaml")).unwrap()
}

#[test]
fn every_value_a_template_names_exists_in_values_yaml() {
    let values = values();
    let mut missing = Vec::new();
    for (file, text) in templates() {
        for path in value_refs(&text) {
            let mut v = &values;
            for part in path.split('.') {
                v = &v[part];
            }
            if v.is_null() {
                missing.push(format!("{file}: .Values.{path}"));
            }
        }
    }
    assert!(missing.is_empty(), "templates name values that values.yaml lacks: {missing:?}");
    // And the reverse, for the top level: nothing documented that no template reads.
    let used: BTreeSet<String> =
        templates().iter().flat_map(|(_, t)| value_refs(t)).map(|p| p.split('.').next().unwrap().to_string()).collect();
    for key in values.as_object().unwrap().keys() {
        assert!(used.contains(key), "values.yaml documents `{key}` but no template reads it");
    }
}

/// Every `env = "ONAIR_..."` the services declare.
fn declared_env() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() && !name.starts_with('.') && name != "target" && name != "node_modules" {
                stack.push(p);
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, _) in text.match_indices("env = \"") {
                    let rest = &text[i + 7..];
                    out.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_env_var_the_chart_and_operator_set_is_read_by_the_code() {
    let declared = declared_env();
    let mut set = BTreeSet::new();
    for (_, text) in templates() {
        for (i, _) in text.match_indices("name: ONAIR_") {
            let rest = &text[i + 6..];
            set.insert(
                rest.chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                    .collect::<String>(),
            );
        }
    }
    let config = onair_operator::OperatorConfig::from_args(["--internal-token", "t"]).unwrap();
    let ls: onair_crds::LiveStream = serde_json::from_value(serde_json::json!({
        "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream", "metadata": {"name": "a", "namespace": "n"},
        "spec": {"streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
                 "channel": "a", "streamKeySecret": {"name": "k"}}}))
    .unwrap();
    let part = onair_operator::scaling::Part { name: "t0".into(), renditions: vec!["360p".into()], millicores: 100 };
    let d = desired::desired(&ls, &config, &[part]);
    for dep in std::iter::once(&d.ingest).chain(&d.transcoders) {
        for e in dep.spec.template.spec.as_ref().unwrap().containers[0].env.iter().flatten() {
            set.insert(e.name.clone());
        }
    }
    assert!(set.len() > 20, "found the env vars: {set:?}");
    let unknown: Vec<_> = set.iter().filter(|n| !declared.contains(*n)).collect();
    assert!(unknown.is_empty(), "set but read by nothing (typo?): {unknown:?}");
}

/// The chart's YAML documents with template expressions blanked out.
fn documents(file: &str) -> Vec<Value> {
    let text = read(&format!("charts/onair/templates/{file}"));
    text.split("\n---")
        .map(|doc| {
            let lines: Vec<String> = doc
                .lines()
                .filter(|l| !l.trim_start().starts_with("{{"))
                .map(|l| {
                    let mut l = l.to_string();
                    while let (Some(a), Some(b)) = (l.find("{{"), l.find("}}")) {
                        if b < a {
                            break;
                        }
                        l.replace_range(a..b + 2, "x");
                    }
                    l
                })
                .collect();
            lines.join("\n")
        })
        .filter_map(|doc| serde_saphyr::from_str::<Value>(&doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// One granted permission: group, resource, verb, and the names it is limited to.
type Perm = (String, String, String, Vec<String>);

fn perms(rules: &Value) -> BTreeSet<Perm> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for r in rules.as_array().unwrap() {
        let names = strings(&r["resourceNames"]);
        for g in strings(&r["apiGroups"]) {
            for res in strings(&r["resources"]) {
                for verb in strings(&r["verbs"]) {
                    out.insert((g.clone(), res.clone(), verb, names.clone()));
                }
            }
        }
    }
    out
}

fn code_perms(grants: &[onair_operator::rbac::Grant]) -> BTreeSet<Perm> {
    let mut out = BTreeSet::new();
    for g in grants {
        for v in g.verbs {
            let names =
                g.names.iter().map(|n| if n.starts_with('{') { "x".to_string() } else { n.to_string() }).collect();
            out.insert((g.group.to_string(), g.resource.to_string(), v.to_string(), names));
        }
    }
    out
}

/// The rules of the document of `kind` named `name` (template expressions read as `x`).
fn rules(file: &str, kind: &str, name: &str) -> BTreeSet<Perm> {
    let docs = documents(file);
    let role = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"].as_str().unwrap_or_default().ends_with(name))
        .unwrap_or_else(|| panic!("{kind} *{name} in {file}"));
    perms(&role["rules"])
}

/// The operator's per-namespace rules: the `onair.operatorStreamRules` block, used by the Role
/// in each stream namespace and by the ClusterRole when watching all.
fn operator_stream_rules() -> BTreeSet<Perm> {
    let text = read("charts/onair/templates/operator.yaml");
    let block = text.split(r#"{{- define "onair.operatorStreamRules" -}}"#).nth(1).unwrap();
    let block = block.split("{{- end }}").next().unwrap();
    perms(&serde_saphyr::from_str::<Value>(block).unwrap())
}

#[test]
fn the_operators_roles_grant_exactly_what_its_code_needs() {
    use onair_operator::rbac;
    let stream = operator_stream_rules();
    let want = code_perms(rbac::STREAM_NAMESPACE);
    let extra: Vec<_> = stream.difference(&want).collect();
    let missing: Vec<_> = want.difference(&stream).collect();
    assert!(extra.is_empty() && missing.is_empty(), "chart grants unused: {extra:?}; chart lacks: {missing:?}");
    let text = read("charts/onair/templates/operator.yaml");
    assert_eq!(
        text.matches(r#"include "onair.operatorStreamRules""#).count(),
        2,
        "one Role per stream namespace, or the ClusterRole when watching all: both from the block"
    );
    assert_eq!(rules("operator.yaml", "ClusterRole", "-operator-list-livestreams"), code_perms(rbac::CLUSTER));
    assert_eq!(rules("operator.yaml", "Role", "-operator-lease"), code_perms(rbac::LEASE));

    // Every kind the operator applies can be created and patched, carries the managed-by label
    // and names its LiveStream as owner.
    let mut config = onair_operator::OperatorConfig::from_args(["--internal-token", "t"]).unwrap();
    config.playback_ingress_class = "nginx".into();
    let ls: onair_crds::LiveStream = serde_json::from_value(serde_json::json!({
        "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream", "metadata": {"name": "a", "namespace": "n", "uid": "u"},
        "spec": {"streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
                 "channel": "a", "streamKeySecret": {"name": "k"}, "tier": "Partner"}}))
    .unwrap();
    let part = onair_operator::scaling::Part { name: "t0".into(), renditions: vec!["360p".into()], millicores: 100 };
    let d = desired::desired(&ls, &config, &[part]);
    let objects = [
        serde_json::to_value(&d.ingest).unwrap(),
        serde_json::to_value(&d.transcoders[0]).unwrap(),
        serde_json::to_value(&d.ingest_service).unwrap(),
        serde_json::to_value(&d.hls_service).unwrap(),
        serde_json::to_value(d.pdb.as_ref().unwrap()).unwrap(),
        serde_json::to_value(d.ingress.as_ref().unwrap()).unwrap(),
    ];
    for obj in &objects {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let resource = format!("{}s", obj["kind"].as_str().unwrap().to_lowercase()).replace("ingresss", "ingresses");
        for verb in ["create", "patch"] {
            assert!(rbac::allows(rbac::STREAM_NAMESPACE, group, &resource, verb, None), "{verb} {group}/{resource}");
        }
        assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], desired::MANAGED_BY);
        assert_eq!(obj["metadata"]["ownerReferences"][0]["kind"], "LiveStream");
    }
    for (group, resource) in rbac::WATCHED {
        for verb in ["list", "watch"] {
            assert!(rbac::allows(rbac::STREAM_NAMESPACE, group, resource, verb, None), "{verb} {group}/{resource}");
        }
    }
    // The chart names the media Secret the Role lets the operator patch.
    assert!(text.contains(&format!("ONAIR_MEDIA_SECRET, value: {}", config.media_secret)));
}

#[test]
fn the_apiserver_gets_only_what_its_orchestrator_uses() {
    let granted = rules("apiserver.yaml", "Role", "-apiserver");
    let p = |g: &str, r: &str, v: &str| (g.to_string(), r.to_string(), v.to_string(), Vec::<String>::new());
    let want: BTreeSet<Perm> = [
        // Server-side apply (create + patch), get_opt, delete.
        p("onair.dev", "livestreams", "create"),
        p("onair.dev", "livestreams", "patch"),
        p("onair.dev", "livestreams", "get"),
        p("onair.dev", "livestreams", "delete"),
        // The key Secret's owner reference blocks deletion of its LiveStream.
        p("onair.dev", "livestreams/finalizers", "update"),
        // The key Secret, by server-side apply; deleted with its LiveStream by the garbage collector.
        p("", "secrets", "create"),
        p("", "secrets", "patch"),
    ]
    .into_iter()
    .collect();
    assert_eq!(granted, want);
}

/// ingress-nginx (controller 1.12+, `strict-validate-path-type` on by default) refuses a whole
/// Ingress when an `Exact` or `Prefix` path has anything but letters, digits, `_`, `-` and `/`.
fn passes_strict_path_validation(path: &str) -> bool {
    path.starts_with('/') && path.chars().all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c))
}

#[test]
fn every_prefix_path_passes_ingress_nginx_strict_validation() {
    let mut checked = 0;
    for doc in documents("ingress.yaml").iter().filter(|d| d["kind"] == "Ingress") {
        for rule in doc["spec"]["rules"].as_array().unwrap() {
            for p in rule["http"]["paths"].as_array().unwrap() {
                let (path, kind) = (p["path"].as_str().unwrap(), p["pathType"].as_str().unwrap());
                if kind != "ImplementationSpecific" {
                    assert!(passes_strict_path_validation(path), "{kind} path {path} is refused by ingress-nginx");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 3, "/ws/, /api/ and / at least");
    assert!(!passes_strict_path_validation("/.well-known/"), "what main had");

    let mut config = onair_operator::OperatorConfig::from_args(["--internal-token", "t"]).unwrap();
    config.playback_ingress_class = "nginx".into();
    let ls: onair_crds::LiveStream = serde_saphyr::from_str(&read("examples/livestream.yaml")).unwrap();
    let ing = desired::desired(&ls, &config, &[]).ingress.unwrap();
    for rule in ing.spec.unwrap().rules.unwrap() {
        for p in rule.http.unwrap().paths {
            assert_eq!(p.path_type, "Prefix");
            assert!(passes_strict_path_validation(p.path.as_deref().unwrap()), "{:?}", p.path);
        }
    }
}

/// The Ingress sends the chat gateway exactly the paths `onair up` sends it on one machine (one
/// list, `contracts::front_door::CHAT_GATEWAY`), and everything else to the apiserver.
#[test]
fn the_ingress_routes_the_front_doors_chat_paths_to_the_chat_gateway() {
    use onair_domain::contracts::front_door::CHAT_GATEWAY;
    let (mut chat, mut api) = (Vec::new(), Vec::new());
    for doc in documents("ingress.yaml").iter().filter(|d| d["kind"] == "Ingress") {
        for rule in doc["spec"]["rules"].as_array().unwrap() {
            for p in rule["http"]["paths"].as_array().unwrap() {
                let path = (p["path"].as_str().unwrap().to_owned(), p["pathType"].as_str().unwrap().to_owned());
                match p["backend"]["service"]["name"].as_str().unwrap() {
                    name if name.ends_with("-chat-gateway") => chat.push(path),
                    name if name.ends_with("-apiserver") => api.push(path),
                    name => panic!("unexpected backend {name}"),
                }
            }
        }
    }
    let want: Vec<(String, String)> =
        CHAT_GATEWAY.iter().map(|r| (r.ingress_path(), r.path_type().to_owned())).collect();
    assert_eq!(chat, want, "charts/onair/templates/ingress.yaml and contracts::front_door::CHAT_GATEWAY differ");
    let catch_all = [("/api/".to_owned(), "Prefix".to_owned()), ("/".to_owned(), "Prefix".to_owned())];
    assert_eq!(api, catch_all, "the apiserver takes the rest");
}

#[test]
fn the_chart_ships_the_generated_crd() {
    assert_eq!(
        read("charts/onair/crds/livestream.yaml"),
        onair_crds::crd_yaml(),
        "copy crds/livestream.yaml into the chart"
    );
}

#[test]
fn the_image_runs_as_the_user_with_the_paths_and_ports_the_operator_expects() {
    let dockerfile = read("transcoder-image/Dockerfile");
    assert!(dockerfile.contains(&format!("USER {0}:{0}", desired::MEDIA_UID)), "non-root uid {}", desired::MEDIA_UID);
    assert!(dockerfile.contains(&format!("ONAIR_MEDIA_DIR={}", desired::MEDIA_DIR)));
    assert!(dockerfile.contains(&format!("EXPOSE {} {}", desired::RTMP_PORT, desired::HTTP_PORT)));
    // Runtime stages start from Debian and never install a toolchain.
    let runtime = &dockerfile[dockerfile.find("FROM debian").unwrap()..];
    for tool in ["cargo", "rustc", "gcc", "build-essential", " make"] {
        assert!(
            !runtime.contains(&format!("apt-get install -y --no-install-recommends {tool}"))
                && !runtime.contains(&format!(" {tool} ")),
            "{tool} in a runtime stage"
        );
    }
    assert!(runtime.contains("ffmpeg"));
    // The image's ffmpeg is Debian bookworm's, the major version the tests here run against.
    assert!(dockerfile.contains("ARG DEBIAN=bookworm"));
    if let Ok(out) = std::process::Command::new("ffmpeg").arg("-version").output() {
        let v = String::from_utf8_lossy(&out.stdout);
        assert!(v.starts_with("ffmpeg version 5."), "tests run against ffmpeg 5.x like the image: {v}");
    }
}

#[test]
fn the_example_livestream_is_valid_and_runs_as_written() {
    let text = read("examples/livestream.yaml");
    let ls: onair_crds::LiveStream = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(desired::validate(&ls), Ok(()));
    assert_eq!(desired::ladder_arg(&ls), "720p:3000k,480p:1400k,360p:800k");
    assert!(!ls.spec.suspend);
}

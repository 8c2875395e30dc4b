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

fn rules(file: &str, kind: &str) -> Vec<(String, String, BTreeSet<String>)> {
    let docs = documents(file);
    let role = docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("{kind} in {file}"));
    let mut out = Vec::new();
    for r in role["rules"].as_array().unwrap() {
        let verbs: BTreeSet<String> =
            r["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        for g in r["apiGroups"].as_array().unwrap() {
            for res in r["resources"].as_array().unwrap() {
                out.push((g.as_str().unwrap().to_string(), res.as_str().unwrap().to_string(), verbs.clone()));
            }
        }
    }
    out
}

fn allows(rules: &[(String, String, BTreeSet<String>)], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|(g, r, v)| g == group && r == resource && v.contains(verb))
}

#[test]
fn the_operators_rbac_covers_every_kind_it_applies_and_watches() {
    let cluster = rules("operator.yaml", "ClusterRole");
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
        assert!(allows(&cluster, group, &resource, "patch"), "server-side apply of {group}/{resource} needs patch");
        assert!(allows(&cluster, group, &resource, "create"), "the first apply of {group}/{resource} creates it");
        assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], desired::MANAGED_BY);
        assert_eq!(obj["metadata"]["ownerReferences"][0]["kind"], "LiveStream");
    }
    assert!(allows(&cluster, "policy", "poddisruptionbudgets", "delete"), "a PDB no longer wanted is deleted");
    assert!(allows(&cluster, "apps", "deployments", "delete"), "a transcode pod no longer wanted is deleted");
    assert!(allows(&cluster, "apps", "deployments", "list"), "the controller watches the Deployments it owns");
    for (group, resource, verb) in [
        ("onair.dev", "livestreams", "watch"),
        ("onair.dev", "livestreams", "list"),
        ("onair.dev", "livestreams", "patch"),
        ("onair.dev", "livestreams/status", "patch"),
        // The objects it owns block the LiveStream's deletion (blockOwnerDeletion).
        ("onair.dev", "livestreams/finalizers", "update"),
        ("apps", "deployments", "watch"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "secrets", "get"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    ] {
        assert!(allows(&cluster, group, resource, verb), "operator needs {verb} on {group}/{resource}");
    }
    assert!(!allows(&cluster, "", "secrets", "list"), "the operator reads one Secret by name, never lists them");
    let lease = rules("operator.yaml", "Role");
    assert!(allows(&lease, "coordination.k8s.io", "leases", "patch"));
}

#[test]
fn the_apiserver_gets_only_what_its_orchestrator_uses() {
    let rules = rules("apiserver.yaml", "Role");
    let want: BTreeSet<String> = ["create", "get", "patch", "delete"].iter().map(|s| s.to_string()).collect();
    let granted: Vec<_> = rules.iter().map(|(g, r, v)| (g.as_str(), r.as_str(), v.clone())).collect();
    // update on livestreams/finalizers: the key Secret's owner reference sets blockOwnerDeletion.
    let update: BTreeSet<String> = ["update".to_string()].into();
    assert_eq!(
        granted,
        vec![
            ("onair.dev", "livestreams", want.clone()),
            ("onair.dev", "livestreams/finalizers", update),
            ("", "secrets", want)
        ]
    );
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

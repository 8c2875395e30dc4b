//! Each refusal as the real API server answers it: code, reason and message.

#![allow(clippy::unwrap_used)]

use http::{Method, Request};
use serde_json::{Value, json};

use super::FakeApi;

const APPLY: &str = "application/apply-patch+yaml";
const JSON_PATCH: &str = "application/json-patch+json";
const JSON: &str = "application/json";

const DEPLOYS: &str = "/apis/apps/v1/namespaces/ns/deployments";
const SERVICES: &str = "/api/v1/namespaces/ns/services";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

fn fake() -> FakeApi {
    let api = FakeApi::new();
    api.namespace("ns");
    api
}

async fn send(api: &FakeApi, method: Method, uri: &str, content_type: &str, body: Value) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("user-agent", "tests/1.0")
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let res = api.handle(req).await;
    let code = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap())
}

async fn post(api: &FakeApi, path: &str, body: Value) -> (u16, Value) {
    send(api, Method::POST, path, JSON, body).await
}

async fn apply(api: &FakeApi, path: &str, manager: &str, force: bool, body: Value) -> (u16, Value) {
    let uri = format!("{path}?fieldManager={manager}{}", if force { "&force=true" } else { "" });
    send(api, Method::PATCH, &uri, APPLY, body).await
}

/// Asserts a refusal: its code, reason and message.
#[track_caller]
fn refused(res: &(u16, Value), code: u16, reason: &str, message: &str) {
    assert_eq!(res.0, code, "{}", res.1);
    assert_eq!(res.1["kind"], "Status");
    assert_eq!(res.1["status"], "Failure");
    assert_eq!(res.1["code"], code);
    assert_eq!(res.1["reason"], reason, "{}", res.1);
    assert_eq!(res.1["message"], message);
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx",
                                     "ports": [{"name": "http", "containerPort": 8080}],
                                     "env": [{"name": "MODE", "value": "x"}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                   "limits": {"memory": "256Mi"}},
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                          "volumes": [{"name": "data", "emptyDir": {}}]}}}})
}

fn container_error(api_res: &(u16, Value)) -> (&str, &str) {
    let cause = &api_res.1["details"]["causes"][0];
    (cause["field"].as_str().unwrap(), cause["message"].as_str().unwrap())
}

const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[tokio::test]
async fn service_names_are_dns_1035_labels() {
    let api = fake();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "X"},
                     "spec": {"ports": [{"port": 80}]}});
    let res = post(&api, SERVICES, svc).await;
    refused(&res, 422, "Invalid", &format!("Service \"X\" is invalid: metadata.name: Invalid value: \"X\": {DNS1035}"));
    let details = &res.1["details"];
    assert_eq!((details["name"].as_str(), details["kind"].as_str()), (Some("X"), Some("Service")));
    assert_eq!(
        details["causes"][0],
        json!({"reason": "FieldValueInvalid", "field": "metadata.name", "message": format!("Invalid value: \"X\": {DNS1035}")})
    );
    // 1abc is a DNS-1123 label but not a DNS-1035 one.
    let svc = json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}});
    refused(
        &post(&api, SERVICES, svc).await,
        422,
        "Invalid",
        &format!("Service \"1abc\" is invalid: metadata.name: Invalid value: \"1abc\": {DNS1035}"),
    );
}

#[tokio::test]
async fn most_names_are_dns_1123_subdomains_and_namespaces_labels() {
    let api = fake();
    let long = "a".repeat(254);
    let res = post(&api, DEPLOYS, {
        let mut d = deployment(&long);
        d["metadata"]["name"] = json!(long);
        d
    })
    .await;
    refused(
        &res,
        422,
        "Invalid",
        &format!(
            "Deployment.apps {long:?} is invalid: metadata.name: Invalid value: {long:?}: must be no more than 253 characters"
        ),
    );
    assert_eq!(res.1["details"]["group"], "apps");

    let res = post(&api, DEPLOYS, deployment("Web_1")).await;
    refused(
        &res,
        422,
        "Invalid",
        &format!("Deployment.apps \"Web_1\" is invalid: metadata.name: Invalid value: \"Web_1\": {SUBDOMAIN}"),
    );
    assert_eq!(post(&api, DEPLOYS, deployment("web.v1")).await.0, 201, "dots are fine in a subdomain");

    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}});
    refused(
        &post(&api, "/api/v1/namespaces", ns).await,
        422,
        "Invalid",
        "Namespace \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": must not contain dots",
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "-x"}});
    refused(
        &post(&api, "/api/v1/namespaces", ns).await,
        422,
        "Invalid",
        &format!("Namespace \"-x\" is invalid: metadata.name: Invalid value: \"-x\": {LABEL}"),
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
    assert_eq!(post(&api, "/api/v1/namespaces", ns).await.0, 201);
    let (code, list) = send(&api, Method::GET, "/api/v1/namespaces", JSON, Value::Null).await;
    assert_eq!(code, 200);
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|n| n["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "ns", "team-a"]);
}

fn event(name: Option<&str>) -> Value {
    let mut ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"namespace": "ns"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "onair-operator",
        "reportingInstance": "operator-0", "action": "Reconcile", "reason": "Started", "note": "it started",
        "type": "Normal", "regarding": {"kind": "LiveStream", "namespace": "ns", "name": "alice"}});
    match name {
        Some(n) => ev["metadata"]["name"] = json!(n),
        None => ev["metadata"]["generateName"] = json!("alice-"),
    }
    ev
}

#[tokio::test]
async fn generate_name_makes_a_name_and_is_checked_as_one() {
    let api = fake();
    let (code, created) = post(&api, EVENTS, event(None)).await;
    assert_eq!(code, 201, "{created}");
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("alice-") && name.len() == "alice-".len() + 5, "{name}");
    assert!(api.get(&format!("{EVENTS}/{name}")).is_some());

    let mut bad = event(None);
    bad["metadata"]["generateName"] = json!("Alice-");
    let res = post(&api, EVENTS, bad).await;
    assert_eq!((res.0, res.1["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(res.1["details"]["causes"][0]["field"], "metadata.generateName");
    assert_eq!(res.1["details"]["causes"][0]["message"], format!("Invalid value: \"Alice-\": {SUBDOMAIN}"));
}

#[tokio::test]
async fn label_and_annotation_keys_and_values() {
    let api = fake();
    let mut d = deployment("web");
    d["metadata"]["labels"] = json!({"example.com/bad key": "ok"});
    refused(
        &post(&api, DEPLOYS, d).await,
        422,
        "Invalid",
        "Deployment.apps \"web\" is invalid: metadata.labels: Invalid value: \"example.com/bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    );

    let mut d = deployment("web");
    d["metadata"]["labels"] = json!({"Example.com/x": "ok"});
    let res = post(&api, DEPLOYS, d).await;
    assert_eq!(
        container_error(&res),
        ("metadata.labels", format!("Invalid value: \"Example.com/x\": prefix part {SUBDOMAIN}").as_str())
    );

    let long = "v".repeat(64);
    let mut d = deployment("web");
    d["metadata"]["labels"] = json!({"app": long, "tier": "-x"});
    let res = post(&api, DEPLOYS, d).await;
    let value_msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    refused(
        &res,
        422,
        "Invalid",
        &format!(
            "Deployment.apps \"web\" is invalid: [metadata.labels: Invalid value: {long:?}: must be no more than 63 bytes, metadata.labels: Invalid value: \"-x\": {value_msg}]"
        ),
    );

    let mut d = deployment("web");
    d["metadata"]["labels"] = json!({"app": ""});
    d["metadata"]["annotations"] = json!({"onair.dev/Note": "x"});
    assert_eq!(post(&api, DEPLOYS, d).await.0, 201, "empty label values and upper-case annotation names are fine");

    let mut d = deployment("web2");
    d["metadata"]["annotations"] = json!({"a": "x".repeat(256 * 1024)});
    refused(
        &post(&api, DEPLOYS, d).await,
        422,
        "Invalid",
        "Deployment.apps \"web2\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes",
    );

    let svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "a b"}, "ports": [{"port": 80}]}});
    let res = post(&api, SERVICES, svc).await;
    assert_eq!(container_error(&res), ("spec.selector", format!("Invalid value: \"a b\": {value_msg}").as_str()));
}

#[tokio::test]
async fn containers_ports_env_and_volumes() {
    let api = fake();
    let cases: Vec<(&str, Value, &str, String)> = vec![
        ("/name", json!("Web"), "spec.template.spec.containers[0].name", format!("Invalid value: \"Web\": {LABEL}")),
        ("/ports/0/name", json!("http-web-server1"), "spec.template.spec.containers[0].ports[0].name",
         "Invalid value: \"http-web-server1\": must be no more than 15 characters".into()),
        ("/ports/0/name", json!("8080"), "spec.template.spec.containers[0].ports[0].name",
         "Invalid value: \"8080\": must contain at least one letter (a-z)".into()),
        ("/ports/0/containerPort", json!(70000), "spec.template.spec.containers[0].ports[0].containerPort",
         "Invalid value: 70000: must be between 1 and 65535, inclusive".into()),
        ("/env/0/name", json!("1MODE"), "spec.template.spec.containers[0].env[0].name",
         "Invalid value: \"1MODE\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')".into()),
        ("/resources/requests/memory", json!("512Mi"), "spec.template.spec.containers[0].resources.requests[memory]",
         "Invalid value: \"512Mi\": must be less than or equal to memory limit of 256Mi".into()),
        ("/volumeMounts/0/name", json!("cache"), "spec.template.spec.containers[0].volumeMounts[0].name",
         "Not found: \"cache\"".into()),
    ];
    for (ptr, value, field, message) in cases {
        let mut d = deployment("web");
        *d.pointer_mut(&format!("/spec/template/spec/containers/0{ptr}")).unwrap() = value;
        let res = post(&api, DEPLOYS, d).await;
        refused(&res, 422, "Invalid", &format!("Deployment.apps \"web\" is invalid: {field}: {message}"));
    }
    let mut d = deployment("web");
    d["spec"]["template"]["spec"]["volumes"][0]["name"] = json!("Data");
    let res = post(&api, DEPLOYS, d).await;
    assert_eq!(res.1["details"]["causes"][0]["field"], "spec.template.spec.volumes[0].name");
    assert_eq!(res.1["details"]["causes"][0]["message"], format!("Invalid value: \"Data\": {LABEL}"));

    let mut d = deployment("web");
    d["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] = json!("my.env-name_1");
    assert_eq!(post(&api, DEPLOYS, d).await.0, 201, "dots and dashes are fine in env names");

    // Quantities that do not parse fail decoding: 400.
    for q in ["abc", "1.5.5", "10MB"] {
        let mut d = deployment("web-q");
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!(q);
        refused(
            &post(&api, DEPLOYS, d).await,
            400,
            "BadRequest",
            "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        );
    }
    for q in ["100m", "1.5", "1e3", "2"] {
        let mut d = deployment(&format!("web-{}", q.replace('.', "")));
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!(q);
        assert_eq!(post(&api, DEPLOYS, d).await.0, 201, "{q}");
    }
}

#[tokio::test]
async fn service_ports() {
    let api = fake();
    let svc = |ports: Value| json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": ports}});
    let res = post(&api, SERVICES, svc(json!([{"name": "http", "port": 80}, {"port": 81}]))).await;
    refused(&res, 422, "Invalid", "Service \"web\" is invalid: spec.ports[1].name: Required value");
    let res = post(&api, SERVICES, svc(json!([{"name": "http", "port": 80}, {"name": "http", "port": 81}]))).await;
    refused(&res, 422, "Invalid", "Service \"web\" is invalid: spec.ports[1].name: Duplicate value: \"http\"");
    let res = post(&api, SERVICES, svc(json!([{"name": "http", "port": 0, "targetPort": "Http"}]))).await;
    refused(
        &res,
        422,
        "Invalid",
        "Service \"web\" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)]",
    );
    let res = post(&api, SERVICES, svc(json!([{"name": "web", "port": 80, "targetPort": 0}]))).await;
    refused(
        &res,
        422,
        "Invalid",
        "Service \"web\" is invalid: spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
    );
    let res = post(&api, SERVICES, svc(json!([]))).await;
    refused(&res, 422, "Invalid", "Service \"web\" is invalid: spec.ports: Required value");
    let mut s = svc(json!([{"name": "rtmp", "port": 1935, "targetPort": "rtmp"}]));
    s["spec"]["type"] = json!("Loadbalancer");
    refused(
        &post(&api, SERVICES, s).await,
        422,
        "Invalid",
        "Service \"web\" is invalid: spec.type: Unsupported value: \"Loadbalancer\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
    );
    assert_eq!(post(&api, SERVICES, svc(json!([{"name": "rtmp", "port": 1935, "targetPort": "rtmp"}]))).await.0, 201);
}

#[tokio::test]
async fn deployment_selectors() {
    let api = fake();
    let mut d = deployment("web");
    d["spec"].as_object_mut().unwrap().remove("selector");
    refused(
        &post(&api, DEPLOYS, d).await,
        422,
        "Invalid",
        "Deployment.apps \"web\" is invalid: spec.selector: Required value",
    );

    let mut d = deployment("web");
    d["spec"]["selector"]["matchLabels"] = json!({"app": "api"});
    refused(
        &post(&api, DEPLOYS, d).await,
        422,
        "Invalid",
        "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
    );

    assert_eq!(apply(&api, &format!("{DEPLOYS}/web"), "a", false, deployment("web")).await.0, 201);
    let mut d = deployment("web");
    d["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
    d["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front");
    let res = apply(&api, &format!("{DEPLOYS}/web"), "a", false, d).await;
    refused(
        &res,
        422,
        "Invalid",
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"tier\":\"front\"}}: field is immutable",
    );
}

#[tokio::test]
async fn pdbs_ingresses_leases() {
    let api = fake();
    let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}});
    let res = post(&api, "/apis/policy/v1/namespaces/ns/poddisruptionbudgets", pdb).await;
    refused(
        &res,
        422,
        "Invalid",
        "PodDisruptionBudget.policy \"p\" is invalid: spec.minAvailable: Invalid value: 1: minAvailable and maxUnavailable cannot be both set",
    );
    let pdb =
        json!({"metadata": {"name": "p"}, "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web*"}}}});
    let res = post(&api, "/apis/policy/v1/namespaces/ns/poddisruptionbudgets", pdb).await;
    assert_eq!(res.1["details"]["causes"][0]["field"], "spec.selector.matchLabels");

    const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/ns/ingresses";
    let ing = |path: Value| json!({"metadata": {"name": "hls"}, "spec": {"rules": [{"host": "onair.example.com", "http": {"paths": [path]}}]}});
    let backend = json!({"service": {"name": "web-hls", "port": {"name": "http"}}});
    let res = post(&api, INGRESSES, ing(json!({"path": "/hls", "backend": backend}))).await;
    refused(
        &res,
        422,
        "Invalid",
        "Ingress.networking.k8s.io \"hls\" is invalid: spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
    );
    let res = post(&api, INGRESSES, ing(json!({"path": "hls", "pathType": "Prefix", "backend": backend}))).await;
    refused(
        &res,
        422,
        "Invalid",
        "Ingress.networking.k8s.io \"hls\" is invalid: spec.rules[0].http.paths[0].path: Invalid value: \"hls\": must be an absolute path",
    );
    let bad_backend = json!({"service": {"name": "Web_hls", "port": {"name": "http"}}});
    let res = post(&api, INGRESSES, ing(json!({"path": "/hls", "pathType": "Exact", "backend": bad_backend}))).await;
    refused(
        &res,
        422,
        "Invalid",
        &format!(
            "Ingress.networking.k8s.io \"hls\" is invalid: spec.rules[0].http.paths[0].backend.service.name: Invalid value: \"Web_hls\": {DNS1035}"
        ),
    );
    assert_eq!(
        post(&api, INGRESSES, ing(json!({"path": "/hls", "pathType": "Prefix", "backend": backend}))).await.0,
        201
    );

    let lease =
        json!({"metadata": {"name": "onair-operator"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0}});
    let res = post(&api, "/apis/coordination.k8s.io/v1/namespaces/ns/leases", lease).await;
    refused(
        &res,
        422,
        "Invalid",
        "Lease.coordination.k8s.io \"onair-operator\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
    );
}

#[tokio::test]
async fn events_k8s_io_v1_required_fields() {
    let api = fake();
    assert_eq!(post(&api, EVENTS, event(Some("alice.1"))).await.0, 201);
    let cases: Vec<(&str, Value, String)> = vec![
        ("eventTime", Value::Null, "eventTime: Required value".into()),
        (
            "reportingInstance",
            json!("i".repeat(129)),
            "reportingInstance: Invalid value: \"\": can have at most 128 characters".into(),
        ),
        ("action", json!(""), "action: Required value".into()),
        ("reason", json!("r".repeat(129)), "reason: Invalid value: \"\": can have at most 128 characters".into()),
        ("note", json!("n".repeat(1025)), "message: Invalid value: \"\": can have at most 1024 characters".into()),
        ("type", json!("Error"), "type: Invalid value: \"\": has invalid value: Error".into()),
        (
            "regarding",
            Value::Null,
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace".into(),
        ),
    ];
    for (field, value, message) in cases {
        let mut ev = event(Some("alice.2"));
        ev[field] = value;
        let res = post(&api, EVENTS, ev).await;
        refused(&res, 422, "Invalid", &format!("Event.events.k8s.io \"alice.2\" is invalid: {message}"));
    }
    let mut ev = event(Some("alice.2"));
    ev["reportingController"] = json!("");
    let res = post(&api, EVENTS, ev).await;
    assert_eq!(
        res.1["details"]["causes"][0],
        json!({"reason": "FieldValueRequired", "field": "reportingController", "message": "Required value"})
    );
}

#[tokio::test]
async fn writes_need_their_namespace() {
    let api = FakeApi::new();
    refused(
        &post(&api, "/apis/apps/v1/namespaces/nope/deployments", deployment("web")).await,
        404,
        "NotFound",
        "namespaces \"nope\" not found",
    );
    let res = apply(
        &api,
        "/api/v1/namespaces/nope/secrets/s",
        "a",
        true,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await;
    refused(&res, 404, "NotFound", "namespaces \"nope\" not found");
    assert_eq!(res.1["details"], json!({"name": "nope", "kind": "namespaces"}));
    assert_eq!(
        post(&api, "/apis/apps/v1/namespaces/default/deployments", deployment("web")).await.0,
        201,
        "default exists"
    );
    api.namespace("nope");
    assert_eq!(post(&api, "/apis/apps/v1/namespaces/nope/deployments", deployment("web")).await.0, 201);
}

const LS: &str = "/apis/onair.dev/v1alpha1/namespaces/ns/livestreams/alice";

fn livestream(channel: &str) -> Value {
    json!({"apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream", "metadata": {"name": "alice"}, "spec": {"channel": channel}})
}

#[tokio::test]
async fn resource_versions_generations_and_the_status_subresource() {
    let api = fake();
    let (code, created) = apply(&api, LS, "apiserver", true, livestream("a")).await;
    assert_eq!(code, 201);
    let meta = &created["metadata"];
    assert!(meta["uid"].is_string() && meta["creationTimestamp"].is_string());
    assert_eq!(meta["generation"], 1);
    let rv1: u64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();

    let status = json!({"apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream", "status": {"phase": "Live"}});
    let (code, after_status) = apply(&api, &format!("{LS}/status"), "operator", true, status).await;
    assert_eq!(code, 200);
    assert_eq!(after_status["metadata"]["generation"], 1, "status writes do not bump the generation");
    let rv2: u64 = after_status["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv2 > rv1);

    let mut with_status = livestream("b");
    with_status["status"] = json!({"phase": "Failed"});
    let (_, changed) = apply(&api, LS, "apiserver", true, with_status).await;
    assert_eq!(changed["metadata"]["generation"], 2, "a spec change bumps it");
    assert_eq!(changed["status"], json!({"phase": "Live"}), "the main path does not write status");

    // A replace with what was read before: stale.
    let mut stale = created.clone();
    stale["spec"]["channel"] = json!("c");
    let res = send(&api, Method::PUT, LS, JSON, stale.clone()).await;
    refused(
        &res,
        409,
        "Conflict",
        "Operation cannot be fulfilled on livestreams.onair.dev \"alice\": the object has been modified; please apply your changes to the latest version and try again",
    );
    let res = send(&api, Method::PUT, &format!("{LS}/status"), JSON, stale).await;
    assert_eq!((res.0, res.1["reason"].as_str()), (409, Some("Conflict")));
    let mut fresh = api.get(LS).unwrap();
    fresh["spec"]["channel"] = json!("c");
    assert_eq!(send(&api, Method::PUT, LS, JSON, fresh).await.0, 200);

    let res = post(&api, "/apis/onair.dev/v1alpha1/namespaces/ns/livestreams", livestream("a")).await;
    refused(&res, 409, "AlreadyExists", "livestreams.onair.dev \"alice\" already exists");
}

#[tokio::test]
async fn apply_conflicts_between_field_managers() {
    let api = fake();
    let path = format!("{DEPLOYS}/web");
    assert_eq!(apply(&api, &path, "a", false, deployment("web")).await.0, 201);
    let mut two = deployment("web");
    two["spec"]["replicas"] = json!(2);
    let res = apply(&api, &path, "b", false, two.clone()).await;
    refused(&res, 409, "Conflict", "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas");
    assert_eq!(
        res.1["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".spec.replicas"})
    );
    assert_eq!(apply(&api, &path, "b", false, deployment("web")).await.0, 200, "the same values: shared, no conflict");

    // Forced: b takes the field; a's next apply of its old value now conflicts with b.
    assert_eq!(apply(&api, &path, "b", true, two).await.0, 200);
    assert_eq!(api.get(&path).unwrap()["spec"]["replicas"], 2);
    let res = apply(&api, &path, "a", false, deployment("web")).await;
    refused(&res, 409, "Conflict", "Apply failed with 1 conflict: conflict with \"b\": .spec.replicas");

    // Two fields, one manager.
    let mut three = deployment("web");
    three["spec"]["replicas"] = json!(3);
    three["spec"]["minReadySeconds"] = json!(5);
    apply(&api, &path, "c", true, three).await;
    let mut other = deployment("web");
    other["spec"]["replicas"] = json!(4);
    other["spec"]["minReadySeconds"] = json!(6);
    let res = apply(&api, &path, "d", false, other).await;
    refused(
        &res,
        409,
        "Conflict",
        "Apply failed with 2 conflicts: conflicts with \"c\":\n- .spec.minReadySeconds\n- .spec.replicas",
    );
}

#[tokio::test]
async fn apply_removes_what_its_manager_no_longer_applies() {
    let api = fake();
    let path = format!("{DEPLOYS}/web");
    let mut d = deployment("web");
    d["metadata"]["labels"] = json!({"app": "web", "canary": "yes"});
    apply(&api, &path, "a", false, d).await;
    let mut by_b = deployment("web");
    by_b["metadata"]["labels"] = json!({"team": "media"});
    apply(&api, &path, "b", false, by_b).await;
    let mut d = deployment("web");
    d["metadata"]["labels"] = json!({"app": "web"});
    let (code, obj) = apply(&api, &path, "a", false, d).await;
    assert_eq!(code, 200);
    assert_eq!(obj["metadata"]["labels"], json!({"app": "web", "team": "media"}), "a's canary goes; b's label stays");
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_the_last_goes() {
    let api = fake();
    let mut ls = livestream("a");
    ls["metadata"]["finalizers"] = json!(["onair.dev/end-stream"]);
    apply(&api, LS, "apiserver", true, ls).await;
    let (code, obj) = send(&api, Method::DELETE, LS, JSON, json!({})).await;
    assert_eq!(code, 200);
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    assert!(api.get(LS).unwrap()["metadata"]["deletionTimestamp"].is_string(), "still there");

    let res = send(
        &api,
        Method::PATCH,
        LS,
        JSON_PATCH,
        json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "x.dev/other"}]),
    )
    .await;
    assert_eq!(res.0, 422, "no new finalizers once deleting: {}", res.1);
    assert_eq!(
        res.1["details"]["causes"][0]["message"],
        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x.dev/other\"}"
    );

    let patch = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "onair.dev/end-stream"},
                       {"op": "remove", "path": "/metadata/finalizers/0"}]);
    assert_eq!(send(&api, Method::PATCH, LS, JSON_PATCH, patch).await.0, 200);
    assert!(api.get(LS).is_none(), "gone with its last finalizer");
    refused(
        &send(&api, Method::GET, LS, JSON, Value::Null).await,
        404,
        "NotFound",
        "livestreams.onair.dev \"alice\" not found",
    );

    apply(&api, LS, "apiserver", true, livestream("a")).await;
    assert_eq!(send(&api, Method::DELETE, LS, JSON, json!({})).await.0, 200);
    assert!(api.get(LS).is_none(), "no finalizers: deleted at once");
}

#[tokio::test]
async fn block_owner_deletion_needs_finalizers_permission_when_enforced() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alice-key", "ownerReferences": [
        {"apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream", "name": "alice", "uid": "u1", "blockOwnerDeletion": true}]},
        "stringData": {"keyHash": "abc"}});
    let path = "/api/v1/namespaces/ns/secrets/alice-key";
    let api = fake();
    let (code, stored) = apply(&api, path, "apiserver", true, secret.clone()).await;
    assert_eq!(code, 201, "not enforced by default");
    assert_eq!(stored["data"], json!({"keyHash": "YWJj"}), "stringData is stored as data");

    let api = fake().enforce_owner_references();
    let res = apply(&api, path, "apiserver", true, secret.clone()).await;
    refused(
        &res,
        403,
        "Forbidden",
        "secrets \"alice-key\" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>",
    );
    api.grant_finalizers("apiserver", "livestreams.onair.dev");
    assert_eq!(apply(&api, path, "apiserver", true, secret).await.0, 201);
}

#[tokio::test]
async fn merge_patches_and_kube_clients_work() {
    let api = fake();
    let client = api.client();
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client, "ns");
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(deployment("web")).unwrap();
    let pp = kube::api::PatchParams::apply("tests");
    let created = deployments.patch("web", &pp, &kube::api::Patch::Apply(&d)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let scaled = deployments
        .patch("web", &Default::default(), &kube::api::Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!((scaled.spec.replicas, scaled.metadata.generation), (Some(3), Some(2)));
    let err = deployments.get("nope").await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(
            (s.code, s.reason.as_str(), s.message.as_str()),
            (404, "NotFound", "deployments.apps \"nope\" not found")
        ),
        other => panic!("{other}"),
    }
}

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};

use crate::helpers::{spawn_app, spawn_app_with};

/// Every documented operation is routed (the router never answers it with its own 404/405),
/// and the seed's API is all there. Routes are registered through `utoipa_axum::routes!`, so a
/// route cannot be added without its documentation; this checks the other direction.
#[tokio::test]
async fn every_documented_path_is_routed_and_the_seed_api_is_documented() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for required in [
        "/api/users/register",
        "/api/users/login",
        "/api/users/{user_id}",
        "/api/users/me",
        "/api/users/refresh",
        "/api/users/logout",
        "/api/streams/start",
        "/api/streams/{stream_id}/stop",
        "/api/streams/{stream_id}",
        "/api/streams/search",
        "/api/streams/{stream_id}/analytics",
        "/api/categories",
        "/api/users/{user_id}/follow",
        "/api/users/{user_id}/followers",
        "/api/users/me/following/live",
        // The route's annotation restates it (utoipa needs a literal): it must be the constant.
        onair_domain::contracts::http::JWKS_PATH,
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(required), "{required} is not documented");
    }
    // The chat gateway's routes are in the document too; its own tests probe them there.
    let chat = onair_chat_gateway::openapi();
    let own = paths.iter().filter(|(path, _)| !chat.paths.paths.contains_key(*path));
    let checked = onair_testkit::assert_documented_operations_routed(&app.client, &app.base, own).await;
    assert!(checked >= 25, "only {checked} operations checked");
}

#[tokio::test]
async fn operational_endpoints() {
    let app = spawn_app().await;
    let (status, h) = app.get("/healthz", None).await;
    assert_eq!((status, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, r) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let names: Vec<&str> = r["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["postgres", "redis", "nats"]);

    app.get("/api/categories", None).await;
    let res = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"onair_apiserver_http_requests_total{method="GET",route="/api/categories",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("onair_apiserver_http_request_duration_seconds_bucket"), "{text}");

    let (status, body) = app.get("/no/such/route", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, body) = app.request(Method::DELETE, "/api/categories", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    let res = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert!(res.headers().contains_key("x-request-id"), "request ids are echoed");
}

/// The web app (compiled in): `index.html` revalidated on every load, hashed assets cached for
/// good, the client config public, and unknown paths still JSON 404s.
#[tokio::test]
async fn the_web_app_and_its_config_are_served() {
    let app = spawn_app_with(&[]).await;
    let res = app.client.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let html = res.text().await.unwrap();
    assert!(html.contains("<title>"), "{html}");
    let script = html.split('"').find(|s| s.starts_with("/assets/") && s.ends_with(".js")).expect("a script");
    let res = app.client.get(format!("{}{script}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
    let res = app.client.get(format!("{}/assets/../index.html", app.base)).send().await.unwrap();
    assert_ne!(res.status(), 500);
    let (status, config) = app.get("/api/config", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(config.get("chat_url").is_none(), "chat is on the same origin");
    assert_eq!(config["ingest_url"], "rtmp://127.0.0.1:1935/live");
    let (status, body) = app.get("/api/nope", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

/// Routes the document leaves out on purpose, each with its reason: a path is left out when it
/// equals an entry, or starts with one ending in `/`. Every other route must be documented.
const UNDOCUMENTED: &[(&str, &str)] = &[
    ("/internal/", "service-to-service, behind the internal token"),
    ("/healthz", "operations: liveness"),
    ("/readyz", "operations: readiness"),
    ("/metrics", "operations: Prometheus"),
    ("/ws/", "WebSocket upgrades: the frames are described in chat-gateway/README.md"),
    ("/", "the web app's index.html"),
    ("/assets", "the web app's files"),
];

fn left_out(path: &str) -> bool {
    UNDOCUMENTED.iter().any(|(p, _)| path == *p || (p.ends_with('/') && path.starts_with(p)))
}

/// The path literals a crate's sources hand to axum directly (`.route`, `.route_service`,
/// `.nest`, `.nest_service`). Routes registered through `utoipa_axum::routes!` are documented
/// by construction; these are the ones that can slip past the document. axum cannot list a
/// router's routes, so the sources are read.
fn axum_route_literals(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                for (at, _) in src.match_indices(call) {
                    let rest = src[at + call.len()..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"').and_then(|r| r.split_once('"')).map(|(l, _)| l) {
                        out.push((path.clone(), lit.to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// A route cannot exist without being in the document (or in `UNDOCUMENTED` with a reason),
/// for both services whose routes answer at the API address; and the rule's own entries are
/// not documented twice.
#[tokio::test]
async fn every_public_route_is_documented() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut seen = 0;
    for krate in ["apiserver/src", "chat-gateway/src"] {
        for (file, route) in axum_route_literals(&root.join(krate)) {
            seen += 1;
            // A wildcard (`{*path}`) is one path parameter to OpenAPI (`{path}`).
            let route = route.replace("{*", "{");
            assert!(
                paths.contains_key(&route) || left_out(&route),
                "{route} (routed in {}) is not in the OpenAPI document: document it, or add it to UNDOCUMENTED with a reason",
                file.display()
            );
        }
    }
    assert!(seen >= 6, "only {seen} axum routes found: has the router moved?");
    // Every chat REST route answers at the API address on Kubernetes and on one machine, so
    // the apiserver's document carries the gateway's whole document.
    let chat = onair_chat_gateway::openapi();
    for (path, item) in &chat.paths.paths {
        let ours = paths.get(path).unwrap_or_else(|| panic!("chat route {path} is missing from the served document"));
        for method in ["get", "post", "put", "patch", "delete"] {
            let documented = serde_json::to_value(item).unwrap().get(method).is_some();
            assert_eq!(ours.get(method).is_some(), documented, "{method} {path}");
        }
    }
    assert!(paths.contains_key("/api/streams/{stream_id}/chat"), "the seed's chat API is documented");
}

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
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(required), "{required} is not documented");
    }
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{stream_id}", "00000000-0000-0000-0000-000000000000")
            .replace("{user_id}", "00000000-0000-0000-0000-000000000000");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .client
                .request(m, format!("{}{concrete}", app.base))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            let unrouted = body["error"]["code"] == "not_found" || body["error"]["code"] == "method_not_allowed";
            assert!(!unrouted, "{method} {path} is documented but not routed ({status})");
            checked += 1;
        }
    }
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

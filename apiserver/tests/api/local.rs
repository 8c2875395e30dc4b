//! The local orchestrator (one machine) against a stand-in media worker: the stream's public
//! state shows what the worker says, including a ladder shed because the machine fell behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::response::IntoResponse as _;
use axum::routing::get;
use onair_apiserver::LocalOrchestrator;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_orchestrated;

/// A worker with a publisher at `level`, whose media plays once `playable` is set; its state
/// route checks the token.
async fn worker(level: &'static str, playable: Arc<AtomicBool>) -> String {
    let app = axum::Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/internal/streams/{id}",
        get(move |headers: http::HeaderMap| async move {
            if headers.get("x-onair-internal-token").is_none_or(|t| t != "local-test") {
                return http::StatusCode::UNAUTHORIZED.into_response();
            }
            let playable = playable.load(Ordering::SeqCst);
            axum::Json(
                json!({"publishing": true, "stopped": false, "renditions": ["240p"], "level": level, "playable": playable}),
            )
            .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_stream_shows_the_workers_state_and_a_shed_ladder() {
    let orch = Arc::new(LocalOrchestrator::new(
        &worker("Reduced", Arc::new(AtomicBool::new(true))).await,
        secrecy::SecretString::from("local-test".to_owned()),
        "rtmp://127.0.0.1:1935/live",
        "http://127.0.0.1:8090/hls",
    ));
    let app = spawn_app_orchestrated(&["--stream-cache-ms", "1"], Some(orch)).await;
    let user = app.register("localshed").await;
    let id = app.go_live(&user, "on one machine", "games", &[]).await;
    let (status, view) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["media"]["phase"], "Live", "{view}");
    assert_eq!(view["media"]["renditions"], json!(["240p"]));
    let message = view["media"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("shed to reduced"), "the streamer sees why: {view}");
}

#[tokio::test]
async fn a_full_ladder_has_no_message() {
    let orch = Arc::new(LocalOrchestrator::new(
        &worker("Full", Arc::new(AtomicBool::new(true))).await,
        secrecy::SecretString::from("local-test".to_owned()),
        "rtmp://127.0.0.1:1935/live",
        "http://127.0.0.1:8090/hls",
    ));
    let app = spawn_app_orchestrated(&["--stream-cache-ms", "1"], Some(orch)).await;
    let user = app.register("localfull").await;
    let id = app.go_live(&user, "all good", "games", &[]).await;
    let (_, view) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(view["media"]["phase"], "Live", "{view}");
    assert!(view["media"]["message"].is_null(), "{view}");
}

/// A viewer who opens the page between the publisher connecting and the encoder's first part
/// gets no playlist URL (the page says the stream is starting); the URL appears once it plays.
#[tokio::test]
async fn no_playback_url_until_the_first_media_plays() {
    let playable = Arc::new(AtomicBool::new(false));
    let orch = Arc::new(LocalOrchestrator::new(
        &worker("Full", playable.clone()).await,
        secrecy::SecretString::from("local-test".to_owned()),
        "rtmp://127.0.0.1:1935/live",
        "http://127.0.0.1:8090/hls",
    ));
    let app = spawn_app_orchestrated(&["--stream-cache-ms", "1"], Some(orch)).await;
    let user = app.register("localstart").await;
    let id = app.go_live(&user, "just went live", "games", &[]).await;
    let (_, view) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(view["status"], "live", "{view}");
    assert_eq!(view["media"]["phase"], "Starting", "{view}");
    assert!(view["playback_url"].is_null(), "no URL a player cannot play yet: {view}");
    playable.store(true, Ordering::SeqCst);
    let view = onair_testkit::eventually(std::time::Duration::from_secs(5), || async {
        let (_, v) = app.get(&format!("/api/streams/{id}"), None).await;
        v["playback_url"].is_string().then_some(v)
    })
    .await;
    assert_eq!(view["media"]["phase"], "Live", "{view}");
    assert_eq!(view["playback_url"], format!("http://127.0.0.1:8090/hls/{id}/master.m3u8"));
}

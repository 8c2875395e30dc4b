use std::time::Duration;

use futures::SinkExt as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::helpers::{env, next_json, send, wait_for};

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_usable() {
    let env = env(1, &[]).await;
    let owner = env.register("inputs").await;
    let u = env.register("user1").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(0, &stream, Some(&u.token)).await;
    let mut anon = env.connect(0, &stream, None).await;

    for (frame, code) in [
        ("{not json", "malformed_json"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"type":"send"}"#, "invalid_frame"),
        (r#"{"type":"send","text":42}"#, "invalid_frame"),
    ] {
        ws.send(Message::Text(frame.into())).await.unwrap();
        assert_eq!(next_json(&mut ws).await["code"], code, "{frame}");
    }
    let big = json!({"type": "send", "text": "x".repeat(5000)}).to_string();
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "frame_too_large");
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "unsupported_frame");
    send(&mut ws, &"y".repeat(501), "long").await;
    assert_eq!(next_json(&mut ws).await["code"], "message_too_long");
    send(&mut ws, "   ", "empty").await;
    assert_eq!(next_json(&mut ws).await["code"], "empty_message");
    send(&mut anon, "hi", "anon").await;
    assert_eq!(next_json(&mut anon).await["code"], "login_required");

    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "pong", "still usable");
    send(&mut ws, "finally valid", "ok").await;
    assert_eq!(wait_for(&mut ws, "ack").await["ref"], "ok");
}

#[tokio::test]
async fn upgrades_are_refused_with_http_errors() {
    let env = env(1, &["--allowed-origins", "https://onair.example"]).await;
    let owner = env.register("upgrades").await;
    let stream = env.live_stream(&owner).await;
    let attempt = |path: String, protocols: &'static str, origin: &'static str| async move {
        let mut req = path.into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    };
    let ws = &env.gateways[0].ws;
    assert_eq!(attempt(format!("{ws}/ws/streams/{stream}/chat"), "onair.chat.v1", "https://evil.example").await, 403);
    assert_eq!(
        attempt(
            format!("{ws}/ws/streams/{stream}/chat"),
            "onair.chat.v1, access_token.not-a-jwt",
            "https://onair.example"
        )
        .await,
        401
    );
    assert_eq!(
        attempt(
            format!("{ws}/ws/streams/00000000-0000-0000-0000-000000000000/chat"),
            "onair.chat.v1",
            "https://onair.example"
        )
        .await,
        404
    );
    assert_eq!(
        attempt(format!("{ws}/ws/streams/not-a-uuid/chat"), "onair.chat.v1", "https://onair.example").await,
        400
    );
    assert_eq!(attempt(format!("{ws}/ws/streams/{stream}/chat"), "onair.chat.v1", "https://onair.example").await, 101);
}

#[tokio::test]
async fn chat_closes_when_the_stream_ends() {
    let env = env(1, &[]).await;
    let owner = env.register("ender").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(0, &stream, Some(&owner.token)).await;
    let res = env
        .client
        .post(format!("{}/api/streams/{stream}/stop", env.api))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    wait_for(&mut ws, "ended").await;
    send(&mut ws, "anyone?", "late").await;
    assert_eq!(wait_for(&mut ws, "error").await["code"], "stream_ended");
    let (status, body) = env
        .rest(0, Method::POST, &format!("/api/streams/{stream}/chat"), Some(&owner.token), Some(json!({"text": "x"})))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("stream_ended")));
    let (status, _) =
        env.rest(0, Method::POST, &format!("/api/streams/{stream}/chat"), None, Some(json!({"text": "x"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) =
        env.rest(0, Method::GET, "/api/streams/00000000-0000-0000-0000-000000000000/chat", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = env.rest(0, Method::GET, &format!("/api/streams/{stream}/chat?limit=0"), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// The `Authorization` scheme is case-insensitive (RFC 7235 §2.1), as on the apiserver: a
/// client that writes `bearer` or `BEARER` gets in; another scheme or none does not.
#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let env = env(1, &[]).await;
    let owner = env.register("schemes").await;
    let stream = env.live_stream(&owner).await;
    let url = format!("{}/api/streams/{stream}/chat", env.gateways[0].base);
    let post = |authorization: Option<String>, text: &'static str| {
        let mut req = env.client.post(&url).json(&json!({ "text": text }));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body)
        }
    };
    for (scheme, text) in [("Bearer", "one"), ("bearer", "two"), ("BEARER", "three")] {
        let (status, body) = post(Some(format!("{scheme} {}", owner.token)), text).await;
        assert_eq!(status, StatusCode::CREATED, "{scheme}: {body}");
    }
    let (status, body) = post(Some(format!("Basic {}", owner.token)), "four").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    let (status, body) = post(None, "five").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_token")), "{body}");
}

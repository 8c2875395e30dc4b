//! Where viewers play from (issue 17): the delivery bases in a weighted, sticky order with the
//! origin last; signed links for channels that require them; followers-only channels; the
//! per-base circuit breaker fed by heartbeats' failover reports.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app_with};
use crate::recordings::verify_key;

const BASES: &str = "cdn-a=http://a.cdn.test/hls@3,cdn-b=http://b.cdn.test/hls@1";
pub(crate) const KEYS: &str =
    "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8,k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

async fn sources(app: &TestApp, stream: &str, session: &str, token: Option<&str>) -> (StatusCode, Value) {
    app.request(Method::POST, &format!("/api/streams/{stream}/playback"), token, Some(json!({ "session_id": session })))
        .await
}

fn names(v: &Value) -> Vec<String> {
    v["sources"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

async fn beat(app: &TestApp, stream: &str, body: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/streams/{stream}/heartbeat"), None, body).await
}

/// A heartbeat from `ip` (the app trusts `X-Forwarded-For`, as behind its ingress).
async fn beat_from(app: &TestApp, ip: &str, stream: &str, body: Value) -> StatusCode {
    app.client
        .post(format!("{}/api/streams/{stream}/heartbeat", app.base))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn viewers_get_the_bases_in_a_sticky_weighted_order_with_the_origin_last() {
    let app = spawn_app_with(&["--playback-bases", BASES, "--heartbeats-per-ip-per-minute", "10000"]).await;
    let streamer = app.register("cdnstreamer").await;
    let stream = app.go_live(&streamer, "Bases", "games", &[]).await;

    let (status, first) = sources(&app, &stream, "viewer-session-1", None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(names(&first).last().unwrap(), "origin");
    assert_eq!(names(&first).len(), 3);
    let origin = &first["sources"][2];
    assert_eq!(origin["url"], format!("http://127.0.0.1:8090/hls/{stream}/master.m3u8"));
    let a = first["sources"].as_array().unwrap().iter().find(|s| s["name"] == "cdn-a").unwrap();
    assert_eq!(a["url"], format!("http://a.cdn.test/hls/{stream}/master.m3u8"));
    assert!(first.get("expires_at").is_none(), "a public channel's links do not expire: {first}");
    // Sticky: the same session gets the same order every time.
    for _ in 0..3 {
        assert_eq!(names(&sources(&app, &stream, "viewer-session-1", None).await.1), names(&first));
    }
    // Weighted: cdn-a (3) comes first for about three sessions in four.
    let mut firsts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..400 {
        let (_, v) = sources(&app, &stream, &format!("viewer-{i:04}"), None).await;
        *firsts.entry(names(&v)[0].clone()).or_default() += 1;
    }
    let a_first = firsts.get("cdn-a").copied().unwrap_or(0);
    assert!((250..=350).contains(&a_first), "cdn-a first for {a_first} of 400 sessions: {firsts:?}");
    assert!(!firsts.contains_key("origin"), "the origin is never first while a base is healthy");
}

#[tokio::test]
async fn only_a_stream_that_plays_has_sources_and_bad_requests_say_why() {
    let app = spawn_app_with(&["--playback-bases", BASES, "--stream-cache-ms", "1"]).await;
    let streamer = app.register("notyet").await;
    let started = app.start_stream(&streamer, "Soon", "games", &[]).await;
    let stream = started["stream"]["id"].as_str().unwrap();
    assert_error(&sources(&app, stream, "viewer-session-1", None).await, StatusCode::CONFLICT, "stream_not_playable");
    let unknown = "0192f3a0-0000-7000-8000-00000000beef";
    assert_error(&sources(&app, unknown, "viewer-session-1", None).await, StatusCode::NOT_FOUND, "stream_not_found");
    assert_error(&sources(&app, stream, "short", None).await, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(app.report_status(stream, "live").await, StatusCode::NO_CONTENT);
    assert_eq!(sources(&app, stream, "viewer-session-1", None).await.0, StatusCode::OK);
    // Heartbeats' delivery reports are bounded and named like the list names them.
    let nine: Vec<Value> = (0..9).map(|_| json!({"from": "cdn-a", "reason": "network"})).collect();
    assert_error(
        &beat(&app, stream, json!({"session_id": "viewer-session-1", "failovers": nine})).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    let long = "x".repeat(33);
    assert_error(
        &beat(&app, stream, json!({"session_id": "viewer-session-1", "base": long})).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    let odd = beat(
        &app,
        stream,
        json!({"session_id": "viewer-session-1", "failovers": [{"from": "cdn-a", "reason": "gremlins"}]}),
    )
    .await;
    assert_eq!(odd.0, StatusCode::BAD_REQUEST, "{}", odd.1);
    // A base the list no longer names is ignored, not an error (an older list).
    let gone = beat(&app, stream, json!({"session_id": "viewer-session-1", "base": "cdn-z", "failovers": [{"from": "cdn-z", "reason": "timeout"}]})).await;
    assert_eq!(gone.0, StatusCode::NO_CONTENT, "{}", gone.1);
}

#[tokio::test]
async fn a_signed_channel_gets_expiring_links_for_this_viewer_that_every_listed_key_verifies() {
    let app =
        spawn_app_with(&["--playback-bases", BASES, "--playback-keys", KEYS, "--playback-token-ttl-secs", "600"]).await;
    let streamer = app.register("signedchan").await;
    let (status, me) = app
        .request(Method::PATCH, "/api/users/me", Some(&streamer.token), Some(json!({"playback_access": "signed"})))
        .await;
    assert_eq!((status, me["playback_access"].as_str()), (StatusCode::OK, Some("signed")), "{me}");
    let started = app.start_stream(&streamer, "Signed", "games", &[]).await;
    let stream = started["stream"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.report_status(&stream, "live").await, StatusCode::NO_CONTENT);
    let (_, view) = app.get(&format!("/api/streams/{stream}"), None).await;
    assert_eq!(view["playback_access"], "signed");

    let (status, got) = sources(&app, &stream, "viewer-session-7", None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let expires: chrono::DateTime<chrono::Utc> = got["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires - chrono::Utc::now();
    assert!((590..=600).contains(&ttl.num_seconds()), "expires in {ttl}");
    let keys = onair_playback_token::Keyring::parse(KEYS).unwrap();
    for s in got["sources"].as_array().unwrap() {
        let url = s["url"].as_str().unwrap();
        let (_, path) = url.split_once("://").unwrap().1.split_once('/').unwrap();
        let path = format!("/{path}");
        let (token, rest) = onair_playback_token::split_path(&path).expect("a signed path");
        assert_eq!(rest, format!("/hls/{stream}/master.m3u8"), "{url}");
        assert!(path.starts_with(&format!("/hls/{stream}/t/")), "the token is inside the stream's directory: {url}");
        let claims = keys.verify(token, &stream, chrono::Utc::now().timestamp()).expect("the token verifies");
        assert_eq!((claims.kid.as_str(), claims.viewer.as_str()), ("k2", "viewer-session-7"), "the first key signs");
        assert_eq!(claims.expires, expires.timestamp());
        // Another stream's directory is not opened by it.
        assert!(keys.verify(token, "0192f3a0-0000-7000-8000-000000000001", chrono::Utc::now().timestamp()).is_err());
    }
    // The worker's key check says who may play, so it refuses the plain paths.
    let owner = verify_key(&app, started["ingest"]["stream_key"].as_str().unwrap()).await;
    assert_eq!(
        (owner["stream_id"].as_str(), owner["playback_access"].as_str()),
        (Some(stream.as_str()), Some("signed"))
    );

    // A channel that requires signed links on a server that cannot sign: a clear 503.
    let unsigned = spawn_app_with(&["--playback-bases", BASES]).await;
    let s2 = unsigned.register("nokeys").await;
    unsigned.request(Method::PATCH, "/api/users/me", Some(&s2.token), Some(json!({"playback_access": "signed"}))).await;
    let stream2 = unsigned.go_live(&s2, "No keys", "games", &[]).await;
    assert_error(
        &sources(&unsigned, &stream2, "viewer-session-7", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "playback_keys_missing",
    );
}

#[tokio::test]
async fn a_followers_only_channel_plays_for_its_followers_and_the_streamer_and_no_one_else() {
    let app = spawn_app_with(&["--playback-keys", KEYS]).await;
    let streamer = app.register("private").await;
    app.request(Method::PATCH, "/api/users/me", Some(&streamer.token), Some(json!({"playback_access": "followers"})))
        .await;
    let stream = app.go_live(&streamer, "Private", "games", &[]).await;
    let fan = app.register("fan").await;
    let stranger = app.register("stranger").await;

    assert_error(&sources(&app, &stream, "viewer-session-1", None).await, StatusCode::UNAUTHORIZED, "missing_token");
    assert_error(
        &sources(&app, &stream, "viewer-session-1", Some("not-a-token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_error(
        &sources(&app, &stream, "viewer-session-1", Some(&stranger.token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, _) =
        app.request(Method::PUT, &format!("/api/users/{}/follow", streamer.id), Some(&fan.token), None).await;
    assert!(status.is_success(), "{status}");
    let (status, got) = sources(&app, &stream, "viewer-session-2", Some(&fan.token)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert!(got["sources"][0]["url"].as_str().unwrap().contains("/t/k2."), "{got}");
    assert_eq!(sources(&app, &stream, "viewer-session-3", Some(&streamer.token)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn failover_reports_from_enough_places_open_a_bases_breaker_for_new_viewers_until_the_cooldown() {
    let app = spawn_app_with(&[
        "--playback-bases",
        BASES,
        "--delivery-breaker-failures",
        "3",
        "--delivery-breaker-percent",
        "20",
        "--delivery-breaker-cooldown-secs",
        "2",
        "--heartbeats-per-ip-per-minute",
        "10000",
        "--trust-forwarded-for",
    ])
    .await;
    let streamer = app.register("breaker").await;
    let stream = app.go_live(&streamer, "Breaker", "games", &[]).await;
    let failed = |session: String| json!({"session_id": session, "base": "cdn-b", "failovers": [{"from": "cdn-a", "reason": "network"}]});
    let listed = |v: &Value| names(v).contains(&"cdn-a".to_owned());

    // Healthy viewers on cdn-a at 20 addresses (beating twice: each address counts once).
    for round in 0..2 {
        for i in 0..20 {
            let body = json!({"session_id": format!("happy-{i:03}-{round}"), "base": "cdn-a"});
            assert_eq!(beat_from(&app, &format!("10.0.0.{i}"), &stream, body).await, StatusCode::NO_CONTENT);
        }
    }
    // One address inventing sessions counts once.
    for i in 0..10 {
        assert_eq!(
            beat_from(&app, "10.0.1.0", &stream, failed(format!("made-up-{i:03}"))).await,
            StatusCode::NO_CONTENT
        );
    }
    // Three failing addresses against 20 healthy (13 %): under the 20 % share, cdn-a stays.
    for i in 1..3 {
        let status = beat_from(&app, &format!("10.0.1.{i}"), &stream, failed(format!("sad-session-{i:03}"))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert!(listed(&sources(&app, &stream, "new-viewer-1", None).await.1), "3 of 23 do not trip it");
    // Three more (6 of 26, 23 %): out of new viewers' lists.
    for i in 3..6 {
        let status = beat_from(&app, &format!("10.0.1.{i}"), &stream, failed(format!("sad-session-{i:03}"))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (_, now) = sources(&app, &stream, "new-viewer-2", None).await;
    assert_eq!(names(&now), ["cdn-b", "origin"], "{now}");
    let (_, metrics) = app.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains(r#"delivery_breaker_trips_total{base="cdn-a"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"delivery_failovers_reported_total{base="cdn-a",reason="network"}"#), "{metrics}");
    assert!(metrics.contains(r#"delivery_base_open{base="cdn-a"} 1"#), "{metrics}");
    // After the cool-down it is tried again.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(listed(&sources(&app, &stream, "new-viewer-3", None).await.1), "back after the cool-down");
}

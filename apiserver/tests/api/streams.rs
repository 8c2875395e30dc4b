use onair_apiserver::RecordedCall;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{INTERNAL_TOKEN, assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn start_get_stop_through_the_orchestrator() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let started = app.start_stream(&olga, "Any% speedrun practice", "games", &["speedrun", "Retro"]).await;
    let stream = &started["stream"];
    let id = stream["id"].as_str().unwrap().to_owned();
    assert_eq!(stream["status"], "starting");
    assert_eq!(stream["tags"], json!(["speedrun", "retro"]));
    assert_eq!(stream["streamer"]["username"], "olga");
    assert_eq!(started["ingest"]["url"], "rtmp://127.0.0.1:1935/live");
    assert!(started["ingest"]["playback_url"].as_str().unwrap().ends_with(&format!("/{id}/master.m3u8")));
    assert!(stream["playback_url"].is_null(), "nothing plays before the publisher connects: {stream}");
    let key = started["ingest"]["stream_key"].as_str().expect("first start shows the new key").to_owned();
    assert!(key.starts_with("live_") && started["ingest"]["key_hint"].as_str().unwrap().contains(&key[..9]));
    let calls = app.orchestrator.calls();
    assert!(
        matches!(&calls[..], [RecordedCall::Start(spec)] if spec.stream_id.to_string() == id && spec.quality == "source")
    );

    // One active stream per user.
    let again =
        app.post("/api/streams/start", Some(&olga.token), json!({"title": "second", "category": "games"})).await;
    assert_error(&again, StatusCode::CONFLICT, "stream_already_active");

    let (status, got) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["title"], "Any% speedrun practice");
    assert_eq!(got["viewers"], 0);

    let (status, stopped) = app.post(&format!("/api/streams/{id}/stop"), Some(&olga.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "ended");
    assert!(stopped["ended_at"].is_string() && stopped["playback_url"].is_null());
    assert!(matches!(app.orchestrator.calls().last(), Some(RecordedCall::Stop(s)) if s.to_string() == id));
    // The cache was invalidated: readers see the end at once.
    assert_eq!(app.get(&format!("/api/streams/{id}"), None).await.1["status"], "ended");
    assert_error(
        &app.post(&format!("/api/streams/{id}/stop"), Some(&olga.token), json!({})).await,
        StatusCode::CONFLICT,
        "stream_not_active",
    );

    // After the end a new broadcast may start, and the key is not shown again.
    let second = app.start_stream(&olga, "Round two", "games", &[]).await;
    assert!(second["ingest"]["stream_key"].is_null());
    assert_ne!(second["stream"]["id"], json!(id));
}

#[tokio::test]
async fn start_validates_and_requires_a_token() {
    let app = spawn_app().await;
    let pat = app.register("pat").await;
    assert_error(
        &app.post("/api/streams/start", None, json!({"title": "t", "category": "games"})).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );
    let cases = [
        (json!({"title": "", "category": "games"}), "title"),
        (json!({"title": "x".repeat(141), "category": "games"}), "title"),
        (json!({"title": "ok", "category": "no-such-category"}), "category"),
        (json!({"title": "ok", "category": "games; DROP TABLE streams"}), "category"),
        (json!({"title": "ok", "category": "games", "tags": ["a b"]}), "tags"),
        (
            json!({"title": "ok", "category": "games", "tags": ["t1","t2","t3","t4","t5","t6","t7","t8","t9","t10","t11"]}),
            "tags",
        ),
        (json!({"title": "ok", "category": "games", "language": "klingon"}), "language"),
        (json!({"title": "ok", "category": "games", "quality": "8k"}), "quality"),
    ];
    for (body, field) in cases {
        let got = app.post("/api/streams/start", Some(&pat.token), body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got.1["error"]["field"], field, "{body}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM streams").fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 0);
    assert!(app.orchestrator.calls().is_empty(), "nothing invalid reached the orchestrator");
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_stop_or_edit() {
    let app = spawn_app().await;
    let owner = app.register("quinn").await;
    let other = app.register("rita").await;
    let admin = app.register("sam").await;
    let admin = app.make_admin(&admin).await;
    let id = app.start_stream(&owner, "mine", "music", &[]).await["stream"]["id"].as_str().unwrap().to_owned();

    assert_error(
        &app.post(&format!("/api/streams/{id}/stop"), Some(&other.token), json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.post(&format!("/api/streams/{id}/stop"), None, json!({})).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );
    let edit = app
        .request(Method::PATCH, &format!("/api/streams/{id}"), Some(&other.token), Some(json!({"title": "hijacked"})))
        .await;
    assert_error(&edit, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.get(&format!("/api/streams/{id}"), None).await.1["title"], "mine");

    let (status, edited) = app
        .request(
            Method::PATCH,
            &format!("/api/streams/{id}"),
            Some(&owner.token),
            Some(json!({"title": "renamed", "tags": ["chill"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!((edited["title"].as_str(), edited["tags"][0].as_str()), (Some("renamed"), Some("chill")));
    let bad = app
        .request(Method::PATCH, &format!("/api/streams/{id}"), Some(&owner.token), Some(json!({"category": "nope"})))
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_field");

    let (status, _) = app.post(&format!("/api/streams/{id}/stop"), Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "admins may stop any stream");

    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_error(
        &app.post(&format!("/api/streams/{unknown}/stop"), Some(&owner.token), json!({})).await,
        StatusCode::NOT_FOUND,
        "stream_not_found",
    );
    assert_error(&app.get(&format!("/api/streams/{unknown}"), None).await, StatusCode::NOT_FOUND, "stream_not_found");
    assert_error(&app.get("/api/streams/1%20OR%201=1", None).await, StatusCode::BAD_REQUEST, "invalid_path");
}

#[tokio::test]
async fn an_orchestrator_failure_frees_the_live_slot() {
    let app = spawn_app().await;
    let tom = app.register("tom").await;
    app.orchestrator.fail_starts(true);
    let got = app.post("/api/streams/start", Some(&tom.token), json!({"title": "t", "category": "games"})).await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "media_unavailable");
    let failed: String = sqlx::query_scalar("SELECT status FROM streams WHERE user_id = $1::uuid")
        .bind(&tom.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failed, "failed");
    app.orchestrator.fail_starts(false);
    app.start_stream(&tom, "t", "games", &[]).await;
}

#[tokio::test]
async fn stream_keys_are_shown_once_stored_hashed_and_checked_by_the_media_worker() {
    let app = spawn_app().await;
    let uma = app.register("uma").await;
    let (status, info) = app.get("/api/users/me/stream-key", Some(&uma.token)).await;
    assert_eq!((status, info["exists"].as_bool()), (StatusCode::OK, Some(false)));
    let (status, made) = app.post("/api/users/me/stream-key", Some(&uma.token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = made["stream_key"].as_str().unwrap().to_owned();
    let (_, info) = app.get("/api/users/me/stream-key", Some(&uma.token)).await;
    assert_eq!(info["prefix"], json!(&key[..9]));
    assert!(!info.to_string().contains(&key), "the key is never shown again");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM stream_keys WHERE user_id = $1::uuid")
        .bind(&uma.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32, "a SHA-256, not the key");
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1::uuid")
        .bind(&uma.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(role, "streamer", "a user with a key is a streamer");

    let verify = |token: Option<&'static str>, key: String| {
        let mut req =
            app.client.post(format!("{}/internal/stream-keys/verify", app.base)).json(&json!({"stream_key": key}));
        if let Some(t) = token {
            req = req.header("x-onair-internal-token", t);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    assert_error(&verify(None, key.clone()).await, StatusCode::UNAUTHORIZED, "missing_token");
    assert_error(&verify(Some("wrong"), key.clone()).await, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_error(&verify(Some(INTERNAL_TOKEN), key.clone()).await, StatusCode::CONFLICT, "no_active_stream");
    assert_error(
        &verify(Some(INTERNAL_TOKEN), "live_wrong".into()).await,
        StatusCode::NOT_FOUND,
        "stream_key_not_found",
    );
    // Users cannot reach internal routes with their own token.
    let res = app
        .client
        .post(format!("{}/internal/stream-keys/verify", app.base))
        .bearer_auth(&uma.token)
        .json(&json!({"stream_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let started = app.start_stream(&uma, "keys", "art", &[]).await;
    assert!(started["ingest"]["stream_key"].is_null(), "an existing key is not re-shown");
    let (status, owner) = verify(Some(INTERNAL_TOKEN), key.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(owner["stream_id"], started["stream"]["id"]);
    assert_eq!(owner["user_id"], json!(uma.id));

    // Rotation: the old key stops working at once.
    let (_, rotated) = app.post("/api/users/me/stream-key", Some(&uma.token), json!({})).await;
    let new_key = rotated["stream_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_error(&verify(Some(INTERNAL_TOKEN), key).await, StatusCode::NOT_FOUND, "stream_key_not_found");
    assert_eq!(verify(Some(INTERNAL_TOKEN), new_key).await.0, StatusCode::OK);
    assert_error(
        &app.post("/api/users/me/stream-key", None, json!({})).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );
}

#[tokio::test]
async fn media_status_reports_drive_the_lifecycle() {
    let app = spawn_app().await;
    let vic = app.register("vic").await;
    let id = app.start_stream(&vic, "status", "irl", &[]).await["stream"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.report_status(&id, "live").await, StatusCode::NO_CONTENT);
    let (_, s) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(s["status"], "live");
    assert!(s["started_at"].is_string());
    let (_, profile) = app.get(&format!("/api/users/{}", vic.id), None).await;
    assert_eq!(profile["live_stream_id"], json!(id));
    assert_eq!(app.report_status(&id, "ended").await, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/streams/{id}"), None).await.1["status"], "ended");
    assert_eq!(app.report_status(&id, "live").await, StatusCode::CONFLICT, "an ended stream does not come back");
    let res = app
        .client
        .post(format!("{}/internal/streams/{id}/status", app.base))
        .header("x-onair-internal-token", INTERNAL_TOKEN)
        .json(&json!({"status": "exploded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_channels_broadcasts_page_newest_first() {
    let app = spawn_app().await;
    let wes = app.register("wes").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = app.start_stream(&wes, &format!("episode {i}"), "education", &[]).await["stream"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.post(&format!("/api/streams/{id}/stop"), Some(&wes.token), json!({})).await;
        ids.push(id);
    }
    let (status, p1) = app.get(&format!("/api/users/{}/streams?limit=2", wes.id), None).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen: Vec<String> =
        p1["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    let mut cursor = p1["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, p) = app.get(&format!("/api/users/{}/streams?limit=2&cursor={c}", wes.id), None).await;
        seen.extend(p["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        cursor = p["next_cursor"].as_str().map(str::to_owned);
    }
    ids.reverse();
    assert_eq!(seen, ids);
    assert_error(
        &app.get(&format!("/api/users/{}/streams?limit=0", wes.id), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_error(
        &app.get(&format!("/api/users/{}/streams?cursor=zzz", wes.id), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert_error(
        &app.get(&format!("/api/users/{}/streams?limit=abc", wes.id), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
}

#[tokio::test]
async fn a_stream_page_outlives_a_database_that_does_not_answer() {
    let app = spawn_app_with(&["--stream-cache-ms", "1"]).await;
    let host = app.register("steadfast").await;
    let id = app.go_live(&host, "still here", "games", &[]).await;
    let (status, before) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{before}");

    // The database goes away: the page is the last good answer, not an error.
    app.state.db.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, during) = app.get(&format!("/api/streams/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{during}");
    assert_eq!((during["id"].clone(), during["title"].clone()), (before["id"].clone(), before["title"].clone()));
    // A stream never served has no last good answer: an error, not a made-up page.
    let (status, never) = app.get(&format!("/api/streams/{}", uuid::Uuid::now_v7()), None).await;
    assert!(status.is_server_error(), "{status} {never}");
}

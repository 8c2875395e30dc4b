use onair_domain::StreamId;
use onair_domain::contracts::redis_keys;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn heartbeats_become_viewers_samples_and_analytics() {
    let app = spawn_app_with(&["--stream-cache-ms", "1"]).await;
    let host = app.register("host").await;
    let fan = app.register("follower").await;
    let id = app.go_live(&host, "analytics", "games", &[]).await;

    for s in ["session-aaaa", "session-bbbb", "session-cccc", "session-aaaa"] {
        let (status, body) = app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": s})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    // Live count straight from Redis (through the public-state cache, so within its TTL).
    onair_testkit::eventually(std::time::Duration::from_secs(2), || async {
        (app.get(&format!("/api/streams/{id}"), None).await.1["viewers"] == 3).then_some(())
    })
    .await;

    // A chat gateway would bump this; the sampler takes it.
    let mut redis = app.redis().await;
    let stream_id: StreamId = id.parse().unwrap();
    let _: () = redis::cmd("SET")
        .arg(redis_keys::chat_counter(&app.redis_prefix, stream_id))
        .arg(12)
        .query_async(&mut redis)
        .await
        .unwrap();
    app.request(reqwest::Method::PUT, &format!("/api/users/{}/follow", host.id), Some(&fan.token), None).await;

    assert_eq!(app.state.sample_analytics().await.unwrap(), Some(1));
    assert_eq!(app.state.sample_analytics().await.unwrap(), None, "one sample per tick, across replicas");

    let (status, a) = app.get(&format!("/api/streams/{id}/analytics"), Some(&host.token)).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["samples"].as_array().unwrap().len(), 1);
    assert_eq!(a["samples"][0]["viewers"], 3);
    assert_eq!(a["peak_viewers"], 3);
    assert_eq!(a["unique_viewers"], 3);
    assert_eq!(a["average_viewers"], 3.0);
    assert_eq!(a["watch_minutes"], 0.5, "3 viewers x 10 s");
    assert_eq!(a["chat_messages"], 12);
    assert_eq!(a["chat_per_minute"][0]["messages"], 12);
    assert_eq!(a["followers_gained"], 1);
    let peak: i32 = sqlx::query_scalar("SELECT peak_viewers FROM streams WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(peak, 3);

    assert_error(
        &app.get(&format!("/api/streams/{id}/analytics"), Some(&fan.token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.get(&format!("/api/streams/{id}/analytics"), None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );
    assert_error(
        &app.get("/api/streams/00000000-0000-0000-0000-000000000000/analytics", Some(&host.token)).await,
        StatusCode::NOT_FOUND,
        "stream_not_found",
    );
}

#[tokio::test]
async fn a_sampler_kept_away_fills_in_the_ticks_it_missed() {
    let app = spawn_app_with(&["--stream-cache-ms", "1", "--sample-interval-secs", "10"]).await;
    let host = app.register("patient").await;
    let id = app.go_live(&host, "outage", "games", &[]).await;
    for s in ["session-aaaa", "session-bbbb"] {
        let (status, body) = app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": s})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let now = chrono::Utc::now();
    let tick = |t: chrono::DateTime<chrono::Utc>| t.timestamp() / 10 * 10;
    // On air for a minute already.
    let began = now - chrono::Duration::seconds(60);
    sqlx::query("UPDATE streams SET started_at = $2 WHERE id = $1::uuid")
        .bind(&id)
        .bind(began)
        .execute(&app.pool)
        .await
        .unwrap();
    // The last sample written was 30 s ago, none since (Redis or Postgres away, every replica
    // restarting; claims a paused Redis ran late do not count: only what was written does).
    let late = now - chrono::Duration::seconds(30);
    assert_eq!(app.state.sample_analytics_at(late).await.unwrap(), Some(1));
    let mut redis = app.redis().await;
    for t in [10, 20] {
        let _: () = redis::cmd("SET")
            .arg(redis_keys::sampler_tick(&app.redis_prefix, tick(late) + t))
            .arg(1)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    // Chat while the sampler was away is told at the newest tick, and taken off the counter.
    let stream_id: StreamId = id.parse().unwrap();
    let counter = redis_keys::chat_counter(&app.redis_prefix, stream_id);
    let _: () = redis::cmd("SET").arg(&counter).arg(5).query_async(&mut redis).await.unwrap();
    assert_eq!(app.state.sample_analytics_at(now).await.unwrap(), Some(3), "the three ticks since");
    let left: Option<i64> = redis::cmd("GET").arg(&counter).query_async(&mut redis).await.unwrap();
    assert_eq!(left.unwrap_or(0), 0);
    assert_eq!(app.state.sample_analytics_at(now).await.unwrap(), None, "each tick once");
    assert_eq!(
        app.state.sample_analytics_at(now - chrono::Duration::seconds(10)).await.unwrap(),
        None,
        "never backwards"
    );
    let (status, a) = app.get(&format!("/api/streams/{id}/analytics"), Some(&host.token)).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let samples = a["samples"].as_array().unwrap();
    let ats: Vec<i64> = samples
        .iter()
        .map(|s| s["at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap().timestamp())
        .collect();
    assert_eq!(ats.len(), 4, "{a}");
    assert_eq!(ats[0], tick(late));
    assert!(ats.windows(2).all(|w| w[1] - w[0] == 10), "one every 10 s, no hole: {ats:?}");
    assert!(samples.iter().all(|s| s["viewers"] == 2), "{a}");
    let chat: Vec<i64> = samples.iter().map(|s| s["chat_messages"].as_i64().unwrap()).collect();
    assert_eq!(chat, [0, 0, 0, 5], "{a}");
}

#[tokio::test]
async fn heartbeats_are_validated() {
    let app = spawn_app_with(&["--heartbeats-per-ip-per-minute", "4", "--stream-cache-ms", "1"]).await;
    let host = app.register("beats").await;
    let id = app.go_live(&host, "beats", "music", &[]).await;
    assert_error(
        &app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": "x"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_error(
        &app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": "bad id with spaces"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_error(
        &app.post(
            "/api/streams/00000000-0000-0000-0000-000000000000/heartbeat",
            None,
            json!({"session_id": "session-1234"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "stream_not_found",
    );
    assert_eq!(
        app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": "session-1234"})).await.0,
        StatusCode::NO_CONTENT
    );
    app.post(&format!("/api/streams/{id}/stop"), Some(&host.token), json!({})).await;
    // A beat racing the end (the page has not polled since): accepted, not counted.
    assert_eq!(
        app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": "late-session"})).await.0,
        StatusCode::NO_CONTENT
    );
    let sessions = redis_keys::viewer_sessions(&app.redis_prefix, StreamId(id.parse().unwrap()));
    let mut redis =
        redis::Client::open("redis://127.0.0.1:6379").unwrap().get_multiplexed_async_connection().await.unwrap();
    let late: Option<f64> =
        redis::cmd("ZSCORE").arg(&sessions).arg("late-session").query_async(&mut redis).await.unwrap();
    assert_eq!(late, None, "a beat after the end is not counted");
    // Long after the end: a client mistake.
    sqlx::query("UPDATE streams SET ended_at = now() - interval '1 hour' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    assert_error(
        &app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": "session-1234"})).await,
        StatusCode::CONFLICT,
        "stream_not_live",
    );
    assert_error(
        &app.post(&format!("/api/streams/{id}/heartbeat"), None, json!({"session_id": "session-1234"})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
}

#[tokio::test]
async fn a_sample_with_no_streams_on_air_is_cheap_and_correct() {
    let app = spawn_app().await;
    assert_eq!(app.state.sample_analytics().await.unwrap(), Some(0));
}

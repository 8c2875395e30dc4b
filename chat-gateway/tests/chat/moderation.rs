use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{collect_events, env, send, wait_for};

#[tokio::test]
async fn moderators_delete_timeout_ban_across_replicas() {
    let env = env(2, &[]).await;
    let owner = env.register("chan").await;
    let troll = env.register("troll").await;
    let mate = env.register("mate").await;
    let stream = env.live_stream(&owner).await;
    let mut troll_ws = env.connect(0, &stream, Some(&troll.token)).await;
    let mut watcher = env.connect(1, &stream, None).await;

    send(&mut troll_ws, "something rude", "x").await;
    let msg = wait_for(&mut watcher, "message").await;
    let id = msg["id"].as_str().unwrap().to_owned();

    // Not a moderator: refused.
    let (status, _) = env.moderate(1, &stream, &mate.token, json!({"action": "delete", "message_id": id})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env.moderate(1, &stream, &troll.token, json!({"action": "ban", "user_id": owner.id})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The owner deletes it: gone from the other replica's sockets and from history.
    let (status, body) =
        env.moderate(1, &stream, &owner.token, json!({"action": "delete", "message_id": id, "reason": "rude"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let del = wait_for(&mut watcher, "delete").await;
    assert_eq!(del["message_id"], json!(id));
    onair_testkit::eventually(Duration::from_secs(10), || async {
        env.history(&stream).await.is_empty().then_some(())
    })
    .await;

    // Appoint a moderator; the moderator times the troll out from the other replica.
    let (status, _) = env
        .rest(0, Method::PUT, &format!("/api/channels/{}/moderators/{}", owner.id, mate.id), Some(&mate.token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the owner appoints");
    let (status, _) = env
        .rest(0, Method::PUT, &format!("/api/channels/{}/moderators/{}", owner.id, mate.id), Some(&owner.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let asked = std::time::Instant::now();
    let mate_can = onair_testkit::eventually(Duration::from_secs(5), || async {
        let (s, _) = env
            .moderate(1, &stream, &mate.token, json!({"action": "timeout", "user_id": troll.id, "seconds": 60}))
            .await;
        (s == StatusCode::NO_CONTENT).then_some(s)
    })
    .await;
    assert_eq!(mate_can, StatusCode::NO_CONTENT);
    let notice = wait_for(&mut watcher, "timeout").await;
    assert_eq!(notice["user_id"], json!(troll.id));

    // In effect on the troll's replica within a second (the replica applies an event before it
    // shows the notice); the socket stays open and readable.
    wait_for(&mut troll_ws, "timeout").await;
    assert!(asked.elapsed() < Duration::from_secs(1), "took {:?}", asked.elapsed());
    send(&mut troll_ws, "let me talk", "t1").await;
    let err = wait_for(&mut troll_ws, "error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("timed_out"), Some("t1")));
    assert!(err["retry_after_ms"].as_u64().unwrap() > 50_000);

    // Ban, then unban.
    let (status, _) =
        env.moderate(0, &stream, &owner.token, json!({"action": "ban", "user_id": troll.id, "reason": "repeat"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for(&mut troll_ws, "ban").await;
    send(&mut troll_ws, "still here", "t2").await;
    assert_eq!(wait_for(&mut troll_ws, "error").await["code"], "banned");
    let (status, body) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/streams/{stream}/chat"),
            Some(&troll.token),
            Some(json!({"text": "via rest"})),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("banned")));
    env.moderate(0, &stream, &owner.token, json!({"action": "unban", "user_id": troll.id})).await;
    wait_for(&mut troll_ws, "unban").await;
    send(&mut troll_ws, "sorry", "t3").await;
    assert_eq!(wait_for(&mut troll_ws, "ack").await["ref"], "t3");

    // A removed moderator loses the right at once, whatever rooms still cache.
    let (status, _) = env
        .rest(
            0,
            Method::DELETE,
            &format!("/api/channels/{}/moderators/{}", owner.id, mate.id),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env.moderate(0, &stream, &mate.token, json!({"action": "slow_mode", "seconds": 5})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    env.rest(0, Method::PUT, &format!("/api/channels/{}/moderators/{}", owner.id, mate.id), Some(&owner.token), None)
        .await;

    // The owner cannot be moderated; timeouts are bounded.
    let (status, _) = env.moderate(0, &stream, &mate.token, json!({"action": "ban", "user_id": owner.id})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) =
        env.moderate(0, &stream, &owner.token, json!({"action": "timeout", "user_id": troll.id, "seconds": 0})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("seconds")));
    let (status, _) = env.moderate(0, &stream, &owner.token, json!({"action": "explode"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Every action is in the audit log, readable by the owner and moderators only.
    let (status, log) =
        env.rest(0, Method::GET, &format!("/api/channels/{}/moderation-log", owner.id), Some(&mate.token), None).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["unban", "ban", "timeout", "delete"]);
    let (status, _) =
        env.rest(0, Method::GET, &format!("/api/channels/{}/moderation-log", owner.id), Some(&troll.token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn slow_mode_followers_only_links_filters_and_flood() {
    let env = env(1, &[]).await;
    let owner = env.register("rules").await;
    let eve = env.register("eve").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(0, &stream, Some(&eve.token)).await;
    let post = |text: &'static str| {
        let env = &env;
        let token = eve.token.clone();
        let stream = stream.clone();
        async move {
            env.rest(0, Method::POST, &format!("/api/streams/{stream}/chat"), Some(&token), Some(json!({"text": text})))
                .await
        }
    };

    env.moderate(0, &stream, &owner.token, json!({"action": "slow_mode", "seconds": 30})).await;
    assert_eq!(wait_for(&mut ws, "slow_mode").await["seconds"], 30);
    assert_eq!(post("one").await.0, StatusCode::CREATED);
    let (status, body) = post("two").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("slow_mode")));
    // The owner is exempt.
    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/streams/{stream}/chat"),
            Some(&owner.token),
            Some(json!({"text": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A whole-number float is an integer, as JSON Schema (and so the document) counts it; a
    // fraction is not.
    let (status, _) = env.moderate(0, &stream, &owner.token, json!({"action": "slow_mode", "seconds": 0.5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = env.moderate(0, &stream, &owner.token, json!({"action": "slow_mode", "seconds": 0.0})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(wait_for(&mut ws, "slow_mode").await["seconds"], 0);

    env.moderate(0, &stream, &owner.token, json!({"action": "links", "allowed": false})).await;
    wait_for(&mut ws, "settings").await;
    assert_eq!(post("visit scam.com now").await.1["error"]["code"], "links_not_allowed");

    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/channels/{}/chat-filters", owner.id),
            Some(&eve.token),
            Some(json!({"pattern": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/channels/{}/chat-filters", owner.id),
            Some(&owner.token),
            Some(json!({"pattern": "(", "is_regex": true})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/channels/{}/chat-filters", owner.id),
            Some(&owner.token),
            Some(json!({"pattern": "bad\u{0}word"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "control characters (Postgres cannot hold a NUL)");
    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/channels/{}/chat-filters", owner.id),
            Some(&owner.token),
            Some(json!({"pattern": "badword"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    onair_testkit::eventually(Duration::from_secs(5), || async {
        (post("you b4dw0rd").await.1["error"]["code"] == "message_blocked").then_some(())
    })
    .await;

    assert_eq!(post("hello there").await.0, StatusCode::CREATED);
    assert_eq!(post("hello there").await.1["error"]["code"], "duplicate_message");
    assert_eq!(post("HELLO   there!!").await.1["error"]["code"], "duplicate_message", "normalised before comparing");

    env.moderate(0, &stream, &owner.token, json!({"action": "followers_only", "enabled": true})).await;
    wait_for(&mut ws, "settings").await;
    assert_eq!(post("new words").await.1["error"]["code"], "followers_only");
    env.client.put(format!("{}/api/users/{}/follow", env.api, owner.id)).bearer_auth(&eve.token).send().await.unwrap();
    assert_eq!(post("now i follow").await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn per_user_rate_limit_is_shared_by_replicas() {
    let env = env(2, &["--rate-messages", "3"]).await;
    let owner = env.register("ratehost").await;
    let fast = env.register("fast").await;
    let stream = env.live_stream(&owner).await;
    let mut codes = Vec::new();
    for i in 0..4 {
        let (status, body) = env
            .rest(
                i % 2,
                Method::POST,
                &format!("/api/streams/{stream}/chat"),
                Some(&fast.token),
                Some(json!({"text": format!("msg {i}")})),
            )
            .await;
        codes.push((status, body["error"]["code"].as_str().map(str::to_owned)));
    }
    assert_eq!(codes[..3].iter().filter(|c| c.0 == StatusCode::CREATED).count(), 3);
    assert_eq!(codes[3], (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited".to_owned())));
}

#[tokio::test]
async fn clear_and_reports() {
    let env = env(1, &[]).await;
    let owner = env.register("clearer").await;
    let v = env.register("viewer1").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(0, &stream, Some(&v.token)).await;
    send(&mut ws, "a", "1").await;
    send(&mut ws, "b", "2").await;
    let events = collect_events(&mut ws, 4, Duration::from_secs(2)).await;
    let id = events.iter().find(|e| e["type"] == "message").unwrap()["id"].as_str().unwrap().to_owned();
    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/streams/{stream}/chat/reports"),
            Some(&v.token),
            Some(json!({"message_id": id, "reason": "spam"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reports: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_reports").fetch_one(&env.pool).await.unwrap();
    assert_eq!(reports, 1);
    crate::helpers::eventually_history(&env, &stream, 2).await;
    env.moderate(0, &stream, &owner.token, json!({"action": "clear"})).await;
    wait_for(&mut ws, "clear").await;
    assert!(env.history(&stream).await.is_empty());
}

/// What the moderator view reads: open reports with their message, bans and timeouts, and the
/// channel's filters (which can be removed) — staff only.
#[tokio::test]
async fn the_moderator_view_lists_reports_bans_and_filters() {
    let env = env(1, &[]).await;
    let owner = env.register("modview").await;
    let rude = env.register("rude").await;
    let viewer = env.register("tattler").await;
    let stream = env.live_stream(&owner).await;
    // The first frame tells a client whether to show moderation tools.
    for (who, token, can) in [("owner", &owner.token, true), ("viewer", &viewer.token, false)] {
        let (_ws, hello) = env.connect_with_hello(0, &stream, Some(token)).await;
        assert_eq!(hello["can_moderate"], can, "{who}: {hello}");
    }
    let (status, msg) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/streams/{stream}/chat"),
            Some(&rude.token),
            Some(json!({"text": "you all stink"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{msg}");
    let message_id = msg["id"].as_str().unwrap().to_owned();
    let reports = format!("/api/channels/{}/chat-reports", owner.id);
    // The message reaches history through the persister; the report shows its text once it has.
    let (status, _) = env
        .rest(
            0,
            Method::POST,
            &format!("/api/streams/{stream}/chat/reports"),
            Some(&viewer.token),
            Some(json!({"message_id": message_id, "reason": "insults"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let listed = onair_testkit::eventually(Duration::from_secs(10), || async {
        let (_, r) = env.rest(0, Method::GET, &reports, Some(&owner.token), None).await;
        (r[0]["text"] == "you all stink").then_some(r)
    })
    .await;
    assert_eq!((listed[0]["reason"].as_str(), listed[0]["author_name"].as_str()), (Some("insults"), Some("rude")));

    env.moderate(0, &stream, &owner.token, json!({"action": "timeout", "user_id": rude.id, "seconds": 600})).await;
    let (status, bans) =
        env.rest(0, Method::GET, &format!("/api/channels/{}/bans", owner.id), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bans[0]["username"], "rude");
    assert!(bans[0]["until"].is_string(), "a timeout has an end");

    let filters = format!("/api/channels/{}/chat-filters", owner.id);
    env.rest(0, Method::POST, &filters, Some(&owner.token), Some(json!({"pattern": "stink"}))).await;
    let (_, list) = env.rest(0, Method::GET, &filters, Some(&owner.token), None).await;
    assert_eq!(list[0]["pattern"], "stink");
    let id = list[0]["id"].as_str().unwrap().to_owned();

    for path in [&reports, &format!("/api/channels/{}/bans", owner.id), &filters] {
        let (status, body) = env.rest(0, Method::GET, path, Some(&viewer.token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        let (status, _) = env.rest(0, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = env.rest(0, Method::DELETE, &format!("{filters}/{id}"), Some(&viewer.token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env.rest(0, Method::DELETE, &format!("{filters}/{id}"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env.rest(0, Method::DELETE, &format!("{filters}/{id}"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = env.rest(0, Method::GET, &filters, Some(&owner.token), None).await;
    assert_eq!(list, json!([]));
}

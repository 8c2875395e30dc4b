use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn titles(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|s| s["title"].as_str().unwrap().to_owned()).collect()
}

async fn set_viewers(app: &TestApp, id: &str, n: i32) {
    sqlx::query("UPDATE streams SET current_viewers = $2 WHERE id = $1::uuid")
        .bind(id)
        .bind(n)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn search_by_text_prefix_typo_tag_category_and_streamer() {
    let app = spawn_app().await;
    let a = app.register("speedy_sara").await;
    let b = app.register("chef_tom").await;
    let c = app.register("painter").await;
    let s1 = app.go_live(&a, "Any% speedrun attempts", "games", &["speedrun", "retro"]).await;
    let s2 = app.go_live(&b, "Cooking pasta from scratch", "food", &["italian"]).await;
    let ended = app.start_stream(&c, "Watercolour speedpaint", "art", &["painting"]).await["stream"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/api/streams/{ended}/stop"), Some(&c.token), serde_json::json!({})).await;
    set_viewers(&app, &s1, 50).await;
    set_viewers(&app, &s2, 500).await;

    let app = &app;
    let q = |query: &'static str| async move { app.get(&format!("/api/streams/search?{query}"), None).await };
    assert_eq!(titles(&q("q=speedrun").await.1), vec!["Any% speedrun attempts"]);
    assert_eq!(
        titles(&q("q=spee").await.1),
        vec!["Any% speedrun attempts", "Watercolour speedpaint"],
        "prefixes match, live first"
    );
    assert_eq!(titles(&q("q=speedrn").await.1), vec!["Any% speedrun attempts"], "a typo still finds it");
    assert_eq!(titles(&q("q=italian").await.1), vec!["Cooking pasta from scratch"], "tags are searched");
    assert_eq!(titles(&q("q=chef_tom").await.1), vec!["Cooking pasta from scratch"], "streamer names are searched");
    assert_eq!(titles(&q("tag=retro").await.1), vec!["Any% speedrun attempts"]);
    assert_eq!(titles(&q("category=food").await.1), vec!["Cooking pasta from scratch"]);
    assert_eq!(
        titles(&q("").await.1),
        vec!["Cooking pasta from scratch", "Any% speedrun attempts", "Watercolour speedpaint"],
        "live by viewers, then the rest"
    );
    assert_eq!(titles(&q("live=true").await.1), vec!["Cooking pasta from scratch", "Any% speedrun attempts"]);
    assert_eq!(titles(&q("q=speed&live=true").await.1), vec!["Any% speedrun attempts"]);
    assert_eq!(titles(&q("language=en&category=games").await.1), vec!["Any% speedrun attempts"]);
    assert!(titles(&q("q=nothing-matches-this").await.1).is_empty());
    let live = &q("live=true").await.1["items"][0];
    assert_eq!((live["viewers"].as_i64(), live["status"].as_str()), (Some(500), Some("live")));
}

#[tokio::test]
async fn hostile_search_input_is_harmless() {
    let app = spawn_app().await;
    let a = app.register("zed").await;
    app.go_live(&a, "normal stream", "games", &[]).await;
    for q in
        ["' OR 1=1 --", "%27%3B%20DROP%20TABLE%20streams%3B", "a & b | !c", "%25%25%25", ":*", "%E2%80%AE", "ゲーム"]
    {
        let (status, body) = app.get(&format!("/api/streams/search?q={q}"), None).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM streams").fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 1);
    // Control characters are refused (a NUL once reached Postgres through the near-miss search).
    for q in ["%00", "spee%00drun", "tab%09bed"] {
        assert_error(
            &app.get(&format!("/api/streams/search?q={q}"), None).await,
            StatusCode::BAD_REQUEST,
            "invalid_field",
        );
    }
    let long = "a".repeat(201);
    assert_error(
        &app.get(&format!("/api/streams/search?q={long}"), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_error(
        &app.get("/api/streams/search?category=Games%20OR%201", None).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_error(&app.get("/api/streams/search?live=maybe", None).await, StatusCode::BAD_REQUEST, "invalid_query");
    assert_error(
        &app.get("/api/streams/search?cursor=eyJ4Ijox", None).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert_error(&app.get("/api/streams/search?limit=1000", None).await, StatusCode::BAD_REQUEST, "invalid_field");
    // A well-formed cursor with a date Postgres cannot hold is still the client's mistake.
    use base64::Engine as _;
    let far = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"[true,0,"-10000-01-01T00:00:00Z","00000000-0000-0000-0000-000000000000"]"#);
    assert_error(
        &app.get(&format!("/api/streams/search?cursor={far}"), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
}

#[tokio::test]
async fn search_pages_cover_everything_once() {
    let app = spawn_app().await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let u = app.register(&format!("pager{i}")).await;
        let id = app.go_live(&u, &format!("paged stream {i}"), "games", &[]).await;
        set_viewers(&app, &id, (i % 3) * 10).await;
        expected.push(id);
    }
    for live in ["", "&live=true"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/streams/search?q=paged&limit=3{live}&cursor={c}"),
                None => format!("/api/streams/search?q=paged&limit=3{live}"),
            };
            let (_, page) = app.get(&path, None).await;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| (s["id"].as_str().unwrap().to_owned(), s["viewers"].as_i64().unwrap())),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 7, "{live}");
        let mut ids: Vec<_> = seen.iter().map(|s| s.0.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 7, "no duplicates across pages");
        assert!(seen.windows(2).all(|w| w[0].1 >= w[1].1), "ranked by viewers: {seen:?}");
    }
}

#[tokio::test]
async fn categories_carry_live_counts() {
    let app = spawn_app().await;
    let a = app.register("cat_a").await;
    let b = app.register("cat_b").await;
    let s1 = app.go_live(&a, "one", "music", &[]).await;
    let s2 = app.go_live(&b, "two", "music", &[]).await;
    set_viewers(&app, &s1, 7).await;
    set_viewers(&app, &s2, 3).await;
    let (status, cats) = app.get("/api/categories", None).await;
    assert_eq!(status, StatusCode::OK);
    let first = &cats[0];
    assert_eq!(
        (first["slug"].as_str(), first["live_streams"].as_i64(), first["viewers"].as_i64()),
        (Some("music"), Some(2), Some(10))
    );
    let games = cats.as_array().unwrap().iter().find(|c| c["slug"] == "games").unwrap();
    assert_eq!(games["live_streams"], 0);
}

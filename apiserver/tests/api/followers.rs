use reqwest::{Method, StatusCode};

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn follow_unfollow_lists_and_live_now() {
    let app = spawn_app().await;
    let fan = app.register("fan").await;
    let star = app.register("star").await;
    let quiet = app.register("quiet").await;
    let follow = |who: &str, token: &str| {
        let (path, token) = (format!("/api/users/{who}/follow"), token.to_owned());
        let app = &app;
        async move { app.request(Method::PUT, &path, Some(&token), None).await }
    };
    assert_eq!(follow(&star.id, &fan.token).await.0, StatusCode::NO_CONTENT);
    assert_eq!(follow(&star.id, &fan.token).await.0, StatusCode::NO_CONTENT, "idempotent");
    assert_eq!(follow(&quiet.id, &fan.token).await.0, StatusCode::NO_CONTENT);
    assert_error(&follow(&fan.id, &fan.token).await, StatusCode::CONFLICT, "cannot_follow_self");
    assert_error(
        &follow("00000000-0000-0000-0000-000000000000", &fan.token).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &app.request(Method::PUT, &format!("/api/users/{}/follow", star.id), None, None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );

    let (_, followers) = app.get(&format!("/api/users/{}/followers", star.id), None).await;
    assert_eq!(followers["items"].as_array().unwrap().len(), 1);
    assert_eq!(followers["items"][0]["username"], "fan");
    let (_, following) = app.get(&format!("/api/users/{}/following?limit=1", fan.id), None).await;
    assert_eq!(following["items"].as_array().unwrap().len(), 1);
    let (_, rest) = app
        .get(
            &format!("/api/users/{}/following?limit=1&cursor={}", fan.id, following["next_cursor"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_ne!(rest["items"][0]["id"], following["items"][0]["id"]);
    assert_error(
        &app.get("/api/users/00000000-0000-0000-0000-000000000000/followers", None).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );

    let live = app.go_live(&star, "on air", "music", &[]).await;
    app.start_stream(&quiet, "not yet live", "music", &[]).await;
    let (status, now) = app.get("/api/users/me/following/live", Some(&fan.token)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = now.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![live.as_str()], "only followed channels that are live");
    assert_error(&app.get("/api/users/me/following/live", None).await, StatusCode::UNAUTHORIZED, "missing_token");

    assert_eq!(
        app.request(Method::DELETE, &format!("/api/users/{}/follow", star.id), Some(&fan.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, now) = app.get("/api/users/me/following/live", Some(&fan.token)).await;
    assert!(now.as_array().unwrap().is_empty());
}

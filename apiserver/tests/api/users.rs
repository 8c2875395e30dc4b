use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_then_login_by_username_and_email() {
    let app = spawn_app().await;
    let alice = app.register("Alice").await;
    assert!(!alice.token.is_empty() && alice.refresh.starts_with("rt_"));
    let by_name = app.login("alice", "correct horse battery").await;
    assert_eq!(by_name.id, alice.id, "usernames match case-insensitively");
    let by_email = app.login("ALICE@example.com", "correct horse battery").await;
    assert_eq!(by_email.id, alice.id);
    let (status, me) = app.get("/api/users/me", Some(&by_email.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "Alice");
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["tier"], "free");
    // The password hash never leaves the server.
    assert!(me.get("password_hash").is_none());
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1::uuid")
        .bind(&alice.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
}

#[tokio::test]
async fn registration_validates_every_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"username": "ab", "email": "a@example.com", "password": "correct horse"}), "username"),
        (
            json!({"username": "robert'); DROP TABLE users;--", "email": "a@example.com", "password": "correct horse"}),
            "username",
        ),
        (json!({"username": "x".repeat(10_000), "email": "a@example.com", "password": "correct horse"}), "username"),
        (json!({"username": "bob", "email": "not-an-email", "password": "correct horse"}), "email"),
        (json!({"username": "bob", "email": "bob@example.com", "password": "short"}), "password"),
        (json!({"username": "bob", "email": "bob@example.com", "password": "x".repeat(5000)}), "password"),
        (
            json!({"username": "bob", "email": "bob@example.com", "password": "correct horse", "display_name": ""}),
            "display_name",
        ),
    ];
    for (body, field) in cases {
        let got = app.post("/api/users/register", None, body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(got.1["error"]["field"], field, "{body}");
    }
    let missing = app.post("/api/users/register", None, json!({"username": "bob"})).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_body");
    let res = app
        .client
        .post(format!("{}/api/users/register", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "malformed_json");
    let res = app.client.post(format!("{}/api/users/register", app.base)).body("username=bob").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"username":"bob","email":"bob@example.com","password":"{}"}}"#, "x".repeat(100_000));
    let res = app
        .client
        .post(format!("{}/api/users/register", app.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "body_too_large");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0, "nothing invalid was stored");
}

#[tokio::test]
async fn unicode_usernames_are_normalised_and_unique_case_insensitively() {
    let app = spawn_app().await;
    let u = app.register("Émilie_名前").await;
    let (_, me) = app.get("/api/users/me", Some(&u.token)).await;
    assert_eq!(me["username"], "Émilie_名前");
    let dup = app
        .post(
            "/api/users/register",
            None,
            json!({"username": "ÉMILIE_名前", "email": "other@example.com", "password": "correct horse"}),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "username_taken");
    // Fullwidth compatibility forms normalise to the same name.
    app.register("bob_ok").await;
    let dup = app
        .post(
            "/api/users/register",
            None,
            json!({"username": "ｂｏｂ_ｏｋ", "email": "other@example.com", "password": "correct horse"}),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "username_taken");
    assert_eq!(app.login("ÉMILIE_名前", "correct horse battery").await.id, u.id, "login compares the same way");
    let dup = app
        .post(
            "/api/users/register",
            None,
            json!({"username": "someone", "email": "émilie_名前@example.com", "password": "correct horse"}),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "email_taken");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = spawn_app().await;
    app.register("carol").await;
    let wrong = app.post("/api/users/login", None, json!({"login": "carol", "password": "wrong password"})).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let unknown = app.post("/api/users/login", None, json!({"login": "nobody", "password": "wrong password"})).await;
    assert_eq!(wrong.1, unknown.1);
    let empty = app.post("/api/users/login", None, json!({"login": "", "password": "x"})).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_field");
}

#[tokio::test]
async fn login_is_rate_limited_per_ip() {
    let app = spawn_app_with(&["--login-per-ip-per-minute", "3"]).await;
    app.register("dave").await;
    for _ in 0..3 {
        let r = app.post("/api/users/login", None, json!({"login": "dave", "password": "correct horse battery"})).await;
        assert_eq!(r.0, StatusCode::OK);
    }
    let res = app
        .client
        .post(format!("{}/api/users/login", app.base))
        .json(&json!({"login": "dave", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn an_account_locks_after_repeated_failures_even_from_many_ips() {
    let app = spawn_app_with(&["--login-failures-per-account", "2", "--trust-forwarded-for"]).await;
    app.register("erin").await;
    // By username, then by email: one budget per account.
    for (ip, login) in [("10.0.0.1", "erin"), ("10.0.0.2", "erin@example.com")] {
        let res = app
            .client
            .post(format!("{}/api/users/login", app.base))
            .header("x-forwarded-for", ip)
            .json(&json!({"login": login, "password": "guess guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app
        .client
        .post(format!("{}/api/users/login", app.base))
        .header("x-forwarded-for", "10.0.0.3")
        .json(&json!({"login": "erin", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "locked even with the right password");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_escape_the_ip_limit() {
    let app = spawn_app_with(&["--login-per-ip-per-minute", "2", "--trust-forwarded-for"]).await;
    app.register("xff").await;
    let mut statuses = Vec::new();
    for fake in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        // The client writes the left entries; our proxy appended the right-most one.
        let res = app
            .client
            .post(format!("{}/api/users/login", app.base))
            .header("x-forwarded-for", format!("{fake}, 203.0.113.7"))
            .json(&json!({"login": "xff", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status());
    }
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
}

#[tokio::test]
async fn registration_is_rate_limited_per_ip() {
    let app = spawn_app_with(&["--register-per-ip-per-hour", "2"]).await;
    app.register("frank1").await;
    app.register("frank2").await;
    let third = app
        .post(
            "/api/users/register",
            None,
            json!({"username": "frank3", "email": "f3@example.com", "password": "correct horse"}),
        )
        .await;
    assert_error(&third, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn profile_edit_and_password_change() {
    let app = spawn_app().await;
    let gina = app.register("gina").await;
    let other_session = app.login("gina", "correct horse battery").await;
    let patch = |body| app.request(reqwest::Method::PATCH, "/api/users/me", Some(&gina.token), Some(body));

    let (status, me) =
        patch(json!({"display_name": "Gina G", "bio": "speedrunner", "avatar_url": "https://cdn.example.com/g.png"}))
            .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["display_name"].as_str(), me["bio"].as_str(), me["avatar_url"].as_str()),
        (Some("Gina G"), Some("speedrunner"), Some("https://cdn.example.com/g.png"))
    );
    let (_, me) = patch(json!({"avatar_url": ""})).await;
    assert!(me["avatar_url"].is_null(), "empty clears the avatar");

    let got = patch(json!({"avatar_url": "javascript:alert(1)"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(got.1["error"]["field"], "avatar_url");
    let got = patch(json!({"new_password": "a brand new password"})).await;
    assert_eq!(got.1["error"]["field"], "current_password");
    let got = patch(json!({"new_password": "a brand new password", "current_password": "not it at all"})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    app.register("henry").await;
    let got = patch(json!({"email": "henry@example.com", "current_password": "correct horse battery"})).await;
    assert_error(&got, StatusCode::CONFLICT, "email_taken");
    let got = patch(json!({"email": "gina2@example.com"})).await;
    assert_eq!(got.1["error"]["field"], "current_password", "changing email needs the password");

    let (status, _) =
        patch(json!({"new_password": "a brand new password", "current_password": "correct horse battery"})).await;
    assert_eq!(status, StatusCode::OK);
    let old = app.post("/api/users/login", None, json!({"login": "gina", "password": "correct horse battery"})).await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.login("gina", "a brand new password").await;
    // The other login session ended; the one that changed the password lives on.
    let other = app.post("/api/users/refresh", None, json!({"refresh_token": other_session.refresh})).await;
    assert_error(&other, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let mine = app.post("/api/users/refresh", None, json!({"refresh_token": gina.refresh})).await;
    assert_eq!(mine.0, StatusCode::OK, "{}", mine.1);
}

#[tokio::test]
async fn public_profiles() {
    let app = spawn_app().await;
    let ivy = app.register("ivy").await;
    let jack = app.register("jack").await;
    let (s, _) =
        app.request(reqwest::Method::PUT, &format!("/api/users/{}/follow", ivy.id), Some(&jack.token), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (status, p) = app.get(&format!("/api/users/{}", ivy.id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["username"], "ivy");
    assert_eq!(p["followers"], 1);
    assert_eq!(p["following"], 0);
    assert!(p.get("email").is_none(), "email is private");
    assert!(p["live_stream_id"].is_null());
    assert_error(
        &app.get("/api/users/00000000-0000-0000-0000-000000000000", None).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(&app.get("/api/users/not-a-uuid", None).await, StatusCode::BAD_REQUEST, "invalid_path");
}

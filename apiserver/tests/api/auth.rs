use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onair_auth::{AccessClaims, Jwks, KeyRing, Verifier};
use onair_domain::{Role, Tier, UserId};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn access_tokens_verify_against_the_published_jwks() {
    let app = spawn_app().await;
    let kim = app.register("kim").await;
    let jwks: Jwks = app
        .client
        .get(format!("{}{}", app.base, onair_domain::contracts::http::JWKS_PATH))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!((jwks.keys[0].kty.as_str(), jwks.keys[0].crv.as_str()), ("OKP", "Ed25519"));
    let claims = Verifier::from_jwks(&jwks).unwrap().verify(&kim.token).unwrap();
    assert_eq!(claims.sub.to_string(), kim.id);
    assert_eq!(claims.name, "kim");
    let header = jsonwebtoken::decode_header(&kim.token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(jwks.keys[0].kid.as_str()));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let app = spawn_app().await;
    let lee = app.register("lee").await;
    let user_id: UserId = lee.id.parse().unwrap();
    let real = KeyRing::load_dir(app.keys_dir.path(), None, false).unwrap();
    let kid = real.active_kid().to_owned();
    let claims = |ttl: i64| {
        AccessClaims::new(
            user_id,
            "lee".into(),
            Role::Admin,
            Tier::Partner,
            uuid::Uuid::new_v4(),
            chrono::Duration::seconds(ttl),
        )
    };

    assert_error(&app.get("/api/users/me", None).await, StatusCode::UNAUTHORIZED, "missing_token");
    let res = app.client.get(format!("{}/api/users/me", app.base)).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(&app.get("/api/users/me", Some("garbage")).await, StatusCode::UNAUTHORIZED, "invalid_token");
    let res =
        app.client.get(format!("{}/api/users/me", app.base)).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Expired, signed by the real key.
    let expired = real.sign(&claims(-3600)).unwrap();
    assert_error(&app.get("/api/users/me", Some(&expired)).await, StatusCode::UNAUTHORIZED, "token_expired");

    // Signed by another key that claims the same kid.
    let forger = KeyRing::from_keys(vec![(kid.clone(), KeyRing::generate_key())], None).unwrap();
    let forged = forger.sign(&claims(600)).unwrap();
    assert_error(&app.get("/api/users/me", Some(&forged)).await, StatusCode::UNAUTHORIZED, "invalid_token");

    // An unknown kid.
    let stranger = KeyRing::from_keys(vec![("someone-else".into(), KeyRing::generate_key())], None).unwrap();
    assert_error(
        &app.get("/api/users/me", Some(&stranger.sign(&claims(600)).unwrap())).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );

    // alg: none.
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(600)).unwrap());
    let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    assert_error(
        &app.get("/api/users/me", Some(&format!("{head}.{body}."))).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );

    // HS256 keyed with the public key.
    let jwks = real.jwks();
    let public = URL_SAFE_NO_PAD.decode(&jwks.keys[0].x).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid);
    let hs = jsonwebtoken::encode(&h, &claims(600), &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
    assert_error(&app.get("/api/users/me", Some(&hs)).await, StatusCode::UNAUTHORIZED, "invalid_token");

    // A valid token still works after all that.
    assert_eq!(app.get("/api/users/me", Some(&lee.token)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let mia = app.register("mia").await;
    let (status, first) = app.post("/api/users/refresh", None, json!({"refresh_token": mia.refresh})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let next = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, mia.refresh, "rotated");
    assert!(
        Verifier::from_jwks(&KeyRing::load_dir(app.keys_dir.path(), None, false).unwrap().jwks())
            .unwrap()
            .verify(first["access_token"].as_str().unwrap())
            .is_ok()
    );

    // The old token again: somebody copied it. The whole family dies, including `next`.
    let reuse = app.post("/api/users/refresh", None, json!({"refresh_token": mia.refresh})).await;
    assert_error(&reuse, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    let after = app.post("/api/users/refresh", None, json!({"refresh_token": next})).await;
    assert_error(&after, StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    // Other login sessions are untouched.
    let other = app.login("mia", "correct horse battery").await;
    assert_eq!(app.post("/api/users/refresh", None, json!({"refresh_token": other.refresh})).await.0, StatusCode::OK);

    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))")
            .bind(&other.refresh)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "stored as its SHA-256");
    let plain: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') LIKE '%rt_%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(plain, 0, "never stored in clear");

    assert_error(
        &app.post("/api/users/refresh", None, json!({"refresh_token": "rt_made_up"})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
    assert_error(
        &app.post("/api/users/refresh", None, json!({})).await,
        StatusCode::UNAUTHORIZED,
        "missing_refresh_token",
    );
    assert_error(
        &app.post("/api/users/refresh", None, json!({"refresh_token": "x".repeat(5000)})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
}

#[tokio::test]
async fn browsers_refresh_and_log_out_with_the_httponly_cookie() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(format!("{}/api/users/register", app.base))
        .json(&json!({"username": "nina", "email": "nina@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/api/users"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();

    let res = app.client.post(format!("{}/api/users/refresh", app.base)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rotated = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_ne!(rotated, pair);

    let res =
        app.client.post(format!("{}/api/users/logout", app.base)).header("cookie", &rotated).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "cookie cleared");
    let res =
        app.client.post(format!("{}/api/users/refresh", app.base)).header("cookie", &rotated).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "logged out");
    // Logout is idempotent and tolerates junk.
    assert_eq!(
        app.post("/api/users/logout", None, json!({"refresh_token": "nonsense"})).await.0,
        StatusCode::NO_CONTENT
    );
}

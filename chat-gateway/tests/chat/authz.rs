//! The chat gateway's authorization matrix (issue 16; the apiserver's is
//! `apiserver/tests/api/authz.rs`): every documented operation, and the WebSocket upgrade, called
//! as every kind of caller and checked against its rule, stated once in `RULES`.
//!
//! Callers: nobody; bad tokens for the owner claiming admin (expired, forged under the real key
//! id, `alg: none`); a viewer; a moderator of another channel; a moderator of this channel; the
//! channel's owner; an admin.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Env, User, env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Anyone: credentials, good or bad, change nothing.
    Public,
    /// Any signed-in user.
    User,
    /// The channel's staff: its owner, its moderators, an admin.
    Staff,
    /// The channel's owner or an admin (moderators do not appoint moderators).
    Owner,
}

const RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/api/streams/{stream_id}/chat", Rule::Public),
    ("POST", "/api/streams/{stream_id}/chat", Rule::User),
    ("POST", "/api/streams/{stream_id}/chat/reports", Rule::User),
    ("POST", "/api/streams/{stream_id}/chat/moderation", Rule::Staff),
    ("GET", "/api/channels/{channel_id}/chat-reports", Rule::Staff),
    ("GET", "/api/channels/{channel_id}/bans", Rule::Staff),
    ("GET", "/api/channels/{channel_id}/moderation-log", Rule::Staff),
    ("GET", "/api/channels/{channel_id}/chat-filters", Rule::Staff),
    ("POST", "/api/channels/{channel_id}/chat-filters", Rule::Staff),
    ("DELETE", "/api/channels/{channel_id}/chat-filters/{filter_id}", Rule::Staff),
    ("PUT", "/api/channels/{channel_id}/moderators/{user_id}", Rule::Owner),
    ("DELETE", "/api/channels/{channel_id}/moderators/{user_id}", Rule::Owner),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    Expired,
    Forged,
    AlgNone,
    Viewer,
    OtherModerator,
    Moderator,
    Owner,
    Admin,
}

const EVERYONE: [Caller; 9] = [
    Caller::Nobody,
    Caller::Expired,
    Caller::Forged,
    Caller::AlgNone,
    Caller::Viewer,
    Caller::OtherModerator,
    Caller::Moderator,
    Caller::Owner,
    Caller::Admin,
];

struct World {
    env: Env,
    owner: User,
    stream: String,
    /// Whose moderator status the owner-only routes change (nobody else's).
    candidate: User,
    tokens: Vec<(Caller, String)>,
}

impl World {
    fn token(&self, who: Caller) -> Option<&str> {
        self.tokens.iter().find(|(c, _)| *c == who).map(|(_, t)| t.as_str())
    }

    fn concrete(&self, path: &str) -> String {
        path.replace("{stream_id}", &self.stream)
            .replace("{channel_id}", &self.owner.id)
            .replace("{user_id}", &self.candidate.id)
            .replace("{filter_id}", "00000000-0000-7000-8000-000000000000")
    }

    async fn call(&self, who: Caller, method: &str, path: &str) -> StatusCode {
        let body = match (method, path) {
            ("GET" | "DELETE" | "PUT", _) => None,
            ("POST", "/api/streams/{stream_id}/chat") => Some(json!({"text": format!("matrix {who:?}")})),
            // Requests the gateway would carry out for staff (a body it would refuse first with
            // a 400 says nothing about who may call).
            ("POST", "/api/streams/{stream_id}/chat/moderation") => Some(json!({"action": "slow_mode", "seconds": 0})),
            ("POST", "/api/channels/{channel_id}/chat-filters") => Some(json!({"pattern": format!("matrix{who:?}")})),
            _ => Some(json!({})),
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        self.env.rest(0, method, &self.concrete(path), self.token(who), body).await.0
    }

    /// The WebSocket upgrade with `who`'s token (reading needs none; a bad one is refused).
    async fn upgrade(&self, who: Caller) -> u16 {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!("{}/ws/streams/{}/chat", self.env.gateways[0].ws, self.stream);
        let mut req = url.into_client_request().unwrap();
        let protocols = match self.token(who) {
            Some(t) => format!("onair.chat.v1, access_token.{t}"),
            None => "onair.chat.v1".to_owned(),
        };
        req.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    }
}

async fn login_as_admin(env: &Env, user: &User, name: &str) -> String {
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1::uuid").bind(&user.id).execute(&env.pool).await.unwrap();
    let res = env
        .client
        .post(format!("{}/api/users/login", env.api))
        .json(&json!({"login": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_chat_operation_answers_every_caller_by_its_rule() {
    let env = env(1, &[]).await;
    // The table and the document name the same operations, with the same security.
    let doc = serde_json::to_value(onair_chat_gateway::openapi()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let rule = RULES
                .iter()
                .find(|(m, p, _)| *m == method && p == path)
                .map(|(_, _, r)| *r)
                .unwrap_or_else(|| panic!("{method} {path} is documented but has no rule here"));
            let bearer = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            assert_eq!(bearer, rule != Rule::Public, "{method} {path}: documented security against {rule:?}");
            if matches!(rule, Rule::Staff | Rule::Owner) {
                assert!(op["responses"].get("403").is_some(), "{method} {path} documents its 403");
            }
            documented.insert((method, path.clone()));
        }
    }
    for (m, p, _) in RULES {
        assert!(documented.contains(&((*m).to_owned(), (*p).to_owned())), "{m} {p} is not documented");
    }

    let owner = env.register("chanowner").await;
    let stream = env.live_stream(&owner).await;
    let viewer = env.register("chanviewer").await;
    let moderator = env.register("chanmod").await;
    let other_moderator = env.register("othermod").await;
    let elsewhere = env.register("elsewhere").await;
    let candidate = env.register("candidate").await;
    let root = env.register("chanroot").await;
    for (channel, user) in [(&owner, &moderator), (&elsewhere, &other_moderator)] {
        sqlx::query(
            "INSERT INTO chat_moderators (channel_id, user_id, added_by) VALUES ($1::uuid, $2::uuid, $1::uuid)",
        )
        .bind(&channel.id)
        .bind(&user.id)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    let admin = login_as_admin(&env, &root, "chanroot").await;
    let bad = onair_testkit::tokens::bad_tokens(env.keys.path(), owner.id.parse().unwrap(), "chanowner").unwrap();
    let tokens = vec![
        (Caller::Expired, bad.expired),
        (Caller::Forged, bad.forged),
        (Caller::AlgNone, bad.alg_none),
        (Caller::Viewer, viewer.token.clone()),
        (Caller::OtherModerator, other_moderator.token.clone()),
        (Caller::Moderator, moderator.token.clone()),
        (Caller::Owner, owner.token.clone()),
        (Caller::Admin, admin),
    ];
    let world = World { env, owner, stream, candidate, tokens };

    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, path, rule) in RULES {
        if *rule == Rule::Public {
            let nobody = world.call(Caller::Nobody, method, path).await;
            if matches!(nobody, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) || nobody.is_server_error() {
                failures.push(format!("{method} {path} as nobody: {nobody}"));
            }
            for who in EVERYONE {
                let status = world.call(who, method, path).await;
                if status != nobody {
                    failures.push(format!("{method} {path} as {who:?}: {status}, nobody gets {nobody}"));
                }
                checked += 1;
            }
            continue;
        }
        for who in EVERYONE {
            let want = match (rule, who) {
                (_, Caller::Nobody | Caller::Expired | Caller::Forged | Caller::AlgNone) => {
                    Some(StatusCode::UNAUTHORIZED)
                }
                (Rule::Staff, Caller::Viewer | Caller::OtherModerator) => Some(StatusCode::FORBIDDEN),
                (Rule::Owner, Caller::Viewer | Caller::OtherModerator | Caller::Moderator) => {
                    Some(StatusCode::FORBIDDEN)
                }
                // Let in: any answer but a refusal or a failure.
                _ => None,
            };
            let status = world.call(who, method, path).await;
            let ok = match want {
                Some(w) => status == w,
                None => {
                    !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) && !status.is_server_error()
                }
            };
            if !ok {
                failures.push(format!(
                    "{method} {path} as {who:?}: {status}, want {}",
                    want.map_or("it let in".into(), |w| w.to_string())
                ));
            }
            checked += 1;
        }
    }
    // The socket: reading needs no account; a token that is not good is refused, not ignored.
    for who in EVERYONE {
        let status = world.upgrade(who).await;
        let want = if matches!(who, Caller::Expired | Caller::Forged | Caller::AlgNone) { 401 } else { 101 };
        if status != want {
            failures.push(format!("the WebSocket upgrade as {who:?}: {status}, want {want}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} of {checked} answers broke their rule:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 100, "{checked} calls");
}

/// Every chat operation that takes a body refuses one over the shared limit (64 KiB) with 413
/// `body_too_large`, for a caller the route lets in (the channel's owner).
#[tokio::test]
async fn every_chat_body_over_the_limit_is_refused_with_413() {
    let env = env(1, &[]).await;
    let owner = env.register("bigowner").await;
    let stream = env.live_stream(&owner).await;
    let doc = serde_json::to_value(onair_chat_gateway::openapi()).unwrap();
    let huge = format!(r#"{{"padding":"{}"}}"#, "x".repeat(70 * 1024));
    let mut refused = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let url = format!(
                "{}{}",
                env.gateways[0].base,
                path.replace("{stream_id}", &stream).replace("{channel_id}", &owner.id).replace("{user_id}", &owner.id)
            );
            let res = env
                .client
                .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), url)
                .bearer_auth(&owner.token)
                .header("content-type", "application/json")
                .body(huge.clone())
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")),
                "{method} {path}: {body}"
            );
            refused.push(format!("{method} {path}"));
        }
    }
    assert!(refused.len() >= 4, "{refused:?}");
}

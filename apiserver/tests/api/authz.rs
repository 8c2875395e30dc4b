//! The authorization matrix (issue 16): every operation the apiserver documents, called as
//! every kind of caller, each answer checked against the operation's rule. The rules are stated
//! once, in `RULES`; the test fails when the document gains an operation the table does not
//! name, when an operation's documented `security` disagrees with its rule, and when any caller
//! gets past (or is stopped by) a rule it should not.
//!
//! Callers: nobody; a signed-in viewer; the owner of the resources in the path; a moderator of
//! another channel; an admin; and three bad tokens for the owner claiming admin (expired, signed
//! by another key under the right key id, `alg: none`). Internal routes also get the internal
//! token. The chat gateway's operations have their own matrix (`chat-gateway/tests/chat/authz.rs`).

use std::collections::BTreeSet;

use onair_apiserver::Finalized;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{INTERNAL_TOKEN, TestApp, User, spawn_app_with};
use crate::recordings::{finish, record, start};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Anyone; credentials, good or bad, change nothing: every caller gets the answer nobody
    /// gets, and it is neither 401 nor 403.
    Public,
    /// Anyone, answered by the credentials in the request itself (a password, the refresh
    /// cookie): 401 when they are wrong, whatever bearer token comes along.
    SignIn,
    /// Anyone, as for `Public`; a bearer token also says who is calling, which some resources
    /// need (a followers-only channel's playback): documented with optional `bearer`. A bad
    /// token is refused with 401 (its client refreshes it), a valid one answered as nobody is
    /// for a public resource.
    Identified,
    /// Any signed-in user (bearer token).
    User,
    /// The owner of the resource in the path, or an admin; other users get 403.
    Owner,
    /// Services only (the internal token); a user's bearer token is not one.
    Internal,
}

/// Every apiserver operation and its rule (chat's are the chat gateway's: its own matrix).
pub(crate) const RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/healthz", Rule::Public),
    ("GET", "/readyz", Rule::Public),
    ("GET", "/metrics", Rule::Public),
    ("GET", "/.well-known/jwks.json", Rule::Public),
    ("GET", "/api/config", Rule::Public),
    ("GET", "/api/openapi.json", Rule::Public),
    ("GET", "/api/categories", Rule::Public),
    ("GET", "/api/streams/search", Rule::Public),
    ("POST", "/api/users/register", Rule::Public),
    ("POST", "/api/users/login", Rule::SignIn),
    ("POST", "/api/users/refresh", Rule::SignIn),
    ("POST", "/api/users/logout", Rule::Public),
    ("GET", "/api/users/{user_id}", Rule::Public),
    ("GET", "/api/users/{user_id}/streams", Rule::Public),
    ("GET", "/api/users/{user_id}/followers", Rule::Public),
    ("GET", "/api/users/{user_id}/following", Rule::Public),
    ("GET", "/api/users/{user_id}/vods", Rule::Identified),
    ("GET", "/api/users/{user_id}/clips", Rule::Identified),
    ("GET", "/api/streams/{stream_id}", Rule::Public),
    ("POST", "/api/streams/{stream_id}/heartbeat", Rule::Public),
    ("POST", "/api/streams/{stream_id}/playback", Rule::Identified),
    ("GET", "/api/vods/{vod_id}", Rule::Identified),
    ("GET", "/api/clips/{clip_id}", Rule::Identified),
    ("GET", "/vod/{vod_id}/{path}", Rule::Public),
    ("GET", "/clip/{clip_id}/{path}", Rule::Public),
    ("GET", "/api/users/me", Rule::User),
    ("PATCH", "/api/users/me", Rule::User),
    ("DELETE", "/api/users/me", Rule::User),
    ("GET", "/api/users/me/stream-key", Rule::User),
    ("POST", "/api/users/me/stream-key", Rule::User),
    ("GET", "/api/users/me/following/live", Rule::User),
    ("PUT", "/api/users/{user_id}/follow", Rule::User),
    ("DELETE", "/api/users/{user_id}/follow", Rule::User),
    ("POST", "/api/streams/start", Rule::User),
    ("POST", "/api/streams/{stream_id}/clips", Rule::User),
    ("POST", "/api/vods/{vod_id}/clips", Rule::User),
    ("GET", "/api/streams/{stream_id}/analytics", Rule::Owner),
    ("PATCH", "/api/streams/{stream_id}", Rule::Owner),
    ("POST", "/api/streams/{stream_id}/stop", Rule::Owner),
    ("DELETE", "/api/vods/{vod_id}", Rule::Owner),
    ("DELETE", "/api/clips/{clip_id}", Rule::Owner),
    ("POST", "/internal/stream-keys/verify", Rule::Internal),
    ("POST", "/internal/streams/{stream_id}/status", Rule::Internal),
    ("POST", "/internal/streams/{stream_id}/health", Rule::Internal),
    ("POST", "/internal/streams/{stream_id}/recording", Rule::Internal),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    Expired,
    Forged,
    AlgNone,
    Viewer,
    OtherModerator,
    Owner,
    Admin,
    Service,
}

const BAD_TOKENS: [Caller; 3] = [Caller::Expired, Caller::Forged, Caller::AlgNone];

/// The resources the paths name, all the owner's.
pub(crate) struct Fixture {
    pub owner: User,
    pub stream: String,
    pub vod: String,
    pub clip: String,
}

struct Callers {
    viewer: User,
    moderator: User,
    admin: User,
    expired: String,
    forged: String,
    alg_none: String,
}

impl Callers {
    fn bearer<'a>(&'a self, fx: &'a Fixture, who: Caller) -> Option<&'a str> {
        match who {
            Caller::Nobody | Caller::Service => None,
            Caller::Expired => Some(&self.expired),
            Caller::Forged => Some(&self.forged),
            Caller::AlgNone => Some(&self.alg_none),
            Caller::Viewer => Some(&self.viewer.token),
            Caller::OtherModerator => Some(&self.moderator.token),
            Caller::Owner => Some(&fx.owner.token),
            Caller::Admin => Some(&self.admin.token),
        }
    }
}

pub(crate) fn concrete(path: &str, fx: &Fixture) -> String {
    path.replace("{user_id}", &fx.owner.id)
        .replace("{stream_id}", &fx.stream)
        .replace("{vod_id}", &fx.vod)
        .replace("{clip_id}", &fx.clip)
        .replace("{path}", "master.m3u8")
}

/// A body the operation accepts the shape of (validation may still refuse it: that is a 400,
/// which says the caller was let in). Never one that would change the owner's password.
fn body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("GET", _) => None,
        ("POST", "/api/streams/{stream_id}/clips") => Some(json!({"title": "matrix", "seconds": 30})),
        ("POST", "/api/vods/{vod_id}/clips") => Some(json!({"title": "matrix", "start_secs": 0.0, "seconds": 5})),
        ("POST", "/internal/streams/{stream_id}/status") => Some(json!({"status": "live"})),
        ("POST", "/api/streams/{stream_id}/playback") => Some(json!({"session_id": "matrix-viewer-01"})),
        _ => Some(json!({})),
    }
}

async fn call(app: &TestApp, callers: &Callers, fx: &Fixture, who: Caller, method: &str, path: &str) -> StatusCode {
    let url = format!("{}{}", app.base, concrete(path, fx));
    let mut req = app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(token) = callers.bearer(fx, who) {
        req = req.bearer_auth(token);
    }
    if who == Caller::Service {
        req = req.header("x-onair-internal-token", INTERNAL_TOKEN);
    }
    if let Some(b) = body(method, path) {
        req = req.json(&b);
    }
    req.send().await.unwrap().status()
}

/// A fresh owner with a live stream, a VOD of an earlier broadcast and a clip of it.
pub(crate) async fn fixture(app: &TestApp, name: &str) -> Fixture {
    let owner = app.register(name).await;
    let (earlier, _) = start(app, &owner).await;
    record(app, &earlier, 10).await;
    let Finalized::Ready(vod) = finish(app, &owner, &earlier).await else { panic!("no VOD") };
    let (status, clip) = app
        .post(
            &format!("/api/vods/{vod}/clips"),
            Some(&owner.token),
            json!({"title": "fixture", "start_secs": 1.0, "seconds": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{clip}");
    let stream = app.go_live(&owner, "Matrix", "games", &[]).await;
    Fixture { owner, stream, vod: vod.to_string(), clip: clip["id"].as_str().unwrap().to_owned() }
}

/// An app for calling every route: recording on (the VOD and clip routes need one), and the
/// per-address limits of sign-up and sign-in raised, since every caller here comes from one
/// address.
pub(crate) async fn matrix_app() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&[
        "--recordings-url",
        dir.path().to_str().unwrap(),
        "--register-per-ip-per-hour",
        "1000",
        "--login-per-ip-per-minute",
        "1000",
        "--heartbeats-per-ip-per-minute",
        "1000",
    ])
    .await;
    (app, dir)
}

/// Whether an operation changes what the next caller finds (so each allowed caller gets a
/// fresh fixture, and the first answer must be a success, not a 404 from an earlier call).
fn destructive(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("DELETE", "/api/vods/{vod_id}")
            | ("DELETE", "/api/clips/{clip_id}")
            | ("POST", "/api/streams/{stream_id}/stop")
    )
}

#[tokio::test]
async fn every_operation_answers_every_caller_by_its_rule() {
    let (app, _dir) = matrix_app().await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let chat: BTreeSet<String> = onair_chat_gateway::openapi().paths.paths.keys().cloned().collect();

    // The table and the document name the same operations, with the same security.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if chat.contains(path) {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let rule = RULES
                .iter()
                .find(|(m, p, _)| *m == method && p == path)
                .map(|(_, _, r)| *r)
                .unwrap_or_else(|| panic!("{method} {path} is documented but has no rule here"));
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .map(|s| s.iter().flat_map(|r| r.as_object().unwrap().keys().map(String::as_str)).collect())
                .unwrap_or_default();
            let expected: &[&str] = match rule {
                Rule::Public | Rule::SignIn => &[],
                Rule::User | Rule::Owner | Rule::Identified => &["bearer"],
                Rule::Internal => &["internal"],
            };
            assert_eq!(schemes, expected, "{method} {path}: the document's security against its {rule:?} rule");
            if rule == Rule::Owner {
                assert!(op["responses"].get("403").is_some(), "{method} {path} documents its 403");
            }
            if rule != Rule::Public {
                assert!(op["responses"].get("401").is_some(), "{method} {path} documents its 401");
            }
            documented.insert((method, path.clone()));
        }
    }
    for (m, p, _) in RULES {
        assert!(documented.contains(&((*m).to_owned(), (*p).to_owned())), "{m} {p} has a rule but is not documented");
    }

    let viewer = app.register("viewer").await;
    let moderator = app.register("moderator").await;
    let elsewhere = app.register("elsewhere").await;
    sqlx::query("INSERT INTO chat_moderators (channel_id, user_id, added_by) VALUES ($1::uuid, $2::uuid, $1::uuid)")
        .bind(&elsewhere.id)
        .bind(&moderator.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let root = app.register("root").await;
    let admin = app.make_admin(&root).await;
    let mut fx = fixture(&app, "owner").await;
    // They claim to be the owner, and an admin: honoured, they would open every door.
    let bad =
        onair_testkit::tokens::bad_tokens(app.keys_dir.path(), fx.owner.id.parse().unwrap(), &fx.owner.name).unwrap();
    let callers =
        Callers { viewer, moderator, admin, expired: bad.expired, forged: bad.forged, alg_none: bad.alg_none };

    let mut checked = 0;
    let mut failures = Vec::new();
    for (n, (method, path, rule)) in RULES.iter().enumerate() {
        if matches!(rule, Rule::Public | Rule::SignIn | Rule::Identified) {
            // An `Identified` route refuses a bad token (its client refreshes it); the others
            // answer it as they answer nobody.
            let refuses_bad_tokens = *rule == Rule::Identified;
            if refuses_bad_tokens {
                for who in BAD_TOKENS {
                    let status = call(&app, &callers, &fx, who, method, path).await;
                    if status != StatusCode::UNAUTHORIZED {
                        failures.push(format!("{method} {path} as {who:?}: {status}, want 401"));
                    }
                    checked += 1;
                }
            }
            let everyone = [
                Caller::Nobody,
                Caller::Expired,
                Caller::Forged,
                Caller::AlgNone,
                Caller::Viewer,
                Caller::OtherModerator,
                Caller::Owner,
                Caller::Admin,
            ]
            .into_iter()
            .filter(|c| !(refuses_bad_tokens && BAD_TOKENS.contains(c)));
            let nobody = call(&app, &callers, &fx, Caller::Nobody, method, path).await;
            let fine = match rule {
                Rule::Public | Rule::Identified => !matches!(nobody, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                _ => nobody != StatusCode::FORBIDDEN,
            };
            if !fine || nobody.is_server_error() {
                failures.push(format!("{method} {path} as nobody: {nobody}"));
            }
            for who in everyone {
                let status = call(&app, &callers, &fx, who, method, path).await;
                if status != nobody {
                    failures.push(format!("{method} {path} as {who:?}: {status}, nobody gets {nobody}"));
                }
                checked += 1;
            }
            continue;
        }
        let refused = match rule {
            Rule::User => [&[Caller::Nobody][..], &BAD_TOKENS].concat(),
            Rule::Owner => [&[Caller::Nobody][..], &BAD_TOKENS, &[Caller::Viewer, Caller::OtherModerator]].concat(),
            _ => [&[Caller::Nobody][..], &BAD_TOKENS, &[Caller::Viewer, Caller::Owner, Caller::Admin]].concat(),
        };
        let allowed: Vec<Caller> = match rule {
            Rule::User => vec![Caller::Viewer, Caller::OtherModerator, Caller::Owner, Caller::Admin],
            Rule::Owner => vec![Caller::Owner, Caller::Admin],
            _ => vec![Caller::Service],
        };
        for who in refused {
            let status = call(&app, &callers, &fx, who, method, path).await;
            let want = match (rule, who) {
                (Rule::Owner, Caller::Viewer | Caller::OtherModerator) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            if status != want {
                failures.push(format!("{method} {path} as {who:?}: {status}, want {want}"));
            }
            checked += 1;
        }
        for who in allowed {
            if destructive(method, path) {
                fx = fixture(&app, &format!("owner{n}{who:?}").to_lowercase()).await;
            }
            let status = call(&app, &callers, &fx, who, method, path).await;
            let ok = if destructive(method, path) {
                status.is_success()
            } else {
                !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) && !status.is_server_error()
            };
            if !ok {
                failures.push(format!("{method} {path} as {who:?}: {status}, want it let in"));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {checked} answers broke their rule:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 200, "{checked} calls");
}

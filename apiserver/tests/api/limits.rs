//! Every apiserver operation that takes a body refuses one over the shared limit (64 KiB) with
//! 413 `body_too_large`, internal routes included, for a caller the route lets in, before doing
//! anything with it. The operations and who may call them come from the authorization matrix's
//! table (`authz.rs`).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::authz::{RULES, Rule, concrete, fixture, matrix_app};
use crate::helpers::INTERNAL_TOKEN;

#[tokio::test]
async fn every_body_over_the_limit_is_refused_with_413() {
    let (app, _dir) = matrix_app().await;
    let fx = fixture(&app, "limited").await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let chat: std::collections::BTreeSet<String> = onair_chat_gateway::openapi().paths.paths.keys().cloned().collect();
    // Valid JSON, just too much of it.
    let huge = format!(r#"{{"padding":"{}"}}"#, "x".repeat(70 * 1024));
    let mut refused = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if chat.contains(path) {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let method = method.to_uppercase();
            let rule = RULES.iter().find(|(m, p, _)| *m == method && p == path).map(|(_, _, r)| *r).unwrap();
            let url = format!("{}{}", app.base, concrete(path, &fx));
            let mut req = app
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
                .header("content-type", "application/json")
                .body(huge.clone());
            req = match rule {
                Rule::Internal => req.header("x-onair-internal-token", INTERNAL_TOKEN),
                Rule::User | Rule::Owner => req.bearer_auth(&fx.owner.token),
                Rule::Public | Rule::SignIn | Rule::Identified => req,
            };
            let res = req.send().await.unwrap();
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
    // Sign-up, sign-in, profile and stream edits, clips, account deletion, the internal reports.
    assert!(refused.len() >= 12, "{refused:?}");
    assert!(refused.iter().any(|r| r.starts_with("POST /internal/")), "{refused:?}");
}

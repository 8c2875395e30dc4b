//! `/healthz` (the process is up) and `/readyz` (its dependencies answer).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use http::StatusCode;
use serde::Serialize;

pub type CheckResult = Result<(), String>;

/// One dependency check, e.g. "postgres": `SELECT 1`.
pub struct Check {
    pub name: &'static str,
    pub run: Box<dyn Fn() -> BoxFuture<'static, CheckResult> + Send + Sync>,
}

/// The checks `/readyz` runs, each bounded by a timeout so a hung dependency reads as not ready.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Vec<Check>>,
}

impl Readiness {
    pub fn new(checks: Vec<Check>) -> Self {
        Self { checks: Arc::new(checks) }
    }
}

#[derive(Serialize)]
struct CheckReport {
    name: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `/readyz`: every check passes -> 200, else 503 with which failed.
pub async fn readyz(State(r): State<Readiness>) -> impl IntoResponse {
    let results = join_all(r.checks.iter().map(|c| async move {
        let res = match tokio::time::timeout(Duration::from_secs(2), (c.run)()).await {
            Ok(r) => r,
            Err(_) => Err("timed out after 2s".to_owned()),
        };
        if let Err(e) = &res {
            tracing::warn!(check = c.name, error = %e, "readiness check failed");
        }
        CheckReport { name: c.name, ok: res.is_ok(), error: res.err() }
    }))
    .await;
    let ready = results.iter().all(|r| r.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({ "ready": ready, "checks": results })))
}

/// `/healthz`: the process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// `/healthz` and `/readyz` as a router, for services without an OpenAPI document.
pub fn health_router(readiness: Readiness) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(readiness)
}

#![doc = include_str!("../README.md")]

mod auth;
mod error;
mod extract;
mod health;
mod metrics;
mod serve;

pub use auth::{BearerError, bearer_token, constant_time_eq};
pub use error::{ErrorBody, ErrorDetail, HttpError};
pub use extract::{Json, Path, Query, RawBody};
pub use health::{Check, CheckResult, Readiness, health_router, healthz, readyz};
pub use metrics::{HttpMetrics, metrics_response, track_metrics};
pub use serve::{Connections, DRAIN_TIMEOUT, next_backoff, serve, serve_draining, serve_with};

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use http::{HeaderName, StatusCode};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Limits every service applies to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted; larger gets 413.
    pub max_body_bytes: usize,
    /// A request that takes longer gets 408 instead of holding a connection forever.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 64 * 1024, request_timeout: Duration::from_secs(15) }
    }
}

/// Wrap a service's router with the shared behaviour: JSON 404/405, body limit, timeout,
/// request ids (`x-request-id`, generated when absent and echoed back) and a trace span per request.
pub fn finish_router(router: Router, limits: Limits) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    router
        .fallback(|| async { HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            // A signed playback URL's token stays out of the logs.
            let path = onair_playback_token::redact(req.uri().path());
            tracing::info_span!("http", method = %req.method(), path = %path, request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Who may call a service from a browser on another origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsMode {
    /// Only the listed origins, with cookies (the apiserver's refresh cookie).
    ListedWithCredentials,
    /// The listed origins, or any when none are listed; bearer tokens only, no cookies.
    ListedOrAny,
}

/// The CORS layer every service shares: JSON APIs with bearer tokens, preflights cached 10 min.
pub fn cors_layer(origins: &[String], mode: CorsMode) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let listed: Vec<http::HeaderValue> =
        origins.iter().filter_map(|o| http::HeaderValue::from_str(o.trim()).ok()).collect();
    let allow = match mode {
        CorsMode::ListedOrAny if listed.is_empty() => AllowOrigin::any(),
        _ => AllowOrigin::list(listed),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PATCH,
            http::Method::PUT,
            http::Method::DELETE,
        ])
        .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
        .allow_credentials(mode == CorsMode::ListedWithCredentials)
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod cors_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower::ServiceExt as _;

    async fn preflight(mode: CorsMode, origins: &[&str], origin: &str) -> http::HeaderMap {
        let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
        let app = Router::new().route("/x", axum::routing::post(|| async { "ok" })).layer(cors_layer(&origins, mode));
        let req = http::Request::builder()
            .method("OPTIONS")
            .uri("/x")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .body(axum::body::Body::empty())
            .unwrap();
        app.oneshot(req).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn listed_origins_only_and_cookies_only_where_asked() {
        let h = preflight(CorsMode::ListedWithCredentials, &["https://app.example"], "https://app.example").await;
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let h = preflight(CorsMode::ListedWithCredentials, &["https://app.example"], "https://evil.example").await;
        assert!(h.get("access-control-allow-origin").is_none(), "an unlisted origin gets no grant");
        let h = preflight(CorsMode::ListedWithCredentials, &[], "https://app.example").await;
        assert!(h.get("access-control-allow-origin").is_none(), "none listed: none allowed with cookies");
        let h = preflight(CorsMode::ListedOrAny, &[], "http://127.0.0.1:8080").await;
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h.get("access-control-allow-credentials").is_none(), "bearer tokens only");
        let h = preflight(CorsMode::ListedOrAny, &["https://app.example"], "https://evil.example").await;
        assert!(h.get("access-control-allow-origin").is_none());
    }
}

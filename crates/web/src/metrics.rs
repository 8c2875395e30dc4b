//! Request count and latency by route and status, and the `/metrics` endpoint.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/streams/{id}`), never the raw path, so cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// HTTP metrics for one service.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            duration.clone(),
        );
        Arc::new(Self { requests, duration })
    }
}

/// The OpenMetrics content type `/metrics` answers with.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` answer every service gives: `registry` in the OpenMetrics text format.
pub fn metrics_response(registry: &Registry) -> Response {
    ([(http::header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], onair_telemetry::encode(registry)).into_response()
}

/// Middleware: count and time every request under its matched route.
pub async fn track_metrics(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let labels = RequestLabels { method, route, status: res.status().as_u16() };
    m.requests.get_or_create(&labels).inc();
    m.duration.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_openmetrics_text() {
        let mut registry = onair_telemetry::registry("test");
        let _ = HttpMetrics::register(&mut registry);
        let res = metrics_response(&registry);
        assert_eq!(res.status(), http::StatusCode::OK);
        assert_eq!(res.headers()[http::header::CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
    }
}

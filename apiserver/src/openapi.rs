//! The OpenAPI document, generated from the handlers' annotations, and the operational routes
//! (JWKS, health, metrics) that sit beside the API.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "onair API", description = "Users, stream keys, streams, discovery, followers, analytics, and chat (served by the chat gateway at the same address)."),
    modifiers(&SecuritySchemes),
    components(schemas(onair_web::ErrorBody, onair_web::ErrorDetail)),
    tags(
        (name = "users", description = "Accounts and login sessions"),
        (name = "stream keys", description = "RTMP stream keys"),
        (name = "streams", description = "Broadcast lifecycle"),
        (name = "discovery", description = "Search and categories"),
        (name = "followers", description = "Follows"),
        (name = "analytics", description = "Viewer presence and stream analytics"),
        (name = "vods", description = "Recorded broadcasts to watch"),
        (name = "clips", description = "Short cuts of broadcasts, kept on their own"),
        (name = "internal", description = "Service-to-service routes (internal token)"),
        (name = "operations", description = "Health, metrics, keys"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "internal",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                onair_domain::contracts::http::INTERNAL_TOKEN_HEADER,
            ))),
        );
    }
}

/// The answers the shared extractors (`onair_web::{Json, Path, Query}`) and the body limit give
/// before a handler runs, added to every operation they apply to so no handler has to repeat
/// them: 400 for a malformed path, query or body, 413 over the body limit, 415 for a body that
/// is not JSON.
pub fn document_extractor_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            let params = op.parameters.as_deref().unwrap_or_default();
            let has_input = params
                .iter()
                .any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query)));
            let responses = &mut op.responses.responses;
            if has_input || op.request_body.is_some() {
                responses.entry("400".to_owned()).or_insert_with(|| error("A malformed path, query or body"));
            }
            if op.request_body.is_some() {
                responses.entry("413".to_owned()).or_insert_with(|| error("The body is over 64 KiB"));
                responses.entry("415".to_owned()).or_insert_with(|| error("The body is not JSON"));
            }
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(client_config))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// What the web app cannot know from its own origin (chat is on that origin: the front door).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientConfig {
    /// RTMP base URL streamers publish to (`{ingest_url}/{stream_key}`).
    pub ingest_url: String,
}

/// Public configuration for the web app.
#[utoipa::path(get, path = "/api/config", tag = "operations", responses((status = 200, body = ClientConfig)))]
async fn client_config(State(state): State<AppState>) -> axum::Json<ClientConfig> {
    axum::Json(ClientConfig { ingest_url: state.config.ingest_url.clone() })
}

/// Public keys that verify onair access tokens (RFC 7517; Ed25519 `OKP` keys).
// utoipa needs a literal path; `tests/api/openapi.rs` checks it is `contracts::http::JWKS_PATH`.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", responses((status = 200, description = "JSON Web Key Set")))]
async fn jwks(State(state): State<AppState>) -> Response {
    let mut res = axum::Json(state.keys.jwks()).into_response();
    // Verifiers cache it; rotation adds keys well before they sign, so minutes of staleness are fine.
    res.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "up")))]
async fn healthz() -> impl IntoResponse {
    onair_web::healthz().await
}

/// Postgres, Redis and NATS answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "a dependency is down")))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    onair_web::readyz(State(state.readiness.clone())).await
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text")))]
async fn metrics(State(state): State<AppState>) -> Response {
    onair_web::metrics_response(&state.registry)
}

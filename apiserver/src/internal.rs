//! Routes for onair's own services (media workers), behind the internal token.

use axum::extract::State;
use onair_domain::{PlaybackAccess, RecordRenditions, StreamId, StreamStatus, Tier, UserId};
use onair_web::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Internal;
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::Cause;
use crate::sessions::hash_token;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_stream_key))
        .routes(routes!(report_status))
        .routes(routes!(report_health))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyKeyRequest {
    pub stream_key: String,
}

/// Which stream a publisher with this key feeds.
#[derive(Serialize, Deserialize, ToSchema, Debug, PartialEq, Eq)]
pub struct KeyOwner {
    pub user_id: UserId,
    pub stream_id: StreamId,
    pub tier: Tier,
    pub quality: String,
    /// Whether to record the broadcast: its channel records (`record_broadcasts`) and this
    /// server keeps a recording of it (the worker's reports and the VOD need one).
    pub record: bool,
    /// Which renditions to record (what the channel chose when the broadcast started).
    pub record_renditions: RecordRenditions,
    /// Who may play it: anything but `public` plays only from signed URLs (`/hls/{stream}/t/{token}/…`),
    /// so the worker refuses its plain `/hls/{stream}/…` paths.
    pub playback_access: PlaybackAccess,
}

/// Check a stream key (the media worker calls this before accepting media). 404 for an
/// unknown key, 409 when the key is right but its owner has no stream on air.
#[utoipa::path(post, path = "/internal/stream-keys/verify", tag = "internal", request_body = VerifyKeyRequest,
    security(("internal" = [])),
    responses((status = 200, body = KeyOwner), (status = 401, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody), (status = 409, body = onair_web::ErrorBody)))]
async fn verify_stream_key(
    State(state): State<AppState>,
    _: Internal,
    Json(req): Json<VerifyKeyRequest>,
) -> ApiResult<Json<KeyOwner>> {
    if req.stream_key.is_empty() || req.stream_key.len() > 200 {
        return Err(ApiError::NotFound("stream key"));
    }
    let owner = sqlx::query!(
        "SELECT k.user_id, u.tier FROM stream_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1",
        hash_token(&req.stream_key),
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("stream key"))?;
    let stream = sqlx::query!(
        "SELECT s.id, s.quality, s.playback_access, r.renditions AS \"record_renditions?\"
         FROM streams s LEFT JOIN recordings r ON r.stream_id = s.id
         WHERE s.user_id = $1 AND s.status IN ('starting', 'live')",
        owner.user_id,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::conflict("no_active_stream", "start a stream in the dashboard before publishing"))?;
    Ok(Json(KeyOwner {
        user_id: UserId(owner.user_id),
        stream_id: StreamId(stream.id),
        tier: Tier::parse(&owner.tier).unwrap_or(Tier::Free),
        quality: stream.quality,
        record: stream.record_renditions.is_some(),
        record_renditions: stream
            .record_renditions
            .as_deref()
            .and_then(RecordRenditions::parse)
            .unwrap_or(RecordRenditions::All),
        playback_access: crate::access::stored(&stream.playback_access),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct StatusReport {
    /// `live` (publisher connected, media flowing), `starting` (publisher gone, within the
    /// reconnect grace period), `ended` (grace period over) or `failed`.
    pub status: StreamStatus,
}

/// The media worker (or the operator) reports what the stream is doing; the lifecycle decides
/// whether that moves it (`lifecycle::transition`).
#[utoipa::path(post, path = "/internal/streams/{stream_id}/status", tag = "internal", request_body = StatusReport,
    params(("stream_id" = Uuid, Path)), security(("internal" = [])),
    responses((status = 204), (status = 401, body = onair_web::ErrorBody), (status = 404, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody)))]
async fn report_status(
    State(state): State<AppState>,
    _: Internal,
    Path(stream_id): Path<Uuid>,
    Json(req): Json<StatusReport>,
) -> ApiResult<http::StatusCode> {
    state.set_stream_status(StreamId(stream_id), req.status, Cause::Media).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct HealthReport {
    /// ffmpeg's speed: 1.0 is real time, below it the encoder falls behind.
    pub encode_speed: f32,
    /// Frames dropped since the encoder started.
    pub dropped_frames: i32,
}

/// The media worker reports its encoder's health (every few seconds while a stream runs).
#[utoipa::path(post, path = "/internal/streams/{stream_id}/health", tag = "internal", request_body = HealthReport,
    params(("stream_id" = Uuid, Path)), security(("internal" = [])),
    responses((status = 204), (status = 400, body = onair_web::ErrorBody), (status = 401, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody)))]
async fn report_health(
    State(state): State<AppState>,
    _: Internal,
    Path(stream_id): Path<Uuid>,
    Json(req): Json<HealthReport>,
) -> ApiResult<http::StatusCode> {
    if !(0.0..=100.0).contains(&req.encode_speed) || req.dropped_frames < 0 {
        return Err(
            onair_domain::ValidationError::new("encode_speed", "must be 0-100, with dropped_frames >= 0").into()
        );
    }
    let updated = sqlx::query!(
        "UPDATE streams SET encode_speed = $2, dropped_frames = $3, health_at = now() WHERE id = $1",
        stream_id,
        req.encode_speed,
        req.dropped_frames,
    )
    .execute(&state.db)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound("stream"));
    }
    Ok(http::StatusCode::NO_CONTENT)
}

//! Past broadcasts people can watch (issue 15): a channel's VODs, one VOD, deleting one. They
//! play from `/vod/{id}/…` (`playback.rs`).

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_domain::{PlaybackAccess, StreamId, UserId};
use onair_recording::Rel;
use onair_web::{Path, Query};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::{PerCaller, Viewer, per_caller};
use crate::auth::{AuthUser, OptionalUser};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::streams::Streamer;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(user_vods)).routes(routes!(get_vod, delete_vod))
}

/// A past broadcast to watch.
#[derive(Serialize, ToSchema)]
pub struct VodView {
    pub id: Uuid,
    /// The broadcast it recorded (`GET /api/streams/{id}`).
    pub stream_id: StreamId,
    pub streamer: Streamer,
    pub title: String,
    pub category: String,
    pub duration_secs: f64,
    /// Renditions to pick from, top first (`720p`, `360p`, `source`…).
    pub renditions: Vec<String>,
    /// Gaps where nothing was recorded (the publisher reconnected, the media pod was replaced).
    pub discontinuities: i32,
    pub bytes: i64,
    /// Who may play it: its broadcast's `playback_access`. Other than `public`, the URLs below
    /// are signed for the caller and expire.
    pub playback_access: PlaybackAccess,
    /// HLS (VOD type) master playlist. Absent when the caller may not play it (a followers-only
    /// channel's, for anyone but its followers and streamer) or this server cannot sign links.
    pub playback_url: Option<String>,
    pub thumbnail_url: Option<String>,
    /// When the first recorded frame was shown.
    pub recorded_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When retention deletes it.
    pub expires_at: DateTime<Utc>,
    pub peak_viewers: i32,
    pub unique_viewers: i32,
}

struct VodRow {
    id: Uuid,
    stream_id: Uuid,
    user_id: Uuid,
    username: String,
    display_name: String,
    avatar_url: Option<String>,
    title: String,
    category: String,
    duration_ms: i64,
    renditions: Vec<String>,
    discontinuities: i32,
    bytes: i64,
    has_thumbnail: bool,
    recorded_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    peak_viewers: i32,
    unique_viewers: i32,
    playback_access: String,
}

impl VodRow {
    fn access(&self) -> PlaybackAccess {
        crate::access::stored(&self.playback_access)
    }

    fn into_view(self, state: &AppState, viewer: &Viewer) -> VodView {
        let access = self.access();
        let length = std::time::Duration::from_millis(u64::try_from(self.duration_ms).unwrap_or(0));
        let dir = viewer
            .may(access)
            .then(|| {
                crate::playback::viewer_dir(state, crate::recorded::Kind::Vod, self.id, access, &viewer.id, length)
            })
            .flatten();
        VodView {
            id: self.id,
            stream_id: StreamId(self.stream_id),
            streamer: Streamer {
                id: UserId(self.user_id),
                username: self.username,
                display_name: self.display_name,
                avatar_url: self.avatar_url,
            },
            title: self.title,
            category: self.category,
            duration_secs: self.duration_ms as f64 / 1000.0,
            renditions: self.renditions,
            discontinuities: self.discontinuities,
            bytes: self.bytes,
            playback_access: access,
            playback_url: dir.as_ref().map(|dir| format!("{dir}/{}", Rel::Master)),
            thumbnail_url: dir.as_ref().filter(|_| self.has_thumbnail).map(|dir| format!("{dir}/{}", Rel::Thumb)),
            recorded_at: self.recorded_at,
            ended_at: self.ended_at,
            created_at: self.created_at,
            expires_at: self.expires_at,
            peak_viewers: self.peak_viewers,
            unique_viewers: self.unique_viewers,
        }
    }
}

impl AppState {
    async fn vod_row(&self, id: Uuid) -> ApiResult<Option<VodRow>> {
        Ok(sqlx::query_as!(
            VodRow,
            "SELECT v.id, v.stream_id, v.user_id, u.username, u.display_name, u.avatar_url, s.title, s.category,
                v.duration_ms, v.renditions, v.discontinuities, v.bytes, v.has_thumbnail, v.recorded_at, s.ended_at,
                v.created_at, v.expires_at, s.peak_viewers, s.unique_viewers, s.playback_access
             FROM vods v JOIN streams s ON s.id = v.stream_id JOIN users u ON u.id = v.user_id
             WHERE v.id = $1",
            id,
        )
        .fetch_optional(&self.db)
        .await?)
    }
}

/// A channel's VODs, newest first. A followers-only channel's are listed for everyone, with a
/// `playback_url` for its followers (and the streamer) only.
#[utoipa::path(get, path = "/api/users/{user_id}/vods", tag = "vods", params(("user_id" = Uuid, Path), PageParams),
    security((), ("bearer" = [])),
    responses((status = 200, body = Page<VodView>), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody, description = "a bearer token that is not valid")))]
async fn user_vods(
    State(state): State<AppState>,
    user: OptionalUser,
    Path(user_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> ApiResult<PerCaller<Page<VodView>>> {
    let limit = page.limit()?;
    let after = page.time_cursor()?;
    let rows = sqlx::query_as!(
        VodRow,
        "SELECT v.id, v.stream_id, v.user_id, u.username, u.display_name, u.avatar_url, s.title, s.category,
            v.duration_ms, v.renditions, v.discontinuities, v.bytes, v.has_thumbnail, v.recorded_at, s.ended_at,
            v.created_at, v.expires_at, s.peak_viewers, s.unique_viewers, s.playback_access
         FROM vods v JOIN streams s ON s.id = v.stream_id JOIN users u ON u.id = v.user_id
         WHERE v.user_id = $1 AND ($2::timestamptz IS NULL OR (v.created_at, v.id) < ($2, $3))
         ORDER BY v.created_at DESC, v.id DESC LIMIT $4",
        user_id,
        after.map(|a| a.0),
        after.map(|a| a.1),
        limit + 1,
    )
    .fetch_all(&state.read_db)
    .await?;
    let viewer = Viewer::of(&state, user.user(), UserId(user_id), rows.iter().map(VodRow::access)).await?;
    Ok(per_caller(Page::from_rows(rows, limit, |r| Cursor((r.created_at, r.id)), |r| r.into_view(&state, &viewer))))
}

/// One VOD (as listed: a followers-only channel's has a `playback_url` for its followers and
/// the streamer only).
#[utoipa::path(get, path = "/api/vods/{vod_id}", tag = "vods", params(("vod_id" = Uuid, Path)),
    security((), ("bearer" = [])),
    responses((status = 200, body = VodView), (status = 401, body = onair_web::ErrorBody, description = "a bearer token that is not valid"),
              (status = 404, body = onair_web::ErrorBody)))]
async fn get_vod(
    State(state): State<AppState>,
    user: OptionalUser,
    Path(vod_id): Path<Uuid>,
) -> ApiResult<PerCaller<VodView>> {
    let row = state.vod_row(vod_id).await?.ok_or(ApiError::NotFound("vod"))?;
    let viewer = Viewer::of(&state, user.user(), UserId(row.user_id), [row.access()]).await?;
    Ok(per_caller(row.into_view(&state, &viewer)))
}

/// Delete a VOD now (its channel's owner or an admin): it stops playing at once and its
/// objects are deleted in the background.
#[utoipa::path(delete, path = "/api/vods/{vod_id}", tag = "vods", security(("bearer" = [])),
    params(("vod_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody)))]
async fn delete_vod(State(state): State<AppState>, user: AuthUser, Path(vod_id): Path<Uuid>) -> ApiResult<StatusCode> {
    let vod = sqlx::query!("SELECT stream_id, user_id FROM vods WHERE id = $1", vod_id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("vod"))?;
    user.require_owner_or_admin(UserId(vod.user_id), "vod")?;
    // The recording row goes with it; the trigger queues its objects.
    sqlx::query!("DELETE FROM recordings WHERE stream_id = $1", vod.stream_id).execute(&state.db).await?;
    state.playback_lookups.invalidate(&(crate::recorded::Kind::Vod, vod_id)).await;
    tracing::info!(vod_id = %vod_id, stream_id = %vod.stream_id, user_id = %user.id(), "VOD deleted");
    Ok(StatusCode::NO_CONTENT)
}

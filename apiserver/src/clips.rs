//! Clips (issue 15, design §5): a signed-in viewer cuts the last 30-60 s of a live stream, or up
//! to 60 s of a VOD. The cut is on segment boundaries, without re-encoding: the segments are
//! copied server-side into the clip's own objects (`onair_recording::clip`), so a clip plays on
//! after its VOD is deleted. It plays from `/clip/{id}/…` (`playback.rs`).

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_domain::{PlaybackAccess, StreamId, StreamStatus, StreamTitle, UserId};
use onair_recording::{ClipWindow, Rel, Root};
use onair_web::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::access::{PerCaller, Viewer, per_caller};
use crate::auth::{AuthUser, OptionalUser};
use crate::error::{ApiError, ApiResult, foreign_key_violation};
use crate::pagination::{Cursor, Page, PageParams};
use crate::recorded::Kind;
use crate::state::AppState;
use crate::streams::Streamer;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(clip_live))
        .routes(routes!(clip_vod))
        .routes(routes!(get_clip, delete_clip))
        .routes(routes!(user_clips))
}

/// A live clip takes the last this-many seconds.
const LIVE_SECONDS: std::ops::RangeInclusive<u32> = 30..=60;
/// A VOD clip is this long.
const VOD_SECONDS: std::ops::RangeInclusive<u32> = 5..=60;
/// Cutting (copies and playlists) gets this long before the request gives up with 503: under
/// the 15 s every request gets (`onair_web::Limits`), so the answer is ours, not a 408.
const CUT_TIMEOUT: Duration = Duration::from_secs(12);

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"title": "That jump", "seconds": 30}))]
pub struct LiveClipRequest {
    /// One line of 1 to 140 characters.
    #[schema(min_length = 1, max_length = 140)]
    pub title: String,
    /// How many of the last seconds to keep: 30 to 60.
    #[schema(minimum = 30, maximum = 60)]
    pub seconds: u32,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"title": "The finale", "start_secs": 120.0, "seconds": 45}))]
pub struct VodClipRequest {
    /// One line of 1 to 140 characters.
    #[schema(min_length = 1, max_length = 140)]
    pub title: String,
    /// Where the clip starts in the VOD, in seconds (snapped down to a segment start).
    #[schema(minimum = 0)]
    pub start_secs: f64,
    /// 5 to 60.
    #[schema(minimum = 5, maximum = 60)]
    pub seconds: u32,
}

/// A clip.
#[derive(Serialize, ToSchema)]
pub struct ClipView {
    pub id: Uuid,
    pub channel: Streamer,
    /// Who made it (absent once their account is deleted).
    pub creator_id: Option<UserId>,
    pub title: String,
    pub stream_id: Option<StreamId>,
    /// The VOD it was cut from, while that exists.
    pub vod_id: Option<Uuid>,
    /// Where it starts in the broadcast's recording.
    pub offset_secs: f64,
    pub duration_secs: f64,
    pub renditions: Vec<String>,
    /// Who may play it: its broadcast's `playback_access` when it was cut. Other than `public`,
    /// `playback_url` is signed for the caller and expires.
    pub playback_access: PlaybackAccess,
    /// HLS (VOD type) master playlist. Absent when the caller may not play it (a followers-only
    /// channel's, for anyone but its followers and streamer) or this server cannot sign links.
    pub playback_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Absent: kept until deleted.
    pub expires_at: Option<DateTime<Utc>>,
}

struct ClipRow {
    id: Uuid,
    channel_id: Uuid,
    username: String,
    display_name: String,
    avatar_url: Option<String>,
    creator_id: Option<Uuid>,
    title: String,
    stream_id: Option<Uuid>,
    vod_id: Option<Uuid>,
    offset_ms: i64,
    duration_ms: i64,
    renditions: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    playback_access: String,
}

impl ClipRow {
    fn access(&self) -> PlaybackAccess {
        crate::access::stored(&self.playback_access)
    }

    fn into_view(self, state: &AppState, viewer: &Viewer) -> ClipView {
        let access = self.access();
        let length = Duration::from_millis(u64::try_from(self.duration_ms).unwrap_or(0));
        ClipView {
            playback_url: viewer
                .may(access)
                .then(|| crate::playback::viewer_dir(state, Kind::Clip, self.id, access, &viewer.id, length))
                .flatten()
                .map(|dir| format!("{dir}/{}", Rel::Master)),
            playback_access: access,
            id: self.id,
            channel: Streamer {
                id: UserId(self.channel_id),
                username: self.username,
                display_name: self.display_name,
                avatar_url: self.avatar_url,
            },
            creator_id: self.creator_id.map(UserId),
            title: self.title,
            stream_id: self.stream_id.map(StreamId),
            vod_id: self.vod_id,
            offset_secs: self.offset_ms as f64 / 1000.0,
            duration_secs: self.duration_ms as f64 / 1000.0,
            renditions: self.renditions,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// Where a clip is cut from.
struct Source {
    stream: Uuid,
    channel: Uuid,
    vod: Option<Uuid>,
    window: ClipWindow,
    /// Who may play the broadcast, and so the clip.
    access: PlaybackAccess,
}

impl AppState {
    async fn clip_row(&self, id: Uuid) -> ApiResult<Option<ClipRow>> {
        Ok(sqlx::query_as!(
            ClipRow,
            "SELECT c.id, c.channel_id, u.username, u.display_name, u.avatar_url, c.creator_id, c.title, c.stream_id,
                c.vod_id, c.offset_ms, c.duration_ms, c.renditions, c.created_at, c.expires_at, c.playback_access
             FROM clips c JOIN users u ON u.id = c.channel_id WHERE c.id = $1",
            id,
        )
        .fetch_optional(&self.db)
        .await?)
    }

    /// Plans, copies and records a clip; 201 with it. A store failure removes what was copied
    /// (through the deletion queue) and answers 503.
    async fn cut_clip(&self, creator: &AuthUser, title: &StreamTitle, source: Source) -> ApiResult<ClipView> {
        let recordings = self.recordings().ok_or_else(not_recorded)?;
        let store = recordings.store.as_ref();
        let from = Root::Recording(source.stream);
        let id = Uuid::now_v7();
        let to = Root::Clip(id);
        // Whatever happens to this request (a failure, a timeout, the client gone), the copies
        // are deleted unless the clip's row is made: their deletion is queued first, due after
        // the flush grace, and taken back in the row's transaction.
        sqlx::query!(
            "INSERT INTO storage_deletions (prefix, reason, not_before)
             VALUES ($1, 'clip_unfinished', now() + make_interval(secs => $2))
             ON CONFLICT (prefix) DO NOTHING",
            to.to_string(),
            self.config.recording_flush_grace_secs as f64,
        )
        .execute(&self.db)
        .await?;
        let cut = async {
            let planned = onair_recording::vod::plan(store, &from).await?;
            let Some(plan) = onair_recording::plan::clip(&planned, source.window) else { return Ok(None) };
            onair_recording::clip::cut(store, &from, &to, &plan).await?;
            Ok::<_, onair_recording::StoreError>(Some(plan))
        };
        let plan = match tokio::time::timeout(CUT_TIMEOUT, cut).await {
            Ok(Ok(Some(plan))) => plan,
            Ok(Ok(None)) => {
                return Err(ApiError::conflict(
                    "nothing_recorded",
                    "nothing of that part of the broadcast was recorded",
                ));
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(stream_id = %source.stream, clip_id = %id, error, "cutting a clip failed");
                // Copied already: deleted now rather than after the grace.
                sqlx::query!("UPDATE storage_deletions SET not_before = now() WHERE prefix = $1", to.to_string())
                    .execute(&self.db)
                    .await?;
                return Err(ApiError::Unavailable("the recordings store did not answer; try again"));
            }
        };
        let renditions: Vec<String> = plan.renditions.iter().map(|r| r.rendition.to_string()).collect();
        let offset_ms = i64::try_from(plan.offset.as_millis()).unwrap_or(i64::MAX);
        let duration_ms = i64::try_from(plan.duration.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.db.begin().await?;
        sqlx::query!(
            "INSERT INTO clips (id, channel_id, creator_id, stream_id, vod_id, prefix, title, offset_ms, duration_ms,
                renditions, bytes, playback_access)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            id,
            source.channel,
            creator.id().0,
            source.stream,
            source.vod,
            to.to_string(),
            title.as_str(),
            offset_ms,
            duration_ms,
            &renditions,
            i64::try_from(plan.bytes).unwrap_or(i64::MAX),
            source.access.as_str(),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| match foreign_key_violation(&e) {
            // The maker's account went meanwhile (its token still within its 15 minutes).
            Some("clips_creator_id_fkey") => ApiError::unauthorized("invalid_token", "this account no longer exists"),
            // The VOD or broadcast was deleted while the clip was cut.
            Some(_) => ApiError::conflict("source_deleted", "the broadcast was deleted while the clip was cut"),
            None => e.into(),
        })?;
        sqlx::query!("DELETE FROM storage_deletions WHERE prefix = $1", to.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(clip_id = %id, stream_id = %source.stream, user_id = %creator.id(), duration_ms, "clip made");
        let row = self.clip_row(id).await?.ok_or(ApiError::NotFound("clip"))?;
        let viewer = Viewer::of(self, Some(creator), UserId(source.channel), [source.access]).await?;
        Ok(row.into_view(self, &viewer))
    }
}

fn not_recorded() -> ApiError {
    ApiError::conflict("not_recorded", "this broadcast is not recorded")
}

/// Clip the last 30-60 s of a live stream (any signed-in viewer who may watch it: 403 for a
/// followers-only channel's, but to its followers and streamer).
#[utoipa::path(post, path = "/api/streams/{stream_id}/clips", tag = "clips", security(("bearer" = [])),
    params(("stream_id" = Uuid, Path)), request_body = LiveClipRequest,
    responses((status = 201, body = ClipView), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody, description = "stream_not_live, not_recorded, recording_behind, nothing_recorded or source_deleted"),
              (status = 429, body = onair_web::ErrorBody), (status = 503, body = onair_web::ErrorBody)))]
async fn clip_live(
    State(state): State<AppState>,
    user: AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(req): Json<LiveClipRequest>,
) -> ApiResult<(StatusCode, Json<ClipView>)> {
    let title = StreamTitle::parse(&req.title)?;
    if !LIVE_SECONDS.contains(&req.seconds) {
        return Err(onair_domain::ValidationError::new("seconds", "must be 30 to 60").into());
    }
    let stream = sqlx::query!(
        "SELECT s.user_id, s.status, s.playback_access, r.lag_ms AS \"lag_ms?\" FROM streams s
         LEFT JOIN recordings r ON r.stream_id = s.id WHERE s.id = $1",
        stream_id,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("stream"))?;
    // Only who may watch it may clip it (a clip plays under the same rule).
    let access = crate::access::stored(&stream.playback_access);
    state.require_play_as(access, UserId(stream.user_id), &user).await?;
    if StreamStatus::parse(&stream.status) != Some(StreamStatus::Live) {
        return Err(ApiError::conflict("stream_not_live", "only a live stream can be clipped; clip its VOD instead"));
    }
    let lag_ms = stream.lag_ms.ok_or_else(not_recorded)?;
    if lag_ms > i64::from(req.seconds) * 1000 {
        return Err(ApiError::conflict(
            "recording_behind",
            "the recording is behind the live stream; try again in a moment",
        ));
    }
    state.rate_limit(state.clip_user_limit(), &user.id().to_string()).await?;
    let source = Source {
        stream: stream_id,
        channel: stream.user_id,
        vod: None,
        window: ClipWindow::Last(Duration::from_secs(u64::from(req.seconds))),
        access,
    };
    let clip = state.cut_clip(&user, &title, source).await?;
    Ok((StatusCode::CREATED, Json(clip)))
}

/// Clip up to 60 s of a VOD (any signed-in viewer who may watch it, as for a live clip).
#[utoipa::path(post, path = "/api/vods/{vod_id}/clips", tag = "clips", security(("bearer" = [])),
    params(("vod_id" = Uuid, Path)), request_body = VodClipRequest,
    responses((status = 201, body = ClipView), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody, description = "not_recorded, nothing_recorded or source_deleted"),
              (status = 429, body = onair_web::ErrorBody), (status = 503, body = onair_web::ErrorBody)))]
async fn clip_vod(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vod_id): Path<Uuid>,
    Json(req): Json<VodClipRequest>,
) -> ApiResult<(StatusCode, Json<ClipView>)> {
    let title = StreamTitle::parse(&req.title)?;
    if !VOD_SECONDS.contains(&req.seconds) {
        return Err(onair_domain::ValidationError::new("seconds", "must be 5 to 60").into());
    }
    let vod = sqlx::query!(
        "SELECT v.stream_id, v.user_id, v.duration_ms, s.playback_access
         FROM vods v JOIN streams s ON s.id = v.stream_id WHERE v.id = $1",
        vod_id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("vod"))?;
    let access = crate::access::stored(&vod.playback_access);
    state.require_play_as(access, UserId(vod.user_id), &user).await?;
    let duration_secs = vod.duration_ms as f64 / 1000.0;
    if !req.start_secs.is_finite() || req.start_secs < 0.0 || req.start_secs >= duration_secs {
        return Err(onair_domain::ValidationError::new(
            "start_secs",
            format!("must be within the VOD: 0 to {duration_secs:.1}"),
        )
        .into());
    }
    state.rate_limit(state.clip_user_limit(), &user.id().to_string()).await?;
    let source = Source {
        stream: vod.stream_id,
        channel: vod.user_id,
        vod: Some(vod_id),
        window: ClipWindow::Range {
            start: Duration::from_secs_f64(req.start_secs),
            len: Duration::from_secs(u64::from(req.seconds)),
        },
        access,
    };
    let clip = state.cut_clip(&user, &title, source).await?;
    Ok((StatusCode::CREATED, Json(clip)))
}

/// One clip.
#[utoipa::path(get, path = "/api/clips/{clip_id}", tag = "clips", params(("clip_id" = Uuid, Path)),
    security((), ("bearer" = [])),
    responses((status = 200, body = ClipView), (status = 401, body = onair_web::ErrorBody, description = "a bearer token that is not valid"),
              (status = 404, body = onair_web::ErrorBody)))]
async fn get_clip(
    State(state): State<AppState>,
    user: OptionalUser,
    Path(clip_id): Path<Uuid>,
) -> ApiResult<PerCaller<ClipView>> {
    let row = state.clip_row(clip_id).await?.ok_or(ApiError::NotFound("clip"))?;
    let viewer = Viewer::of(&state, user.user(), UserId(row.channel_id), [row.access()]).await?;
    Ok(per_caller(row.into_view(&state, &viewer)))
}

/// Delete a clip: its channel's owner, whoever made it, or an admin.
#[utoipa::path(delete, path = "/api/clips/{clip_id}", tag = "clips", security(("bearer" = [])),
    params(("clip_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody)))]
async fn delete_clip(
    State(state): State<AppState>,
    user: AuthUser,
    Path(clip_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let clip = sqlx::query!("SELECT channel_id, creator_id FROM clips WHERE id = $1", clip_id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("clip"))?;
    if clip.creator_id != Some(user.id().0) {
        user.require_owner_or_admin(UserId(clip.channel_id), "clip")?;
    }
    // The trigger queues its objects.
    sqlx::query!("DELETE FROM clips WHERE id = $1", clip_id).execute(&state.db).await?;
    state.playback_lookups.invalidate(&(Kind::Clip, clip_id)).await;
    tracing::info!(clip_id = %clip_id, user_id = %user.id(), "clip deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A channel's clips, newest first (a followers-only channel's with a `playback_url` for its
/// followers and the streamer only).
#[utoipa::path(get, path = "/api/users/{user_id}/clips", tag = "clips", params(("user_id" = Uuid, Path), PageParams),
    security((), ("bearer" = [])),
    responses((status = 200, body = Page<ClipView>), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody, description = "a bearer token that is not valid")))]
async fn user_clips(
    State(state): State<AppState>,
    user: OptionalUser,
    Path(user_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> ApiResult<PerCaller<Page<ClipView>>> {
    let limit = page.limit()?;
    let after = page.time_cursor()?;
    let rows = sqlx::query_as!(
        ClipRow,
        "SELECT c.id, c.channel_id, u.username, u.display_name, u.avatar_url, c.creator_id, c.title, c.stream_id,
            c.vod_id, c.offset_ms, c.duration_ms, c.renditions, c.created_at, c.expires_at, c.playback_access
         FROM clips c JOIN users u ON u.id = c.channel_id
         WHERE c.channel_id = $1 AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3))
         ORDER BY c.created_at DESC, c.id DESC LIMIT $4",
        user_id,
        after.map(|a| a.0),
        after.map(|a| a.1),
        limit + 1,
    )
    .fetch_all(&state.read_db)
    .await?;
    let viewer = Viewer::of(&state, user.user(), UserId(user_id), rows.iter().map(ClipRow::access)).await?;
    Ok(per_caller(Page::from_rows(rows, limit, |r| Cursor((r.created_at, r.id)), |r| r.into_view(&state, &viewer))))
}

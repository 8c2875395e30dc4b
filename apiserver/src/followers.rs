//! Follow and unfollow channels; followers, following, and followed channels live now.

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_domain::UserId;
use onair_web::{Json, Path, Query};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, foreign_key_violation};
use crate::pagination::{Cursor, Page, PageParams};
use crate::state::AppState;
use crate::streams::{StreamRow, StreamView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
        .routes(routes!(following_live))
}

/// A user in a follow list, with when the follow happened.
#[derive(Serialize, ToSchema)]
pub struct FollowEntry {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub followed_at: DateTime<Utc>,
}

/// Follow a channel (idempotent). Following yourself is a conflict with who you are, not a
/// malformed request: 409 `cannot_follow_self`.
#[utoipa::path(put, path = "/api/users/{user_id}/follow", tag = "followers", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = onair_web::ErrorBody), (status = 401, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody),
              (status = 409, description = "`cannot_follow_self`: the channel is the caller's own", body = onair_web::ErrorBody)))]
async fn follow(State(state): State<AppState>, user: AuthUser, Path(user_id): Path<Uuid>) -> ApiResult<StatusCode> {
    if user_id == user.id().0 {
        return Err(ApiError::conflict("cannot_follow_self", "you cannot follow yourself"));
    }
    sqlx::query!(
        "INSERT INTO followers (user_id, follower_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user_id,
        user.id().0,
    )
    .execute(&state.db)
    .await
    .map_err(|e| if foreign_key_violation(&e).is_some() { ApiError::NotFound("user") } else { e.into() })?;
    tracing::info!(user_id = %user.id(), channel = %user_id, "followed");
    Ok(StatusCode::NO_CONTENT)
}

/// Stop following a channel (idempotent).
#[utoipa::path(delete, path = "/api/users/{user_id}/follow", tag = "followers", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)), responses((status = 204), (status = 401, body = onair_web::ErrorBody)))]
async fn unfollow(State(state): State<AppState>, user: AuthUser, Path(user_id): Path<Uuid>) -> ApiResult<StatusCode> {
    sqlx::query!("DELETE FROM followers WHERE user_id = $1 AND follower_id = $2", user_id, user.id().0)
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a follow list resumes: after this `(followed_at, user id)`, newest first.
type FollowKey = (DateTime<Utc>, Uuid);

/// One page of a follow list of `user_id` (404 when there is no such user); `fetch` runs the
/// list's own query for the rows after the cursor, given how many to take.
async fn follow_page<F>(
    state: &AppState,
    user_id: Uuid,
    page: PageParams,
    fetch: impl FnOnce(Option<FollowKey>, i64) -> F,
) -> ApiResult<Page<FollowEntry>>
where
    F: Future<Output = sqlx::Result<Vec<FollowEntry>>>,
{
    let limit = page.limit()?;
    let after = page.time_cursor()?;
    let exists = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS "exists!""#, user_id)
        .fetch_one(&state.read_db)
        .await?;
    if !exists {
        return Err(ApiError::NotFound("user"));
    }
    let rows = fetch(after, limit + 1).await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor((r.followed_at, r.id.0)), |r| r))
}

/// Who follows this channel, newest first.
#[utoipa::path(get, path = "/api/users/{user_id}/followers", tag = "followers", params(("user_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<FollowEntry>), (status = 404, body = onair_web::ErrorBody)))]
async fn followers(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Page<FollowEntry>>> {
    follow_page(&state, user_id, page, |after, take| {
        sqlx::query_as!(
            FollowEntry,
            "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at AS followed_at
             FROM followers f JOIN users u ON u.id = f.follower_id
             WHERE f.user_id = $1 AND ($2::timestamptz IS NULL OR (f.created_at, f.follower_id) < ($2, $3))
             ORDER BY f.created_at DESC, f.follower_id DESC LIMIT $4",
            user_id,
            after.map(|a| a.0),
            after.map(|a| a.1),
            take,
        )
        .fetch_all(&state.read_db)
    })
    .await
    .map(Json)
}

/// Whom this user follows, newest first.
#[utoipa::path(get, path = "/api/users/{user_id}/following", tag = "followers", params(("user_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<FollowEntry>), (status = 404, body = onair_web::ErrorBody)))]
async fn following(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Page<FollowEntry>>> {
    follow_page(&state, user_id, page, |after, take| {
        sqlx::query_as!(
            FollowEntry,
            "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at AS followed_at
             FROM followers f JOIN users u ON u.id = f.user_id
             WHERE f.follower_id = $1 AND ($2::timestamptz IS NULL OR (f.created_at, f.user_id) < ($2, $3))
             ORDER BY f.created_at DESC, f.user_id DESC LIMIT $4",
            user_id,
            after.map(|a| a.0),
            after.map(|a| a.1),
            take,
        )
        .fetch_all(&state.read_db)
    })
    .await
    .map(Json)
}

/// Channels the caller follows that are live now, most watched first.
#[utoipa::path(get, path = "/api/users/me/following/live", tag = "followers", security(("bearer" = [])),
    responses((status = 200, body = Vec<StreamView>), (status = 401, body = onair_web::ErrorBody)))]
async fn following_live(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<StreamView>>> {
    let rows = sqlx::query_as!(
        StreamRow,
        "SELECT s.id, s.user_id, u.username, u.display_name, u.avatar_url, s.title, s.category, s.tags,
            s.language, s.quality, s.status, s.current_viewers, s.peak_viewers, s.created_at, s.started_at, s.ended_at, s.playback_access
         FROM streams s JOIN users u ON u.id = s.user_id JOIN followers f ON f.user_id = s.user_id
         WHERE f.follower_id = $1 AND s.status = 'live'
         ORDER BY s.current_viewers DESC, s.created_at DESC LIMIT 200",
        user.id().0,
    )
    .fetch_all(&state.read_db)
    .await?;
    Ok(Json(rows.into_iter().map(|r| r.into_view(&state)).collect()))
}

impl AppState {
    /// Whether `follower` follows `channel`.
    pub(crate) async fn follows(&self, follower: UserId, channel: UserId) -> ApiResult<bool> {
        let found = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM followers WHERE user_id = $1 AND follower_id = $2) AS "found!""#,
            channel.0,
            follower.0,
        )
        .fetch_one(&self.db)
        .await?;
        Ok(found)
    }
}

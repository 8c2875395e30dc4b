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
use crate::pagination::{Cursor, Page, PageParams, sane_time};
use crate::state::AppState;
use crate::streams::{STREAM_SELECT, StreamRow, StreamView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
        .routes(routes!(following_live))
}

/// A user in a follow list, with when the follow happened.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct FollowEntry {
    #[sqlx(try_from = "Uuid")]
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
    sqlx::query("INSERT INTO followers (user_id, follower_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .bind(user.id().0)
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
    sqlx::query("DELETE FROM followers WHERE user_id = $1 AND follower_id = $2")
        .bind(user_id)
        .bind(user.id().0)
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn follow_page(
    state: &AppState,
    sql: &'static str,
    user_id: Uuid,
    page: PageParams,
) -> ApiResult<Page<FollowEntry>> {
    let limit = page.limit()?;
    let after: Option<(DateTime<Utc>, Uuid)> = page.cursor()?.map(|c: Cursor<(DateTime<Utc>, Uuid)>| c.0);
    if let Some((t, _)) = after {
        sane_time(t)?;
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(user_id)
        .fetch_one(&state.read_db)
        .await?;
    if !exists {
        return Err(ApiError::NotFound("user"));
    }
    let rows: Vec<FollowEntry> = sqlx::query_as(sql)
        .bind(user_id)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit + 1)
        .fetch_all(&state.read_db)
        .await?;
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
    let sql = "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at AS followed_at
        FROM followers f JOIN users u ON u.id = f.follower_id
        WHERE f.user_id = $1 AND ($2::timestamptz IS NULL OR (f.created_at, f.follower_id) < ($2, $3))
        ORDER BY f.created_at DESC, f.follower_id DESC LIMIT $4";
    follow_page(&state, sql, user_id, page).await.map(Json)
}

/// Whom this user follows, newest first.
#[utoipa::path(get, path = "/api/users/{user_id}/following", tag = "followers", params(("user_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<FollowEntry>), (status = 404, body = onair_web::ErrorBody)))]
async fn following(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Page<FollowEntry>>> {
    let sql = "SELECT u.id, u.username, u.display_name, u.avatar_url, f.created_at AS followed_at
        FROM followers f JOIN users u ON u.id = f.user_id
        WHERE f.follower_id = $1 AND ($2::timestamptz IS NULL OR (f.created_at, f.user_id) < ($2, $3))
        ORDER BY f.created_at DESC, f.user_id DESC LIMIT $4";
    follow_page(&state, sql, user_id, page).await.map(Json)
}

/// Channels the caller follows that are live now, most watched first.
#[utoipa::path(get, path = "/api/users/me/following/live", tag = "followers", security(("bearer" = [])),
    responses((status = 200, body = Vec<StreamView>), (status = 401, body = onair_web::ErrorBody)))]
async fn following_live(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<StreamView>>> {
    let sql = format!(
        "{STREAM_SELECT} JOIN followers f ON f.user_id = s.user_id
         WHERE f.follower_id = $1 AND s.status = 'live'
         ORDER BY s.current_viewers DESC, s.created_at DESC LIMIT 200"
    );
    let rows: Vec<StreamRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user.id().0).fetch_all(&state.read_db).await?;
    Ok(Json(rows.into_iter().map(|r| r.into_view(&state)).collect()))
}

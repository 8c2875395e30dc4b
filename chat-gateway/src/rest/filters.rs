//! A channel's banned-word rules: list, add, remove (owner, moderators, admins).

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, post};
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_domain::UserId;
use onair_web::{Json, Path};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthUser, refresh_channel_rooms, require_staff};
use crate::error::{ChatError, ChatResult};
use crate::state::ChatState;

pub fn router() -> Router<ChatState> {
    Router::new()
        .route("/api/channels/{channel_id}/chat-filters", post(add_filter).get(filters))
        .route("/api/channels/{channel_id}/chat-filters/{filter_id}", delete(remove_filter))
}

#[derive(Deserialize)]
pub struct FilterBody {
    pub pattern: String,
    #[serde(default)]
    pub is_regex: bool,
}

/// `POST /api/channels/{channel_id}/chat-filters`: owner, moderators or admin add a rule.
async fn add_filter(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
    Json(body): Json<FilterBody>,
) -> ChatResult<StatusCode> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may change filters")
        .await?;
    let pattern = body.pattern.trim();
    if pattern.is_empty() || pattern.chars().count() > 200 {
        return Err(onair_domain::ValidationError::new("pattern", "must be 1 to 200 characters").into());
    }
    if body.is_regex && regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().is_err() {
        return Err(onair_domain::ValidationError::new("pattern", "is not a valid regular expression").into());
    }
    sqlx::query("INSERT INTO chat_filters (id, channel_id, pattern, is_regex, created_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(Uuid::now_v7())
        .bind(channel)
        .bind(pattern)
        .bind(body.is_regex)
        .bind(claims.sub.0)
        .execute(&state.db)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                ChatError::not_found("channel_not_found", "no such channel")
            }
            _ => e.into(),
        })?;
    refresh_channel_rooms(&state, UserId(channel)).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Serialize, sqlx::FromRow)]
pub struct FilterEntry {
    pub id: Uuid,
    pub pattern: String,
    pub is_regex: bool,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/channels/{channel_id}/chat-filters`: the channel's banned-word rules.
async fn filters(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<FilterEntry>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may read filters")
        .await?;
    let rows = sqlx::query_as(
        "SELECT id, pattern, is_regex, created_at FROM chat_filters WHERE channel_id = $1 ORDER BY created_at DESC",
    )
    .bind(channel)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// `DELETE /api/channels/{channel_id}/chat-filters/{filter_id}`.
async fn remove_filter(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path((channel, filter)): Path<(Uuid, Uuid)>,
) -> ChatResult<StatusCode> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may change filters")
        .await?;
    let gone = sqlx::query("DELETE FROM chat_filters WHERE id = $1 AND channel_id = $2")
        .bind(filter)
        .bind(channel)
        .execute(&state.db)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ChatError::not_found("filter_not_found", "no such filter on this channel"));
    }
    refresh_channel_rooms(&state, UserId(channel)).await?;
    Ok(StatusCode::NO_CONTENT)
}

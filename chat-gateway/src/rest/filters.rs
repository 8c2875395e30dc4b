//! A channel's banned-word rules: list, add, remove (owner, moderators, admins).

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_domain::UserId;
use onair_web::{ErrorBody, Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AuthUser, refresh_channel_rooms, require_staff};
use crate::error::{ChatError, ChatResult};
use crate::state::ChatState;

pub fn router() -> OpenApiRouter<ChatState> {
    OpenApiRouter::new().routes(routes!(add_filter, filters)).routes(routes!(remove_filter))
}

/// A banned-word rule: no control characters; surrounding whitespace is trimmed and what
/// remains must be 1 to 200 characters.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"pattern": "spoiler", "is_regex": false}))]
pub struct FilterBody {
    /// A word or phrase (matched case-insensitively), or a regular expression (Rust `regex`
    /// syntax) when `is_regex`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub pattern: String,
    #[serde(default)]
    pub is_regex: bool,
}

/// Add a banned-word rule: owner, moderators or an admin.
#[utoipa::path(post, path = "/api/channels/{channel_id}/chat-filters", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)")),
    request_body = FilterBody,
    responses(
        (status = 201, description = "Added; the channel's live rooms apply it at once"),
        (status = 400, description = "A malformed id or body, a pattern out of bounds, an invalid regular expression", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner, one of its moderators or an admin", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ))]
async fn add_filter(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
    Json(body): Json<FilterBody>,
) -> ChatResult<StatusCode> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may change filters")
        .await?;
    // Before trimming, as the document's pattern reads it (and Postgres cannot hold a NUL).
    if body.pattern.chars().any(char::is_control) {
        return Err(onair_domain::ValidationError::new("pattern", "must not contain control characters").into());
    }
    let pattern = body.pattern.trim();
    if pattern.is_empty() || pattern.chars().count() > 200 {
        return Err(onair_domain::ValidationError::new("pattern", "must be 1 to 200 characters").into());
    }
    if body.is_regex && regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().is_err() {
        return Err(onair_domain::ValidationError::new("pattern", "is not a valid regular expression").into());
    }
    sqlx::query!(
        "INSERT INTO chat_filters (id, channel_id, pattern, is_regex, created_by) VALUES ($1, $2, $3, $4, $5)",
        Uuid::now_v7(),
        channel,
        pattern,
        body.is_regex,
        claims.sub.0,
    )
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

/// A banned-word rule as stored.
#[derive(Serialize, ToSchema)]
pub struct FilterEntry {
    pub id: Uuid,
    pub pattern: String,
    pub is_regex: bool,
    pub created_at: DateTime<Utc>,
}

/// The channel's banned-word rules, newest first: owner, moderators or an admin.
#[utoipa::path(get, path = "/api/channels/{channel_id}/chat-filters", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)")),
    responses(
        (status = 200, body = Vec<FilterEntry>),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner, one of its moderators or an admin", body = ErrorBody),
    ))]
async fn filters(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<FilterEntry>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may read filters")
        .await?;
    let rows = sqlx::query_as!(
        FilterEntry,
        "SELECT id, pattern, is_regex, created_at FROM chat_filters WHERE channel_id = $1 ORDER BY created_at DESC",
        channel,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// Remove a banned-word rule: owner, moderators or an admin.
#[utoipa::path(delete, path = "/api/channels/{channel_id}/chat-filters/{filter_id}", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)"), ("filter_id" = Uuid, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner, one of its moderators or an admin", body = ErrorBody),
        (status = 404, description = "No such rule on this channel", body = ErrorBody),
    ))]
async fn remove_filter(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path((channel, filter)): Path<(Uuid, Uuid)>,
) -> ChatResult<StatusCode> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may change filters")
        .await?;
    let gone = sqlx::query!("DELETE FROM chat_filters WHERE id = $1 AND channel_id = $2", filter, channel)
        .execute(&state.db)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ChatError::not_found("filter_not_found", "no such filter on this channel"));
    }
    refresh_channel_rooms(&state, UserId(channel)).await?;
    Ok(StatusCode::NO_CONTENT)
}

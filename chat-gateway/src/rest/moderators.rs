//! Appointing and removing a channel's chat moderators (owner or admin only).

use axum::extract::State;
use http::StatusCode;
use onair_domain::UserId;
use onair_web::{ErrorBody, Path};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AuthUser, refresh_channel_rooms};
use crate::error::{ChatError, ChatResult};
use crate::state::ChatState;

pub fn router() -> OpenApiRouter<ChatState> {
    OpenApiRouter::new().routes(routes!(add_moderator, remove_moderator))
}

/// Appoint a chat moderator (idempotent): the owner or an admin.
#[utoipa::path(put, path = "/api/channels/{channel_id}/moderators/{user_id}", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)"), ("user_id" = Uuid, Path, description = "The user to appoint")),
    responses(
        (status = 204, description = "A moderator now"),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner or an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
async fn add_moderator(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path((channel, user)): Path<(Uuid, Uuid)>,
) -> ChatResult<StatusCode> {
    if !claims.is_owner_or_admin(UserId(channel)) {
        return Err(ChatError::forbidden("only the channel owner or an admin may appoint moderators"));
    }
    sqlx::query!(
        "INSERT INTO chat_moderators (channel_id, user_id, added_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        channel,
        user,
        claims.sub.0,
    )
    .execute(&state.db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            ChatError::not_found("user_not_found", "no such user")
        }
        _ => e.into(),
    })?;
    refresh_channel_rooms(&state, UserId(channel)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a chat moderator (idempotent): the owner or an admin.
#[utoipa::path(delete, path = "/api/channels/{channel_id}/moderators/{user_id}", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)"), ("user_id" = Uuid, Path, description = "The moderator to remove")),
    responses(
        (status = 204, description = "Not a moderator (any more)"),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner or an admin", body = ErrorBody),
    ))]
async fn remove_moderator(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path((channel, user)): Path<(Uuid, Uuid)>,
) -> ChatResult<StatusCode> {
    if !claims.is_owner_or_admin(UserId(channel)) {
        return Err(ChatError::forbidden("only the channel owner or an admin may remove moderators"));
    }
    sqlx::query!("DELETE FROM chat_moderators WHERE channel_id = $1 AND user_id = $2", channel, user)
        .execute(&state.db)
        .await?;
    refresh_channel_rooms(&state, UserId(channel)).await?;
    Ok(StatusCode::NO_CONTENT)
}

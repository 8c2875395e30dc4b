//! Appointing and removing a channel's chat moderators (owner or admin only).

use axum::Router;
use axum::extract::State;
use axum::routing::put;
use http::StatusCode;
use onair_domain::{Role, UserId};
use onair_web::Path;
use uuid::Uuid;

use super::{AuthUser, refresh_channel_rooms};
use crate::error::{ChatError, ChatResult};
use crate::state::ChatState;

pub fn router() -> Router<ChatState> {
    Router::new().route("/api/channels/{channel_id}/moderators/{user_id}", put(add_moderator).delete(remove_moderator))
}

/// `PUT /api/channels/{channel_id}/moderators/{user_id}`: the owner (or an admin) appoints.
async fn add_moderator(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path((channel, user)): Path<(Uuid, Uuid)>,
) -> ChatResult<StatusCode> {
    if claims.sub.0 != channel && claims.role != Role::Admin {
        return Err(ChatError::forbidden("only the channel owner or an admin may appoint moderators"));
    }
    sqlx::query(
        "INSERT INTO chat_moderators (channel_id, user_id, added_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(channel)
    .bind(user)
    .bind(claims.sub.0)
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

/// `DELETE /api/channels/{channel_id}/moderators/{user_id}`.
async fn remove_moderator(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path((channel, user)): Path<(Uuid, Uuid)>,
) -> ChatResult<StatusCode> {
    if claims.sub.0 != channel && claims.role != Role::Admin {
        return Err(ChatError::forbidden("only the channel owner or an admin may remove moderators"));
    }
    sqlx::query("DELETE FROM chat_moderators WHERE channel_id = $1 AND user_id = $2")
        .bind(channel)
        .bind(user)
        .execute(&state.db)
        .await?;
    refresh_channel_rooms(&state, UserId(channel)).await?;
    Ok(StatusCode::NO_CONTENT)
}

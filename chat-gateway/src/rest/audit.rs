//! The moderation audit log: every action is recorded; staff read the newest 200.

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_domain::UserId;
use onair_web::{ErrorBody, Json, Path};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AuthUser, require_staff};
use crate::error::ChatResult;
use crate::room::RoomInfo;
use crate::state::ChatState;

pub fn router() -> OpenApiRouter<ChatState> {
    OpenApiRouter::new().routes(routes!(audit_log))
}

/// One moderation action to record: who did what to whom (or to which message), and why.
pub(super) struct Entry<'a> {
    pub actor: UserId,
    pub action: &'static str,
    pub target_user: Option<UserId>,
    pub target_message: Option<Uuid>,
    pub reason: &'a str,
    pub details: serde_json::Value,
}

/// Record `entry` in the room's channel log (reasons are cut to 500 characters).
pub(super) async fn record(state: &ChatState, info: &RoomInfo, entry: Entry<'_>) -> ChatResult<()> {
    sqlx::query!(
        "INSERT INTO moderation_audit (id, channel_id, stream_id, actor_id, action, target_user_id, target_message, reason, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Uuid::now_v7(),
        info.channel_id.0,
        info.stream_id.0,
        entry.actor.0,
        entry.action,
        entry.target_user.map(|u| u.0),
        entry.target_message,
        entry.reason.chars().take(500).collect::<String>(),
        entry.details,
    )
    .execute(&state.db)
    .await?;
    tracing::info!(channel_id = %info.channel_id, stream_id = %info.stream_id, actor = %entry.actor,
        action = entry.action, "moderation action");
    Ok(())
}

/// One recorded moderation action.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: Uuid,
    /// `delete`, `timeout`, `ban`, `unban`, `slow_mode`, `followers_only`, `links` or `clear`.
    pub action: String,
    pub target_user_id: Option<Uuid>,
    pub target_message: Option<Uuid>,
    pub reason: String,
    /// The action's settings, e.g. `{"seconds": 600}`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The channel's moderation log, newest first (the last 200): owner, moderators or an admin.
#[utoipa::path(get, path = "/api/channels/{channel_id}/moderation-log", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)")),
    responses(
        (status = 200, body = Vec<AuditEntry>),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner, one of its moderators or an admin", body = ErrorBody),
    ))]
async fn audit_log(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<AuditEntry>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may read the log")
        .await?;
    let rows = sqlx::query_as!(
        AuditEntry,
        "SELECT id, actor_id, action, target_user_id, target_message, reason, details, created_at
         FROM moderation_audit WHERE channel_id = $1 ORDER BY created_at DESC LIMIT 200",
        channel,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

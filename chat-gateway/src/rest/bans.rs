//! Bans and timeouts: the list moderators review, and the one write both actions share.

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
    OpenApiRouter::new().routes(routes!(bans))
}

/// A ban or a running timeout.
#[derive(Serialize, ToSchema)]
pub struct BanEntry {
    pub user_id: Uuid,
    pub username: String,
    /// `None`: a ban; otherwise a timeout ending then.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Bans and running timeouts, newest first (the last 500): owner, moderators or an admin.
#[utoipa::path(get, path = "/api/channels/{channel_id}/bans", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)")),
    responses(
        (status = 200, body = Vec<BanEntry>),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner, one of its moderators or an admin", body = ErrorBody),
    ))]
async fn bans(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<BanEntry>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may list bans").await?;
    let rows = sqlx::query_as!(
        BanEntry,
        "SELECT b.user_id, u.username, b.until, b.reason, b.created_at
         FROM chat_bans b JOIN users u ON u.id = b.user_id
         WHERE b.channel_id = $1 AND (b.until IS NULL OR b.until > now())
         ORDER BY b.created_at DESC LIMIT 500",
        channel,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// Ban (`until` = `None`) or time out `user` in the room's channel, replacing an earlier one.
pub(super) async fn upsert(
    state: &ChatState,
    info: &RoomInfo,
    user: UserId,
    until: Option<DateTime<Utc>>,
    reason: &str,
    by: UserId,
) -> ChatResult<()> {
    sqlx::query!(
        "INSERT INTO chat_bans (channel_id, user_id, until, reason, created_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (channel_id, user_id) DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason,
            created_by = EXCLUDED.created_by, created_at = now()",
        info.channel_id.0,
        user.0,
        until,
        reason.chars().take(500).collect::<String>(),
        by.0,
    )
    .execute(&state.db)
    .await?;
    Ok(())
}

/// Lift a ban or timeout (a no-op when there is none).
pub(super) async fn remove(state: &ChatState, info: &RoomInfo, user: UserId) -> ChatResult<()> {
    sqlx::query!("DELETE FROM chat_bans WHERE channel_id = $1 AND user_id = $2", info.channel_id.0, user.0)
        .execute(&state.db)
        .await?;
    Ok(())
}

//! `POST /api/streams/{id}/chat/moderation`: one route, eight actions, each its own function.
//! The caller must be the channel's owner, one of its moderators or an admin; every action is
//! broadcast to the room on every replica and written to the audit log.

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_auth::AccessClaims;
use onair_domain::{StreamId, UserId, ValidationError};
use onair_web::{ErrorBody, Json, Path};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::audit::{self, Entry};
use super::{AuthUser, bans, is_moderator, publish_mod};
use crate::error::{ChatError, ChatResult};
use crate::protocol::ModEvent;
use crate::room::{self, RoomInfo};
use crate::send::uuid_time;
use crate::state::ChatState;

pub fn router() -> OpenApiRouter<ChatState> {
    OpenApiRouter::new().routes(routes!(moderate))
}

/// Timeouts run from 1 s to 14 days.
const MAX_TIMEOUT_SECS: i64 = 14 * 24 * 3600;
/// Slow mode runs from 0 (off) to a day.
const MAX_SLOW_MODE_SECS: u32 = 86_400;

/// A moderation action on a room. `reason`s are kept in the audit log (cut to 500 characters).
#[derive(Deserialize, Debug, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
#[schema(example = json!({"action": "timeout", "user_id": "0190d6a2-7c1e-7a35-9f2b-3c4d5e6f7a8b", "seconds": 600, "reason": "spam"}))]
pub enum ModAction {
    /// Remove one message from every screen and from history.
    Delete {
        /// The message's id (time-ordered: UUIDv7 as the server issues them).
        #[schema(value_type = String, format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[167][0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
        message_id: Uuid,
        #[serde(default)]
        reason: String,
    },
    /// Keep a user from chatting for a while.
    Timeout {
        user_id: UserId,
        /// 1 second to 14 days (a whole number; `600.0` is 600, as in JSON Schema).
        #[schema(minimum = 1, maximum = 1_209_600)]
        #[serde(deserialize_with = "crate::whole_number::deserialize")]
        seconds: i64,
        #[serde(default)]
        reason: String,
    },
    /// Keep a user from chatting in this channel until unbanned.
    Ban {
        user_id: UserId,
        #[serde(default)]
        reason: String,
    },
    /// Lift a ban or a timeout.
    Unban {
        user_id: UserId,
        #[serde(default)]
        reason: String,
    },
    /// Seconds between one viewer's messages; 0 turns slow mode off.
    SlowMode {
        #[schema(minimum = 0, maximum = 86_400)]
        #[serde(deserialize_with = "crate::whole_number::deserialize")]
        seconds: u32,
    },
    /// Only the channel's followers may chat.
    FollowersOnly { enabled: bool },
    /// Whether viewers may post links.
    Links { allowed: bool },
    /// Hide every message sent so far.
    Clear {
        #[serde(default)]
        reason: String,
    },
}

/// Moderate a room: the channel's owner, its moderators, or an admin. Neither the owner nor
/// (unless the caller is the owner or an admin) a moderator can be timed out or banned.
#[utoipa::path(post, path = "/api/streams/{stream_id}/chat/moderation", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "The stream whose chat to moderate")),
    request_body = ModAction,
    responses(
        (status = 204, description = "In effect on every replica"),
        (status = 400, description = "Malformed body or path, an unknown action, a value out of range", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not staff of this channel, or a target the caller may not moderate", body = ErrorBody),
        (status = 404, description = "No such stream, or no such user to time out or ban", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ))]
async fn moderate(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(action): Json<ModAction>,
) -> ChatResult<StatusCode> {
    let stream = StreamId(stream_id);
    let handle = room::join(&state, stream).await?;
    let mut info = handle.room.info();
    // Moderator rights are read fresh: a room's cached list may trail a removal.
    if is_moderator(&state, info.channel_id.0, claims.sub.0).await? {
        info.moderators.insert(claims.sub);
    } else {
        info.moderators.remove(&claims.sub);
    }
    if !info.is_staff(&claims) {
        return Err(ChatError::forbidden("only the channel owner, its moderators or an admin may moderate"));
    }
    let m = Moderation { state: &state, stream, info, claims: &claims };
    match action {
        ModAction::Delete { message_id, reason } => m.delete(message_id, &reason).await?,
        ModAction::Timeout { user_id, seconds, reason } => m.timeout(user_id, seconds, &reason).await?,
        ModAction::Ban { user_id, reason } => m.ban(user_id, &reason).await?,
        ModAction::Unban { user_id, reason } => m.unban(user_id, &reason).await?,
        ModAction::SlowMode { seconds } => m.slow_mode(seconds).await?,
        ModAction::FollowersOnly { enabled } => m.followers_only(enabled).await?,
        ModAction::Links { allowed } => m.links(allowed).await?,
        ModAction::Clear { reason } => m.clear(&reason).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One authorised moderator acting on one room.
struct Moderation<'a> {
    state: &'a ChatState,
    stream: StreamId,
    /// The room with the caller's moderator rights as just read.
    info: RoomInfo,
    claims: &'a AccessClaims,
}

impl Moderation<'_> {
    /// 403 when `target` may not be moderated by this caller.
    fn protect(&self, target: UserId) -> ChatResult<()> {
        if target == self.info.channel_id {
            return Err(ChatError::forbidden("the channel owner cannot be moderated in their own chat"));
        }
        // Moderators answer to the owner and admins, not to each other.
        if self.info.moderators.contains(&target) && !self.claims.is_owner_or_admin(self.info.channel_id) {
            return Err(ChatError::forbidden("only the owner or an admin may moderate a moderator"));
        }
        Ok(())
    }

    /// 404 unless `user` exists.
    async fn ensure_user(&self, user: UserId) -> ChatResult<()> {
        let exists = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS "exists!""#, user.0)
            .fetch_one(&self.state.db)
            .await?;
        if exists { Ok(()) } else { Err(ChatError::not_found("user_not_found", "no such user")) }
    }

    async fn publish(&self, ev: &ModEvent) -> ChatResult<()> {
        publish_mod(self.state, self.stream, ev).await
    }

    async fn audit(
        &self,
        action: &'static str,
        target_user: Option<UserId>,
        target_message: Option<Uuid>,
        reason: &str,
        details: serde_json::Value,
    ) -> ChatResult<()> {
        let entry = Entry { actor: self.claims.sub, action, target_user, target_message, reason, details };
        audit::record(self.state, &self.info, entry).await
    }

    async fn delete(&self, message_id: Uuid, reason: &str) -> ChatResult<()> {
        let ts = uuid_time(&message_id).ok_or_else(|| ValidationError::new("message_id", "not a message id"))?;
        self.publish(&ModEvent::Delete { message_id }).await?;
        delete_from_history(self.state, self.stream, message_id, ts, self.claims.sub);
        self.audit("delete", None, Some(message_id), reason, serde_json::json!({})).await
    }

    async fn timeout(&self, user_id: UserId, seconds: i64, reason: &str) -> ChatResult<()> {
        if !(1..=MAX_TIMEOUT_SECS).contains(&seconds) {
            return Err(ValidationError::new("seconds", "a timeout lasts 1 second to 14 days").into());
        }
        self.protect(user_id)?;
        self.ensure_user(user_id).await?;
        let until = Utc::now() + chrono::Duration::seconds(seconds);
        bans::upsert(self.state, &self.info, user_id, Some(until), reason, self.claims.sub).await?;
        self.publish(&ModEvent::Timeout { user_id, until }).await?;
        self.audit("timeout", Some(user_id), None, reason, serde_json::json!({"seconds": seconds})).await
    }

    async fn ban(&self, user_id: UserId, reason: &str) -> ChatResult<()> {
        self.protect(user_id)?;
        self.ensure_user(user_id).await?;
        bans::upsert(self.state, &self.info, user_id, None, reason, self.claims.sub).await?;
        self.publish(&ModEvent::Ban { user_id }).await?;
        self.audit("ban", Some(user_id), None, reason, serde_json::json!({})).await
    }

    async fn unban(&self, user_id: UserId, reason: &str) -> ChatResult<()> {
        bans::remove(self.state, &self.info, user_id).await?;
        self.publish(&ModEvent::Unban { user_id }).await?;
        self.audit("unban", Some(user_id), None, reason, serde_json::json!({})).await
    }

    async fn slow_mode(&self, seconds: u32) -> ChatResult<()> {
        if seconds > MAX_SLOW_MODE_SECS {
            return Err(ValidationError::new("seconds", "slow mode is 0 (off) to 86400 seconds").into());
        }
        sqlx::query!(
            "INSERT INTO chat_settings (channel_id, slow_mode_secs) VALUES ($1, $2)
             ON CONFLICT (channel_id) DO UPDATE SET slow_mode_secs = EXCLUDED.slow_mode_secs, updated_at = now()",
            self.info.channel_id.0,
            seconds as i32,
        )
        .execute(&self.state.db)
        .await?;
        self.publish(&ModEvent::SlowMode { seconds }).await?;
        self.audit("slow_mode", None, None, "", serde_json::json!({"seconds": seconds})).await
    }

    async fn followers_only(&self, enabled: bool) -> ChatResult<()> {
        let (followers_only, links_allowed) = self.set_flags(Some(enabled), None).await?;
        self.publish(&ModEvent::Settings { followers_only, links_allowed }).await?;
        self.audit("followers_only", None, None, "", serde_json::json!({"enabled": enabled})).await
    }

    async fn links(&self, allowed: bool) -> ChatResult<()> {
        let (followers_only, links_allowed) = self.set_flags(None, Some(allowed)).await?;
        self.publish(&ModEvent::Settings { followers_only, links_allowed }).await?;
        self.audit("links", None, None, "", serde_json::json!({"allowed": allowed})).await
    }

    async fn clear(&self, reason: &str) -> ChatResult<()> {
        self.publish(&ModEvent::Clear).await?;
        let cleared_at = Utc::now();
        clear_history(self.state, self.stream, cleared_at, self.claims.sub).await?;
        // Messages sent just before the clear may still be on their way to history (the
        // persister trails by a batch): clear again once they have landed.
        let (st, stream, by) = (self.state.clone(), self.stream, self.claims.sub);
        tokio::spawn(async move {
            for delay in [500, 2000, 6000] {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                if let Err(e) = clear_history(&st, stream, cleared_at, by).await {
                    tracing::warn!(stream_id = %stream, error = %e, "re-clearing history failed");
                }
            }
        });
        self.audit("clear", None, None, reason, serde_json::json!({})).await
    }

    /// Set either flag; both as stored come back, so the event carries the truth even when two
    /// moderators change different flags at once.
    async fn set_flags(&self, followers_only: Option<bool>, links: Option<bool>) -> ChatResult<(bool, bool)> {
        let stored = sqlx::query!(
            "INSERT INTO chat_settings (channel_id, followers_only, links_allowed) VALUES ($1, coalesce($2, false), coalesce($3, true))
             ON CONFLICT (channel_id) DO UPDATE SET followers_only = coalesce($2, chat_settings.followers_only),
                links_allowed = coalesce($3, chat_settings.links_allowed), updated_at = now()
             RETURNING followers_only, links_allowed",
            self.info.channel_id.0,
            followers_only,
            links,
        )
        .fetch_one(&self.state.db)
        .await?;
        Ok((stored.followers_only, stored.links_allowed))
    }
}

/// Hide every message of `stream` sent up to `until`.
async fn clear_history(state: &ChatState, stream: StreamId, until: DateTime<Utc>, by: UserId) -> ChatResult<()> {
    sqlx::query!(
        "UPDATE chat_messages SET deleted_at = now(), deleted_by = $3
         WHERE stream_id = $1 AND created_at <= $2 AND deleted_at IS NULL",
        stream.0,
        until,
        by.0,
    )
    .execute(&state.chat_db)
    .await?;
    Ok(())
}

/// Mark a message deleted in history. The persister may not have written it yet (it trails
/// by a batch), so a miss is retried for a few seconds in the background.
fn delete_from_history(state: &ChatState, stream: StreamId, id: Uuid, ts: DateTime<Utc>, by: UserId) {
    let state = state.clone();
    tokio::spawn(async move {
        for attempt in 0..20 {
            let res = sqlx::query!(
                "UPDATE chat_messages SET deleted_at = now(), deleted_by = $4 WHERE created_at = $1 AND id = $2 AND stream_id = $3",
                ts,
                id,
                stream.0,
                by.0,
            )
            .execute(&state.chat_db)
            .await;
            match res {
                Ok(r) if r.rows_affected() > 0 => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(message_id = %id, error = %e, "deleting from history failed"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(250 * (attempt + 1).min(4))).await;
        }
        tracing::warn!(message_id = %id, "message to delete never reached history");
    });
}

//! REST: send, history, moderation, moderators, word filters, reports, the audit log.

use axum::extract::{FromRequestParts, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use http::StatusCode;
use http::request::Parts;
use onair_auth::AccessClaims;
use onair_domain::contracts::subjects;
use onair_domain::{Role, StreamId, UserId};
use onair_web::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ChatError, ChatResult};
use crate::history;
use crate::protocol::{ChatMessage, ModEvent};
use crate::room::{self, RoomInfo};
use crate::send::{self, is_privileged, uuid_time};
use crate::state::ChatState;
use crate::ws::verify_token;

/// A caller with a valid access token.
pub struct AuthUser(pub AccessClaims);

impl FromRequestParts<ChatState> for AuthUser {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, state: &ChatState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| ChatError::unauthorized("missing_token", "this route needs an access token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| ChatError::unauthorized("invalid_token", "use Authorization: Bearer <access token>"))?;
        verify_token(state, token.trim()).await.map(AuthUser)
    }
}

#[derive(Deserialize)]
pub struct SendBody {
    pub text: String,
}

/// `POST /api/streams/{id}/chat`: the same checks as the socket.
pub async fn send_message(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(body): Json<SendBody>,
) -> ChatResult<impl IntoResponse> {
    let handle = room::join(&state, StreamId(stream_id)).await?;
    let msg = send::send(&state, &handle.room, &claims, &body.text).await?;
    Ok((StatusCode::CREATED, Json(msg)))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize)]
pub struct HistoryPage {
    pub items: Vec<ChatMessage>,
    pub next_cursor: Option<String>,
}

/// `GET /api/streams/{id}/chat`: newest first; `next_cursor` pages back in time.
pub async fn get_history(
    State(state): State<ChatState>,
    Path(stream_id): Path<Uuid>,
    Query(q): Query<HistoryQuery>,
) -> ChatResult<Json<HistoryPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(onair_domain::ValidationError::new("limit", "must be between 1 and 200").into());
    }
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            let id: Uuid = c.parse().map_err(|_| {
                ChatError::reject(StatusCode::BAD_REQUEST, "invalid_cursor", "the cursor is not one this server issued")
            })?;
            Some((
                uuid_time(&id).ok_or_else(|| {
                    ChatError::reject(
                        StatusCode::BAD_REQUEST,
                        "invalid_cursor",
                        "the cursor is not one this server issued",
                    )
                })?,
                id,
            ))
        }
    };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM streams WHERE id = $1)")
        .bind(stream_id)
        .fetch_one(&state.db)
        .await?;
    if !exists {
        return Err(ChatError::not_found("stream_not_found", "no such stream"));
    }
    let mut items = history::page(&state, StreamId(stream_id), before, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(|m| m.id.to_string()) } else { None };
    Ok(Json(HistoryPage { items, next_cursor }))
}

/// A moderation action on a room.
#[derive(Deserialize, Debug)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModAction {
    Delete {
        message_id: Uuid,
        #[serde(default)]
        reason: String,
    },
    Timeout {
        user_id: UserId,
        seconds: i64,
        #[serde(default)]
        reason: String,
    },
    Ban {
        user_id: UserId,
        #[serde(default)]
        reason: String,
    },
    Unban {
        user_id: UserId,
        #[serde(default)]
        reason: String,
    },
    SlowMode {
        seconds: u32,
    },
    FollowersOnly {
        enabled: bool,
    },
    Links {
        allowed: bool,
    },
    Clear {
        #[serde(default)]
        reason: String,
    },
}

async fn is_moderator(state: &ChatState, channel: Uuid, user: Uuid) -> ChatResult<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM chat_moderators WHERE channel_id = $1 AND user_id = $2)")
        .bind(channel)
        .bind(user)
        .fetch_one(&state.db)
        .await?)
}

/// 403 unless the caller is the channel's owner, one of its moderators, or an admin.
async fn require_staff(state: &ChatState, channel: Uuid, claims: &AccessClaims, message: &str) -> ChatResult<()> {
    if claims.sub.0 == channel || claims.role == Role::Admin || is_moderator(state, channel, claims.sub.0).await? {
        Ok(())
    } else {
        Err(ChatError::forbidden(message))
    }
}

/// Timeouts run from 1 s to 14 days.
const MAX_TIMEOUT_SECS: i64 = 14 * 24 * 3600;

async fn publish_mod(state: &ChatState, stream: StreamId, ev: &ModEvent) -> ChatResult<()> {
    let subject = subjects::chat_moderation(&state.config.nats.nats_prefix, stream);
    state
        .nats
        .publish(subject, serde_json::to_vec(ev).map_err(anyhow::Error::from)?.into())
        .await
        .map_err(anyhow::Error::from)?;
    // Flush so the event is on the wire before we answer: "in effect" means in effect.
    state.nats.flush().await.map_err(anyhow::Error::from)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    state: &ChatState,
    info: &RoomInfo,
    actor: UserId,
    action: &str,
    target_user: Option<UserId>,
    target_message: Option<Uuid>,
    reason: &str,
    details: serde_json::Value,
) -> ChatResult<()> {
    sqlx::query(
        "INSERT INTO moderation_audit (id, channel_id, stream_id, actor_id, action, target_user_id, target_message, reason, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(info.channel_id.0)
    .bind(info.stream_id.0)
    .bind(actor.0)
    .bind(action)
    .bind(target_user.map(|u| u.0))
    .bind(target_message)
    .bind(reason.chars().take(500).collect::<String>())
    .bind(details)
    .execute(&state.db)
    .await?;
    tracing::info!(channel_id = %info.channel_id, stream_id = %info.stream_id, actor = %actor, action, "moderation action");
    Ok(())
}

/// `POST /api/streams/{id}/chat/moderation`: owner, the channel's moderators, or an admin.
pub async fn moderate(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(action): Json<ModAction>,
) -> ChatResult<StatusCode> {
    let stream = StreamId(stream_id);
    let handle = room::join(&state, stream).await?;
    let mut info = handle.room.info();
    // Moderator rights are read fresh: a room's cached list may trail a removal.
    let is_mod = is_moderator(&state, info.channel_id.0, claims.sub.0).await?;
    if is_mod {
        info.moderators.insert(claims.sub);
    } else {
        info.moderators.remove(&claims.sub);
    }
    if !is_privileged(&info, claims.sub, claims.role) {
        return Err(ChatError::forbidden("only the channel owner, its moderators or an admin may moderate"));
    }
    let protect = |target: UserId| -> ChatResult<()> {
        if target == info.channel_id {
            return Err(ChatError::forbidden("the channel owner cannot be moderated in their own chat"));
        }
        // Moderators answer to the owner and admins, not to each other.
        if info.moderators.contains(&target) && claims.sub != info.channel_id && claims.role != Role::Admin {
            return Err(ChatError::forbidden("only the owner or an admin may moderate a moderator"));
        }
        Ok(())
    };
    let ensure_user = |user: UserId| {
        let state = state.clone();
        async move {
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                .bind(user.0)
                .fetch_one(&state.db)
                .await?;
            if exists { Ok(()) } else { Err(ChatError::not_found("user_not_found", "no such user")) }
        }
    };
    match action {
        ModAction::Delete { message_id, reason } => {
            let ts = uuid_time(&message_id)
                .ok_or_else(|| onair_domain::ValidationError::new("message_id", "not a message id"))?;
            publish_mod(&state, stream, &ModEvent::Delete { message_id }).await?;
            delete_from_history(&state, stream, message_id, ts, claims.sub);
            audit(&state, &info, claims.sub, "delete", None, Some(message_id), &reason, serde_json::json!({})).await?;
        }
        ModAction::Timeout { user_id, seconds, reason } => {
            if !(1..=MAX_TIMEOUT_SECS).contains(&seconds) {
                return Err(onair_domain::ValidationError::new("seconds", "a timeout lasts 1 second to 14 days").into());
            }
            protect(user_id)?;
            ensure_user(user_id).await?;
            let until = Utc::now() + chrono::Duration::seconds(seconds);
            upsert_ban(&state, &info, user_id, Some(until), &reason, claims.sub).await?;
            publish_mod(&state, stream, &ModEvent::Timeout { user_id, until }).await?;
            audit(
                &state,
                &info,
                claims.sub,
                "timeout",
                Some(user_id),
                None,
                &reason,
                serde_json::json!({"seconds": seconds}),
            )
            .await?;
        }
        ModAction::Ban { user_id, reason } => {
            protect(user_id)?;
            ensure_user(user_id).await?;
            upsert_ban(&state, &info, user_id, None, &reason, claims.sub).await?;
            publish_mod(&state, stream, &ModEvent::Ban { user_id }).await?;
            audit(&state, &info, claims.sub, "ban", Some(user_id), None, &reason, serde_json::json!({})).await?;
        }
        ModAction::Unban { user_id, reason } => {
            sqlx::query("DELETE FROM chat_bans WHERE channel_id = $1 AND user_id = $2")
                .bind(info.channel_id.0)
                .bind(user_id.0)
                .execute(&state.db)
                .await?;
            publish_mod(&state, stream, &ModEvent::Unban { user_id }).await?;
            audit(&state, &info, claims.sub, "unban", Some(user_id), None, &reason, serde_json::json!({})).await?;
        }
        ModAction::SlowMode { seconds } => {
            if seconds > 86_400 {
                return Err(
                    onair_domain::ValidationError::new("seconds", "slow mode is 0 (off) to 86400 seconds").into()
                );
            }
            sqlx::query(
                "INSERT INTO chat_settings (channel_id, slow_mode_secs) VALUES ($1, $2)
                 ON CONFLICT (channel_id) DO UPDATE SET slow_mode_secs = EXCLUDED.slow_mode_secs, updated_at = now()",
            )
            .bind(info.channel_id.0)
            .bind(seconds as i32)
            .execute(&state.db)
            .await?;
            publish_mod(&state, stream, &ModEvent::SlowMode { seconds }).await?;
            audit(&state, &info, claims.sub, "slow_mode", None, None, "", serde_json::json!({"seconds": seconds}))
                .await?;
        }
        ModAction::FollowersOnly { enabled } => {
            let (followers_only, links_allowed) = set_flags(&state, &info, Some(enabled), None).await?;
            publish_mod(&state, stream, &ModEvent::Settings { followers_only, links_allowed }).await?;
            audit(&state, &info, claims.sub, "followers_only", None, None, "", serde_json::json!({"enabled": enabled}))
                .await?;
        }
        ModAction::Links { allowed } => {
            let (followers_only, links_allowed) = set_flags(&state, &info, None, Some(allowed)).await?;
            publish_mod(&state, stream, &ModEvent::Settings { followers_only, links_allowed }).await?;
            audit(&state, &info, claims.sub, "links", None, None, "", serde_json::json!({"allowed": allowed})).await?;
        }
        ModAction::Clear { reason } => {
            publish_mod(&state, stream, &ModEvent::Clear).await?;
            let cleared_at = Utc::now();
            clear_history(&state, stream, cleared_at, claims.sub).await?;
            // Messages sent just before the clear may still be on their way to history (the
            // persister trails by a batch): clear again once they have landed.
            let (st, by) = (state.clone(), claims.sub);
            tokio::spawn(async move {
                for delay in [500, 2000, 6000] {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    if let Err(e) = clear_history(&st, stream, cleared_at, by).await {
                        tracing::warn!(stream_id = %stream, error = %e, "re-clearing history failed");
                    }
                }
            });
            audit(&state, &info, claims.sub, "clear", None, None, &reason, serde_json::json!({})).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn upsert_ban(
    state: &ChatState,
    info: &RoomInfo,
    user: UserId,
    until: Option<DateTime<Utc>>,
    reason: &str,
    by: UserId,
) -> ChatResult<()> {
    sqlx::query(
        "INSERT INTO chat_bans (channel_id, user_id, until, reason, created_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (channel_id, user_id) DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason,
            created_by = EXCLUDED.created_by, created_at = now()",
    )
    .bind(info.channel_id.0)
    .bind(user.0)
    .bind(until)
    .bind(reason.chars().take(500).collect::<String>())
    .bind(by.0)
    .execute(&state.db)
    .await?;
    Ok(())
}

async fn set_flags(
    state: &ChatState,
    info: &RoomInfo,
    followers_only: Option<bool>,
    links: Option<bool>,
) -> ChatResult<(bool, bool)> {
    // Both flags as stored come back, so the event carries the truth even when two moderators
    // change different flags at once.
    Ok(sqlx::query_as(
        "INSERT INTO chat_settings (channel_id, followers_only, links_allowed) VALUES ($1, coalesce($2, false), coalesce($3, true))
         ON CONFLICT (channel_id) DO UPDATE SET followers_only = coalesce($2, chat_settings.followers_only),
            links_allowed = coalesce($3, chat_settings.links_allowed), updated_at = now()
         RETURNING followers_only, links_allowed",
    )
    .bind(info.channel_id.0)
    .bind(followers_only)
    .bind(links)
    .fetch_one(&state.db)
    .await?)
}

/// Hide every message of `stream` sent up to `until`.
async fn clear_history(state: &ChatState, stream: StreamId, until: DateTime<Utc>, by: UserId) -> ChatResult<()> {
    sqlx::query(
        "UPDATE chat_messages SET deleted_at = now(), deleted_by = $3
         WHERE stream_id = $1 AND created_at <= $2 AND deleted_at IS NULL",
    )
    .bind(stream.0)
    .bind(until)
    .bind(by.0)
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
            let res = sqlx::query(
                "UPDATE chat_messages SET deleted_at = now(), deleted_by = $4 WHERE created_at = $1 AND id = $2 AND stream_id = $3",
            )
            .bind(ts)
            .bind(id)
            .bind(stream.0)
            .bind(by.0)
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

/// `PUT /api/channels/{channel_id}/moderators/{user_id}`: the owner (or an admin) appoints.
pub async fn add_moderator(
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
pub async fn remove_moderator(
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

/// Moderator lists change rarely: tell the channel's active rooms to reload their rules.
async fn refresh_channel_rooms(state: &ChatState, channel: UserId) -> ChatResult<()> {
    let streams: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM streams WHERE user_id = $1 AND status IN ('starting', 'live', 'ending')")
            .bind(channel.0)
            .fetch_all(&state.db)
            .await?;
    for s in streams {
        publish_mod(state, StreamId(s), &ModEvent::FiltersChanged).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct FilterBody {
    pub pattern: String,
    #[serde(default)]
    pub is_regex: bool,
}

/// `POST /api/channels/{channel_id}/chat-filters`: owner, moderators or admin add a rule.
pub async fn add_filter(
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

#[derive(Deserialize)]
pub struct ReportBody {
    pub message_id: Uuid,
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/streams/{id}/chat/reports`: any signed-in viewer flags a message for review.
pub async fn report(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(body): Json<ReportBody>,
) -> ChatResult<StatusCode> {
    if body.reason.chars().count() > 500 {
        return Err(onair_domain::ValidationError::new("reason", "must be at most 500 characters").into());
    }
    if let Some(ms) = send::hit(&state, "report_user", &claims.sub.to_string(), 30, 60_000).await? {
        return Err(
            ChatError::reject(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many reports").retry_after(ms)
        );
    }
    sqlx::query(
        "INSERT INTO chat_reports (id, stream_id, message_id, reporter_id, reason) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (message_id, reporter_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(stream_id)
    .bind(body.message_id)
    .bind(claims.sub.0)
    .bind(&body.reason)
    .execute(&state.db)
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: Uuid,
    pub action: String,
    pub target_user_id: Option<Uuid>,
    pub target_message: Option<Uuid>,
    pub reason: String,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/channels/{channel_id}/moderation-log`: newest first, last 200.
pub async fn audit_log(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<AuditEntry>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may read the log")
        .await?;
    let rows = sqlx::query_as(
        "SELECT id, actor_id, action, target_user_id, target_message, reason, details, created_at
         FROM moderation_audit WHERE channel_id = $1 ORDER BY created_at DESC LIMIT 200",
    )
    .bind(channel)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// A report waiting for a moderator, with the message it is about.
#[derive(Serialize, sqlx::FromRow)]
pub struct OpenReport {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub message_id: Uuid,
    pub reporter_id: Uuid,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub author_id: Option<Uuid>,
    pub author_name: Option<String>,
    pub text: Option<String>,
}

/// `GET /api/channels/{channel_id}/chat-reports`: unresolved reports on the channel's streams,
/// newest first (owner, moderators, admins).
pub async fn open_reports(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<OpenReport>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may read reports")
        .await?;
    let mut rows: Vec<OpenReport> = sqlx::query_as(
        "SELECT r.id, r.stream_id, r.message_id, r.reporter_id, r.reason, r.created_at,
                NULL::uuid AS author_id, NULL::text AS author_name, NULL::text AS text
         FROM chat_reports r JOIN streams s ON s.id = r.stream_id
         WHERE s.user_id = $1 AND r.resolved_at IS NULL
         ORDER BY r.created_at DESC LIMIT 200",
    )
    .bind(channel)
    .fetch_all(&state.db)
    .await?;
    // The messages live in the chat database (which may be a separate one).
    let ids: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
    let messages: Vec<(Uuid, Uuid, String, String)> =
        sqlx::query_as("SELECT id, user_id, user_name, body FROM chat_messages WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&state.chat_db)
            .await?;
    for r in &mut rows {
        if let Some((_, author, name, text)) = messages.iter().find(|m| m.0 == r.message_id) {
            (r.author_id, r.author_name, r.text) = (Some(*author), Some(name.clone()), Some(text.clone()));
        }
    }
    Ok(Json(rows))
}

#[derive(Serialize, sqlx::FromRow)]
pub struct BanEntry {
    pub user_id: Uuid,
    pub username: String,
    /// `None`: a ban; otherwise a timeout ending then.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/channels/{channel_id}/bans`: bans and running timeouts (owner, moderators, admins).
pub async fn bans(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<BanEntry>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may list bans").await?;
    let rows = sqlx::query_as(
        "SELECT b.user_id, u.username, b.until, b.reason, b.created_at
         FROM chat_bans b JOIN users u ON u.id = b.user_id
         WHERE b.channel_id = $1 AND (b.until IS NULL OR b.until > now())
         ORDER BY b.created_at DESC LIMIT 500",
    )
    .bind(channel)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

#[derive(Serialize, sqlx::FromRow)]
pub struct FilterEntry {
    pub id: Uuid,
    pub pattern: String,
    pub is_regex: bool,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/channels/{channel_id}/chat-filters`: the channel's banned-word rules.
pub async fn filters(
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
pub async fn remove_filter(
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

//! Flagging messages for review, and the review queue.

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_web::{ErrorBody, Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{AuthUser, require_staff};
use crate::error::{ChatError, ChatResult};
use crate::send;
use crate::state::ChatState;

pub fn router() -> OpenApiRouter<ChatState> {
    OpenApiRouter::new().routes(routes!(report)).routes(routes!(open_reports))
}

/// A message flagged for review.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"message_id": "0190d6a2-7c1e-7a35-9f2b-3c4d5e6f7a8b", "reason": "harassment"}))]
pub struct ReportBody {
    pub message_id: Uuid,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: String,
}

/// Flag a message for the channel's moderators: any signed-in viewer (30 reports a minute;
/// reporting the same message twice is accepted once).
#[utoipa::path(post, path = "/api/streams/{stream_id}/chat/reports", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "The stream the message was sent in")),
    request_body = ReportBody,
    responses(
        (status = 202, description = "Queued for review"),
        (status = 400, description = "A malformed id or body, a reason over 500 characters", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many reports (see Retry-After)", body = ErrorBody),
    ))]
async fn report(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(body): Json<ReportBody>,
) -> ChatResult<StatusCode> {
    if body.reason.chars().count() > 500 {
        return Err(onair_domain::ValidationError::new("reason", "must be at most 500 characters").into());
    }
    super::require_stream(&state, stream_id).await?;
    if let Some(ms) = send::hit(&state, "report_user", &claims.sub.to_string(), 30, 60_000).await? {
        return Err(
            ChatError::reject(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many reports").retry_after(ms)
        );
    }
    sqlx::query!(
        "INSERT INTO chat_reports (id, stream_id, message_id, reporter_id, reason) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (message_id, reporter_id) DO NOTHING",
        Uuid::now_v7(),
        stream_id,
        body.message_id,
        claims.sub.0,
        body.reason,
    )
    .execute(&state.db)
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// A report waiting for a moderator, with the message it is about.
#[derive(Serialize, ToSchema)]
pub struct OpenReport {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub message_id: Uuid,
    pub reporter_id: Uuid,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The message's author, name and text; absent until the message has reached history.
    pub author_id: Option<Uuid>,
    pub author_name: Option<String>,
    pub text: Option<String>,
}

/// Unresolved reports on the channel's streams, newest first (the last 200): owner,
/// moderators or an admin.
#[utoipa::path(get, path = "/api/channels/{channel_id}/chat-reports", tag = super::TAG_MODERATION,
    security(("bearer" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel (its owner's user id)")),
    responses(
        (status = 200, body = Vec<OpenReport>),
        (status = 400, description = "A malformed id", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Not the channel's owner, one of its moderators or an admin", body = ErrorBody),
    ))]
async fn open_reports(
    State(state): State<ChatState>,
    AuthUser(claims): AuthUser,
    Path(channel): Path<Uuid>,
) -> ChatResult<Json<Vec<OpenReport>>> {
    require_staff(&state, channel, &claims, "only the channel owner, its moderators or an admin may read reports")
        .await?;
    let mut rows = sqlx::query_as!(
        OpenReport,
        "SELECT r.id, r.stream_id, r.message_id, r.reporter_id, r.reason, r.created_at,
                NULL::uuid AS author_id, NULL::text AS author_name, NULL::text AS text
         FROM chat_reports r JOIN streams s ON s.id = r.stream_id
         WHERE s.user_id = $1 AND r.resolved_at IS NULL
         ORDER BY r.created_at DESC LIMIT 200",
        channel,
    )
    .fetch_all(&state.db)
    .await?;
    // The messages live in the chat database (which may be a separate one).
    let ids: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
    let messages = sqlx::query!("SELECT id, user_id, user_name, body FROM chat_messages WHERE id = ANY($1)", &ids)
        .fetch_all(&state.chat_db)
        .await?;
    for r in &mut rows {
        if let Some(m) = messages.iter().find(|m| m.id == r.message_id) {
            (r.author_id, r.author_name, r.text) = (Some(m.user_id), Some(m.user_name.clone()), Some(m.body.clone()));
        }
    }
    Ok(Json(rows))
}

//! Flagging messages for review, and the review queue.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_web::{Json, Path};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthUser, require_staff};
use crate::error::{ChatError, ChatResult};
use crate::send;
use crate::state::ChatState;

pub fn router() -> Router<ChatState> {
    Router::new()
        .route("/api/streams/{stream_id}/chat/reports", post(report))
        .route("/api/channels/{channel_id}/chat-reports", get(open_reports))
}

#[derive(Deserialize)]
pub struct ReportBody {
    pub message_id: Uuid,
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/streams/{id}/chat/reports`: any signed-in viewer flags a message for review.
async fn report(
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
async fn open_reports(
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

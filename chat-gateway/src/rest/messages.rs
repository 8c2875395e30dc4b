//! Chat messages over REST: send (the same checks as the socket) and history.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use http::StatusCode;
use onair_domain::StreamId;
use onair_web::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AuthUser;
use crate::error::{ChatError, ChatResult};
use crate::history;
use crate::protocol::ChatMessage;
use crate::room;
use crate::send::{self, uuid_time};
use crate::state::ChatState;

pub fn router() -> Router<ChatState> {
    Router::new().route("/api/streams/{stream_id}/chat", post(send_message).get(get_history))
}

#[derive(Deserialize)]
pub struct SendBody {
    pub text: String,
}

/// `POST /api/streams/{id}/chat`: the same checks as the socket.
async fn send_message(
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
async fn get_history(
    State(state): State<ChatState>,
    Path(stream_id): Path<Uuid>,
    Query(q): Query<HistoryQuery>,
) -> ChatResult<Json<HistoryPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(onair_domain::ValidationError::new("limit", "must be between 1 and 200").into());
    }
    let invalid_cursor =
        || ChatError::reject(StatusCode::BAD_REQUEST, "invalid_cursor", "the cursor is not one this server issued");
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            let id: Uuid = c.parse().map_err(|_| invalid_cursor())?;
            Some((uuid_time(&id).ok_or_else(invalid_cursor)?, id))
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

//! Chat messages over REST: send (the same checks as the socket) and history.

use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use onair_domain::StreamId;
use onair_web::ErrorBody;
use onair_web::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AuthUser;
use crate::error::{ChatError, ChatResult};
use crate::history;
use crate::protocol::ChatMessage;
use crate::room;
use crate::send::{self, uuid_time};
use crate::state::ChatState;

pub fn router() -> OpenApiRouter<ChatState> {
    OpenApiRouter::new().routes(routes!(send_message, get_history))
}

/// A message to post. Surrounding whitespace is trimmed; what remains must be 1 to 500
/// characters with no control characters but newlines.
#[derive(Deserialize, ToSchema)]
pub struct SendBody {
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x09\x0B-\x1F\x7F-\x9F]*$",
        example = "hello chat"
    )]
    pub text: String,
}

/// Post a message: the same checks as the socket (bans, timeouts, slow mode, rate limits,
/// followers-only, links, word filters). Answers once the message is durable.
#[utoipa::path(post, path = "/api/streams/{stream_id}/chat", tag = super::TAG_CHAT, security(("bearer" = [])),
    params(("stream_id" = Uuid, Path, description = "The stream whose chat to post in")),
    request_body = SendBody,
    responses(
        (status = 201, description = "Accepted and stored", body = ChatMessage),
        (status = 400, description = "Malformed body or path, an empty or too long message, control characters, a link where links are off, a filtered word", body = ErrorBody),
        (status = 401, description = "No or an invalid access token", body = ErrorBody),
        (status = 403, description = "Banned, timed out, or the chat is followers-only", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 409, description = "The stream has ended (chat closed), or the same message was just sent", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 429, description = "Sending too fast or slow mode (see Retry-After)", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages per page.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (a message id); empty or absent for the newest page.
    #[param(pattern = r"^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[167][0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

/// A page of history, newest first.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<ChatMessage>,
    /// Pass as `cursor` for the older messages; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Chat history, newest first; `next_cursor` pages back in time. Deleted and cleared messages
/// are left out.
#[utoipa::path(get, path = "/api/streams/{stream_id}/chat", tag = super::TAG_CHAT,
    params(("stream_id" = Uuid, Path, description = "The stream whose chat to read"), HistoryQuery),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, description = "A malformed stream id, limit or cursor", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
    ))]
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
    super::require_stream(&state, stream_id).await?;
    let mut items = history::page(&state, StreamId(stream_id), before, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(|m| m.id.to_string()) } else { None };
    Ok(Json(HistoryPage { items, next_cursor }))
}

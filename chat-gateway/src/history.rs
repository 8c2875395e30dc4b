//! Chat history from the partitioned `chat_messages` table.

use chrono::{DateTime, Utc};
use onair_domain::{StreamId, UserId};
use uuid::Uuid;

use crate::error::ChatResult;
use crate::protocol::{Author, ChatMessage};
use crate::send::uuid_time;
use crate::state::ChatState;

struct Row {
    id: Uuid,
    stream_id: Uuid,
    user_id: Uuid,
    user_name: String,
    badges: Vec<String>,
    body: String,
    created_at: DateTime<Utc>,
}

impl From<Row> for ChatMessage {
    fn from(r: Row) -> Self {
        ChatMessage {
            id: r.id,
            stream_id: StreamId(r.stream_id),
            user: Author { id: UserId(r.user_id), name: r.user_name, badges: r.badges },
            text: r.body,
            ts: r.created_at,
        }
    }
}

/// A page of history, newest first, before `(ts, id)` when given. Deleted messages are hidden.
pub async fn page(
    state: &ChatState,
    stream: StreamId,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> ChatResult<Vec<ChatMessage>> {
    // Two statements rather than `$2 IS NULL OR ...`, and a plain `created_at <=` beside the row
    // comparison: both let the planner prune day partitions instead of visiting every one.
    let rows: Vec<Row> = match before {
        None => {
            sqlx::query_as!(
                Row,
                "SELECT id, stream_id, user_id, user_name, badges, body, created_at
                 FROM chat_messages WHERE stream_id = $1 AND deleted_at IS NULL
                 ORDER BY created_at DESC, id DESC LIMIT $2",
                stream.0,
                limit,
            )
            .fetch_all(&state.chat_db)
            .await?
        }
        Some((ts, id)) => {
            sqlx::query_as!(
                Row,
                "SELECT id, stream_id, user_id, user_name, badges, body, created_at
                 FROM chat_messages WHERE stream_id = $1 AND deleted_at IS NULL
                 AND created_at <= $2 AND (created_at, id) < ($2, $3)
                 ORDER BY created_at DESC, id DESC LIMIT $4",
                stream.0,
                ts,
                id,
                limit,
            )
            .fetch_all(&state.chat_db)
            .await?
        }
    };
    Ok(rows.into_iter().map(Into::into).collect())
}

/// What a reconnecting client missed after `last`, oldest first (at most 200).
pub async fn after(state: &ChatState, stream: StreamId, last: Uuid) -> ChatResult<Vec<ChatMessage>> {
    let Some(ts) = uuid_time(&last) else { return Ok(vec![]) };
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, stream_id, user_id, user_name, badges, body, created_at
         FROM chat_messages WHERE stream_id = $1 AND deleted_at IS NULL
         AND created_at >= $2 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT 200",
        stream.0,
        ts,
        last,
    )
    .fetch_all(&state.chat_db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

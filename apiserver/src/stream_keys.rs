//! Stream keys: one per user, shown once, stored as a SHA-256 hash, rotatable.

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_domain::UserId;
use onair_web::Json;
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::sessions::{hash_token, random_token};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(key_info, rotate_key))
}

/// Characters of the key kept in clear, so the streamer can tell keys apart.
const PREFIX_LEN: usize = 9;

#[derive(Serialize, ToSchema)]
pub struct NewStreamKey {
    /// The key itself. Shown this once; only its hash is kept.
    pub stream_key: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Paste into OBS as "Server"; the key goes in "Stream Key".
    pub ingest_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct StreamKeyInfo {
    pub exists: bool,
    /// The first characters of the current key (`live_AbCd`), never the key.
    pub prefix: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub ingest_url: String,
}

/// Make (or replace) `user`'s key and return it in clear. A user with a key is a streamer.
pub async fn create_key(conn: &mut PgConnection, user: UserId) -> ApiResult<(String, DateTime<Utc>)> {
    let key = random_token("live_");
    let created_at = sqlx::query_scalar!(
        "INSERT INTO stream_keys (user_id, key_hash, key_prefix) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET key_hash = EXCLUDED.key_hash, key_prefix = EXCLUDED.key_prefix, created_at = now()
         RETURNING created_at",
        user.0,
        hash_token(&key),
        &key[..PREFIX_LEN],
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("UPDATE users SET role = 'streamer' WHERE id = $1 AND role = 'viewer'", user.0)
        .execute(&mut *conn)
        .await?;
    Ok((key, created_at))
}

/// Whether the caller has a stream key, and which (by prefix).
#[utoipa::path(get, path = "/api/users/me/stream-key", tag = "stream keys", security(("bearer" = [])),
    responses((status = 200, body = StreamKeyInfo), (status = 401, body = onair_web::ErrorBody)))]
async fn key_info(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<StreamKeyInfo>> {
    let row = sqlx::query!("SELECT key_prefix, created_at FROM stream_keys WHERE user_id = $1", user.id().0)
        .fetch_optional(&state.db)
        .await?;
    Ok(Json(StreamKeyInfo {
        exists: row.is_some(),
        prefix: row.as_ref().map(|r| r.key_prefix.clone()),
        created_at: row.map(|r| r.created_at),
        ingest_url: state.config.ingest_url.clone(),
    }))
}

/// Create the caller's stream key, or rotate it (the old key stops working at once for new
/// connections). The response is the only time the key is shown.
#[utoipa::path(post, path = "/api/users/me/stream-key", tag = "stream keys", security(("bearer" = [])),
    responses((status = 201, body = NewStreamKey), (status = 401, body = onair_web::ErrorBody)))]
async fn rotate_key(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<(http::StatusCode, Json<NewStreamKey>)> {
    let mut tx = state.db.begin().await?;
    let (key, created_at) = create_key(&mut tx, user.id()).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id(), "stream key rotated");
    Ok((
        http::StatusCode::CREATED,
        Json(NewStreamKey {
            prefix: key[..PREFIX_LEN].to_owned(),
            stream_key: key,
            created_at,
            ingest_url: state.config.ingest_url.clone(),
        }),
    ))
}

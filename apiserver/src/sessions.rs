//! Refresh tokens: opaque, stored hashed, rotated on every use, with reuse detection.
//!
//! Every login starts a *family*. Refreshing marks the presented token used and issues the
//! next one in the same family. If a used token is presented again, someone holds a copy
//! (the legitimate client already moved on), so the whole family is revoked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use onair_domain::UserId;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;

/// A fresh refresh token (shown to the client once) and the family it belongs to.
pub struct NewSession {
    pub refresh_token: String,
    pub family: Uuid,
    pub expires_at: DateTime<Utc>,
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// 256 random bits, base64url, with a prefix that makes leaked tokens easy to grep for.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Issue a token in `family` (a new family when `None`).
pub async fn issue(
    conn: &mut PgConnection,
    user: UserId,
    family: Option<Uuid>,
    ttl: chrono::Duration,
) -> Result<NewSession, ApiError> {
    let token = random_token("rt_");
    let family = family.unwrap_or_else(Uuid::now_v7);
    let expires_at = Utc::now() + ttl;
    sqlx::query!(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
        Uuid::now_v7(),
        user.0,
        family,
        hash_token(&token),
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(NewSession { refresh_token: token, family, expires_at })
}

struct TokenRow {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Outcome of presenting a refresh token.
pub enum Rotation {
    Rotated {
        user: UserId,
        session: NewSession,
    },
    /// Reuse detected: the family has been revoked (committed) and the caller must log in again.
    Reused,
}

/// Use `token` once: mark it used and issue its successor. Runs in the caller's transaction,
/// except that a detected reuse revokes the family even though the request fails.
pub async fn rotate(conn: &mut PgConnection, token: &str, ttl: chrono::Duration) -> Result<Rotation, ApiError> {
    let invalid =
        || ApiError::unauthorized("invalid_refresh_token", "the refresh token is invalid or expired; log in again");
    if token.len() > 200 {
        return Err(invalid());
    }
    let row = sqlx::query_as!(
        TokenRow,
        "SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        hash_token(token),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or_else(invalid)?;
    if row.revoked_at.is_some() {
        return Err(invalid());
    }
    if row.used_at.is_some() {
        revoke_family(conn, row.family_id).await?;
        tracing::warn!(user_id = %row.user_id, family = %row.family_id, "refresh token reuse detected; session revoked");
        return Ok(Rotation::Reused);
    }
    if row.expires_at <= Utc::now() {
        return Err(invalid());
    }
    sqlx::query!("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", hash_token(token))
        .execute(&mut *conn)
        .await?;
    let user = UserId(row.user_id);
    let session = issue(conn, user, Some(row.family_id), ttl).await?;
    Ok(Rotation::Rotated { user, session })
}

pub async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> Result<(), ApiError> {
    sqlx::query!("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revoke the family `token` belongs to (logout). Unknown tokens are ignored: logout is idempotent.
pub async fn revoke_by_token(conn: &mut PgConnection, token: &str) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        hash_token(token),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revoke every session of `user` except `keep` (after a password change).
pub async fn revoke_all_except(conn: &mut PgConnection, user: UserId, keep: Option<Uuid>) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR family_id <> $2)",
        user.0,
        keep,
    )
    .execute(conn)
    .await?;
    Ok(())
}

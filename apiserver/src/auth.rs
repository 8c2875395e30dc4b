//! Request extractors: who is calling (`AuthUser`), from where (`ClientIp`),
//! and whether it is a trusted service (`Internal`).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use onair_auth::AccessClaims;
use onair_domain::UserId;
use onair_domain::contracts::http::INTERNAL_TOKEN_HEADER;
use secrecy::ExposeSecret as _;

use crate::error::ApiError;
use crate::state::AppState;

/// A caller with a valid access token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub AccessClaims);

impl AuthUser {
    pub fn id(&self) -> UserId {
        self.0.sub
    }

    /// 403 unless the caller is `owner` or an admin.
    pub fn require_owner_or_admin(&self, owner: UserId, what: &str) -> Result<(), ApiError> {
        if self.0.is_owner_or_admin(owner) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("only the owner of this {what} or an admin may do that")))
        }
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    onair_web::bearer_token(&parts.headers).map_err(|e| ApiError::unauthorized("invalid_token", e.to_string()))
}

fn verify(state: &AppState, token: &str) -> Result<AccessClaims, ApiError> {
    state.verifier.verify(token).map_err(|e| ApiError::unauthorized(e.code(), e.to_string()))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?
            .ok_or_else(|| ApiError::unauthorized("missing_token", "this route needs an access token"))?;
        verify(state, token).map(AuthUser)
    }
}

/// A caller who may or may not be signed in, for routes open to anyone that some resources
/// restrict (a followers-only channel). No token: the route answers as it does for anyone. A
/// token that is not valid (expired, forged) is refused with 401, as `AuthUser` refuses it:
/// answering it as no one would hide a restricted resource from a follower whose token just
/// expired, where a 401 tells their client to refresh it and ask again.
#[derive(Debug)]
pub struct OptionalUser(Option<AuthUser>);

impl OptionalUser {
    /// The caller, or 401 `missing_token` when there is none.
    pub fn require(self) -> Result<AuthUser, ApiError> {
        self.0.ok_or_else(|| ApiError::unauthorized("missing_token", "this resource needs an access token"))
    }

    /// The caller, when the request carries a token.
    pub fn user(&self) -> Option<&AuthUser> {
        self.0.as_ref()
    }
}

impl FromRequestParts<AppState> for OptionalUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(Self(None)),
            Some(token) => verify(state, token).map(|claims| Self(Some(AuthUser(claims)))),
        }
    }
}

/// The client's address, for per-IP limits.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.config.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                // The right-most entry is the one our proxy appended; anything left of it the
                // client wrote itself.
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Ok(Self(ip));
        }
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(peer))
    }
}

/// A trusted service (media worker) presenting the internal token.
#[derive(Debug, Clone, Copy)]
pub struct Internal;

impl FromRequestParts<AppState> for Internal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts.headers.get(INTERNAL_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        let expected = state.internal_token.expose_secret().as_bytes();
        if presented.is_empty() {
            return Err(ApiError::unauthorized("missing_token", "internal routes need the internal token"));
        }
        if !onair_web::constant_time_eq(presented, expected) {
            return Err(ApiError::unauthorized("invalid_token", "the internal token is wrong"));
        }
        Ok(Internal)
    }
}

//! The apiserver's one error type, mapped once to status + `{"error":{...}}`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use onair_web::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] onair_domain::ValidationError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A service we depend on (the recordings store) did not answer: 503, retry.
    #[error("{0}")]
    Unavailable(&'static str),
    /// This server cannot do it now or as configured: 503 with its own code.
    #[error("{message}")]
    ServiceUnavailable { code: &'static str, message: &'static str },
    #[error("rate limited")]
    RateLimited { retry_after: u64, message: &'static str },
    #[error("orchestrator: {0}")]
    Orchestrator(#[from] crate::OrchestratorError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized { code, message: message.into() }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    fn into_http(self) -> HttpError {
        match self {
            Self::Invalid(e) => e.into(),
            Self::BadRequest { code, message } => HttpError::new(StatusCode::BAD_REQUEST, code, message),
            Self::Unauthorized { code, message } => HttpError::new(StatusCode::UNAUTHORIZED, code, message),
            Self::Forbidden(message) => HttpError::new(StatusCode::FORBIDDEN, "forbidden", message),
            Self::NotFound(what) => HttpError::new(
                StatusCode::NOT_FOUND,
                format!("{}_not_found", what.replace(' ', "_")),
                format!("{what} not found"),
            ),
            Self::Conflict { code, message } => HttpError::new(StatusCode::CONFLICT, code, message),
            Self::RateLimited { retry_after, message } => {
                HttpError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).with_retry_after(retry_after)
            }
            Self::Unavailable(message) => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message).with_retry_after(1)
            }
            Self::ServiceUnavailable { code, message } => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_retry_after(5)
            }
            Self::Orchestrator(e) => {
                tracing::error!(error = %e, "orchestrator failed");
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "media_unavailable",
                    "could not start media for this stream; try again",
                )
            }
            // A unique violation nobody mapped more precisely is still the client's conflict, not our 500.
            Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                HttpError::new(StatusCode::CONFLICT, "conflict", "that already exists")
            }
            Self::Database(e) => HttpError::internal(&e),
            Self::Redis(e) => HttpError::internal(&e),
            Self::Internal(e) => HttpError::internal(e.as_ref()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = matches!(self, Self::Unauthorized { .. });
        let mut res = self.into_http().into_response();
        if unauthorized {
            res.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// Which unique constraint a database error violated, if any.
pub fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => d.constraint(),
        _ => None,
    }
}

/// Which foreign key a database error violated, if any.
pub fn foreign_key_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => d.constraint(),
        _ => None,
    }
}

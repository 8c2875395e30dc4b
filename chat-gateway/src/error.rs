//! The gateway's error type: HTTP mapping for REST, `error` frames for sockets.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use onair_web::HttpError;

/// Why a message or request was refused. `code` is stable; clients branch on it.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{message}")]
    Rejected { status: StatusCode, code: &'static str, message: String, retry_after_ms: Option<u64> },
    #[error(transparent)]
    Invalid(#[from] onair_domain::ValidationError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ChatResult<T> = Result<T, ChatError>;

impl ChatError {
    pub fn reject(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected { status, code, message: message.into(), retry_after_ms: None }
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        if let Self::Rejected { retry_after_ms, .. } = &mut self {
            *retry_after_ms = Some(ms);
        }
        self
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::reject(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::reject(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::reject(StatusCode::NOT_FOUND, code, message)
    }

    /// The stable code, for `error` frames and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected { code, .. } => code,
            Self::Invalid(_) => "invalid_field",
            _ => "internal",
        }
    }

    pub fn to_http(&self) -> HttpError {
        match self {
            Self::Rejected { status, code, message, retry_after_ms } => {
                let e = HttpError::new(*status, *code, message.clone());
                match retry_after_ms {
                    Some(ms) => e.with_retry_after(ms.div_ceil(1000).max(1)),
                    None => e,
                }
            }
            Self::Invalid(v) => v.clone().into(),
            Self::Database(e) => HttpError::internal(e),
            Self::Redis(e) => HttpError::internal(e),
            Self::Internal(e) => HttpError::internal(e.as_ref()),
        }
    }

    /// Message and retry hint for a socket `error` frame (internal causes are logged, not sent).
    pub fn for_socket(&self) -> (String, Option<u64>) {
        match self {
            Self::Rejected { message, retry_after_ms, .. } => (message.clone(), *retry_after_ms),
            Self::Invalid(v) => (v.to_string(), None),
            other => {
                tracing::error!(error = %other, "chat internal error");
                ("something went wrong on our side".to_owned(), None)
            }
        }
    }
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        self.to_http().into_response()
    }
}

//! The API's one error type and its JSON form `{"error": {"code", "message"}}`.
//!
//! Status codes: 400 a parameter could not be parsed, 401 no or unknown bearer token, 403
//! a tenant token on another tenant's path, 404 unknown tenant, site or path, 422 a
//! well-formed request that cannot be answered as asked (range too long, `from` after
//! `to`, page too large), 503 the store is unreachable (retry), 500 a bug.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sitetally_store::StoreError;
use utoipa::ToSchema;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    /// The store is unreachable or overloaded: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's token (or, without one, all anonymous callers) sent more requests
    /// than its rate allows: retry after this many seconds.
    #[error("rate limit exceeded: retry in {0} s")]
    TooManyRequests(u64),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Unavailable(_) => "store_unavailable",
            ApiError::TooManyRequests(_) => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable(_) | ApiError::TooManyRequests(_)
        )
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e.to_string())
        } else {
            // Parameters never reach SQL as text, so a rejected query is our bug.
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<sitetally_store::StateError> for ApiError {
    fn from(e: sitetally_store::StateError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<sitetally_licensing::CountError> for ApiError {
    fn from(e: sitetally_licensing::CountError) -> Self {
        if e.is_retryable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// One of bad_request, unauthorized, forbidden, not_found, unprocessable,
    /// store_unavailable, rate_limited, internal.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal(_) | ApiError::Unavailable(_)) {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sitetally\""),
            );
        }
        if let ApiError::TooManyRequests(wait) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
        }
        resp
    }
}

//! One error type for HTTP answers, applying the error policy: a client's mistake is a specific
//! 4xx; a server fault is a generic 500/503 with an error id, the detail only in the log.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::self_report::FaultReport;

/// The generic sentence every server fault answers with.
pub const GENERIC_ERROR: &str = "An unexpected error occurred";

/// Seconds a client is told to wait when Faultline cannot take its event right now.
const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
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
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Faultline is receiving more events than it can store; retry later")]
    TooManyRequests,
    /// A dependency (the database) is down: the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug: never shown to the client.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// A database error is an outage (503, retry later) when PostgreSQL cannot work at all, and a
/// fault of Faultline's (500) otherwise.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::store::is_invalid_text(&error) {
            ApiError::bad_request(INVALID_TEXT)
        } else if crate::store::is_unavailable(&error) {
            ApiError::Unavailable(error.into())
        } else {
            ApiError::Internal(error.into())
        }
    }
}

/// What a request with text PostgreSQL cannot store (a NUL character) is told.
pub const INVALID_TEXT: &str = "the request contains a NUL character, which is not allowed here";

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::PayloadTooLarge(message.into())
    }

    fn is_server_fault(&self) -> bool {
        matches!(self, ApiError::Unavailable(_) | ApiError::Internal(_))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.is_server_fault() {
            let error_id = new_error_id();
            let cause = match self {
                ApiError::Unavailable(e) | ApiError::Internal(e) => e,
                _ => unreachable!("only server faults reach here"),
            };
            tracing::error!(error_id = %error_id, error = format!("{cause:#}"), "request failed");
            if matches!(self, ApiError::Unavailable(_)) {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
            }
            let mut answer = response.json(json!({ "error": GENERIC_ERROR, "error_id": error_id }));
            if matches!(self, ApiError::Internal(_)) {
                // Only bugs are filed: an unreachable database would only fail to store them.
                let report = FaultReport {
                    error_id,
                    detail: format!("{cause:#}"),
                };
                answer.extensions_mut().insert(report);
            }
            return answer;
        }
        let message = self.to_string();
        if matches!(self, ApiError::TooManyRequests) {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
        }
        // SDKs log this header; it must stay one printable line.
        let header_text: String = message.chars().filter(|c| !c.is_control()).collect();
        if let Ok(value) = header::HeaderValue::from_str(&header_text) {
            response.insert_header(("X-Sentry-Error", value));
        }
        response.json(json!({ "error": message }))
    }
}

/// A short random id that ties a generic answer to its log line.
pub fn new_error_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

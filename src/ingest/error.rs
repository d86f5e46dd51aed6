//! Why ingest refused or could not take an event. Pure ingest code returns this; the mapping to
//! HTTP statuses and Sentry's headers happens once, where routes turn it into an `ApiError`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request or event is malformed (400).
    #[error("{0}")]
    Malformed(String),
    /// No key, or one Faultline does not know (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A key of another project, or a revoked one (403).
    #[error("{0}")]
    Forbidden(String),
    /// The project in the path does not exist (404).
    #[error("{0}")]
    UnknownProject(String),
    /// Over a size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// A `Content-Encoding` Faultline cannot decode (415).
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// The requests in flight hold their memory budget in bodies (429).
    #[error("Faultline is receiving more than it can hold at once; retry later")]
    InFlightFull,
    /// The project's feedback quota is used up for now (429).
    #[error("this project received more feedback than it takes for now; retry later")]
    TooMuchFeedback,
    /// The write queue is full: the client should retry later (429).
    #[error("Faultline is receiving more events than it can store; retry later")]
    QueueFull,
    /// The database is down: the client should retry later (503).
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A fault of Faultline's own (500).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// A database error is an outage (503, the SDK retries) when PostgreSQL cannot work at all,
/// and a fault (500) otherwise: the same rule as `ApiError`'s.
impl From<sqlx::Error> for IngestError {
    fn from(error: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&error) {
            IngestError::Unavailable(error.into())
        } else {
            IngestError::Internal(error.into())
        }
    }
}

impl IngestError {
    pub fn malformed(message: impl Into<String>) -> Self {
        IngestError::Malformed(message.into())
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        IngestError::TooLarge(message.into())
    }
}

impl IngestError {
    /// The HTTP answer this error gets: the one mapping from ingest's errors to statuses and
    /// Sentry's headers (`ApiError` applies the policy).
    fn to_api_error(&self) -> ApiError {
        match self {
            IngestError::Malformed(m) => ApiError::BadRequest(m.clone()),
            IngestError::Unauthorized(m) => ApiError::Unauthorized(m.clone()),
            IngestError::Forbidden(m) => ApiError::Forbidden(m.clone()),
            IngestError::UnknownProject(m) => ApiError::NotFound(m.clone()),
            IngestError::TooLarge(m) => ApiError::PayloadTooLarge(m.clone()),
            IngestError::UnsupportedEncoding(m) => ApiError::UnsupportedMediaType(m.clone()),
            IngestError::QueueFull | IngestError::InFlightFull | IngestError::TooMuchFeedback => {
                ApiError::TooManyRequests
            }
            // The cause's whole chain, as text: it only reaches the log.
            IngestError::Unavailable(e) => ApiError::Unavailable(anyhow::anyhow!("{e:#}")),
            IngestError::Internal(e) => ApiError::Internal(anyhow::anyhow!("{e:#}")),
        }
    }
}

impl IngestError {
    /// A short name for metrics.
    fn reason(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::Forbidden(_) => "forbidden",
            IngestError::UnknownProject(_) => "unknown_project",
            IngestError::TooLarge(_) => "too_large",
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::QueueFull => "queue_full",
            IngestError::InFlightFull => "in_flight_full",
            IngestError::TooMuchFeedback => "feedback_rate",
            IngestError::Unavailable(_) => "unavailable",
            IngestError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        self.to_api_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let response = self.to_api_error().error_response();
        metrics::counter!(
            "faultline_ingest_requests_total",
            "outcome" => "rejected",
            "reason" => self.reason(),
            "status" => response.status().as_str().to_owned()
        )
        .increment(1);
        response
    }
}

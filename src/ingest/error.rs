//! Why ingest refused or could not take an event. Pure ingest code returns this; the mapping to
//! HTTP statuses and Sentry's headers happens once, where routes turn it into an `ApiError`.

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

impl IngestError {
    pub fn malformed(message: impl Into<String>) -> Self {
        IngestError::Malformed(message.into())
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        IngestError::TooLarge(message.into())
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Malformed(m) => ApiError::BadRequest(m),
            IngestError::Unauthorized(m) => ApiError::Unauthorized(m),
            IngestError::Forbidden(m) => ApiError::Forbidden(m),
            IngestError::UnknownProject(m) => ApiError::NotFound(m),
            IngestError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            IngestError::UnsupportedEncoding(m) => ApiError::UnsupportedMediaType(m),
            IngestError::QueueFull => ApiError::TooManyRequests,
            IngestError::Unavailable(e) => ApiError::Unavailable(e),
            IngestError::Internal(e) => ApiError::Internal(e),
        }
    }
}

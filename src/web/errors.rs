//! Errors of the dashboard, rendered as pages in the site's layout: a 4xx says what is wrong,
//! a 500 says only that something failed, with the id under which the detail is logged.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::{new_error_id, GENERIC_ERROR};
use crate::self_report::FaultReport;

/// Seconds a page answered 503 asks the browser to wait.
const UNAVAILABLE_RETRY_AFTER: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not logged in: go to the login page, then come back to `next`.
    #[error("login required")]
    LoginRequired(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("This page does not exist.")]
    NotFound,
    #[error("Too many failed attempts. Wait a few minutes, then try again.")]
    TooManyAttempts,
    /// The database is away or overloaded: a 503 to retry, logged with an id but not filed as
    /// a fault of Faultline's (an outage is not a bug, and filing needs the database too).
    #[error("The database is not answering right now. Try again in a moment.")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_invalid_text(&e) {
            WebError::BadRequest(format!("Not valid: {}.", crate::error::INVALID_TEXT))
        } else if crate::store::is_unavailable(&e) {
            WebError::Unavailable(e.into())
        } else {
            WebError::Internal(e.into())
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub status: u16,
    pub message: &'a str,
    pub error_id: Option<&'a str>,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::LoginRequired(_) => StatusCode::SEE_OTHER,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let WebError::LoginRequired(next) = self {
            let location = format!("/login?next={}", urlencode(next));
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        let error_id = match self {
            WebError::Internal(cause) => {
                let id = new_error_id();
                tracing::error!(error_id = %id, error = format!("{cause:#}"), "page failed");
                Some(id)
            }
            WebError::Unavailable(cause) => {
                let id = new_error_id();
                tracing::warn!(error_id = %id, error = format!("{cause:#}"), "page failed: database unavailable");
                Some(id)
            }
            _ => None,
        };
        let message = match self {
            WebError::Internal(_) => GENERIC_ERROR.to_owned(),
            other => other.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let mut response = render_error(status, title, &message, error_id.as_deref());
        if matches!(self, WebError::Unavailable(_)) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER),
            );
        }
        if let (Some(error_id), WebError::Internal(cause)) = (error_id, self) {
            response.extensions_mut().insert(FaultReport {
                error_id,
                detail: format!("{cause:#}"),
            });
        }
        response
    }
}

pub fn render_error(
    status: StatusCode,
    title: &str,
    message: &str,
    error_id: Option<&str>,
) -> HttpResponse {
    let page = ErrorPage {
        title,
        status: status.as_u16(),
        message,
        error_id,
    };
    let body = page
        .render()
        .unwrap_or_else(|_| format!("{} {}", status.as_u16(), title));
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

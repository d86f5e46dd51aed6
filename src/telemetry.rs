//! Logging: `tracing` to stdout as JSON or human-readable lines, and one line per request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `RUST_LOG` filters (default `info`); `LOG_FORMAT` picks the format.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    drop(result);
}

/// The method as a metric label and log field: a client may send any token as a method, and
/// each new one would make a new series that is never dropped.
fn method_label(method: &actix_web::http::Method) -> String {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let method = method.as_str();
    if KNOWN.contains(&method) {
        method.to_owned()
    } else {
        "other".to_owned()
    }
}

/// Logs method, route pattern (never the raw URL: query strings can carry DSN keys), status
/// and duration, and returns the request id in `X-Request-Id`.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let method = method_label(req.method());
    let started = Instant::now();
    let mut response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".into());
    let status = response.status().as_u16();
    metrics::histogram!(
        "faultline_http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .record(started.elapsed().as_secs_f64());
    tracing::info!(
        request.id = %request_id,
        http.method = %method,
        http.route = %route,
        http.status = status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

#[cfg(test)]
mod method_tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn methods_outside_http_s_usual_set_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for made_up in ["FOO1", "FOO2", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other");
        }
    }
}

//! `/api/embed/error-page/`: the crash-report dialog that `Sentry.showReportDialog({ eventId })`
//! loads into an application's page (PROTOCOL.md §14.3). GET answers a script that shows the
//! form; the script POSTs the form back to the same URL. Every answer carries the CORS headers
//! the SDK's page needs, since it lives on another origin.

use std::net::IpAddr;

use crate::rate_limit::PerMinute;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::{self, PublicKey};
use super::body;
use super::error::IngestError;
use super::feedback::{self, FeedbackForm};
use crate::state::AppState;
use crate::store::{self, feedback::FeedbackSource};

/// The form is three short fields; a body past this is not the dialog's.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Texts the page passes (titles, labels) are cut to this many characters.
const MAX_OPTION_CHARS: usize = 300;
/// Reports one address may send per minute.
pub const REPORTS_PER_MINUTE: u32 = 10;

/// The dialog's texts: Sentry's option names and default wording.
const TEXT_OPTIONS: &[(&str, &str)] = &[
    ("title", "It looks like we're having issues."),
    ("subtitle", "Our team has been notified."),
    (
        "subtitle2",
        "If you'd like to help, tell us what happened below.",
    ),
    ("labelName", "Name"),
    ("labelEmail", "Email"),
    ("labelComments", "What happened?"),
    ("labelClose", "Close"),
    ("labelSubmit", "Submit Crash Report"),
    (
        "errorGeneric",
        "An unknown error occurred while submitting your report. Please try again.",
    ),
    (
        "errorFormEntry",
        "Some fields were invalid. Please correct the errors and try again.",
    ),
    ("successMessage", "Your feedback has been sent. Thank you!"),
];

/// Takes one report from the sender's quota (`state.report_limiter`, so one page cannot flood
/// the operators' list); `Err(seconds to wait)` when it is used up.
fn take_report(limiter: &PerMinute<IpAddr>, address: IpAddr) -> Result<(), u64> {
    limiter.take(sender(address), 1)
}

/// Who is counted for an address: an IPv6 sender usually holds a whole /64 (one host can
/// pick any of its 2^64 addresses), so its /64 is; an IPv4 address is itself.
fn sender(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(network.into())
        }
        other => other,
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(["/api/embed/error-page/", "/api/embed/error-page"])
            .route(web::get().to(show))
            .route(web::post().to(submit))
            .route(web::method(Method::OPTIONS).to(preflight))
            .default_service(web::to(preflight_or_refuse)),
    );
}

/// What the page asked for: the event, the project (through its DSN) and the dialog's texts.
#[derive(Debug)]
struct DialogRequest {
    event_id: Uuid,
    project_id: i64,
    key: PublicKey,
    name: String,
    email: String,
    text: serde_json::Map<String, Value>,
}

/// Why a request was refused before anything was looked up: Sentry's status and body.
#[derive(Debug, PartialEq)]
struct Refusal(StatusCode, Value);

/// Reads the query in Sentry's order of checks: the event id (400), then the DSN (404).
/// The SDK writes the DSN unencoded, and may add parameters Faultline ignores (`onLoad`).
fn parse_request(query: &str) -> Result<DialogRequest, Refusal> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
    };
    let event_id = get("eventId")
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or_else(|| invalid_parameter(StatusCode::BAD_REQUEST, "eventId"))?;
    let (key, project) = get("dsn")
        .and_then(|dsn| auth::key_from_dsn(dsn).ok())
        .ok_or_else(|| invalid_parameter(StatusCode::NOT_FOUND, "dsn"))?;
    let project_id = project
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| invalid_parameter(StatusCode::NOT_FOUND, "dsn"))?;
    let option =
        |name: &str| get(name).map(|v| crate::domain::text::cut_chars(v, MAX_OPTION_CHARS));
    let text = TEXT_OPTIONS
        .iter()
        .map(|(name, default)| {
            let value = option(name).filter(|v| !v.is_empty()).unwrap_or(default);
            (name.to_string(), Value::String(value.to_owned()))
        })
        .collect();
    Ok(DialogRequest {
        event_id,
        project_id,
        key,
        name: option("name").unwrap_or_default().to_owned(),
        email: option("email").unwrap_or_default().to_owned(),
        text,
    })
}

fn invalid_parameter(status: StatusCode, name: &str) -> Refusal {
    Refusal(status, json!({ name: "Missing or invalid parameter." }))
}

/// The dialog's script with its configuration. The configuration is JSON; `<` and the two
/// line separators are escaped so no text from the query can end a script element or a line.
fn dialog_script(request: &DialogRequest, endpoint: &str) -> String {
    let config = json!({
        "endpoint": endpoint,
        "eventId": request.event_id.simple().to_string(),
        "name": request.name,
        "email": request.email,
        "text": request.text,
    });
    let config = config
        .to_string()
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    format!(
        "{}({config});\n",
        include_str!("../../static/report-dialog.js").trim_end()
    )
}

/// GET: the script that shows the dialog.
async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let request = match checked_request(&req, &state).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let endpoint = format!(
        "{}/api/embed/error-page/?{}",
        state.public.base_url.trim_end_matches('/'),
        req.query_string()
    );
    let mut response = HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(dialog_script(&request, &endpoint));
    with_cors(&req, &mut response);
    response
}

/// POST: the form, as the dialog's script sends it (`application/x-www-form-urlencoded`).
async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mut response = match save_report(&req, payload, &state).await {
        Ok(response) => response,
        Err(refused) => return refused,
    };
    with_cors(&req, &mut response);
    response
}

async fn save_report(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, HttpResponse> {
    let request = checked_request(req, state).await?;
    if let Some(address) = req.peer_addr().map(|a| a.ip()) {
        if let Err(wait) = take_report(&state.report_limiter, address) {
            let mut refused = refusal(
                req,
                Refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"detail": "too many reports from this address; try again later"}),
                ),
            );
            refused.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&wait.to_string()).expect("digits are a valid header"),
            );
            return Err(refused);
        }
    }
    let body = body::read_limited(payload, MAX_FORM_BYTES, &mut state.in_flight.share())
        .await
        .map_err(|e| ingest_refusal(req, &e))?;
    let form = web::Query::<FeedbackForm>::from_query(&String::from_utf8_lossy(&body))
        .map(|f| f.into_inner())
        .unwrap_or_default();
    let fields = feedback::check_form(&form).map_err(|errors| {
        refusal(
            req,
            Refusal(StatusCode::BAD_REQUEST, json!({ "errors": errors })),
        )
    })?;
    let report = feedback::from_form(
        request.project_id,
        request.event_id,
        fields,
        FeedbackSource::CrashReportDialog,
        Utc::now(),
    );
    store::feedback::save(&state.pool, &report)
        .await
        .map_err(|e| ingest_refusal(req, &IngestError::from(e)))?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// The parsed request once its DSN key is known to belong to its project.
async fn checked_request(
    req: &HttpRequest,
    state: &AppState,
) -> Result<DialogRequest, HttpResponse> {
    let request = parse_request(req.query_string()).map_err(|r| refusal(req, r))?;
    state
        .keys
        .authorize(request.project_id, &request.key)
        .await
        .map_err(|e| match e {
            IngestError::Unauthorized(_)
            | IngestError::Forbidden(_)
            | IngestError::UnknownProject(_) => refusal(
                req,
                Refusal(
                    StatusCode::FORBIDDEN,
                    json!({"dsn": "This DSN is not valid for its project."}),
                ),
            ),
            other => ingest_refusal(req, &other),
        })?;
    Ok(request)
}

/// A refusal's answer. When the caller asked for a script, the JSON moves into the
/// `X-Sentry-Context` header and the body stays empty (as Sentry does).
fn refusal(req: &HttpRequest, Refusal(status, body): Refusal) -> HttpResponse {
    let wants_script = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/javascript"));
    let mut response = if wants_script {
        HttpResponse::build(status)
            .insert_header(("X-Sentry-Context", body.to_string()))
            .finish()
    } else {
        HttpResponse::build(status).json(body)
    };
    with_cors(req, &mut response);
    response
}

/// An ingest error's answer (policy in `ingest::error`), with the CORS headers.
fn ingest_refusal(req: &HttpRequest, error: &IngestError) -> HttpResponse {
    let mut response = error.error_response();
    with_cors(req, &mut response);
    response
}

async fn preflight(req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::Ok().json(json!({}));
    with_cors(&req, &mut response);
    response
}

async fn preflight_or_refuse(req: HttpRequest) -> HttpResponse {
    refusal(
        &req,
        Refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": format!("{} is not allowed here", req.method())}),
        ),
    )
}

fn with_cors(req: &HttpRequest, response: &mut HttpResponse) {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, X-Requested-With"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("1000"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept, Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_sender_is_counted_by_its_64_and_an_ipv4_one_by_itself() {
        let limiter = PerMinute::new(REPORTS_PER_MINUTE);
        for n in 0..REPORTS_PER_MINUTE {
            let address: IpAddr = format!("2001:db8:1:2::{n:x}").parse().unwrap();
            assert!(take_report(&limiter, address).is_ok(), "report {n}");
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(
            take_report(&limiter, same_64).is_err(),
            "another address of the same /64"
        );
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(take_report(&limiter, other_64).is_ok());
        for n in 0..REPORTS_PER_MINUTE {
            assert!(
                take_report(&limiter, "192.0.2.1".parse().unwrap()).is_ok(),
                "{n}"
            );
        }
        assert!(take_report(&limiter, "192.0.2.2".parse().unwrap()).is_ok());
    }

    const KEY: &str = "abcdef0123456789abcdef0123456789";
    const EVENT: &str = "fc6d8c0c43fc4630ad850ee518f1b9d0";

    #[test]
    fn reads_the_sdks_unencoded_dsn_and_its_options() {
        let query = format!(
            "dsn=http://{KEY}@localhost:8000/42&eventId={EVENT}&name=Jane&email=jane%40example.com\
             &title=Oops%20%3Cb%3E&onLoad=function%20()%20%7B%7D"
        );
        let request = parse_request(&query).unwrap();
        assert_eq!(request.project_id, 42);
        assert_eq!(request.key.as_str(), KEY);
        assert_eq!(request.event_id.simple().to_string(), EVENT);
        assert_eq!(
            (request.name.as_str(), request.email.as_str()),
            ("Jane", "jane@example.com")
        );
        assert_eq!(request.text["title"], "Oops <b>");
        assert_eq!(request.text["labelSubmit"], "Submit Crash Report");
    }

    #[test]
    fn refuses_in_sentrys_order_event_id_then_dsn() {
        let no_event = format!("dsn=http://{KEY}@localhost/42&eventId=undefined");
        assert_eq!(
            parse_request(&no_event).unwrap_err(),
            invalid_parameter(StatusCode::BAD_REQUEST, "eventId")
        );
        assert_eq!(
            parse_request("dsn=nonsense").unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        for dsn in [
            "",
            "nonsense",
            "http://short@localhost/42",
            &format!("http://{KEY}@localhost/x"),
        ] {
            let query = format!("dsn={dsn}&eventId={EVENT}");
            assert_eq!(
                parse_request(&query).unwrap_err(),
                invalid_parameter(StatusCode::NOT_FOUND, "dsn"),
                "{dsn}"
            );
        }
    }

    #[test]
    fn the_script_cannot_be_broken_out_of() {
        let query = format!(
            "dsn=http://{KEY}@localhost/42&eventId={EVENT}&title=%3C/script%3E%3Cscript%3Ealert(1)%3C/script%3E\
             &name=%E2%80%A8x"
        );
        let request = parse_request(&query).unwrap();
        let script = dialog_script(&request, "http://localhost/api/embed/error-page/?x");
        assert!(!script.contains("</script>"), "{script}");
        assert!(!script.contains('\u{2028}'));
        assert!(script.contains("\\u003c/script>"));
        assert!(script.trim_end().ends_with(");"));
        // Texts reach the page through textContent only.
        assert!(!script.contains("innerHTML"));
    }

    #[test]
    fn an_address_is_limited_to_its_reports_per_minute() {
        let limiter = PerMinute::new(REPORTS_PER_MINUTE);
        let address: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..REPORTS_PER_MINUTE {
            assert!(take_report(&limiter, address).is_ok());
        }
        let wait = take_report(&limiter, address).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(take_report(&limiter, "203.0.113.10".parse().unwrap()).is_ok());
    }
}

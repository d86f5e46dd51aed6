//! `POST /api/{project_id}/envelope/` and `/store/` (with or without the trailing slash), and
//! their CORS preflight. Handlers stay thin: authenticate, read, prepare, hand to the pipeline.

use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use chrono::Utc;
use serde_json::{json, Value};

use super::auth::{self, PublicKey};
use super::body::{self, ContentEncoding, HeldMemory};
use super::envelope::{self, Item};
use super::error::IngestError;
use super::feedback;
use super::normalize::{EnvelopeContext, NormalizedEvent};
use super::process;
use super::report_dialog;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store;

/// Categories Faultline accepts and drops. Advertising a day-long limit for them on every
/// success makes SDKs stop sending them; `error`, `default` and `attachment` are never listed.
const DROPPED_CATEGORIES_LIMIT: &str =
    "86400:transaction;span;session;replay;profile;profile_chunk;log_item;log_byte;monitor;trace_metric:organization";

pub fn configure(cfg: &mut web::ServiceConfig) {
    let cors = DefaultHeaders::new()
        .add((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .add((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "x-sentry-error, x-sentry-rate-limits, retry-after",
        ));
    // Before the `/api/{project_id}` scope, which would otherwise take `/api/embed/…`.
    report_dialog::configure(cfg);
    cfg.service(
        web::scope("/api/{project_id}")
            .wrap(cors)
            .service(
                ingest_resource(&["/envelope/", "/envelope"])
                    .route(web::post().to(envelope_endpoint)),
            )
            .service(ingest_resource(&["/store/", "/store"]).route(web::post().to(store_endpoint))),
    );
}

fn ingest_resource(paths: &[&str]) -> actix_web::Resource {
    web::resource(paths.to_vec())
        .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
        .default_service(web::to(method_not_allowed))
}

async fn preflight() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, content-type, \
             authentication, authorization, content-encoding, transfer-encoding",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "3600"))
        .finish()
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "{} is not allowed here: send events with POST",
        req.method()
    )))
}

async fn envelope_endpoint(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, IngestError> {
    let (project_id, header_key, body, _held) =
        authorized_body(&req, &path, payload, &state).await?;
    ingest_envelope(&req, project_id, header_key.is_some(), &body, &state).await
}

async fn store_endpoint(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, IngestError> {
    let (project_id, header_key, body, mut held) =
        authorized_body(&req, &path, payload, &state).await?;
    if is_envelope_content_type(req.headers()) {
        return ingest_envelope(&req, project_id, header_key.is_some(), &body, &state).await;
    }
    if header_key.is_none() {
        return Err(missing_key());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::malformed("request body is empty"));
    }
    let as_read = body.as_ptr();
    let body = body::decode_legacy_store_body(body, state.limits.max_decompressed_bytes)?;
    if body.as_ptr() != as_read {
        // Decoded (base64, maybe deflated) into new bytes: they count too.
        held.grow(body.len())?;
    }
    let raw = process::parse_payload(&body, &state.limits)?;
    if process::is_transaction(&raw) {
        // Old SDKs sent transactions to /store/ too; like envelope transactions, they are dropped.
        return Ok(accepted(None));
    }
    let context = EnvelopeContext {
        client_ip: client_ip(&req),
        ..Default::default()
    };
    let received_at = Utc::now();
    let event = process::normalize_parsed(raw, &context, received_at, &state.limits);
    let event_id = symbolicate_and_store(event, project_id, received_at, &state).await?;
    Ok(accepted(Some(event_id)))
}

async fn ingest_envelope(
    req: &HttpRequest,
    project_id: i64,
    authorized: bool,
    body: &[u8],
    state: &AppState,
) -> Result<HttpResponse, IngestError> {
    let envelope = envelope::parse(body).map_err(|e| IngestError::malformed(e.to_string()))?;
    if !authorized {
        // Tunnels forward the browser's envelope untouched: its `dsn` header is the only key.
        let dsn = envelope.header_str("dsn").ok_or_else(missing_key)?;
        let (key, _) = auth::key_from_dsn(dsn)?;
        state.keys.authorize(project_id, &key).await?;
    }
    // Checked before anything is stored: a refused envelope is sent again whole.
    let feedback_items = envelope
        .items
        .iter()
        .filter(|item| is_feedback(item))
        .count();
    if feedback_items > feedback::MAX_ITEMS_PER_ENVELOPE {
        return Err(IngestError::malformed(format!(
            "an envelope carries at most {} feedback items",
            feedback::MAX_ITEMS_PER_ENVELOPE
        )));
    }
    if state
        .feedback_limiter
        .take(project_id, feedback_items)
        .is_err()
    {
        return Err(IngestError::TooMuchFeedback);
    }
    let header_event_id = envelope.header_str("event_id").map(str::to_owned);
    let mut stored_id = None;
    if let Some(item) = envelope.items.iter().find(|item| item.item_type == "event") {
        let context = EnvelopeContext {
            event_id: header_event_id.clone(),
            sdk: envelope.headers.get("sdk").cloned(),
            client_ip: client_ip(req),
        };
        stored_id = Some(store_event(item.payload, project_id, context, state).await?);
    }
    for item in envelope.items.iter().filter(|item| is_feedback(item)) {
        store_feedback(item, project_id, header_event_id.as_deref(), state).await?;
    }
    // Sessions, transactions, client reports…: accepted and dropped.
    let id = stored_id.or_else(|| {
        header_event_id
            .and_then(|id| uuid::Uuid::try_parse(&id).ok())
            .map(|id| id.simple().to_string())
    });
    Ok(accepted(id))
}

fn is_feedback(item: &Item) -> bool {
    matches!(item.item_type.as_str(), "user_report" | "feedback")
}

/// Saves a `user_report` or `feedback` item at once (PROTOCOL.md §14.1–14.2). It is linked
/// to its event now if that is stored, or when it arrives.
async fn store_feedback(
    item: &Item<'_>,
    project_id: i64,
    header_event_id: Option<&str>,
    state: &AppState,
) -> Result<(), IngestError> {
    let now = Utc::now();
    let report = if item.item_type == "user_report" {
        feedback::from_user_report(project_id, item.payload, header_event_id, now)?
    } else {
        feedback::from_feedback_event(project_id, item.payload, header_event_id, now)?
    };
    store::feedback::save(&state.pool, &report).await?;
    Ok(())
}

async fn store_event(
    payload: &[u8],
    project_id: i64,
    context: EnvelopeContext,
    state: &AppState,
) -> Result<String, IngestError> {
    let received_at = Utc::now();
    let event = process::normalize_payload(payload, &context, received_at, &state.limits)?;
    symbolicate_and_store(event, project_id, received_at, state).await
}

/// Applies the project's source maps (so the event groups on its original frames), groups
/// and queues the event, and answers with its id once it is committed.
async fn symbolicate_and_store(
    mut event: NormalizedEvent,
    project_id: i64,
    received_at: chrono::DateTime<Utc>,
    state: &AppState,
) -> Result<String, IngestError> {
    state
        .source_maps
        .apply(&state.pool, project_id, &mut event.body)
        .await;
    let event = process::finish(event, project_id, received_at, &state.limits)?;
    let event_id = event.event_id.simple().to_string();
    state.pipeline.store(event).await?;
    Ok(event_id)
}

fn accepted(event_id: Option<String>) -> HttpResponse {
    metrics::counter!(
        "faultline_ingest_requests_total",
        "outcome" => "accepted",
        "reason" => if event_id.is_some() { "event" } else { "nothing_to_store" },
        "status" => "200"
    )
    .increment(1);
    let body = match event_id {
        Some(id) => json!({ "id": id }),
        None => Value::Object(Default::default()),
    };
    HttpResponse::Ok()
        .insert_header(("X-Sentry-Rate-Limits", DROPPED_CATEGORIES_LIMIT))
        .json(body)
}

fn parse_project_id(raw: &str) -> Result<i64, IngestError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        IngestError::UnknownProject(format!(
            "project {:?} does not exist",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// The project, the key when the request carries one (checked before the body is read), and
/// the decoded body.
/// The project, the key from the headers (if any) and the body, with the memory it holds of
/// the in-flight budget: kept until the request is answered.
async fn authorized_body(
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<(i64, Option<PublicKey>, Bytes, HeldMemory), IngestError> {
    let project_id = parse_project_id(path)?;
    let header_key = authorize_from_request(req, project_id, state).await?;
    let mut held = state.in_flight.share();
    let body = read_body(req, payload, state, &mut held).await?;
    Ok((project_id, header_key, body, held))
}

/// Checks the key from the headers or query string, when there is one, before reading the body.
async fn authorize_from_request(
    req: &HttpRequest,
    project_id: i64,
    state: &AppState,
) -> Result<Option<PublicKey>, IngestError> {
    let headers = req.headers();
    let key = auth::key_from_request(
        header_text(headers, "x-sentry-auth"),
        header_text(headers, "authorization"),
        req.query_string(),
    )?;
    if let Some(key) = &key {
        state.keys.authorize(project_id, key).await?;
    }
    Ok(key)
}

/// Reads and decompresses the body; `held` grows by both (the body as sent is freed once
/// decompressed, but counting it costs only some headroom).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    held: &mut HeldMemory,
) -> Result<Bytes, IngestError> {
    let encoding = ContentEncoding::parse(header_text(req.headers(), "content-encoding"))?;
    let limit = state.limits.max_decompressed_bytes;
    let raw = body::read_limited(payload, state.limits.max_body_bytes, held).await?;
    if encoding == ContentEncoding::Identity {
        return Ok(raw);
    }
    // Reserved before inflating: what the body declares it inflates to (or four times its
    // size), so a burst of bodies is refused before their memory is taken; a body that
    // inflates past that then holds the rest.
    let reserved = body::inflated_capacity(&raw, encoding, limit);
    held.grow(reserved)?;
    let body = body::decode(raw, encoding, limit)?;
    held.grow(body.len().saturating_sub(reserved))?;
    Ok(body)
}

fn missing_key() -> IngestError {
    IngestError::Unauthorized(
        "missing DSN key: send it in X-Sentry-Auth, Authorization: Sentry, ?sentry_key= or the envelope's dsn".into(),
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_envelope_content_type(headers: &HeaderMap) -> bool {
    header_text(headers, "content-type")
        .is_some_and(|t| t.starts_with("application/x-sentry-envelope"))
}

fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|addr| addr.ip().to_string())
}

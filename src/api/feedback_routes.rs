//! `/api/0/projects/{org}/{project}/user-feedback/` (alias `user-reports/`): Sentry's user
//! feedback API (PROTOCOL.md §14.4). POST takes a report from a server-side app, with a bearer
//! token or the project's DSN (`Authorization: DSN <dsn>`); GET lists the project's reports.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{auth, invalid_cursor, link_header, project_from_path, serialize, MAX_PAGE};
use crate::error::ApiError;
use crate::ingest::auth::key_from_dsn;
use crate::ingest::feedback::{self, FeedbackForm};
use crate::state::AppState;
use crate::store::feedback::{self as rows, FeedbackFilter, FeedbackSource};
use crate::store::projects::Project;

/// A report is a few kilobytes; the body limit leaves room for JSON escapes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who is posting: an operator's token, or the project's DSN.
enum Poster {
    Operator,
    Dsn,
}

pub(super) async fn create_user_feedback(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (poster, project) = authenticate(&req, &state, &path).await?;
    if matches!(poster, Poster::Dsn) && state.feedback_limiter.take(project.id, 1).is_err() {
        return Err(ApiError::TooManyRequests);
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "a report is at most {MAX_BODY_BYTES} bytes"
        )));
    }
    let form: FeedbackForm = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid report: {e}")))?;
    let checked = check(&form);
    let (event_id, fields) = match checked {
        Ok(checked) => checked,
        Err(errors) => return Ok(HttpResponse::BadRequest().json(errors)),
    };
    let report = feedback::from_form(
        project.id,
        event_id,
        fields,
        FeedbackSource::Api,
        Utc::now(),
    );
    let (id, _) = rows::save(&state.pool, &report).await?;
    Ok(match poster {
        // Sentry answers DSN-authenticated posts with an empty 200.
        Poster::Dsn => HttpResponse::Ok().finish(),
        Poster::Operator => {
            let row = rows::get(&state.pool, id).await?;
            HttpResponse::Ok().json(serialize::user_report(&row))
        }
    })
}

/// The event id and the three fields, or Sentry's `{"field": ["why"]}`.
fn check(form: &FeedbackForm) -> Result<(uuid::Uuid, (String, String, String)), Value> {
    let event_id = form
        .event_id
        .as_deref()
        .and_then(|id| feedback::parse_event_id(id, "event_id").ok());
    let fields = feedback::check_form(form);
    match (event_id, fields) {
        (Some(event_id), Ok(fields)) => Ok((event_id, fields)),
        (event_id, fields) => {
            let mut errors = serde_json::Map::new();
            if event_id.is_none() {
                errors.insert("event_id".into(), json!(["Enter a valid event id."]));
            }
            for (field, why) in fields.err().unwrap_or_default() {
                errors.insert(field.into(), json!([why]));
            }
            Err(Value::Object(errors))
        }
    }
}

/// The poster, checked before the project is looked up (an anonymous caller learns nothing
/// about which projects exist), and the project.
async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    path: &(String, String),
) -> Result<(Poster, Project), ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(dsn) = header
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case("dsn "))
        .map(|_| header[4..].trim())
    else {
        auth::user_from_token(req).await?;
        let project = project_from_path(state, &path.0, &path.1).await?;
        return Ok((Poster::Operator, project));
    };
    let refused = || ApiError::Unauthorized("this DSN is not valid for this project".into());
    let (key, dsn_project) = key_from_dsn(dsn).map_err(|_| refused())?;
    let dsn_project: i64 = dsn_project.parse().map_err(|_| refused())?;
    // The key first, then the project in the path: a made-up DSN gets 401 whether or not the
    // project exists.
    state
        .keys
        .authorize(dsn_project, &key)
        .await
        .map_err(|e| match e {
            crate::ingest::error::IngestError::Unavailable(e) => ApiError::Unavailable(e),
            _ => refused(),
        })?;
    let project = match project_from_path(state, &path.0, &path.1).await {
        Ok(project) if project.id == dsn_project => project,
        Ok(_) | Err(ApiError::NotFound(_)) => return Err(refused()),
        Err(e) => return Err(e),
    };
    Ok((Poster::Dsn, project))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FeedbackListQuery {
    #[serde(default)]
    cursor: String,
    environment: Option<String>,
    status: Option<String>,
}

pub(super) async fn list_user_feedback(
    req: HttpRequest,
    _user: auth::ApiUser,
    path: web::Path<(String, String)>,
    query: web::Query<FeedbackListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let project = project_from_path(&state, &path.0, &path.1).await?;
    let issue_status = match query.status.as_deref() {
        None => Some("unresolved"),
        Some("") => None,
        Some(status @ ("unresolved" | "resolved" | "ignored")) => Some(status),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid status {other:?}: use unresolved, resolved, ignored or nothing"
            )))
        }
    };
    let filter = FeedbackFilter {
        environment: query.environment.as_deref().filter(|e| !e.is_empty()),
        issue_status,
        linked_only: true,
    };
    let after = rows::parse_feedback_cursor(&query.cursor).map_err(invalid_cursor)?;
    let page = rows::for_project(&state.pool, project.id, &filter, after, MAX_PAGE).await?;
    let next =
        (page.len() as i64 == MAX_PAGE).then(|| rows::feedback_cursor(&page[page.len() - 1]));
    let body: Vec<Value> = page.iter().map(serialize::user_report).collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::LINK, link_header(&req, &state, next.as_deref())))
        .json(body))
}

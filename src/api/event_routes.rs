//! `/api/0/` event routes: an issue's events, one event by id.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    find_issue, invalid_cursor, link_header, project_from_path, serialize, ApiUser, MAX_PAGE,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::event_body::decompress;
use crate::store::event_reads::{self, EventChoice};

#[derive(Debug, Default, Deserialize)]
pub(super) struct EventListQuery {
    #[serde(default)]
    cursor: String,
}

pub(super) async fn list_issue_events(
    req: HttpRequest,
    _user: ApiUser,
    path: web::Path<String>,
    query: web::Query<EventListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let issue = find_issue(&state, &path).await?;
    let after = event_reads::parse_event_cursor(&query.cursor).map_err(invalid_cursor)?;
    let rows = event_reads::list_for_issue(&state.pool, issue.id, after, MAX_PAGE).await?;
    let mut body = Vec::with_capacity(rows.len());
    for row in &rows {
        body.push(serialize::event(row, &issue, false).map_err(ApiError::Internal)?);
    }
    let next =
        (rows.len() as i64 == MAX_PAGE).then(|| event_reads::event_cursor(&rows[rows.len() - 1]));
    Ok(HttpResponse::Ok()
        .insert_header((header::LINK, link_header(&req, &state, next.as_deref())))
        .json(body))
}

pub(super) async fn issue_event(
    _user: ApiUser,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let issue = find_issue(&state, &path.0).await?;
    let choice =
        EventChoice::parse(&path.1).ok_or_else(|| ApiError::NotFound("no such event".into()))?;
    let row = event_reads::find(&state.pool, issue.project_id, issue.id, choice)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such event".into()))?;
    Ok(HttpResponse::Ok().json(full_event(&state, &row, &issue).await?))
}

pub(super) async fn project_event(
    _user: ApiUser,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let project = project_from_path(&state, &path.0, &path.1).await?;
    let event_id =
        Uuid::try_parse(&path.2).map_err(|_| ApiError::NotFound("no such event".into()))?;
    let row = event_reads::find_in_project(&state.pool, project.id, event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such event".into()))?;
    let issue = find_issue(&state, &row.issue_id.to_string()).await?;
    Ok(HttpResponse::Ok().json(full_event(&state, &row, &issue).await?))
}

/// Sentry's event-id lookup: which project and issue an event belongs to, with the event.
pub(super) async fn lookup_event_id(
    _user: ApiUser,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::check_org(&state, &path.0)?;
    let not_found = || ApiError::NotFound("no such event".into());
    let event_id = Uuid::try_parse(&path.1).map_err(|_| not_found())?;
    let (project_id, project_name, _) = event_reads::locate(&state.pool, event_id)
        .await?
        .ok_or_else(not_found)?;
    let row = event_reads::find_in_project(&state.pool, project_id, event_id)
        .await?
        .ok_or_else(not_found)?;
    let issue = find_issue(&state, &row.issue_id.to_string()).await?;
    let event = full_event(&state, &row, &issue).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "organizationSlug": state.dashboard.org,
        "projectSlug": project_name,
        "groupId": issue.id.to_string(),
        "eventId": event_id.simple().to_string(),
        "event": event,
    })))
}

/// One event with its entries, its JavaScript frames mapped through the project's uploaded
/// source maps.
async fn full_event(
    state: &AppState,
    row: &event_reads::EventRow,
    issue: &crate::store::issues::IssueRow,
) -> Result<serde_json::Value, ApiError> {
    let mut body = decompress(&row.body).map_err(ApiError::Internal)?;
    state
        .source_maps
        .apply(&state.pool, row.project_id, &mut body)
        .await;
    Ok(serialize::event_with_body(row, &body, issue, true))
}

//! Changing an issue's status, and downloading an event as JSON.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::parse_id;
use crate::state::AppState;
use crate::store::event_body::decompress;
use crate::store::event_reads::{self, EventChoice};
use crate::store::issues::{self, IssueStatus};
use crate::web::auth::{CsrfForm, Operator};
use crate::web::WebError;

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    status: String,
}

pub async fn set_status(
    path: web::Path<String>,
    CsrfForm { operator, form }: CsrfForm<StatusForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let issue_id = parse_id(&path)?;
    let status = IssueStatus::parse(&form.status)
        .ok_or_else(|| WebError::BadRequest("Unknown status.".into()))?;
    if issues::set_status(&state.pool, &[issue_id], status).await? == 0 {
        return Err(WebError::NotFound);
    }
    tracing::info!(
        issue.id = issue_id,
        status = status.as_str(),
        user.id = operator.user_id,
        "issue status changed"
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/issues/{issue_id}")))
        .finish())
}

pub async fn download_event(
    _operator: Operator,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let issue_id = parse_id(&path.0)?;
    let event_id = Uuid::try_parse(&path.1).map_err(|_| WebError::NotFound)?;
    let issue = issues::get(&state.pool, issue_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let row = event_reads::find(
        &state.pool,
        issue.project_id,
        issue_id,
        EventChoice::Exact(event_id),
    )
    .await?
    .ok_or(WebError::NotFound)?;
    let body = decompress(&row.body).map_err(WebError::Internal)?;
    let pretty = serde_json::to_string_pretty(&body).map_err(|e| WebError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"event-{}.json\"", event_id.simple()),
        ))
        .body(pretty))
}

//! `/api/0/` issue routes: list with search and stats, one issue, status changes.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{
    check_org, find_issue, invalid_cursor, link_header, project_from_path, serialize, ApiUser,
    MAX_PAGE,
};
use crate::domain::period::StatsPeriod;
use crate::domain::search;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::issues::{self, IssueCursor, IssueFilter, IssueSort, IssueStatus};

#[derive(Debug, Default, Deserialize)]
pub(super) struct IssueListQuery {
    query: Option<String>,
    #[serde(rename = "statsPeriod", default)]
    stats_period: String,
    #[serde(default)]
    cursor: String,
    limit: Option<i64>,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    environment: String,
}

pub(super) async fn list_issues(
    req: HttpRequest,
    _user: ApiUser,
    path: web::Path<(String, String)>,
    query: web::Query<IssueListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let project = project_from_path(&state, &path.0, &path.1).await?;
    let mut filter = IssueFilter {
        status: None,
        project_id: Some(project.id),
        ..IssueFilter::default()
    };
    let search = search::parse(query.query.as_deref().unwrap_or("is:unresolved"));
    filter
        .apply_search(search)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    filter.sort = match query.sort.as_str() {
        "" => IssueSort::LastSeen,
        other => IssueSort::parse(other)
            .ok_or_else(|| ApiError::bad_request("sort must be date, new, freq or user"))?,
    };
    if !query.environment.is_empty() {
        filter.environment = Some(query.environment.clone());
    }
    filter.limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    filter.after = IssueCursor::decode(&query.cursor, filter.sort).map_err(invalid_cursor)?;
    let period = StatsPeriod::parse(&query.stats_period)
        .ok_or_else(|| ApiError::bad_request("statsPeriod must be 24h, 14d or empty"))?;
    let rows = issues::list(&state.pool, &filter).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let hourly = issues::hourly_counts(&state.pool, &ids, period.since(Utc::now())).await?;
    let base = state.public.base_url.trim_end_matches('/');
    let body: Vec<_> = rows
        .iter()
        .map(|r| serialize::issue(r, base, Some((period, &hourly[..]))))
        .collect();
    let next = (rows.len() as i64 == filter.limit)
        .then(|| IssueCursor::encode(&rows[rows.len() - 1], filter.sort));
    Ok(HttpResponse::Ok()
        .insert_header((header::LINK, link_header(&req, &state, next.as_deref())))
        .json(body))
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusUpdate {
    status: Option<String>,
}

pub(super) async fn bulk_update_issues(
    req: HttpRequest,
    _user: ApiUser,
    path: web::Path<(String, String)>,
    body: web::Json<StatusUpdate>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let project = project_from_path(&state, &path.0, &path.1).await?;
    let status = requested_status(&body)?;
    let (ids, status_filter) = bulk_selection(req.query_string())?;
    let selection = if ids.is_empty() {
        // No ids: every issue of the project (with the given status, when one is named).
        issues::Selection::All {
            status: status_filter,
        }
    } else {
        issues::Selection::Ids(&ids)
    };
    issues::set_status_in_project(&state.pool, project.id, selection, status).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"status": status.as_str(), "statusDetails": {}, "isPublic": false})))
}

/// `?id=1&id=2&status=unresolved`: the issues to update, or the status to select them by.
fn bulk_selection(query: &str) -> Result<(Vec<i64>, Option<IssueStatus>), ApiError> {
    let mut ids = Vec::new();
    let mut status = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("id", id)) => ids.push(
                id.parse()
                    .map_err(|_| ApiError::bad_request("id must be an issue number"))?,
            ),
            Some(("status", s)) => {
                status = Some(
                    IssueStatus::parse(s).ok_or_else(|| ApiError::bad_request("unknown status"))?,
                )
            }
            _ => {}
        }
    }
    Ok((ids, status))
}

fn requested_status(body: &StatusUpdate) -> Result<IssueStatus, ApiError> {
    let status = body
        .status
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("the body must name a status"))?;
    match status {
        "resolvedInNextRelease" => Ok(IssueStatus::Resolved),
        other => IssueStatus::parse(other)
            .ok_or_else(|| ApiError::bad_request("status must be resolved, unresolved or ignored")),
    }
}

pub(super) async fn get_issue(
    _user: ApiUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    issue_detail(&state, &path).await
}

pub(super) async fn get_org_issue(
    _user: ApiUser,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_org(&state, &path.0)?;
    issue_detail(&state, &path.1).await
}

async fn issue_detail(state: &AppState, raw_id: &str) -> Result<HttpResponse, ApiError> {
    let issue = find_issue(state, raw_id).await?;
    let since = Utc::now() - Duration::hours(24);
    let hourly = issues::hourly_counts(&state.pool, &[issue.id], since).await?;
    let tags = issues::top_tag_values(&state.pool, issue.id, 10).await?;
    let releases = issues::first_and_last_release(&state.pool, issue.id).await?;
    let base = state.public.base_url.trim_end_matches('/');
    Ok(HttpResponse::Ok().json(serialize::issue_detail(
        &issue, base, &hourly, &tags, releases,
    )))
}

pub(super) async fn update_issue(
    _user: ApiUser,
    path: web::Path<String>,
    body: web::Json<StatusUpdate>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    update(&state, &path, &body).await
}

pub(super) async fn update_org_issue(
    _user: ApiUser,
    path: web::Path<(String, String)>,
    body: web::Json<StatusUpdate>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_org(&state, &path.0)?;
    update(&state, &path.1, &body).await
}

async fn update(
    state: &AppState,
    raw_id: &str,
    body: &StatusUpdate,
) -> Result<HttpResponse, ApiError> {
    let issue = find_issue(state, raw_id).await?;
    let status = requested_status(body)?;
    issues::set_status(&state.pool, &[issue.id], status).await?;
    let updated = find_issue(state, raw_id).await?;
    let base = state.public.base_url.trim_end_matches('/');
    Ok(HttpResponse::Ok().json(serialize::issue(&updated, base, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_selection_reads_repeated_ids() {
        assert_eq!(bulk_selection("id=1&id=22").unwrap(), (vec![1, 22], None));
        assert_eq!(
            bulk_selection("status=unresolved").unwrap(),
            (vec![], Some(IssueStatus::Unresolved))
        );
        assert!(bulk_selection("id=x").is_err());
    }
}

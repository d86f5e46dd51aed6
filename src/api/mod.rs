//! A Sentry-shaped JSON API under `/api/0/` for tools such as sentry-cli (PROTOCOL.md §12),
//! authenticated with bearer tokens (`faultline token create EMAIL`).

mod auth;
mod serialize;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

pub use auth::ApiUser;

use crate::domain::cursor::InvalidCursor;
use crate::domain::period::StatsPeriod;
use crate::domain::search;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::event_reads::{self, EventChoice};
use crate::store::issues::{self, IssueCursor, IssueFilter, IssueSort, IssueStatus};
use crate::store::projects::{self, Project};

const MAX_PAGE: i64 = 100;

/// Registers the API's routes and lists them in [`API_ROUTES`] for the access tests.
macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// `(method, path)` of every API route; all require a bearer token.
        pub const API_ROUTES: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }
    };
}

api_routes! {
    get "/api/0/" => index,
    get "/api/0/organizations/{org}/projects/" => list_projects,
    get "/api/0/projects/{org}/{project}/issues/" => list_issues,
    put "/api/0/projects/{org}/{project}/issues/" => bulk_update_issues,
    get "/api/0/projects/{org}/{project}/events/{event_id}/" => project_event,
    get "/api/0/issues/{issue_id}/" => get_issue,
    put "/api/0/issues/{issue_id}/" => update_issue,
    get "/api/0/organizations/{org}/issues/{issue_id}/" => get_org_issue,
    put "/api/0/organizations/{org}/issues/{issue_id}/" => update_org_issue,
    get "/api/0/issues/{issue_id}/events/" => list_issue_events,
    get "/api/0/issues/{issue_id}/events/{event_id}/" => issue_event,
}

async fn index(user: ApiUser) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": "0",
        "auth": {"scopes": ["project:read", "project:write", "event:read", "event:write", "org:read"]},
        "user": {"id": user.user_id.to_string(), "username": user.email, "email": user.email, "name": user.email},
    }))
}

async fn list_projects(
    _user: ApiUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_org(&state, &path)?;
    let projects = projects::list(&state.pool).await?;
    let body: Vec<_> = projects
        .iter()
        .map(|p| serialize::project_ref(p.id, &p.name))
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Default, Deserialize)]
struct IssueListQuery {
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

async fn list_issues(
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

fn link_header(req: &HttpRequest, state: &AppState, next: Option<&str>) -> String {
    let base = state.public.base_url.trim_end_matches('/');
    let url = |cursor: &str| {
        let others: Vec<&str> = req
            .query_string()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
            .collect();
        let mut query = others.join("&");
        if !query.is_empty() {
            query.push('&');
        }
        format!("{base}{}?{query}cursor={cursor}", req.path())
    };
    let previous = format!(
        "<{}>; rel=\"previous\"; results=\"false\"; cursor=\"0:0:1\"",
        url("0:0:1")
    );
    let next = match next {
        Some(cursor) => format!(
            "<{}>; rel=\"next\"; results=\"true\"; cursor=\"{cursor}\"",
            url(cursor)
        ),
        None => format!(
            "<{}>; rel=\"next\"; results=\"false\"; cursor=\"0:0:0\"",
            url("0:0:0")
        ),
    };
    format!("{previous}, {next}")
}

#[derive(Debug, Deserialize)]
struct StatusUpdate {
    status: Option<String>,
}

async fn bulk_update_issues(
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

async fn get_issue(
    _user: ApiUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    issue_detail(&state, &path).await
}

async fn get_org_issue(
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

async fn update_issue(
    _user: ApiUser,
    path: web::Path<String>,
    body: web::Json<StatusUpdate>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    update(&state, &path, &body).await
}

async fn update_org_issue(
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

#[derive(Debug, Default, Deserialize)]
struct EventListQuery {
    #[serde(default)]
    cursor: String,
}

async fn list_issue_events(
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

async fn issue_event(
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
    Ok(HttpResponse::Ok().json(serialize::event(&row, &issue, true).map_err(ApiError::Internal)?))
}

async fn project_event(
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
    Ok(HttpResponse::Ok().json(serialize::event(&row, &issue, true).map_err(ApiError::Internal)?))
}

fn check_org(state: &AppState, org: &str) -> Result<(), ApiError> {
    if org == state.dashboard.org {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "organization {org:?} does not exist"
        )))
    }
}

async fn project_from_path(state: &AppState, org: &str, slug: &str) -> Result<Project, ApiError> {
    check_org(state, org)?;
    let found = match slug.parse::<i64>() {
        Ok(id) => projects::find(&state.pool, id).await,
        Err(_) => projects::find_by_name(&state.pool, slug).await,
    };
    found?.ok_or_else(|| ApiError::NotFound(format!("project {slug:?} does not exist")))
}

async fn find_issue(state: &AppState, raw_id: &str) -> Result<issues::IssueRow, ApiError> {
    let not_found = || ApiError::NotFound("no such issue".into());
    let id: i64 = raw_id.parse().map_err(|_| not_found())?;
    issues::get(&state.pool, id).await?.ok_or_else(not_found)
}

fn invalid_cursor(_: InvalidCursor) -> ApiError {
    ApiError::bad_request("invalid cursor")
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

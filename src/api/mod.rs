//! A Sentry-shaped JSON API under `/api/0/` for tools such as sentry-cli (PROTOCOL.md §12),
//! authenticated with bearer tokens (`faultline token create EMAIL`).

mod artifact_routes;
mod auth;
mod event_routes;
mod feedback_routes;
mod issue_routes;
mod serialize;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

pub use auth::ApiUser;

use crate::domain::cursor::InvalidCursor;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::issues::{self, IssueRow};
use crate::store::projects::{self, Project};

const MAX_PAGE: i64 = 100;

/// Where the API's routes live; each path below starts with it.
const API_PREFIX: &str = "/api/0";

/// Registers the API's routes and lists them in [`API_ROUTES`] for the access tests.
macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// `(method, path)` of every API route; all require a bearer token.
        pub const API_ROUTES: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];

        /// One scope: a request outside `/api/0` (every event an SDK sends) is turned away by
        /// one prefix check instead of trying each route's pattern.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            let mut scope = web::scope(API_PREFIX);
            $( scope = scope.route(&$path[API_PREFIX.len()..], web::$method().to($handler)); )*
            cfg.service(scope);
        }
    };
}

api_routes! {
    get "/api/0/" => index,
    get "/api/0/organizations/{org}/projects/" => list_projects,
    get "/api/0/projects/{org}/{project}/issues/" => issue_routes::list_issues,
    put "/api/0/projects/{org}/{project}/issues/" => issue_routes::bulk_update_issues,
    get "/api/0/projects/{org}/{project}/events/{event_id}/" => event_routes::project_event,
    get "/api/0/issues/{issue_id}/" => issue_routes::get_issue,
    put "/api/0/issues/{issue_id}/" => issue_routes::update_issue,
    get "/api/0/organizations/{org}/eventids/{event_id}/" => event_routes::lookup_event_id,
    get "/api/0/organizations/{org}/issues/{issue_id}/" => issue_routes::get_org_issue,
    put "/api/0/organizations/{org}/issues/{issue_id}/" => issue_routes::update_org_issue,
    get "/api/0/issues/{issue_id}/events/" => event_routes::list_issue_events,
    get "/api/0/issues/{issue_id}/events/{event_id}/" => event_routes::issue_event,
    get "/api/0/projects/{org}/{project}/user-feedback/" => feedback_routes::list_user_feedback,
    post "/api/0/projects/{org}/{project}/user-feedback/" => feedback_routes::create_user_feedback,
    get "/api/0/projects/{org}/{project}/user-reports/" => feedback_routes::list_user_feedback,
    post "/api/0/projects/{org}/{project}/user-reports/" => feedback_routes::create_user_feedback,
    get "/api/0/organizations/{org}/chunk-upload/" => artifact_routes::chunk_upload_options,
    post "/api/0/organizations/{org}/chunk-upload/" => artifact_routes::upload_chunks,
    post "/api/0/organizations/{org}/artifactbundle/assemble/" => artifact_routes::assemble_bundle,
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

/// Sentry's paging `Link` header, with the next page's cursor when there is one.
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

async fn find_issue(state: &AppState, raw_id: &str) -> Result<IssueRow, ApiError> {
    let not_found = || ApiError::NotFound("no such issue".into());
    let id: i64 = raw_id.parse().map_err(|_| not_found())?;
    issues::get(&state.pool, id).await?.ok_or_else(not_found)
}

fn invalid_cursor(_: InvalidCursor) -> ApiError {
    ApiError::bad_request("invalid cursor")
}

//! User feedback on the dashboard: the per-project list page, and the items the issue page
//! shows. Text is the people's own: the templates escape it like all event data.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::state::AppState;
use crate::store::feedback::{self, FeedbackRow, FeedbackSource};
use crate::store::projects;
use crate::web::auth::Operator;
use crate::web::view::{exact_time, html, relative_time, Layout};
use crate::web::WebError;

const PAGE_SIZE: i64 = 50;

/// One report, as text.
pub struct FeedbackItem {
    pub name: String,
    pub email: String,
    pub comments: String,
    pub received: String,
    pub received_exact: String,
    pub source: &'static str,
    pub environment: String,
    pub event_id: String,
    /// The event's page, once the event is stored.
    pub event_url: Option<String>,
    /// `(id, title)` of the issue, once linked.
    pub issue: Option<(i64, String)>,
    pub page_url: String,
}

pub fn feedback_item(row: FeedbackRow, now: DateTime<Utc>) -> FeedbackItem {
    let event_id = row.event_id.map(|id| id.simple().to_string());
    FeedbackItem {
        event_url: match (row.issue_id, &event_id) {
            (Some(issue), Some(event)) => Some(format!("/issues/{issue}/events/{event}#event")),
            _ => None,
        },
        issue: row
            .issue_id
            .map(|id| (id, row.issue_title.unwrap_or_default())),
        event_id: event_id.unwrap_or_default(),
        name: row.name,
        email: row.email,
        comments: row.comments,
        received: relative_time(row.received_at, now),
        received_exact: exact_time(row.received_at),
        source: FeedbackSource::label(&row.source),
        environment: row.environment.unwrap_or_default(),
        page_url: row.url.unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "feedback/list.html")]
struct FeedbackPage {
    layout: Layout,
    project_id: i64,
    project_name: String,
    feedback: Vec<FeedbackItem>,
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FeedbackQuery {
    #[serde(default)]
    cursor: String,
}

/// `/projects/{id}/feedback`: every report of a project, newest first.
pub async fn list(
    operator: Operator,
    path: web::Path<String>,
    query: web::Query<FeedbackQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let project_id: i64 = path.parse().map_err(|_| WebError::NotFound)?;
    let project = projects::find(&state.pool, project_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let after = feedback::parse_feedback_cursor(&query.cursor)
        .map_err(|_| WebError::BadRequest("invalid cursor".into()))?;
    let rows = feedback::for_project(
        &state.pool,
        project_id,
        &Default::default(),
        after,
        PAGE_SIZE,
    )
    .await?;
    let next = (rows.len() as i64 == PAGE_SIZE).then(|| {
        format!(
            "/projects/{project_id}/feedback?cursor={}",
            feedback::feedback_cursor(&rows[rows.len() - 1])
        )
    });
    html(
        FeedbackPage {
            layout: Layout::new(&operator, "projects"),
            project_id,
            project_name: project.name,
            feedback: rows
                .into_iter()
                .map(|row| feedback_item(row, Utc::now()))
                .collect(),
            next,
        }
        .render(),
    )
}

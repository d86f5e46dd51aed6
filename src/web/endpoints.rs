//! The Endpoints page: which of the applications' requests fail, per project, by method +
//! route (+ response status), with events, issues, users, last seen, a 24-hour sparkline and
//! the top issues, from the aggregates the writer keeps (`store::endpoints`).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{Duration, Utc};
use serde::Deserialize;

use crate::domain::period::Bucket;
use crate::state::AppState;
use crate::store::endpoints::{self, EndpointFilter, EndpointKey};
use crate::store::issues::FilterKey;
use crate::web::auth::Operator;
use crate::web::errors::urlencode;
use crate::web::issues::{options, project_options, value_options, SelectOption};
use crate::web::view::{bar_chart, exact_time, html, relative_time, short_count, BarChart, Layout};
use crate::web::WebError;

/// Endpoints listed; the busiest first.
const SHOWN: i64 = 50;
/// Top issues named per endpoint.
const TOP_ISSUES: usize = 3;
/// `(value in the URL, label, hours)`; the first is the default.
const PERIODS: &[(&str, &str, i64)] = &[
    ("", "Last 24 hours", 24),
    ("7d", "Last 7 days", 24 * 7),
    ("30d", "Last 30 days", 24 * 30),
];

#[derive(Debug, Default, Deserialize)]
pub struct EndpointsQuery {
    #[serde(default)]
    project: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    period: String,
}

pub struct EndpointItem {
    pub project_name: String,
    pub endpoint: String,
    pub events: String,
    pub issues: i64,
    pub users: String,
    pub last_seen: String,
    pub last_seen_exact: String,
    pub spark: BarChart,
    /// `(issue id, title, events on this endpoint)`.
    pub top_issues: Vec<(i64, String, String)>,
    /// The issue list, filtered to this endpoint.
    pub issues_url: String,
}

#[derive(Template)]
#[template(path = "endpoints.html")]
struct EndpointsPage {
    layout: Layout,
    items: Vec<EndpointItem>,
    projects: Vec<SelectOption>,
    environments: Vec<SelectOption>,
    periods: Vec<SelectOption>,
}

pub async fn list(
    operator: Operator,
    query: web::Query<EndpointsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let bad = |what: &str| WebError::BadRequest(format!("The {what} filter is not valid."));
    let project_id = match query.project.as_str() {
        "" => None,
        other => Some(other.parse().map_err(|_| bad("project"))?),
    };
    let hours = PERIODS
        .iter()
        .find(|(value, ..)| *value == query.period)
        .map(|(.., hours)| *hours)
        .ok_or_else(|| bad("period"))?;
    let now = Utc::now();
    let filter = EndpointFilter {
        project_id,
        environment: Some(query.environment.trim()).filter(|e| !e.is_empty()),
        since: now - Duration::hours(hours),
        limit: SHOWN,
    };
    let items = endpoint_items(&state, &filter, now).await?;
    html(
        EndpointsPage {
            layout: Layout::new(&operator, "endpoints"),
            items,
            projects: project_options(&state, &query.project).await?,
            environments: value_options(
                &state,
                FilterKey::Environment,
                &query.environment,
                "Any environment",
            )
            .await?,
            periods: options(
                &query.period,
                PERIODS
                    .iter()
                    .map(|(value, label, _)| (value.to_string(), label.to_string())),
            ),
        }
        .render(),
    )
}

async fn endpoint_items(
    state: &AppState,
    filter: &EndpointFilter<'_>,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<EndpointItem>, WebError> {
    let rows = endpoints::busiest(&state.pool, filter).await?;
    let keys: Vec<EndpointKey> = rows
        .iter()
        .map(|r| (r.project_id, r.endpoint.clone()))
        .collect();
    let mut issues: HashMap<EndpointKey, Vec<endpoints::EndpointIssue>> = HashMap::new();
    for issue in endpoints::issues(&state.pool, &keys, filter).await? {
        issues
            .entry((issue.project_id, issue.endpoint.clone()))
            .or_default()
            .push(issue);
    }
    let users = endpoints::users(&state.pool, &keys, filter).await?;
    let mut hourly: HashMap<EndpointKey, Vec<(chrono::DateTime<Utc>, i64)>> = HashMap::new();
    let day_ago = now - Duration::hours(24);
    for (project, endpoint, hour, count) in
        endpoints::hourly(&state.pool, &keys, filter.environment, day_ago).await?
    {
        hourly
            .entry((project, endpoint))
            .or_default()
            .push((hour, count));
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = (row.project_id, row.endpoint.clone());
            let own = issues.remove(&key).unwrap_or_default();
            let spark_counts = hourly.remove(&key).unwrap_or_default();
            EndpointItem {
                issues_url: issues_url(row.project_id, &row.endpoint, filter.environment),
                issues: own.len() as i64,
                top_issues: own
                    .into_iter()
                    .take(TOP_ISSUES)
                    .map(|i| (i.issue_id, i.title, short_count(i.events)))
                    .collect(),
                users: short_count(users.get(&key).copied().unwrap_or(0)),
                events: short_count(row.events),
                last_seen: relative_time(row.last_seen, now),
                last_seen_exact: exact_time(row.last_seen),
                spark: bar_chart(&spark_counts, Bucket::Hour, 24, now, 120.0, 28.0),
                project_name: row.project_name,
                endpoint: row.endpoint,
            }
        })
        .collect())
}

/// The issue list of every status, narrowed to the issues that failed on this endpoint.
fn issues_url(project_id: i64, endpoint: &str, environment: Option<&str>) -> String {
    let mut url = format!(
        "/?status=all&project={project_id}&endpoint={}",
        urlencode(endpoint)
    );
    if let Some(environment) = environment {
        url.push_str(&format!("&environment={}", urlencode(environment)));
    }
    url
}

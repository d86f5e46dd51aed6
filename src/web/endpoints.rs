//! The Endpoints page: which of the applications' requests fail, per project, by method +
//! route (+ response status), with events, issues, users, last seen, a 24-hour sparkline and
//! the top issues, from the aggregates the writer keeps (`store::endpoints`).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
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
const TOP_ISSUES: i64 = 3;
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

/// `(issue id, title, events on this endpoint)`.
pub type TopIssue = (i64, String, String);

pub struct EndpointItem {
    pub project_name: String,
    pub endpoint: String,
    pub events: String,
    pub issues: i64,
    pub users: String,
    pub last_seen: String,
    pub last_seen_exact: String,
    pub spark: BarChart,
    pub top_issues: Vec<TopIssue>,
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
    now: DateTime<Utc>,
) -> Result<Vec<EndpointItem>, WebError> {
    let rows = endpoints::busiest(&state.pool, filter).await?;
    let keys: Vec<EndpointKey> = rows
        .iter()
        .map(|r| (r.project_id, r.endpoint.clone()))
        .collect();
    // Three independent reads of the listed endpoints, on three connections at once.
    let (top, users, hourly) = tokio::try_join!(
        endpoints::top_issues(&state.pool, &keys, filter, TOP_ISSUES),
        endpoints::users(&state.pool, &keys, filter),
        endpoints::hourly(
            &state.pool,
            &keys,
            filter.environment,
            now - Duration::hours(24)
        ),
    )?;
    let ids: Vec<i64> = top.iter().map(|i| i.issue_id).collect();
    let titles = endpoints::titles(&state.pool, &ids).await?;
    let mut issues: HashMap<EndpointKey, (i64, Vec<TopIssue>)> = HashMap::new();
    for issue in top {
        let entry = issues
            .entry((issue.project_id, issue.endpoint))
            .or_default();
        entry.0 = issue.issues;
        let title = titles.get(&issue.issue_id).cloned().unwrap_or_default();
        entry
            .1
            .push((issue.issue_id, title, short_count(issue.events)));
    }
    let mut sparks: HashMap<EndpointKey, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for (project, endpoint, hour, count) in hourly {
        sparks
            .entry((project, endpoint))
            .or_default()
            .push((hour, count));
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = (row.project_id, row.endpoint.clone());
            let (issue_count, top_issues) = issues.remove(&key).unwrap_or_default();
            let spark_counts = sparks.remove(&key).unwrap_or_default();
            EndpointItem {
                issues_url: issues_url(row.project_id, &row.endpoint, filter.environment),
                issues: issue_count,
                top_issues,
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

//! The issue list (home): filters in the URL, keyset pages, counts and sparklines.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{issue_item, IssueItem};
use crate::domain::event_shape::tag;
use crate::domain::period::StatsPeriod;
use crate::domain::search::{self, MIN_STACK_SEARCH_CHARS};
use crate::state::AppState;
use crate::store::issues::{
    self, FilterKey, IssueCursor, IssueFilter, IssueRow, IssueSort, IssueStatus,
};
use crate::store::projects;
use crate::store::{event_reads, feedback};
use crate::web::auth::Operator;
use crate::web::errors::urlencode;
use crate::web::view::{bar_chart, html, Layout};
use crate::web::WebError;

const PAGE_SIZE: i64 = 25;
/// The list's heading counts matching issues up to this many, then says "1000+".
const COUNT_UP_TO: i64 = 1000;

/// The list's filters, exactly as they appear in the URL so a view can be shared.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    project: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    release: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    unhandled: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    cursor: String,
    /// From the Endpoints page: issues that failed on this request (`POST /orders/{id} → 500`).
    #[serde(default)]
    endpoint: String,
}

impl ListQuery {
    fn to_filter(&self) -> Result<IssueFilter, WebError> {
        let bad = |what: &str| WebError::BadRequest(format!("The {what} filter is not valid."));
        let status = match self.status.as_str() {
            "" => Some(IssueStatus::Unresolved),
            "all" => None,
            other => Some(IssueStatus::parse(other).ok_or_else(|| bad("status"))?),
        };
        let sort = match self.sort.as_str() {
            "" => IssueSort::LastSeen,
            other => IssueSort::parse(other).ok_or_else(|| bad("sort"))?,
        };
        let project_id = match self.project.as_str() {
            "" => None,
            other => Some(other.parse().map_err(|_| bad("project"))?),
        };
        let mut filter = IssueFilter {
            project_id,
            status,
            level: non_empty(&self.level),
            environment: non_empty(&self.environment),
            release: non_empty(&self.release),
            text: None,
            tag: None,
            unhandled_only: !self.unhandled.is_empty(),
            sort,
            after: IssueCursor::decode(&self.cursor, sort).map_err(|_| bad("cursor"))?,
            limit: PAGE_SIZE,
        };
        if let Some(endpoint) = non_empty(&self.endpoint) {
            filter.tag = Some((tag::REQUEST.to_owned(), endpoint));
        }
        // What the search box says wins over the drop-downs.
        filter
            .apply_search(search::parse(&self.query))
            .map_err(|e| WebError::BadRequest(format!("The search has an {e}.")))?;
        Ok(filter)
    }

    /// This view's first page.
    fn first_page_url(&self) -> String {
        self.url_with_cursor("")
            .trim_end_matches("cursor=")
            .trim_end_matches('&')
            .to_owned()
    }

    /// This view's URL with another cursor.
    fn url_with_cursor(&self, cursor: &str) -> String {
        let pairs = [
            ("project", &self.project),
            ("status", &self.status),
            ("level", &self.level),
            ("environment", &self.environment),
            ("release", &self.release),
            ("query", &self.query),
            ("unhandled", &self.unhandled),
            ("sort", &self.sort),
            ("period", &self.period),
            ("endpoint", &self.endpoint),
        ];
        let mut url = String::from("/?");
        for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            url.push_str(&format!("{key}={}&", urlencode(value)));
        }
        url.push_str(&format!("cursor={}", urlencode(cursor)));
        url
    }
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub fn options(
    current: &str,
    choices: impl IntoIterator<Item = (String, String)>,
) -> Vec<SelectOption> {
    choices
        .into_iter()
        .map(|(value, label)| SelectOption {
            selected: value == current,
            value,
            label,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "issues/list.html")]
struct ListPage {
    layout: Layout,
    items: Vec<IssueItem>,
    total: String,
    next_url: Option<String>,
    first_url: Option<String>,
    query: String,
    /// The endpoint the list is narrowed to, if any, and the same view without it.
    endpoint: Option<(String, String)>,
    unhandled: bool,
    choices: Choices,
    period_label: &'static str,
    /// Said when the search was an event id that no event has.
    notice: Option<String>,
}

pub async fn list(
    operator: Operator,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    // An event id pasted into the search box (from a user's 500 page) opens that event.
    let mut notice = None;
    if let Ok(event_id) = uuid::Uuid::try_parse(query.query.trim()) {
        match event_reads::locate(&state.pool, event_id).await? {
            Some((_, _, issue_id)) => {
                return Ok(HttpResponse::SeeOther()
                    .insert_header((
                        actix_web::http::header::LOCATION,
                        format!("/issues/{issue_id}/events/{}", event_id.simple()),
                    ))
                    .finish())
            }
            None => notice = Some(format!("No event has the id {}.", event_id.simple())),
        }
    }
    let filter = query.to_filter()?;
    if let Some(text) = filter.text.as_deref() {
        if notice.is_none() && !search::searches_stack_traces(text) {
            notice = Some(format!(
                "“{}” is shorter than {MIN_STACK_SEARCH_CHARS} characters: only titles and \
                 culprits were searched, not stack traces.",
                text.trim()
            ));
        }
    }
    // The page and its heading's count, on two connections at once.
    let (rows, counted) = tokio::try_join!(
        issues::list(&state.pool, &filter),
        issues::count(&state.pool, &filter, COUNT_UP_TO)
    )?;
    let total = if counted > COUNT_UP_TO {
        format!("{COUNT_UP_TO}+")
    } else {
        counted.to_string()
    };
    let period = StatsPeriod::parse(&query.period).unwrap_or_default();
    let now = Utc::now();
    let items = list_items(&state, &rows, period, now).await?;
    let next_url = (rows.len() as i64 == PAGE_SIZE)
        .then(|| query.url_with_cursor(&IssueCursor::encode(&rows[rows.len() - 1], filter.sort)));
    let first_url = (!query.cursor.is_empty()).then(|| query.first_page_url());
    let page = ListPage {
        layout: Layout::new(&operator, "issues"),
        items,
        total,
        next_url,
        first_url,
        query: query.query.clone(),
        endpoint: non_empty(&query.endpoint).map(|endpoint| {
            let without = ListQuery {
                endpoint: String::new(),
                cursor: String::new(),
                ..query.0.clone()
            };
            (endpoint, without.first_page_url())
        }),
        unhandled: filter.unhandled_only,
        choices: Choices::for_query(&query, &state).await?,
        period_label: match period {
            StatsPeriod::Day => "24 hours",
            StatsPeriod::TwoWeeks => "14 days",
        },
        notice,
    };
    html(page.render())
}

/// The list's rows, each with its sparkline over the period.
async fn list_items(
    state: &AppState,
    rows: &[IssueRow],
    period: StatsPeriod,
    now: DateTime<Utc>,
) -> Result<Vec<IssueItem>, WebError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let hourly = issues::hourly_counts(&state.pool, &ids, period.since(now)).await?;
    let feedback = feedback::counts_for_issues(&state.pool, &ids).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let counts: Vec<(DateTime<Utc>, i64)> = hourly
                .iter()
                .filter(|h| h.0 == row.id)
                .map(|h| (h.1, h.2))
                .collect();
            let spark = bar_chart(&counts, period.bucket(), period.buckets(), now, 120.0, 28.0);
            IssueItem {
                feedback: feedback.get(&row.id).copied().unwrap_or(0),
                ..issue_item(row, spark, now)
            }
        })
        .collect())
}

/// The filter drop-downs, with the current view's choice selected.
pub struct Choices {
    pub projects: Vec<SelectOption>,
    pub statuses: Vec<SelectOption>,
    pub levels: Vec<SelectOption>,
    pub environments: Vec<SelectOption>,
    pub releases: Vec<SelectOption>,
    pub sorts: Vec<SelectOption>,
    pub periods: Vec<SelectOption>,
}

impl Choices {
    async fn for_query(query: &ListQuery, state: &AppState) -> Result<Self, WebError> {
        Ok(Choices {
            projects: project_options(state, &query.project).await?,
            statuses: options(
                &query.status,
                [
                    ("", "Unresolved"),
                    ("resolved", "Resolved"),
                    ("ignored", "Ignored"),
                    ("all", "All statuses"),
                ]
                .map(pair),
            ),
            levels: options(
                &query.level,
                [
                    ("", "Any level"),
                    ("fatal", "Fatal"),
                    ("error", "Error"),
                    ("warning", "Warning"),
                    ("info", "Info"),
                    ("debug", "Debug"),
                ]
                .map(pair),
            ),
            environments: value_options(
                state,
                FilterKey::Environment,
                &query.environment,
                "Any environment",
            )
            .await?,
            releases: value_options(state, FilterKey::Release, &query.release, "Any release")
                .await?,
            sorts: options(
                &query.sort,
                [
                    ("", "Last seen"),
                    ("first_seen", "First seen"),
                    ("events", "Events"),
                    ("users", "Users"),
                ]
                .map(pair),
            ),
            periods: options(
                &query.period,
                [("", "24 hours"), ("14d", "14 days")].map(pair),
            ),
        })
    }
}

fn pair((value, label): (&str, &str)) -> (String, String) {
    (value.to_owned(), label.to_owned())
}

pub async fn project_options(
    state: &AppState,
    current: &str,
) -> Result<Vec<SelectOption>, WebError> {
    let mut choices = vec![(String::new(), "All projects".to_owned())];
    for project in projects::list(&state.pool).await? {
        choices.push((project.id.to_string(), project.name));
    }
    Ok(options(current, choices))
}

pub async fn value_options(
    state: &AppState,
    key: FilterKey,
    current: &str,
    any: &str,
) -> Result<Vec<SelectOption>, WebError> {
    let mut choices = vec![(String::new(), any.to_owned())];
    let mut values = state.filter_values.get(&state.pool, key).await?;
    if !current.is_empty() && !values.iter().any(|v| v == current) {
        values.push(current.to_owned());
    }
    choices.extend(values.into_iter().map(|v| (v.clone(), v)));
    Ok(options(current, choices))
}

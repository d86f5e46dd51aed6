//! The issue list (home): filters in the URL, keyset pages, counts and sparklines.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{issue_item, IssueItem};
use crate::state::AppState;
use crate::store::issues::{
    self, CursorValue, FilterKey, IssueCursor, IssueFilter, IssueRow, IssueSort, IssueStatus,
};
use crate::store::projects;
use crate::web::auth::Operator;
use crate::web::errors::urlencode;
use crate::web::view::{bar_chart, html, Bucket, Layout};
use crate::web::WebError;

const PAGE_SIZE: i64 = 25;
/// The list's heading counts matching issues up to this many, then says "1000+".
const COUNT_UP_TO: i64 = 1000;

/// The list's filters, exactly as they appear in the URL so a view can be shared.
#[derive(Debug, Default, Deserialize)]
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
        let (text, tag) = split_query(&self.query);
        Ok(IssueFilter {
            project_id,
            status,
            level: non_empty(&self.level),
            environment: non_empty(&self.environment),
            release: non_empty(&self.release),
            text,
            tag,
            unhandled_only: !self.unhandled.is_empty(),
            sort,
            after: parse_cursor(&self.cursor, sort).map_err(|_| bad("cursor"))?,
            limit: PAGE_SIZE,
        })
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

/// `key:value` words of the search box filter by tag; the other words search titles.
fn split_query(query: &str) -> (Option<String>, Option<(String, String)>) {
    let mut words = Vec::new();
    let mut tag = None;
    for word in query.split_whitespace() {
        match word.split_once(':') {
            Some((key, value))
                if tag.is_none()
                    && !key.is_empty()
                    && !value.is_empty()
                    && !value.starts_with("//") =>
            {
                tag = Some((key.to_owned(), value.to_owned()));
            }
            _ => words.push(word),
        }
    }
    let text = words.join(" ");
    ((!text.is_empty()).then_some(text), tag)
}

/// The list's cursor in URLs: `<value>_<id>` (see [`IssueCursor`]).
fn parse_cursor(cursor: &str, sort: IssueSort) -> Result<Option<(CursorValue, i64)>, ()> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let (value, id) = cursor.split_once('_').ok_or(())?;
    let cursor = IssueCursor {
        value: value.parse().map_err(|_| ())?,
        id: id.parse().map_err(|_| ())?,
    };
    cursor.bound(sort).map(Some).ok_or(())
}

fn cursor_of(row: &IssueRow, sort: IssueSort) -> String {
    let cursor = IssueCursor::after(row, sort);
    format!("{}_{}", cursor.value, cursor.id)
}

pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn options(
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
    unhandled: bool,
    projects: Vec<SelectOption>,
    statuses: Vec<SelectOption>,
    levels: Vec<SelectOption>,
    environments: Vec<SelectOption>,
    releases: Vec<SelectOption>,
    sorts: Vec<SelectOption>,
    periods: Vec<SelectOption>,
    period_label: &'static str,
}

pub async fn list(
    operator: Operator,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let filter = query.to_filter()?;
    let rows = issues::list(&state.pool, &filter).await?;
    let counted = issues::count(&state.pool, &filter, COUNT_UP_TO).await?;
    let total = if counted > COUNT_UP_TO {
        format!("{COUNT_UP_TO}+")
    } else {
        counted.to_string()
    };
    let daily = query.period == "14d";
    let now = Utc::now();
    let since = now
        - if daily {
            Duration::days(14)
        } else {
            Duration::hours(24)
        };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let hourly = issues::hourly_counts(&state.pool, &ids, since).await?;
    let items = rows
        .iter()
        .map(|row| {
            let counts: Vec<(DateTime<Utc>, i64)> = hourly
                .iter()
                .filter(|h| h.0 == row.id)
                .map(|h| (h.1, h.2))
                .collect();
            let spark = if daily {
                bar_chart(&counts, Bucket::Day, 14, now, 120.0, 28.0)
            } else {
                bar_chart(&counts, Bucket::Hour, 24, now, 120.0, 28.0)
            };
            issue_item(row, spark, now)
        })
        .collect();
    let next_url = (rows.len() as i64 == PAGE_SIZE)
        .then(|| query.url_with_cursor(&cursor_of(&rows[rows.len() - 1], filter.sort)));
    let first_url = (!query.cursor.is_empty()).then(|| {
        query
            .url_with_cursor("")
            .trim_end_matches("cursor=")
            .trim_end_matches('&')
            .to_owned()
    });
    let page = ListPage {
        layout: Layout::new(&operator, "issues"),
        items,
        total,
        next_url,
        first_url,
        query: query.query.clone(),
        unhandled: filter.unhandled_only,
        projects: project_options(&state, &query.project).await?,
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
            &state,
            FilterKey::Environment,
            &query.environment,
            "Any environment",
        )
        .await?,
        releases: value_options(&state, FilterKey::Release, &query.release, "Any release").await?,
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
        period_label: if daily { "14 days" } else { "24 hours" },
    };
    html(page.render())
}

fn pair((value, label): (&str, &str)) -> (String, String) {
    (value.to_owned(), label.to_owned())
}

async fn project_options(state: &AppState, current: &str) -> Result<Vec<SelectOption>, WebError> {
    let mut choices = vec![(String::new(), "All projects".to_owned())];
    for project in projects::list(&state.pool).await? {
        choices.push((project.id.to_string(), project.name));
    }
    Ok(options(current, choices))
}

async fn value_options(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_with_a_colon_filter_by_tag() {
        assert_eq!(
            split_query("timeout browser:Firefox db"),
            (
                Some("timeout db".into()),
                Some(("browser".into(), "Firefox".into()))
            )
        );
        assert_eq!(
            split_query("https://x.example"),
            (Some("https://x.example".into()), None)
        );
        assert_eq!(split_query(""), (None, None));
    }

    #[test]
    fn cursors_round_trip_for_every_sort() {
        let t = DateTime::from_timestamp_micros(1_767_268_800_123_456).unwrap();
        assert_eq!(
            parse_cursor("1767268800123456_42", IssueSort::LastSeen),
            Ok(Some((CursorValue::Time(t), 42)))
        );
        assert_eq!(
            parse_cursor("17_3", IssueSort::Events),
            Ok(Some((CursorValue::Count(17), 3)))
        );
        assert!(parse_cursor("nonsense", IssueSort::Events).is_err());
    }
}

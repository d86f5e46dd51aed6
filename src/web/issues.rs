//! The issue list (home), the issue page with its events, and status changes.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Operator;
use super::errors::urlencode;
use super::event_view::{self, EventView};
use super::view::{bar_chart, exact_time, relative_time, short_count, BarChart, Bucket, Layout};
use super::WebError;
use crate::state::AppState;
use crate::store::event_body::decompress;
use crate::store::event_reads::{self, EventChoice, EventRow};
use crate::store::issues::{
    self, CursorValue, FilterKey, IssueCursor, IssueFilter, IssueRow, IssueSort, IssueStatus,
};
use crate::store::projects;

const PAGE_SIZE: i64 = 25;
const EVENTS_PAGE_SIZE: i64 = 20;
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

pub struct IssueItem {
    pub id: i64,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: &'static str,
    pub project_name: String,
    pub count: String,
    pub users: String,
    pub first_seen: String,
    pub first_seen_exact: String,
    pub last_seen: String,
    pub last_seen_exact: String,
    pub regressed: bool,
    pub unhandled: bool,
    pub top_request: Option<String>,
    pub spark: BarChart,
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

fn issue_item(row: &IssueRow, spark: BarChart, now: DateTime<Utc>) -> IssueItem {
    IssueItem {
        id: row.id,
        title: row.title.clone(),
        culprit: row.culprit.clone(),
        level: row.level.clone(),
        status: row.status.as_str(),
        project_name: row.project_name.clone(),
        count: short_count(row.shown_count),
        users: short_count(row.user_count),
        first_seen: relative_time(row.first_seen, now),
        first_seen_exact: exact_time(row.first_seen),
        last_seen: relative_time(row.last_seen, now),
        last_seen_exact: exact_time(row.last_seen),
        regressed: row.regressed_at.is_some() && row.status == IssueStatus::Unresolved,
        unhandled: row.unhandled,
        top_request: row.top_request.clone(),
        spark,
    }
}

pub fn html(rendered: askama::Result<String>) -> Result<HttpResponse, WebError> {
    let body = rendered.map_err(|e| WebError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub struct TagGroup {
    pub key: String,
    pub distinct: i64,
    pub values: Vec<TagShare>,
}

pub struct TagShare {
    pub value: String,
    pub count: String,
    pub percent: u32,
}

pub struct EventListItem {
    pub id: String,
    pub received: String,
    pub received_exact: String,
    pub environment: String,
    pub release: String,
    pub user: String,
    pub current: bool,
}

pub struct EventNav {
    pub oldest: Option<String>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub latest: Option<String>,
}

pub struct ShownEvent {
    pub id: String,
    pub received: String,
    pub received_exact: String,
    pub view: EventView,
    pub json_url: String,
    pub full_stack_url: String,
    pub full_stack: bool,
}

#[derive(Template)]
#[template(path = "issues/show.html")]
struct IssuePage {
    layout: Layout,
    issue: IssueItem,
    status: &'static str,
    count_total: String,
    first_release: String,
    last_release: String,
    chart_day: BarChart,
    chart_month: BarChart,
    tags: Vec<TagGroup>,
    grouping_kind: String,
    grouping_lines: Vec<String>,
    event: Option<ShownEvent>,
    nav: EventNav,
    events: Vec<EventListItem>,
    events_next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct IssueQuery {
    #[serde(default)]
    full: String,
    #[serde(default)]
    events_cursor: String,
}

pub async fn show(
    operator: Operator,
    path: web::Path<String>,
    query: web::Query<IssueQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let issue_id = parse_id(&path)?;
    render_issue(&operator, issue_id, EventChoice::Latest, &query, &state).await
}

pub async fn show_event(
    operator: Operator,
    path: web::Path<(String, String)>,
    query: web::Query<IssueQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let issue_id = parse_id(&path.0)?;
    let choice = match path.1.as_str() {
        "latest" => EventChoice::Latest,
        "oldest" => EventChoice::Oldest,
        other => EventChoice::Exact(Uuid::try_parse(other).map_err(|_| WebError::NotFound)?),
    };
    render_issue(&operator, issue_id, choice, &query, &state).await
}

fn parse_id(raw: &str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| WebError::NotFound)
}

async fn render_issue(
    operator: &Operator,
    issue_id: i64,
    choice: EventChoice,
    query: &IssueQuery,
    state: &AppState,
) -> Result<HttpResponse, WebError> {
    let row = issues::get(&state.pool, issue_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let event = event_reads::find(&state.pool, row.project_id, issue_id, choice).await?;
    if matches!(choice, EventChoice::Exact(_)) && event.is_none() {
        return Err(WebError::NotFound);
    }
    let now = Utc::now();
    let hourly: Vec<(DateTime<Utc>, i64)> =
        issues::hourly_counts(&state.pool, &[issue_id], now - Duration::days(31))
            .await?
            .into_iter()
            .map(|(_, hour, count)| (hour, count))
            .collect();
    let (first_release, last_release) =
        issues::first_and_last_release(&state.pool, issue_id).await?;
    let tags = tag_groups(issues::top_tag_values(&state.pool, issue_id, 5).await?);
    let (kind, lines) = grouping_lines(&row.grouping);
    let full_stack = !query.full.is_empty();
    let nav = match &event {
        Some(e) => event_nav(state, e).await?,
        None => EventNav {
            oldest: None,
            older: None,
            newer: None,
            latest: None,
        },
    };
    let (events, events_next) =
        event_list(state, issue_id, &query.events_cursor, event.as_ref(), now).await?;
    let shown = match event {
        Some(e) => Some(shown_event(&e, full_stack, now)?),
        None => None,
    };
    let page = IssuePage {
        layout: Layout::new(operator, "issues"),
        status: row.status.as_str(),
        count_total: row.event_count.to_string(),
        issue: issue_item(&row, bar_chart(&[], Bucket::Hour, 1, now, 1.0, 1.0), now),
        first_release: first_release.unwrap_or_default(),
        last_release: last_release.unwrap_or_default(),
        chart_day: bar_chart(&hourly, Bucket::Hour, 24, now, 480.0, 80.0),
        chart_month: bar_chart(&hourly, Bucket::Day, 30, now, 480.0, 80.0),
        tags,
        grouping_kind: kind,
        grouping_lines: lines,
        event: shown,
        nav,
        events,
        events_next,
    };
    html(page.render())
}

fn shown_event(
    row: &EventRow,
    full_stack: bool,
    now: DateTime<Utc>,
) -> Result<ShownEvent, WebError> {
    let body = decompress(&row.body).map_err(WebError::Internal)?;
    let id = row.event_id.simple().to_string();
    let base = format!("/issues/{}/events/{id}", row.issue_id);
    Ok(ShownEvent {
        received: relative_time(row.received_at, now),
        received_exact: exact_time(row.received_at),
        view: event_view::build(&body, full_stack),
        json_url: format!("{base}/json"),
        full_stack_url: if full_stack {
            base.clone()
        } else {
            format!("{base}?full=1")
        },
        full_stack,
        id,
    })
}

async fn event_nav(state: &AppState, event: &EventRow) -> Result<EventNav, WebError> {
    let (older, newer) = event_reads::neighbours(&state.pool, event).await?;
    let link = |id: Uuid| format!("/issues/{}/events/{}", event.issue_id, id.simple());
    Ok(EventNav {
        oldest: older.map(|_| format!("/issues/{}/events/oldest", event.issue_id)),
        older: older.map(link),
        newer: newer.map(link),
        latest: newer.map(|_| format!("/issues/{}/events/latest", event.issue_id)),
    })
}

async fn event_list(
    state: &AppState,
    issue_id: i64,
    cursor: &str,
    current: Option<&EventRow>,
    now: DateTime<Utc>,
) -> Result<(Vec<EventListItem>, Option<String>), WebError> {
    let after = parse_event_cursor(cursor);
    let rows = event_reads::list_for_issue(&state.pool, issue_id, after, EVENTS_PAGE_SIZE).await?;
    let next = (rows.len() as i64 == EVENTS_PAGE_SIZE).then(|| {
        let last = &rows[rows.len() - 1];
        format!(
            "/issues/{issue_id}?events_cursor={}_{}#events",
            last.received_at.timestamp_micros(),
            last.event_id.simple()
        )
    });
    let items = rows
        .iter()
        .map(|r| EventListItem {
            id: r.event_id.simple().to_string(),
            received: relative_time(r.received_at, now),
            received_exact: exact_time(r.received_at),
            environment: r.environment.clone().unwrap_or_default(),
            release: r.release.clone().unwrap_or_default(),
            user: r.user_key.clone().unwrap_or_default(),
            current: current.is_some_and(|c| c.event_id == r.event_id),
        })
        .collect();
    Ok((items, next))
}

fn parse_event_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('_')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::try_parse(id).ok()?,
    ))
}

fn tag_groups(rows: Vec<issues::TagValueRow>) -> Vec<TagGroup> {
    let mut groups: Vec<TagGroup> = Vec::new();
    for row in rows {
        // Internal facets are shown elsewhere on the page.
        if row.key == "handled" || row.key == "request" {
            continue;
        }
        let percent = if row.key_total > 0 {
            (row.count * 100 / row.key_total) as u32
        } else {
            0
        };
        let share = TagShare {
            value: row.value,
            count: short_count(row.count),
            percent,
        };
        match groups.last_mut() {
            Some(group) if group.key == row.key => group.values.push(share),
            _ => groups.push(TagGroup {
                key: row.key,
                distinct: row.distinct_values,
                values: vec![share],
            }),
        }
    }
    groups
}

/// Why the events are grouped: the fingerprint, the frames or the message behind the hash.
fn grouping_lines(grouping: &serde_json::Value) -> (String, Vec<String>) {
    let kind = grouping
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("unknown")
        .to_owned();
    let mut lines = Vec::new();
    if let Some(values) = grouping.get("values").and_then(|v| v.as_array()) {
        for value in values {
            match value {
                serde_json::Value::Object(component) => {
                    if let Some(t) = component.get("type") {
                        lines.push(format!("type: {}", event_view::text(t)));
                    }
                    if let Some(v) = component.get("value") {
                        lines.push(format!("value: {}", event_view::text(v)));
                    }
                    for frame in component
                        .get("frames")
                        .and_then(|f| f.as_array())
                        .into_iter()
                        .flatten()
                    {
                        lines.push(format!("  frame: {}", event_view::text(frame)));
                    }
                }
                other => lines.push(event_view::text(other)),
            }
        }
    }
    if let Some(default) = grouping.get("default") {
        let (_, default_lines) = grouping_lines(default);
        lines.push("{{ default }} expands to:".into());
        lines.extend(default_lines.into_iter().map(|l| format!("  {l}")));
    }
    (kind, lines)
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    status: String,
}

pub async fn set_status(
    operator: Operator,
    path: web::Path<String>,
    form: web::Form<StatusForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.check_csrf(&form.csrf_token)?;
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

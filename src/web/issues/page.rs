//! The issue page: counts, charts, tags, why the events are grouped, one event in full and
//! the list of all of them.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{issue_item, parse_id, IssueItem};
use crate::domain::event_shape::tag;
use crate::state::AppState;
use crate::store::event_body::decompress;
use crate::store::event_reads::{self, EventChoice, EventRow};
use crate::store::{feedback, issues};
use crate::web::auth::Operator;
use crate::web::errors::urlencode;
use crate::web::event_view::{self, EventView};
use crate::web::feedback::{feedback_item, FeedbackItem};
use crate::web::view::{
    bar_chart, exact_time, html, relative_time, short_count, BarChart, Bucket, Layout,
};
use crate::web::WebError;

const EVENTS_PAGE_SIZE: i64 = 20;
/// The newest reports shown on the issue page; the project's feedback page has them all.
const FEEDBACK_SHOWN: i64 = 20;

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
    feedback: Vec<FeedbackItem>,
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
    let choice = EventChoice::parse(&path.1).ok_or(WebError::NotFound)?;
    render_issue(&operator, issue_id, choice, &query, &state).await
}

/// `/events/{event_id}`: a stable link to any event by its id alone (support tools build it
/// from the id a user's 500 page showed); 303 to the event's page.
pub async fn find_event(
    _operator: Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let event_id = Uuid::try_parse(path.trim()).map_err(|_| WebError::NotFound)?;
    let (_, _, issue_id) = event_reads::locate(&state.pool, event_id)
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/issues/{issue_id}/events/{}", event_id.simple()),
        ))
        .finish())
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
        Some(e) => {
            let mut body = decompress(&e.body).map_err(WebError::Internal)?;
            state
                .source_maps
                .apply(&state.pool, e.project_id, &mut body)
                .await;
            Some(shown_event(&e, &body, full_stack, now))
        }
        None => None,
    };
    let feedback = feedback::for_issue(&state.pool, issue_id, FEEDBACK_SHOWN)
        .await?
        .into_iter()
        .map(|row| feedback_item(row, now))
        .collect();
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
        feedback,
    };
    html(page.render())
}

fn shown_event(
    row: &EventRow,
    body: &serde_json::Value,
    full_stack: bool,
    now: DateTime<Utc>,
) -> ShownEvent {
    let id = row.event_id.simple().to_string();
    let base = format!("/issues/{}/events/{id}", row.issue_id);
    ShownEvent {
        received: relative_time(row.received_at, now),
        received_exact: exact_time(row.received_at),
        view: event_view::build(body, full_stack),
        json_url: format!("{base}/json"),
        full_stack_url: if full_stack {
            base.clone()
        } else {
            format!("{base}?full=1")
        },
        full_stack,
        id,
    }
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
    // A cursor that is not ours shows the first page.
    let after = event_reads::parse_event_cursor(cursor).unwrap_or(None);
    let rows = event_reads::list_for_issue(&state.pool, issue_id, after, EVENTS_PAGE_SIZE).await?;
    let next = (rows.len() as i64 == EVENTS_PAGE_SIZE).then(|| {
        let last = &rows[rows.len() - 1];
        format!(
            "/issues/{issue_id}?events_cursor={}#events",
            urlencode(&event_reads::event_cursor(last))
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

fn tag_groups(rows: Vec<issues::TagValueRow>) -> Vec<TagGroup> {
    let mut groups: Vec<TagGroup> = Vec::new();
    for row in rows {
        // Internal facets are shown elsewhere on the page.
        if row.key == tag::HANDLED || row.key == tag::REQUEST {
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

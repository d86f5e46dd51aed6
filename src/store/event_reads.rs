//! Reading stored events for the dashboard and the API.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::cursor::{self, InvalidCursor};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub project_id: i64,
    pub event_id: Uuid,
    pub issue_id: i64,
    pub received_at: DateTime<Utc>,
    pub occurred_at: DateTime<Utc>,
    pub level: String,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub user_key: Option<String>,
    pub body: Vec<u8>,
}

const COLUMNS: &str =
    "project_id, event_id, issue_id, received_at, occurred_at, level, environment, release, user_key, body";

/// Which event of an issue to open.
#[derive(Debug, Clone, Copy)]
pub enum EventChoice {
    Latest,
    Oldest,
    Exact(Uuid),
}

impl EventChoice {
    /// `latest` (Sentry also says `recommended`), `oldest`, or an event id; `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "latest" | "recommended" => Some(EventChoice::Latest),
            "oldest" => Some(EventChoice::Oldest),
            id => Uuid::try_parse(id).ok().map(EventChoice::Exact),
        }
    }
}

pub async fn find(
    pool: &PgPool,
    project_id: i64,
    issue_id: i64,
    choice: EventChoice,
) -> sqlx::Result<Option<EventRow>> {
    let order = match choice {
        EventChoice::Latest => "received_at DESC, event_id DESC",
        EventChoice::Oldest => "received_at, event_id",
        EventChoice::Exact(event_id) => {
            let found = find_in_project(pool, project_id, event_id).await?;
            return Ok(found.filter(|event| event.issue_id == issue_id));
        }
    };
    let sql = format!("SELECT {COLUMNS} FROM events WHERE issue_id = $1 ORDER BY {order} LIMIT 1");
    sqlx::query_as(&sql)
        .bind(issue_id)
        .fetch_optional(pool)
        .await
}

/// The ids of the events just older and just newer than `event`, within its issue.
pub async fn neighbours(
    pool: &PgPool,
    event: &EventRow,
) -> sqlx::Result<(Option<Uuid>, Option<Uuid>)> {
    let older: Option<Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE issue_id = $1 AND (received_at, event_id) < ($2, $3)
          ORDER BY received_at DESC, event_id DESC LIMIT 1",
    )
    .bind(event.issue_id)
    .bind(event.received_at)
    .bind(event.event_id)
    .fetch_optional(pool)
    .await?;
    let newer: Option<Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE issue_id = $1 AND (received_at, event_id) > ($2, $3)
          ORDER BY received_at, event_id LIMIT 1",
    )
    .bind(event.issue_id)
    .bind(event.received_at)
    .bind(event.event_id)
    .fetch_optional(pool)
    .await?;
    Ok((older, newer))
}

/// One page of an issue's events, newest first, after `(received_at, event_id)`.
/// The cursor of the page of an issue's events after `row`, in the one cursor format.
pub fn event_cursor(row: &EventRow) -> String {
    cursor::encode(row.received_at.timestamp_micros(), row.event_id.simple())
}

/// The bound a cursor from [`event_cursor`] sets for [`list_for_issue`].
pub fn parse_event_cursor(text: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, InvalidCursor> {
    let Some((micros, id)) = cursor::decode(text)? else {
        return Ok(None);
    };
    let received = cursor::time(micros)?;
    let id = Uuid::try_parse(id).map_err(|_| InvalidCursor)?;
    Ok(Some((received, id)))
}

pub async fn list_for_issue(
    pool: &PgPool,
    issue_id: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE issue_id = $1
            AND ($2::timestamptz IS NULL OR (received_at, event_id) < ($2, $3))
          ORDER BY received_at DESC, event_id DESC LIMIT $4"
    );
    sqlx::query_as(&sql)
        .bind(issue_id)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Where an event is, by its id alone: `(project id, project name, issue id)`. One index
/// entry in the `event_ids` ledger; ids are random, so two projects sharing one is a curiosity
/// (the earliest received wins).
pub async fn locate(pool: &PgPool, event_id: Uuid) -> sqlx::Result<Option<(i64, String, i64)>> {
    sqlx::query_as(
        "SELECT e.project_id, p.name, e.issue_id
           FROM event_ids e JOIN projects p ON p.id = e.project_id
          WHERE e.event_id = $1
          ORDER BY e.received_at LIMIT 1",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await
}

/// An event by id within a project. `event_ids` says when it arrived, so the second query
/// reads one partition through one index entry.
pub async fn find_in_project(
    pool: &PgPool,
    project_id: i64,
    event_id: Uuid,
) -> sqlx::Result<Option<EventRow>> {
    let located: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT issue_id, received_at FROM event_ids WHERE project_id = $1 AND event_id = $2",
    )
    .bind(project_id)
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    let Some((issue_id, received_at)) = located else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE issue_id = $1 AND received_at = $2 AND event_id = $3"
    );
    sqlx::query_as(&sql)
        .bind(issue_id)
        .bind(received_at)
        .bind(event_id)
        .fetch_optional(pool)
        .await
}

//! User feedback rows: what people wrote about an error. A report is linked to its issue
//! through the `event_ids` ledger when it is saved; one that arrives before its event waits
//! (`issue_id IS NULL`) until the writer stores the event (`store::events`) or the upkeep
//! sweep ([`link_pending`]) finds it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::cursor::{self, InvalidCursor};

/// Where a report came from; stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackSource {
    /// The `user_report` envelope item (Java, .NET, Cocoa, JavaScript before v9).
    UserReport,
    /// The `feedback` envelope item (`Sentry.captureFeedback`, the feedback widget).
    Feedback,
    /// `Sentry.showReportDialog`'s form, posted to `/api/embed/error-page/`.
    CrashReportDialog,
    /// `POST /api/0/projects/{org}/{project}/user-feedback/`.
    Api,
}

impl FeedbackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackSource::UserReport => "user_report",
            FeedbackSource::Feedback => "feedback",
            FeedbackSource::CrashReportDialog => "crash_report_dialog",
            FeedbackSource::Api => "api",
        }
    }

    /// How the dashboard names it.
    pub fn label(text: &str) -> &'static str {
        match text {
            "user_report" => "SDK report",
            "feedback" => "feedback widget",
            "crash_report_dialog" => "crash-report dialog",
            "api" => "API",
            _ => "unknown",
        }
    }
}

/// One report to save.
#[derive(Debug, Clone)]
pub struct NewFeedback {
    pub project_id: i64,
    /// What a repeat overwrites: the error's id for reports, the feedback's own id for
    /// `feedback` items.
    pub report_id: Uuid,
    pub event_id: Option<Uuid>,
    pub name: String,
    pub email: String,
    pub comments: String,
    pub url: Option<String>,
    pub environment: Option<String>,
    pub source: FeedbackSource,
    pub received_at: DateTime<Utc>,
}

/// One stored report, with the title of its issue when it has one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedbackRow {
    pub id: i64,
    pub project_id: i64,
    pub event_id: Option<Uuid>,
    pub issue_id: Option<i64>,
    pub issue_title: Option<String>,
    pub name: String,
    pub email: String,
    pub comments: String,
    pub url: Option<String>,
    pub environment: Option<String>,
    pub source: String,
    pub received_at: DateTime<Utc>,
}

const COLUMNS: &str = "f.id, f.project_id, f.event_id, f.issue_id, i.title AS issue_title, f.name,
    f.email, f.comments, f.url, f.environment, f.source, f.received_at";

/// Saves a report, replacing an earlier one with the same `report_id`, linked to its issue if
/// the event is already stored. Returns the row's id and issue.
pub async fn save(pool: &PgPool, feedback: &NewFeedback) -> sqlx::Result<(i64, Option<i64>)> {
    sqlx::query_as(
        "INSERT INTO user_feedback (project_id, report_id, event_id, issue_id, name, email, comments,
                                    url, environment, source, received_at)
         VALUES ($1, $2, $3,
                 (SELECT issue_id FROM event_ids WHERE project_id = $1 AND event_id = $3),
                 $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (project_id, report_id) DO UPDATE
            SET event_id = EXCLUDED.event_id, issue_id = EXCLUDED.issue_id,
                name = EXCLUDED.name, email = EXCLUDED.email, comments = EXCLUDED.comments,
                url = EXCLUDED.url, environment = EXCLUDED.environment,
                source = EXCLUDED.source, received_at = EXCLUDED.received_at
         RETURNING id, issue_id",
    )
    .bind(feedback.project_id)
    .bind(feedback.report_id)
    .bind(feedback.event_id)
    .bind(&feedback.name)
    .bind(&feedback.email)
    .bind(&feedback.comments)
    .bind(&feedback.url)
    .bind(&feedback.environment)
    .bind(feedback.source.as_str())
    .bind(feedback.received_at)
    .fetch_one(pool)
    .await
}

/// One report by its row id.
pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<FeedbackRow> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_feedback f LEFT JOIN issues i ON i.id = f.issue_id WHERE f.id = $1"
    );
    sqlx::query_as(&sql).bind(id).fetch_one(pool).await
}

/// The newest reports about one issue.
pub async fn for_issue(pool: &PgPool, issue_id: i64, limit: i64) -> sqlx::Result<Vec<FeedbackRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_feedback f LEFT JOIN issues i ON i.id = f.issue_id
          WHERE f.issue_id = $1 ORDER BY f.received_at DESC, f.id DESC LIMIT $2"
    );
    sqlx::query_as(&sql)
        .bind(issue_id)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Which of a page's issues have feedback, and how much.
pub async fn counts_for_issues(
    pool: &PgPool,
    issue_ids: &[i64],
) -> sqlx::Result<HashMap<i64, i64>> {
    if issue_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT issue_id, count(*) FROM user_feedback WHERE issue_id = ANY($1) GROUP BY issue_id",
    )
    .bind(issue_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What a project's feedback list shows.
#[derive(Debug, Default, Clone)]
pub struct FeedbackFilter<'a> {
    pub environment: Option<&'a str>,
    /// Only reports linked to an issue in this status (the API's `status`).
    pub issue_status: Option<&'a str>,
    /// Only reports linked to an issue (the API lists those alone, as Sentry does).
    pub linked_only: bool,
}

/// A page of a project's reports, newest first, after the cursor's `(received_at, id)`.
pub async fn for_project(
    pool: &PgPool,
    project_id: i64,
    filter: &FeedbackFilter<'_>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> sqlx::Result<Vec<FeedbackRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_feedback f LEFT JOIN issues i ON i.id = f.issue_id
          WHERE f.project_id = $1
            AND ($2::text IS NULL OR f.environment = $2)
            AND ($3::text IS NULL OR i.status::text = $3)
            AND (NOT $4 OR f.issue_id IS NOT NULL)
            AND ($5::timestamptz IS NULL OR (f.received_at, f.id) < ($5, $6))
          ORDER BY f.received_at DESC, f.id DESC LIMIT $7"
    );
    sqlx::query_as(&sql)
        .bind(project_id)
        .bind(filter.environment)
        .bind(filter.issue_status)
        .bind(filter.linked_only)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1).unwrap_or_default())
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub fn feedback_cursor(row: &FeedbackRow) -> String {
    cursor::encode(row.received_at.timestamp_micros(), row.id)
}

pub fn parse_feedback_cursor(text: &str) -> Result<Option<(DateTime<Utc>, i64)>, InvalidCursor> {
    let Some((micros, id)) = cursor::decode(text)? else {
        return Ok(None);
    };
    let received = cursor::time(micros)?;
    let id = id.parse().map_err(|_| InvalidCursor)?;
    Ok(Some((received, id)))
}

/// Links reports whose event has been stored since. The writer links most of them in the
/// event's own transaction; this catches a report saved while that transaction was running,
/// so only the last hour's are looked at (every unlinked report, every 10 s, was a growing
/// scan: reports whose event never comes stay unlinked).
pub async fn link_pending(pool: &PgPool) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE user_feedback f SET issue_id = e.issue_id
           FROM event_ids e
          WHERE f.issue_id IS NULL AND f.received_at > now() - interval '1 hour'
            AND e.project_id = f.project_id AND e.event_id = f.event_id",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Removes reports received before `cutoff` (retention).
pub async fn delete_received_before(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM user_feedback WHERE received_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

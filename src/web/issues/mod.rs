//! The issue pages: the list (home), one issue with its events, and status changes.

mod actions;
mod list;
mod page;

use chrono::{DateTime, Utc};

pub use actions::{download_event, set_status};
pub use list::{list, options, project_options, value_options, SelectOption};
pub use page::{find_event, show, show_event};

use super::view::{exact_time, relative_time, short_count, BarChart};
use super::WebError;
use crate::store::issues::{IssueRow, IssueStatus};

/// One issue as the list and the issue page show it.
pub struct IssueItem {
    pub id: i64,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: &'static str,
    pub project_id: i64,
    pub project_name: String,
    /// How many user reports the issue has (the list marks issues with any).
    pub feedback: i64,
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

fn issue_item(row: &IssueRow, spark: BarChart, now: DateTime<Utc>) -> IssueItem {
    IssueItem {
        id: row.id,
        title: row.title.clone(),
        culprit: row.culprit.clone(),
        level: row.level.clone(),
        status: row.status.as_str(),
        project_id: row.project_id,
        project_name: row.project_name.clone(),
        feedback: 0,
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

fn parse_id(raw: &str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| WebError::NotFound)
}

//! What an issue list asks for: filters, sort order and the keyset cursor of its page.

use chrono::{DateTime, Utc};

use super::issues::{IssueRow, IssueStatus};
use crate::domain::cursor::{self, InvalidCursor};
use crate::domain::search::Search;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssueSort {
    #[default]
    LastSeen,
    FirstSeen,
    Events,
    Users,
}

impl IssueSort {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "last_seen" | "date" => Some(IssueSort::LastSeen),
            "first_seen" | "new" => Some(IssueSort::FirstSeen),
            "events" | "freq" => Some(IssueSort::Events),
            "users" | "user" => Some(IssueSort::Users),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IssueSort::LastSeen => "last_seen",
            IssueSort::FirstSeen => "first_seen",
            IssueSort::Events => "events",
            IssueSort::Users => "users",
        }
    }

    pub(super) fn column(self) -> &'static str {
        match self {
            IssueSort::LastSeen => "i.last_seen",
            IssueSort::FirstSeen => "i.first_seen",
            IssueSort::Events => "i.event_count",
            IssueSort::Users => "i.user_count",
        }
    }
}

/// Where the previous page ended, in the sort's own terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CursorValue {
    Time(DateTime<Utc>),
    Count(i64),
}

/// Where a page of issues ended, in plain numbers for URLs: the sort column's value
/// (microseconds for times, else the count) and the last issue's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueCursor {
    pub value: i64,
    pub id: i64,
}

impl IssueCursor {
    pub fn after(row: &IssueRow, sort: IssueSort) -> Self {
        let value = match sort {
            IssueSort::LastSeen => row.last_seen.timestamp_micros(),
            IssueSort::FirstSeen => row.first_seen.timestamp_micros(),
            IssueSort::Events => row.event_count,
            IssueSort::Users => row.user_count,
        };
        IssueCursor { value, id: row.id }
    }

    /// The cursor of the page after `row`, in the one cursor format.
    pub fn encode(row: &IssueRow, sort: IssueSort) -> String {
        let cursor = IssueCursor::after(row, sort);
        cursor::encode(cursor.value, cursor.id)
    }

    /// The bound a cursor from [`IssueCursor::encode`] sets for [`IssueFilter::after`].
    pub fn decode(
        text: &str,
        sort: IssueSort,
    ) -> Result<Option<(CursorValue, i64)>, InvalidCursor> {
        let Some((value, id)) = cursor::decode(text)? else {
            return Ok(None);
        };
        let id = id.parse().map_err(|_| InvalidCursor)?;
        IssueCursor { value, id }
            .bound(sort)
            .map(Some)
            .ok_or(InvalidCursor)
    }

    /// The bound for [`IssueFilter::after`]; `None` when the value is out of range.
    pub fn bound(self, sort: IssueSort) -> Option<(CursorValue, i64)> {
        let value = match sort {
            IssueSort::LastSeen | IssueSort::FirstSeen => {
                CursorValue::Time(cursor::time(self.value).ok()?)
            }
            IssueSort::Events | IssueSort::Users => CursorValue::Count(self.value),
        };
        Some((value, self.id))
    }
}

#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    pub project_id: Option<i64>,
    /// `None` lists every status.
    pub status: Option<IssueStatus>,
    pub level: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub text: Option<String>,
    pub tag: Option<(String, String)>,
    pub unhandled_only: bool,
    pub sort: IssueSort,
    pub after: Option<(CursorValue, i64)>,
    pub limit: i64,
}

/// An `is:` value that is not a status.
#[derive(Debug, thiserror::Error)]
#[error("unknown status in is:{0}")]
pub struct UnknownStatus(pub String);

impl IssueFilter {
    /// Narrows the filter by a parsed search query; what the query leaves out stays as it is.
    pub fn apply_search(&mut self, search: Search) -> Result<(), UnknownStatus> {
        if let Some(status) = search.status {
            self.status = Some(IssueStatus::parse(&status).ok_or(UnknownStatus(status))?);
        }
        self.unhandled_only |= search.unhandled_only;
        for (field, value) in [
            (&mut self.level, search.level),
            (&mut self.environment, search.environment),
            (&mut self.release, search.release),
            (&mut self.text, search.text),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        if search.tag.is_some() {
            self.tag = search.tag;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_filter(query: &str) -> Result<IssueFilter, UnknownStatus> {
        let mut filter = IssueFilter {
            status: None,
            ..IssueFilter::default()
        };
        filter.apply_search(crate::domain::search::parse(query))?;
        Ok(filter)
    }

    #[test]
    fn sentry_search_syntax_becomes_a_filter() {
        let filter =
            search_filter("is:resolved level:error environment:prod browser:Firefox timeout")
                .unwrap();
        assert_eq!(filter.status, Some(IssueStatus::Resolved));
        assert_eq!(filter.level.as_deref(), Some("error"));
        assert_eq!(filter.environment.as_deref(), Some("prod"));
        assert_eq!(filter.tag, Some(("browser".into(), "Firefox".into())));
        assert_eq!(filter.text.as_deref(), Some("timeout"));
        assert_eq!(
            search_filter("").unwrap().status,
            None,
            "an empty query lists every status"
        );
        assert!(search_filter("is:sideways").is_err());
    }

    #[test]
    fn issue_cursors_round_trip_for_every_sort() {
        let t = DateTime::from_timestamp_micros(1_767_268_800_123_456).unwrap();
        assert_eq!(
            IssueCursor::decode("1767268800123456:42:0", IssueSort::LastSeen),
            Ok(Some((CursorValue::Time(t), 42)))
        );
        assert_eq!(
            IssueCursor::decode("17:3:0", IssueSort::Events),
            Ok(Some((CursorValue::Count(17), 3)))
        );
        assert!(IssueCursor::decode("nonsense", IssueSort::Events).is_err());
    }
}

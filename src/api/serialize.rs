//! Faultline's rows in the shapes and with the field names of Sentry's web API.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::period::{bucket_counts, StatsPeriod};
use crate::store::event_body::decompress;
use crate::store::event_reads::EventRow;
use crate::store::feedback::FeedbackRow;
use crate::store::issues::{IssueRow, TagValueRow};

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `(issue_id, hour, count)` rows, as the store returns hourly counts.
pub type HourlyCounts<'a> = &'a [(i64, DateTime<Utc>, i64)];

pub fn project_ref(id: i64, name: &str) -> Value {
    json!({"id": id.to_string(), "name": name, "slug": name})
}

fn short_id(issue: &IssueRow) -> String {
    format!("{}-{}", issue.project_name.to_uppercase(), issue.id)
}

fn issue_type(issue: &IssueRow) -> &'static str {
    if issue.metadata.get("type").is_some() {
        "error"
    } else {
        "default"
    }
}

/// `[[bucket start (unix seconds), count], …]` per hour (24h) or per day (14d).
fn stats(period: StatsPeriod, issue_id: i64, hourly: &[(i64, DateTime<Utc>, i64)]) -> Value {
    let own: Vec<(DateTime<Utc>, i64)> = hourly
        .iter()
        .filter(|h| h.0 == issue_id)
        .map(|h| (h.1, h.2))
        .collect();
    let step = period.bucket().length();
    let (first, counts) = bucket_counts(&own, period.bucket(), period.buckets(), Utc::now());
    let points: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| json!([(first + step * i as i32).timestamp(), n]))
        .collect();
    json!({ period.as_str(): points })
}

pub fn issue(
    issue: &IssueRow,
    base_url: &str,
    stats_for: Option<(StatsPeriod, HourlyCounts)>,
) -> Value {
    let mut body = json!({
        "id": issue.id.to_string(),
        "shortId": short_id(issue),
        "title": issue.title,
        "culprit": issue.culprit,
        "permalink": format!("{base_url}/issues/{}", issue.id),
        "logger": null,
        "level": issue.level,
        "status": issue.status.as_str(),
        "statusDetails": {},
        "isPublic": false,
        "platform": issue.metadata.get("platform").cloned().unwrap_or(Value::Null),
        "project": project_ref(issue.project_id, &issue.project_name),
        "type": issue_type(issue),
        "metadata": issue.metadata,
        "numComments": 0,
        "assignedTo": null,
        "isBookmarked": false,
        "isSubscribed": false,
        "subscriptionDetails": null,
        "hasSeen": false,
        "annotations": [],
        "isUnhandled": issue.unhandled,
        "count": issue.event_count.to_string(),
        "userCount": issue.user_count,
        "firstSeen": time(issue.first_seen),
        "lastSeen": time(issue.last_seen),
    });
    if let Some((period, hourly)) = stats_for {
        body["stats"] = stats(period, issue.id, hourly);
    }
    body
}

pub fn issue_detail(
    row: &IssueRow,
    base_url: &str,
    hourly: &[(i64, DateTime<Utc>, i64)],
    tags: &[TagValueRow],
    (first_release, last_release): (Option<String>, Option<String>),
) -> Value {
    let mut body = issue(row, base_url, Some((StatsPeriod::Day, hourly)));
    let release = |v: Option<String>| {
        v.map_or(
            Value::Null,
            |version| json!({"version": version, "shortVersion": version}),
        )
    };
    body["firstRelease"] = release(first_release);
    body["lastRelease"] = release(last_release);
    body["tags"] = tag_summaries(tags);
    body["activity"] = json!([]);
    body["userReportCount"] = json!(0);
    body["participants"] = json!([]);
    body["seenBy"] = json!([]);
    body
}

fn tag_summaries(tags: &[TagValueRow]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for row in tags
        .iter()
        .filter(|t| t.key != "handled" && t.key != "request")
    {
        let value =
            json!({"key": row.key, "name": row.value, "value": row.value, "count": row.count});
        match out.last_mut() {
            Some(summary) if summary["key"] == row.key => {
                if let Some(values) = summary["topValues"].as_array_mut() {
                    values.push(value);
                }
            }
            _ => out.push(json!({
                "key": row.key, "name": row.key, "totalValues": row.key_total, "uniqueValues": row.distinct_values,
                "topValues": [value],
            })),
        }
    }
    Value::Array(out)
}

/// An event as Sentry's API returns it: `entries` for the exception, message, breadcrumbs and
/// request; `tags` as a list of `{key, value}`.
pub fn event(row: &EventRow, issue: &IssueRow, with_entries: bool) -> anyhow::Result<Value> {
    Ok(event_with_body(
        row,
        &decompress(&row.body)?,
        issue,
        with_entries,
    ))
}

/// [`event`] from a body already read (and perhaps mapped through source maps).
pub fn event_with_body(
    row: &EventRow,
    body: &Value,
    issue: &IssueRow,
    with_entries: bool,
) -> Value {
    let tags: Vec<Value> = body
        .get("tags")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect()
        })
        .unwrap_or_default();
    let message = body
        .pointer("/logentry/formatted")
        .cloned()
        .unwrap_or(json!(""));
    let mut out = json!({
        "id": row.event_id.simple().to_string(),
        "eventID": row.event_id.simple().to_string(),
        "groupID": issue.id.to_string(),
        "projectID": row.project_id.to_string(),
        "title": issue.title,
        "message": message,
        "platform": body.get("platform").cloned().unwrap_or(Value::Null),
        "dateCreated": time(row.occurred_at),
        "dateReceived": time(row.received_at),
        "culprit": issue.culprit,
        "location": null,
        "type": issue_type(issue),
        "metadata": issue.metadata,
        "tags": tags,
        "user": body.get("user").cloned().unwrap_or(Value::Null),
        "contexts": body.get("contexts").cloned().unwrap_or(json!({})),
        "sdk": body.get("sdk").cloned().unwrap_or(Value::Null),
        "release": row.release.as_ref().map_or(Value::Null, |v| json!({"version": v})),
        "environment": row.environment,
        "fingerprints": [issue.hash],
        "errors": body.get("errors").cloned().unwrap_or(json!([])),
    });
    if with_entries {
        out["entries"] = entries(body);
    }
    out
}

fn entries(body: &Value) -> Value {
    let mut entries = Vec::new();
    if let Some(exception) = body.get("exception") {
        entries.push(json!({"type": "exception", "data": exception}));
    }
    if let Some(logentry) = body.get("logentry") {
        entries.push(json!({"type": "message", "data": logentry}));
    }
    if let Some(breadcrumbs) = body.get("breadcrumbs") {
        entries.push(json!({"type": "breadcrumbs", "data": breadcrumbs}));
    }
    if let Some(request) = body.get("request") {
        entries.push(json!({"type": "request", "data": request}));
    }
    if let Some(threads) = body.get("threads") {
        entries.push(json!({"type": "threads", "data": threads}));
    }
    Value::Array(entries)
}

/// A user report in the shape of Sentry's user-feedback API.
pub fn user_report(row: &FeedbackRow) -> Value {
    let event_id = row.event_id.map(|id| id.simple().to_string());
    json!({
        "id": row.id.to_string(),
        "eventID": event_id,
        "name": row.name,
        "email": row.email,
        "comments": row.comments,
        "dateCreated": time(row.received_at),
        "user": null,
        "event": {"id": event_id, "eventID": event_id},
        "issue": row.issue_id.map(|id| json!({
            "id": id.to_string(),
            "title": row.issue_title.as_deref().unwrap_or_default(),
        })),
        "environment": row.environment,
        "url": row.url,
        "source": row.source,
    })
}

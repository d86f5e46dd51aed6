//! Small pieces every page shows: the layout's header, times, counts and bar charts. Pure
//! functions of their inputs, so they are tested without a server.

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};

use super::auth::Operator;
use super::WebError;
use crate::domain::period::bucket_counts;
pub use crate::domain::period::Bucket;

/// What the layout needs: who is logged in, and the token its logout form carries.
pub struct Layout {
    pub email: String,
    pub csrf_token: String,
    pub is_admin: bool,
    /// Which navigation entry is current.
    pub section: &'static str,
}

impl Layout {
    pub fn new(operator: &Operator, section: &'static str) -> Self {
        Layout {
            email: operator.email.clone(),
            csrf_token: operator.csrf_token.clone(),
            is_admin: operator.is_admin,
            section,
        }
    }
}

/// "3 minutes ago", "2 days ago"…
pub fn relative_time(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds();
    let (n, unit) = match seconds {
        s if s < 45 => return "just now".into(),
        s if s < 3600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1800) / 3600, "hour"),
        s if s < 30 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 365 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    let n = n.max(1);
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

pub fn exact_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// 1234567 → "1.2M", 12345 → "12.3k", 999 → "999".
pub fn short_count(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1_000_000.0),
        n if n >= 10_000 => format!("{:.1}k", n as f64 / 1_000.0),
        n => n.to_string(),
    }
}

/// One bar of a chart, in SVG user units.
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub label: String,
}

pub struct BarChart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    pub max: i64,
    pub total: i64,
}

/// The size of a chart's bucket.
/// Bars for the `buckets` most recent buckets ending at `now`, from hourly counts.
pub fn bar_chart(
    hourly: &[(DateTime<Utc>, i64)],
    bucket: Bucket,
    buckets: usize,
    now: DateTime<Utc>,
    width: f64,
    height: f64,
) -> BarChart {
    let (first, counts) = bucket_counts(hourly, bucket, buckets, now);
    let length = bucket.length();
    let max = counts.iter().copied().max().unwrap_or(0);
    let slot = width / buckets as f64;
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            // Even a single event shows as a visible bar.
            let h = if max == 0 {
                0.0
            } else {
                (count as f64 / max as f64 * (height - 1.0)).max(if count > 0 { 2.0 } else { 0.0 })
            };
            let start = first + length * i as i32;
            let label = match bucket {
                Bucket::Hour => format!("{}: {count}", start.format("%b %d %H:00")),
                Bucket::Day => format!("{}: {count}", start.format("%b %d")),
            };
            Bar {
                x: i as f64 * slot + slot * 0.1,
                y: height - h,
                width: slot * 0.8,
                height: h,
                label,
            }
        })
        .collect();
    BarChart {
        width,
        height,
        bars,
        max,
        total: counts.iter().sum(),
    }
}

/// A rendered template as an HTML answer.
pub fn html(rendered: askama::Result<String>) -> Result<HttpResponse, WebError> {
    let body = rendered.map_err(|e| WebError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, DurationRound};

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(
            relative_time(now - Duration::minutes(3), now),
            "3 minutes ago"
        );
        assert_eq!(relative_time(now - Duration::hours(1), now), "1 hour ago");
        assert_eq!(relative_time(now - Duration::days(2), now), "2 days ago");
    }

    #[test]
    fn counts_are_shortened() {
        assert_eq!(short_count(999), "999");
        assert_eq!(short_count(12_345), "12.3k");
        assert_eq!(short_count(1_234_567), "1.2M");
    }

    #[test]
    fn chart_puts_counts_in_their_buckets_and_scales_to_the_max() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let hour = |h: i64| now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(h);
        let chart = bar_chart(
            &[(hour(0), 4), (hour(1), 2), (hour(30), 9)],
            Bucket::Hour,
            24,
            now,
            240.0,
            40.0,
        );
        assert_eq!(chart.bars.len(), 24);
        assert_eq!(chart.total, 6, "the 30-hour-old count is outside the chart");
        assert_eq!(chart.max, 4);
        assert_eq!(chart.bars[23].height, 39.0);
        assert_eq!(chart.bars[22].height, 19.5);
        let daily = bar_chart(
            &[(hour(0), 4), (hour(30), 9)],
            Bucket::Day,
            30,
            now,
            300.0,
            40.0,
        );
        assert_eq!(daily.total, 13);
    }
}

//! Time buckets for charts and stats: which period a chart covers, and the counts per hour or
//! per day in it. The dashboard's sparklines and the API's `stats` use the same buckets.

use chrono::{DateTime, Duration, DurationRound, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn length(self) -> Duration {
        match self {
            Bucket::Hour => Duration::hours(1),
            Bucket::Day => Duration::days(1),
        }
    }
}

/// The periods a list can chart: 24 hourly bars, or 14 daily ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsPeriod {
    #[default]
    Day,
    TwoWeeks,
}

impl StatsPeriod {
    /// `24h` (or nothing) and `14d`, as Sentry's `statsPeriod` and the dashboard's URLs say.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "24h" => Some(StatsPeriod::Day),
            "14d" => Some(StatsPeriod::TwoWeeks),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatsPeriod::Day => "24h",
            StatsPeriod::TwoWeeks => "14d",
        }
    }

    pub fn bucket(self) -> Bucket {
        match self {
            StatsPeriod::Day => Bucket::Hour,
            StatsPeriod::TwoWeeks => Bucket::Day,
        }
    }

    pub fn buckets(self) -> usize {
        match self {
            StatsPeriod::Day => 24,
            StatsPeriod::TwoWeeks => 14,
        }
    }

    /// The earliest hour whose counts the chart needs.
    pub fn since(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.bucket().length() * self.buckets() as i32
    }
}

/// Hourly counts summed into the `buckets` buckets that end with the one holding `now`;
/// returns the first bucket's start and the counts, oldest first.
pub fn bucket_counts(
    hourly: &[(DateTime<Utc>, i64)],
    bucket: Bucket,
    buckets: usize,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Vec<i64>) {
    let length = bucket.length();
    let last = now.duration_trunc(length).unwrap_or(now);
    let first = last - length * (buckets as i32 - 1);
    let mut counts = vec![0i64; buckets];
    for (hour, count) in hourly {
        if *hour < first {
            continue;
        }
        let index = ((*hour - first).num_seconds() / length.num_seconds()) as usize;
        if let Some(slot) = counts.get_mut(index) {
            *slot += count;
        }
    }
    (first, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_into_their_bucket_and_old_ones_are_left_out() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let hour = |h: i64| now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(h);
        let hourly = [(hour(0), 2), (hour(1), 3), (hour(1), 1), (hour(30), 9)];
        let (first, counts) = bucket_counts(&hourly, Bucket::Hour, 24, now);
        assert_eq!(first, hour(23));
        assert_eq!(counts[23], 2);
        assert_eq!(counts[22], 4);
        assert_eq!(counts.iter().sum::<i64>(), 6);
        let (_, daily) = bucket_counts(&hourly, Bucket::Day, 14, now);
        assert_eq!(daily.iter().sum::<i64>(), 15);
    }

    #[test]
    fn periods_parse_as_urls_and_the_api_write_them() {
        assert_eq!(StatsPeriod::parse(""), Some(StatsPeriod::Day));
        assert_eq!(StatsPeriod::parse("14d").unwrap().buckets(), 14);
        assert_eq!(StatsPeriod::parse("7d"), None);
    }
}

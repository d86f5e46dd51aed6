//! Retention: daily `events` partitions are created ahead of time and dropped once expired, so
//! removing old events is a `DROP TABLE` rather than a long `DELETE` that ingest would wait on.

#[cfg(test)]
use chrono::Datelike;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};

/// How many days of partitions exist ahead of today.
pub const DAYS_AHEAD: i64 = 14;
/// Expired event ids are deleted in batches this size, each its own short transaction.
const ID_BATCH: i64 = 10_000;
/// Only one instance runs the clean-up at a time (any constant unique to Faultline).
const CLEANUP_LOCK: i64 = 0x6661_756c_746c_696e;

/// Creates the missing daily partitions from yesterday to `DAYS_AHEAD` days ahead.
pub async fn create_partitions(pool: &PgPool, today: NaiveDate) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT faultline_create_event_partitions($1, $2)")
        .bind(today - Duration::days(1))
        .bind(today + Duration::days(DAYS_AHEAD))
        .fetch_one(pool)
        .await
}

/// A daily partition of `events` and the day it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub day: NaiveDate,
    pub state: Attachment,
}

/// Where a partition stands with `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    Attached,
    /// A `DETACH … CONCURRENTLY` was interrupted (a shutdown, a lost connection): it must be
    /// finalised, and until then every new detach of it fails.
    DetachPending,
    /// Detached, but the `DROP` that follows did not happen.
    Detached,
}

/// Every daily partition table, attached to `events` or left over from an interrupted drop.
pub async fn partitions(pool: &PgPool) -> sqlx::Result<Vec<Partition>> {
    let rows: Vec<(String, Option<bool>)> = sqlx::query_as(
        "SELECT c.relname::text, i.inhdetachpending
           FROM pg_class c
           LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'events'::regclass
          WHERE c.relkind = 'r' AND c.relname ~ '^events_[0-9]{8}$' AND pg_table_is_visible(c.oid)
          ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, pending)| {
            let state = match pending {
                None => Attachment::Detached,
                Some(true) => Attachment::DetachPending,
                Some(false) => Attachment::Attached,
            };
            partition_day(&name).map(|day| Partition { name, day, state })
        })
        .collect())
}

/// `events_20261126` → 2026-11-26.
pub fn partition_day(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("events_")?, "%Y%m%d").ok()
}

/// Partitions whose whole day is older than `cutoff`.
pub fn expired(partitions: &[Partition], cutoff: DateTime<Utc>) -> Vec<Partition> {
    let cutoff_day = cutoff.date_naive();
    partitions
        .iter()
        .filter(|p| p.day < cutoff_day)
        .cloned()
        .collect()
}

/// Removes one partition without blocking ingest: `DETACH … CONCURRENTLY` waits for running
/// transactions instead of locking new ones out, then the detached table is dropped. A detach
/// left pending by an interrupted run is finalised first; a table already detached is only
/// dropped. Returns how many events it held.
pub async fn drop_partition(pool: &PgPool, partition: &Partition) -> sqlx::Result<i64> {
    let name = format!("events_{}", partition.day.format("%Y%m%d"));
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {name}"))
        .fetch_one(pool)
        .await?;
    let detach = match partition.state {
        Attachment::Attached => Some("CONCURRENTLY"),
        Attachment::DetachPending => Some("FINALIZE"),
        Attachment::Detached => None,
    };
    if let Some(how) = detach {
        sqlx::query(&format!("ALTER TABLE events DETACH PARTITION {name} {how}"))
            .execute(pool)
            .await?;
    }
    sqlx::query(&format!("DROP TABLE {name}"))
        .execute(pool)
        .await?;
    Ok(rows)
}

/// Deletes one batch of the de-duplication ids of expired events; returns how many went.
pub async fn delete_expired_ids(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM event_ids WHERE ctid IN
            (SELECT ctid FROM event_ids WHERE received_at < $1 LIMIT $2)",
    )
    .bind(cutoff)
    .bind(ID_BATCH)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Takes the clean-up lock on this connection if no other instance holds it.
pub async fn try_lock(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(CLEANUP_LOCK)
        .fetch_one(conn)
        .await
}

pub async fn unlock(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(CLEANUP_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_their_day() {
        assert_eq!(
            partition_day("events_20261126"),
            NaiveDate::from_ymd_opt(2026, 11, 26)
        );
        assert_eq!(partition_day("events_unpartitioned"), None);
        assert_eq!(partition_day("other_20261126"), None);
    }

    #[test]
    fn only_partitions_entirely_before_the_cutoff_expire() {
        let day = |d| Partition {
            name: String::new(),
            day: NaiveDate::from_ymd_opt(2026, 8, d).unwrap(),
            state: Attachment::Attached,
        };
        let cutoff = DateTime::parse_from_rfc3339("2026-08-03T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let expired: Vec<u32> = expired(&[day(1), day(2), day(3), day(4)], cutoff)
            .iter()
            .map(|p| p.day.day0() + 1)
            .collect();
        assert_eq!(
            expired,
            vec![1, 2],
            "the cutoff's own day keeps its partition until it is wholly past"
        );
    }
}

//! The retention job: keeps `events` partitions ahead of time and removes events older than
//! `FAULTLINE_RETENTION_DAYS`, hourly in the background and once with `faultline cleanup`.
//! Issues keep their totals; only occurrences go. Settled alerts older than the retention
//! period go too (their delivery history is shown for the last 100 only), and so does user
//! feedback received before it.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use crate::store::{alerts, artifacts, endpoints, feedback, retention};

const EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct CleanupReport {
    pub partitions_created: i32,
    /// `(partition, events it held)`.
    pub partitions_dropped: Vec<(String, i64)>,
    pub ids_deleted: u64,
    /// Settled alert triggers removed with their deliveries.
    pub alerts_deleted: u64,
    /// User reports older than the retention period.
    pub feedback_deleted: u64,
    /// Endpoint aggregate rows older than the retention period.
    pub endpoint_rows_deleted: u64,
    /// Source-map bundles unused for the retention period, and chunks never assembled.
    pub artifacts_deleted: u64,
}

/// One pass; `None` when another instance is already running one. `progress` hears one line
/// per step.
pub async fn run_once(
    pool: &PgPool,
    retention_days: i64,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Option<CleanupReport>> {
    let mut lock = pool.acquire().await?;
    if !retention::try_lock(&mut lock).await? {
        return Ok(None);
    }
    let result = clean(pool, retention_days, &mut progress).await;
    retention::unlock(&mut lock).await?;
    result.map(Some)
}

async fn clean(
    pool: &PgPool,
    retention_days: i64,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<CleanupReport> {
    let now = Utc::now();
    let cutoff = now - chrono::Duration::days(retention_days);
    let mut report = CleanupReport {
        partitions_created: retention::create_partitions(pool, now.date_naive()).await?,
        ..Default::default()
    };
    progress(&format!(
        "partitions: {} created ahead",
        report.partitions_created
    ));
    let all = retention::partitions(pool).await?;
    // One partition that cannot be dropped does not stop the rest of the clean-up; the run
    // still fails at its end, saying which.
    let mut not_dropped = Vec::new();
    for partition in retention::expired(&all, cutoff) {
        match retention::drop_partition(pool, &partition).await {
            Ok(rows) => {
                progress(&format!("dropped {} ({rows} events)", partition.name));
                report.partitions_dropped.push((partition.name, rows));
            }
            Err(e) => {
                progress(&format!("could not drop {}: {e}", partition.name));
                not_dropped.push(partition.name);
            }
        }
    }
    let cutoff_day = cutoff
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(cutoff);
    loop {
        let deleted = retention::delete_expired_ids(pool, cutoff_day).await?;
        let before = report.ids_deleted;
        report.ids_deleted += deleted;
        // A line per 100,000 ids, and one at the end.
        if deleted == 0 || report.ids_deleted / 100_000 > before / 100_000 {
            progress(&format!("deleted {} expired event ids", report.ids_deleted));
        }
        if deleted == 0 {
            break;
        }
    }
    report.alerts_deleted = alerts::delete_settled_before(pool, cutoff).await?;
    progress(&format!("deleted {} settled alerts", report.alerts_deleted));
    report.feedback_deleted = feedback::delete_received_before(pool, cutoff).await?;
    progress(&format!("deleted {} user reports", report.feedback_deleted));
    report.endpoint_rows_deleted = endpoints::delete_before(pool, cutoff).await?;
    progress(&format!(
        "deleted {} endpoint aggregate rows",
        report.endpoint_rows_deleted
    ));
    // A chunk waits a day for its bundle to be assembled.
    report.artifacts_deleted =
        artifacts::delete_unused_before(pool, cutoff, now - chrono::Duration::days(1)).await?;
    progress(&format!(
        "deleted {} unused source-map bundles and chunks",
        report.artifacts_deleted
    ));
    if !not_dropped.is_empty() {
        anyhow::bail!(
            "could not drop the expired partitions {}",
            not_dropped.join(", ")
        );
    }
    Ok(report)
}

/// Runs the job now and then every hour, for the life of the server.
pub fn spawn_background(pool: PgPool, retention_days: i64) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EVERY);
        loop {
            ticker.tick().await;
            match run_once(&pool, retention_days, |_| {}).await {
                Ok(Some(report)) => tracing::info!(
                    partitions.created = report.partitions_created,
                    partitions.dropped = report.partitions_dropped.len(),
                    events.removed = report.partitions_dropped.iter().map(|p| p.1).sum::<i64>(),
                    alerts.removed = report.alerts_deleted,
                    feedback.removed = report.feedback_deleted,
                    "retention clean-up done"
                ),
                Ok(None) => tracing::debug!("another instance is cleaning up"),
                Err(e) => tracing::error!(error = format!("{e:#}"), "retention clean-up failed"),
            }
        }
    });
}

//! Deliveries: one per trigger and matching channel. The sender claims due ones with
//! `FOR UPDATE SKIP LOCKED` and a lease, renews the claim just before each post, and records
//! the outcome (delivered, retried, abandoned) with the channel's state.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Everything a notification says, read when it is sent. No `Debug`: the channel's URL and
/// secret are credentials.
#[derive(Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub delivery_id: i64,
    pub attempts: i32,
    /// An earlier attempt already counted against the channel's cap.
    pub sent_before: bool,
    pub channel_id: i64,
    pub kind: String,
    pub target: String,
    pub secret: Option<String>,
    pub trigger: String,
    pub event_id: Uuid,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub level: String,
    /// For spikes: how many events in how many minutes.
    pub spike_count: Option<i64>,
    pub spike_minutes: Option<i32>,
    pub project_id: i64,
    pub project_name: String,
    pub issue_id: i64,
    pub title: String,
    pub culprit: String,
    pub status: String,
    pub event_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub failed_request: Option<String>,
}

/// Claims up to `limit` due deliveries for `lease_seconds`: another instance skips them, and
/// they are due again if this one dies before it records the outcome.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease_seconds: i64,
) -> sqlx::Result<Vec<DueDelivery>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM alert_deliveries
              WHERE delivered_at IS NULL AND abandoned_at IS NULL AND held_at IS NULL
                AND next_attempt_at <= now()
                AND NOT EXISTS (SELECT 1 FROM alert_channels c
                                 WHERE c.id = channel_id AND c.disabled_at IS NOT NULL)
              ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE alert_deliveries d
                SET next_attempt_at = now() + make_interval(secs => $2), attempts = d.attempts + 1
               FROM due WHERE d.id = due.id
             RETURNING d.*
         )
         SELECT d.id AS delivery_id, d.attempts, d.sent_at IS NOT NULL AS sent_before,
                c.id AS channel_id, c.kind, c.target, c.secret,
                o.trigger, o.event_id, o.environment, o.release, o.level, o.spike_count,
                o.spike_minutes,
                p.id AS project_id, p.name AS project_name,
                i.id AS issue_id, i.title, i.culprit, i.status::text AS status, i.event_count,
                i.first_seen, i.last_seen,
                (SELECT r.value FROM issue_tag_values r WHERE r.issue_id = i.id AND r.key = 'request'
                  ORDER BY r.count DESC, r.value LIMIT 1) AS failed_request
           FROM claimed d
           JOIN alert_channels c ON c.id = d.channel_id
           JOIN alert_outbox o ON o.id = d.outbox_id
           JOIN issues i ON i.id = o.issue_id
           JOIN projects p ON p.id = i.project_id
          ORDER BY d.id",
    )
    .bind(limit)
    .bind(lease_seconds as f64)
    .fetch_all(pool)
    .await
}

/// Records a failed digest on its channel (it is tried again after the retry delay).
pub async fn mark_channel_failed(
    pool: &PgPool,
    channel_id: i64,
    error: &str,
    disable: bool,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    record_channel_failure(&mut tx, channel_id, error, disable).await?;
    tx.commit().await
}

/// One line of a project's delivery history.
#[derive(Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub created_at: DateTime<Utc>,
    pub issue_id: i64,
    pub title: String,
    pub trigger: String,
    pub channel_id: i64,
    pub kind: String,
    pub attempts: i32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub held_at: Option<DateTime<Utc>>,
    pub abandoned_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A project's latest deliveries, newest first.
pub async fn recent_deliveries(
    pool: &PgPool,
    project_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as(
        "SELECT o.created_at, i.id AS issue_id, i.title, o.trigger, c.id AS channel_id, c.kind,
                d.attempts, d.delivered_at, d.held_at, d.abandoned_at, d.last_error
           FROM alert_deliveries d
           JOIN alert_channels c ON c.id = d.channel_id
           JOIN alert_outbox o ON o.id = d.outbox_id
           JOIN issues i ON i.id = o.issue_id
          WHERE c.project_id = $1
          ORDER BY d.id DESC
          LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Extends this instance's claim on a delivery just before it is sent, so a batch that takes
/// long to work through never outlives its lease. `false` when the claim was lost (its lease
/// ran out and another instance took the delivery, or it is settled): it must not be sent.
pub async fn renew_claim(
    pool: &PgPool,
    delivery: &DueDelivery,
    lease_seconds: i64,
) -> sqlx::Result<bool> {
    let renewed = sqlx::query(
        "UPDATE alert_deliveries SET next_attempt_at = now() + make_interval(secs => $3)
          WHERE id = $1 AND attempts = $2
            AND delivered_at IS NULL AND abandoned_at IS NULL AND held_at IS NULL",
    )
    .bind(delivery.delivery_id)
    .bind(delivery.attempts)
    .bind(lease_seconds as f64)
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

pub async fn mark_delivered(pool: &PgPool, delivery: &DueDelivery) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE alert_deliveries SET delivered_at = now(), last_error = NULL WHERE id = $1",
    )
    .bind(delivery.delivery_id)
    .execute(&mut *tx)
    .await?;
    record_channel_success(&mut tx, delivery.channel_id).await?;
    tx.commit().await
}

/// The channel took a notification: it is no longer failing.
pub(super) async fn record_channel_success(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    channel_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alert_channels SET last_success_at = now(), failing_since = NULL WHERE id = $1",
    )
    .bind(channel_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a failed attempt: tried again at `retry_at`, or abandoned when that is `None`.
pub async fn mark_failed(
    pool: &PgPool,
    delivery: &DueDelivery,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    disable: bool,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE alert_deliveries
            SET last_error = $2,
                next_attempt_at = COALESCE($3, next_attempt_at),
                abandoned_at = CASE WHEN $3 IS NULL THEN now() END
          WHERE id = $1",
    )
    .bind(delivery.delivery_id)
    .bind(error)
    .bind(retry_at)
    .execute(&mut *tx)
    .await?;
    record_channel_failure(&mut tx, delivery.channel_id, error, disable).await?;
    tx.commit().await
}

/// The channel's last failure; it is disabled when `disable` or when it has failed without a
/// success for a day.
async fn record_channel_failure(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    channel_id: i64,
    error: &str,
    disable: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alert_channels
            SET last_failure_at = now(), last_failure = $2,
                failing_since = COALESCE(failing_since, now()),
                disabled_at = CASE
                    WHEN $3 OR COALESCE(failing_since, now()) < now() - interval '24 hours'
                    THEN COALESCE(disabled_at, now()) ELSE disabled_at END
          WHERE id = $1",
    )
    .bind(channel_id)
    .bind(error)
    .bind(disable)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes triggers older than `cutoff` whose deliveries are all settled (delivered or
/// abandoned), with those deliveries; pending ones stay whatever their age.
pub async fn delete_settled_before(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let deleted = sqlx::query(
        "DELETE FROM alert_outbox o
          WHERE o.created_at < $1 AND o.expanded_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM alert_deliveries d
                             WHERE d.outbox_id = o.id
                               AND d.delivered_at IS NULL AND d.abandoned_at IS NULL)",
    )
    .bind(cutoff)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

/// A successful test notification: the channel works again.
pub async fn enable_channel(pool: &PgPool, channel_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alert_channels
            SET disabled_at = NULL, failing_since = NULL, last_success_at = now()
          WHERE id = $1",
    )
    .bind(channel_id)
    .execute(pool)
    .await?;
    Ok(())
}

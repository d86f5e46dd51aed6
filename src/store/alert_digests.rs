//! Storm control's rows: a channel's cap counted over its window, the deliveries it held back,
//! and the digest that delivers them together.

use sqlx::PgPool;

use super::alerts::DueDelivery;

/// Counts a first attempt against its channel's cap: `true` when the channel sent fewer than
/// `cap` notifications in the last `window_seconds` (the delivery may go), `false` when it is
/// held back for the channel's next digest. The channel's row is locked while counting, so
/// instances sharing the database never exceed the cap together.
pub async fn take_cap_slot(
    pool: &PgPool,
    delivery: &DueDelivery,
    cap: i64,
    window_seconds: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM alert_channels WHERE id = $1 FOR UPDATE")
        .bind(delivery.channel_id)
        .execute(&mut *tx)
        .await?;
    // A held delivery leaves the claim (`next_attempt_at = now()`): its digest claims it anew.
    let sent: Option<bool> = sqlx::query_scalar(
        "UPDATE alert_deliveries d
            SET sent_at = CASE WHEN busy.n < $3 THEN now() END,
                held_at = CASE WHEN busy.n >= $3 THEN now() END,
                next_attempt_at = CASE WHEN busy.n >= $3 THEN now() ELSE d.next_attempt_at END
           FROM (SELECT count(*) AS n FROM alert_deliveries
                  WHERE channel_id = $2 AND held_at IS NULL
                    AND sent_at > now() - make_interval(secs => $4)) AS busy
          WHERE d.id = $1
         RETURNING d.sent_at IS NOT NULL",
    )
    .bind(delivery.delivery_id)
    .bind(delivery.channel_id)
    .bind(cap)
    .bind(window_seconds as f64)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sent.unwrap_or(false))
}

/// An issue a digest names.
#[derive(Clone, sqlx::FromRow)]
pub struct HeldIssue {
    pub issue_id: i64,
    pub title: String,
    pub event_count: i64,
}

/// A channel whose held deliveries are due as one digest. No `Debug`: credentials.
#[derive(Clone, sqlx::FromRow)]
pub struct DueDigest {
    pub channel_id: i64,
    pub kind: String,
    pub target: String,
    pub secret: Option<String>,
    pub project_name: String,
    pub held: i64,
    /// The held deliveries it accounts for, so exactly those are marked delivered.
    pub delivery_ids: Vec<i64>,
}

/// Claims, for `lease_seconds`, the held deliveries of each channel that has held some back
/// for at least `window_seconds`: one digest each. Claimed rows are skipped by other
/// instances, so a digest is sent once; a channel that failed within `retry_seconds` waits.
pub async fn claim_due_digests(
    pool: &PgPool,
    window_seconds: i64,
    retry_seconds: i64,
    lease_seconds: i64,
) -> sqlx::Result<Vec<DueDigest>> {
    sqlx::query_as(
        "WITH held AS (
             SELECT d.id, d.channel_id, d.held_at
               FROM alert_deliveries d
               JOIN alert_channels c ON c.id = d.channel_id
              WHERE d.held_at IS NOT NULL AND d.delivered_at IS NULL AND d.abandoned_at IS NULL
                AND d.next_attempt_at <= now() AND c.disabled_at IS NULL
                AND (c.last_failure_at IS NULL
                     OR c.last_failure_at < now() - make_interval(secs => $2))
              FOR UPDATE OF d SKIP LOCKED
         ), due AS (
             SELECT channel_id FROM held GROUP BY channel_id
             HAVING min(held_at) <= now() - make_interval(secs => $1)
         ), claimed AS (
             UPDATE alert_deliveries d SET next_attempt_at = now() + make_interval(secs => $3)
               FROM held JOIN due USING (channel_id)
              WHERE d.id = held.id
             RETURNING d.id, d.channel_id
         )
         SELECT c.id AS channel_id, c.kind, c.target, c.secret, p.name AS project_name,
                count(*) AS held, array_agg(claimed.id ORDER BY claimed.id) AS delivery_ids
           FROM claimed
           JOIN alert_channels c ON c.id = claimed.channel_id
           JOIN projects p ON p.id = c.project_id
          GROUP BY c.id, p.name",
    )
    .bind(window_seconds as f64)
    .bind(retry_seconds as f64)
    .bind(lease_seconds as f64)
    .fetch_all(pool)
    .await
}

/// A digest that was not delivered: its deliveries are claimable again at `retry_at`.
pub async fn postpone_digest(
    pool: &PgPool,
    digest: &DueDigest,
    retry_at: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE alert_deliveries SET next_attempt_at = $2 WHERE id = ANY($1)")
        .bind(&digest.delivery_ids)
        .bind(retry_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// The most frequent issues among held deliveries, for the digest to name.
pub async fn held_issues(
    pool: &PgPool,
    delivery_ids: &[i64],
    limit: i64,
) -> sqlx::Result<Vec<HeldIssue>> {
    sqlx::query_as(
        "SELECT DISTINCT ON (i.event_count, i.id) i.id AS issue_id, i.title, i.event_count
           FROM alert_deliveries d
           JOIN alert_outbox o ON o.id = d.outbox_id
           JOIN issues i ON i.id = o.issue_id
          WHERE d.id = ANY($1)
          ORDER BY i.event_count DESC, i.id
          LIMIT $2",
    )
    .bind(delivery_ids)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Marks a digest's held deliveries delivered, and the channel's success.
pub async fn mark_digest_delivered(pool: &PgPool, digest: &DueDigest) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE alert_deliveries SET delivered_at = now() WHERE id = ANY($1)")
        .bind(&digest.delivery_ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE alert_channels SET last_success_at = now(), failing_since = NULL WHERE id = $1",
    )
    .bind(digest.channel_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

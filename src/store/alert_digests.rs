//! Storm control's rows: a channel's cap counted over its window, the deliveries it held back,
//! and the digest that delivers them together.

use sqlx::PgPool;

use super::alerts::DueDelivery;

/// Counts a first attempt against its channel's cap: `true` when the channel sent fewer than
/// `cap` notifications in the last `window_seconds` (the delivery may go), `false` when it is
/// held back for the channel's next digest.
pub async fn take_cap_slot(
    pool: &PgPool,
    delivery: &DueDelivery,
    cap: i64,
    window_seconds: i64,
) -> sqlx::Result<bool> {
    let sent: Option<bool> = sqlx::query_scalar(
        "UPDATE alert_deliveries d
            SET sent_at = CASE WHEN busy.n < $3 THEN now() END,
                held_at = CASE WHEN busy.n >= $3 THEN now() END
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
    .fetch_optional(pool)
    .await?;
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

/// Channels holding deliveries back for at least `window_seconds`, with what they hold; a
/// channel that failed within `retry_seconds` waits.
pub async fn due_digests(
    pool: &PgPool,
    window_seconds: i64,
    retry_seconds: i64,
) -> sqlx::Result<Vec<DueDigest>> {
    sqlx::query_as(
        "SELECT c.id AS channel_id, c.kind, c.target, c.secret, p.name AS project_name,
                count(*) AS held, array_agg(d.id ORDER BY d.id) AS delivery_ids
           FROM alert_deliveries d
           JOIN alert_channels c ON c.id = d.channel_id
           JOIN projects p ON p.id = c.project_id
          WHERE d.held_at IS NOT NULL AND d.delivered_at IS NULL AND d.abandoned_at IS NULL
            AND c.disabled_at IS NULL
            AND (c.last_failure_at IS NULL OR c.last_failure_at < now() - make_interval(secs => $2))
          GROUP BY c.id, p.name
         HAVING min(d.held_at) <= now() - make_interval(secs => $1)",
    )
    .bind(window_seconds as f64)
    .bind(retry_seconds as f64)
    .fetch_all(pool)
    .await
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

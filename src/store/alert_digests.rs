//! Storm control's rows: a channel's cap counted over its window, the deliveries it held back,
//! and the digest that delivers them together.

use sqlx::PgPool;

use super::alerts::DueDelivery;

/// Counts first attempts against their channels' caps, a claimed batch at once: returns the
/// deliveries that may go (their channel sent fewer than `cap` notifications in the last
/// `window_seconds`, counting earlier ones of the batch); the rest are held back for their
/// channel's next digest and leave the claim. The channels' rows are locked while counting,
/// so instances sharing the database never exceed a cap together.
pub async fn take_cap_slots(
    pool: &PgPool,
    deliveries: &[&DueDelivery],
    cap: i64,
    window_seconds: i64,
) -> sqlx::Result<Vec<i64>> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = deliveries.iter().map(|d| d.delivery_id).collect();
    let mut channels: Vec<i64> = deliveries.iter().map(|d| d.channel_id).collect();
    channels.sort_unstable();
    channels.dedup();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM alert_channels WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&channels)
        .execute(&mut *tx)
        .await?;
    let decided: Vec<Option<i64>> = sqlx::query_scalar(
        "WITH batch AS (
             SELECT id, channel_id, row_number() OVER (PARTITION BY channel_id ORDER BY id) AS rank
               FROM alert_deliveries WHERE id = ANY($1)
         ), busy AS (
             SELECT channel_id, count(*) AS n FROM alert_deliveries
              WHERE channel_id = ANY($2) AND held_at IS NULL
                AND sent_at > now() - make_interval(secs => $4)
              GROUP BY channel_id
         ), decided AS (
             SELECT b.id, b.rank + coalesce(busy.n, 0) <= $3 AS goes
               FROM batch b LEFT JOIN busy USING (channel_id)
         )
         UPDATE alert_deliveries d
            SET sent_at = CASE WHEN decided.goes THEN now() END,
                held_at = CASE WHEN decided.goes THEN NULL ELSE now() END,
                next_attempt_at = CASE WHEN decided.goes THEN d.next_attempt_at ELSE now() END
           FROM decided
          WHERE d.id = decided.id
         RETURNING CASE WHEN decided.goes THEN d.id END",
    )
    .bind(&ids)
    .bind(&channels)
    .bind(cap)
    .bind(window_seconds as f64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(decided.into_iter().flatten().collect())
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
/// for at least `window_seconds`: one digest each. The channel's row is locked while its
/// deliveries are claimed and channels locked elsewhere are skipped, so a digest is sent
/// once and whole, however many instances look at once; a channel that failed within
/// `retry_seconds` waits.
pub async fn claim_due_digests(
    pool: &PgPool,
    window_seconds: i64,
    retry_seconds: i64,
    lease_seconds: i64,
) -> sqlx::Result<Vec<DueDigest>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT c.id FROM alert_channels c
              WHERE c.disabled_at IS NULL
                AND (c.last_failure_at IS NULL
                     OR c.last_failure_at < now() - make_interval(secs => $2))
                AND EXISTS (
                    SELECT 1 FROM alert_deliveries d
                     WHERE d.channel_id = c.id AND d.held_at IS NOT NULL
                       AND d.delivered_at IS NULL AND d.abandoned_at IS NULL
                       AND d.next_attempt_at <= now()
                       AND d.held_at <= now() - make_interval(secs => $1))
              FOR UPDATE OF c SKIP LOCKED
         ), claimed AS (
             -- Waits for rows another statement holds rather than leaving them out: a
             -- channel's held deliveries go in one digest.
             UPDATE alert_deliveries d SET next_attempt_at = now() + make_interval(secs => $3)
               FROM due
              WHERE d.channel_id = due.id AND d.held_at IS NOT NULL
                AND d.delivered_at IS NULL AND d.abandoned_at IS NULL
                AND d.next_attempt_at <= now()
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
    // The channel first, as the claim locks it: the other order could deadlock with a claim
    // of the same channel by another instance.
    sqlx::query("SELECT id FROM alert_channels WHERE id = $1 FOR UPDATE")
        .bind(digest.channel_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE alert_deliveries SET delivered_at = now() WHERE id = ANY($1)")
        .bind(&digest.delivery_ids)
        .execute(&mut *tx)
        .await?;
    super::alert_deliveries::record_channel_success(&mut tx, digest.channel_id).await?;
    tx.commit().await
}

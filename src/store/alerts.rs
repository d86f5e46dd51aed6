//! Alert channels, the outbox of triggers the writer records, and the deliveries the sender
//! works through. Claims use `FOR UPDATE SKIP LOCKED` and leases, so several Faultline
//! instances share the work and a delivery claimed by an instance that died is retried.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::events::NewEvent;
use crate::domain::level::Level;

/// What happened to an issue that operators hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    NewIssue,
    Regression,
}

impl Trigger {
    pub const ALL: [Trigger; 2] = [Trigger::NewIssue, Trigger::Regression];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::NewIssue => "new_issue",
            Trigger::Regression => "regression",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A trigger as the writer records it.
pub struct NewTrigger<'a> {
    pub issue_id: i64,
    pub trigger: Trigger,
    pub event: &'a NewEvent,
}

/// Records triggers in the writer's transaction: committed with their events, or not at all.
pub async fn record_triggers(
    tx: &mut Transaction<'_, Postgres>,
    triggers: &[NewTrigger<'_>],
) -> sqlx::Result<()> {
    let issue_ids: Vec<i64> = triggers.iter().map(|t| t.issue_id).collect();
    let kinds: Vec<&str> = triggers.iter().map(|t| t.trigger.as_str()).collect();
    let event_ids: Vec<Uuid> = triggers.iter().map(|t| t.event.event_id).collect();
    let environments: Vec<Option<&str>> = triggers
        .iter()
        .map(|t| t.event.environment.as_deref())
        .collect();
    let releases: Vec<Option<&str>> = triggers
        .iter()
        .map(|t| t.event.release.as_deref())
        .collect();
    let levels: Vec<&str> = triggers.iter().map(|t| t.event.level.as_str()).collect();
    sqlx::query(
        "INSERT INTO alert_outbox (issue_id, trigger, event_id, environment, release, level)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[])",
    )
    .bind(&issue_ids)
    .bind(&kinds)
    .bind(&event_ids)
    .bind(&environments)
    .bind(&releases)
    .bind(&levels)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Discord,
    Teams,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Teams,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Teams => "teams",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A channel as configured. No `Debug`: its URL and secret are credentials.
#[derive(Clone)]
pub struct NewChannel {
    pub project_id: i64,
    pub kind: ChannelKind,
    pub target: String,
    pub secret: Option<String>,
    pub triggers: Vec<Trigger>,
    pub environments: Vec<String>,
    pub min_level: Level,
}

pub async fn create_channel(pool: &PgPool, channel: &NewChannel) -> sqlx::Result<i64> {
    let triggers: Vec<&str> = channel.triggers.iter().map(|t| t.as_str()).collect();
    sqlx::query_scalar(
        "INSERT INTO alert_channels (project_id, kind, target, secret, triggers, environments, min_level)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(channel.project_id)
    .bind(channel.kind.as_str())
    .bind(&channel.target)
    .bind(&channel.secret)
    .bind(&triggers)
    .bind(&channel.environments)
    .bind(channel.min_level.as_str())
    .fetch_one(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct ChannelRow {
    pub id: i64,
    pub project_id: i64,
    pub project_name: String,
    pub kind: String,
    pub target: String,
    pub triggers: Vec<String>,
    pub environments: Vec<String>,
    pub min_level: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
}

pub async fn list_channels(pool: &PgPool) -> sqlx::Result<Vec<ChannelRow>> {
    sqlx::query_as(
        "SELECT c.id, c.project_id, p.name AS project_name, c.kind, c.target, c.triggers,
                c.environments, c.min_level, c.last_success_at, c.last_failure_at, c.last_failure
           FROM alert_channels c JOIN projects p ON p.id = c.project_id
          ORDER BY c.id",
    )
    .fetch_all(pool)
    .await
}

/// What `faultline alert test` needs to post to a channel:
/// `(project id, project name, kind, target, secret)`.
pub async fn channel_target(
    pool: &PgPool,
    id: i64,
) -> sqlx::Result<Option<(i64, String, String, String, Option<String>)>> {
    sqlx::query_as(
        "SELECT p.id, p.name, c.kind, c.target, c.secret
           FROM alert_channels c JOIN projects p ON p.id = c.project_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn delete_channel(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM alert_channels WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Turns pending outbox rows into one delivery per matching channel, in one transaction.
/// Ignored issues alert no one; a channel hears only its triggers, environments and levels.
pub async fn expand_outbox(pool: &PgPool) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "WITH pending AS (
             SELECT id FROM alert_outbox WHERE expanded_at IS NULL
              ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED
         ), marked AS (
             UPDATE alert_outbox o SET expanded_at = now() FROM pending
              WHERE o.id = pending.id
             RETURNING o.*
         )
         INSERT INTO alert_deliveries (outbox_id, channel_id)
         SELECT m.id, c.id
           FROM marked m
           JOIN issues i ON i.id = m.issue_id AND i.status <> 'ignored'
           JOIN alert_channels c ON c.project_id = i.project_id
          WHERE m.trigger = ANY (c.triggers)
            AND (cardinality(c.environments) = 0 OR m.environment = ANY (c.environments))
            AND array_position($1::text[], m.level) >= array_position($1::text[], c.min_level)
         ON CONFLICT (outbox_id, channel_id) DO NOTHING",
    )
    .bind(Level::ALL.map(Level::as_str).as_slice())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.rows_affected())
}

/// Everything a notification says, read when it is sent. No `Debug`: the channel's URL and
/// secret are credentials.
#[derive(Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub delivery_id: i64,
    pub attempts: i32,
    pub channel_id: i64,
    pub kind: String,
    pub target: String,
    pub secret: Option<String>,
    pub trigger: String,
    pub event_id: Uuid,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub level: String,
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
              WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now()
              ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE alert_deliveries d
                SET next_attempt_at = now() + make_interval(secs => $2), attempts = d.attempts + 1
               FROM due WHERE d.id = due.id
             RETURNING d.*
         )
         SELECT d.id AS delivery_id, d.attempts, c.id AS channel_id, c.kind, c.target, c.secret,
                o.trigger, o.event_id, o.environment, o.release, o.level,
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

pub async fn mark_delivered(pool: &PgPool, delivery: &DueDelivery) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE alert_deliveries SET delivered_at = now(), last_error = NULL WHERE id = $1",
    )
    .bind(delivery.delivery_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE alert_channels SET last_success_at = now() WHERE id = $1")
        .bind(delivery.channel_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Records a failed attempt: tried again at `retry_at`, or abandoned when that is `None`.
pub async fn mark_failed(
    pool: &PgPool,
    delivery: &DueDelivery,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
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
    sqlx::query(
        "UPDATE alert_channels SET last_failure_at = now(), last_failure = $2 WHERE id = $1",
    )
    .bind(delivery.channel_id)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

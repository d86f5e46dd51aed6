//! Alert channels: where a project's alerts go, and what each hears.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::alerts::Trigger;
use crate::domain::level::Level;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Discord,
    Teams,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Teams,
        ChannelKind::Email,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Teams => "teams",
            ChannelKind::Email => "email",
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
    /// Spike: more than this many events…
    pub spike_events: Option<i32>,
    /// …within this many minutes.
    pub spike_minutes: Option<i32>,
    /// Least minutes between two spike alerts for one issue.
    pub cooldown_minutes: i32,
}

pub async fn create_channel(pool: &PgPool, channel: &NewChannel) -> sqlx::Result<i64> {
    let triggers: Vec<&str> = channel.triggers.iter().map(|t| t.as_str()).collect();
    sqlx::query_scalar(
        "INSERT INTO alert_channels (project_id, kind, target, secret, triggers, environments,
                                     min_level, spike_events, spike_minutes, cooldown_minutes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(channel.project_id)
    .bind(channel.kind.as_str())
    .bind(&channel.target)
    .bind(&channel.secret)
    .bind(&triggers)
    .bind(&channel.environments)
    .bind(channel.min_level.as_str())
    .bind(channel.spike_events)
    .bind(channel.spike_minutes)
    .bind(channel.cooldown_minutes)
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
    pub spike_events: Option<i32>,
    pub spike_minutes: Option<i32>,
    pub cooldown_minutes: i32,
    pub has_secret: bool,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// Changes a channel of `channel.project_id` in place, keeping its id, state and history.
/// `false` when the project has no such channel.
pub async fn update_channel(pool: &PgPool, id: i64, channel: &NewChannel) -> sqlx::Result<bool> {
    let triggers: Vec<&str> = channel.triggers.iter().map(|t| t.as_str()).collect();
    let result = sqlx::query(
        "UPDATE alert_channels
            SET target = $3, secret = $4, triggers = $5, environments = $6, min_level = $7,
                spike_events = $8, spike_minutes = $9, cooldown_minutes = $10
          WHERE id = $1 AND project_id = $2",
    )
    .bind(id)
    .bind(channel.project_id)
    .bind(&channel.target)
    .bind(&channel.secret)
    .bind(&triggers)
    .bind(&channel.environments)
    .bind(channel.min_level.as_str())
    .bind(channel.spike_events)
    .bind(channel.spike_minutes)
    .bind(channel.cooldown_minutes)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Every channel, or one project's.
pub async fn list_channels(
    pool: &PgPool,
    project_id: Option<i64>,
) -> sqlx::Result<Vec<ChannelRow>> {
    sqlx::query_as(
        "SELECT c.id, c.project_id, p.name AS project_name, c.kind, c.target, c.triggers,
                c.environments, c.min_level, c.spike_events, c.spike_minutes, c.cooldown_minutes,
                c.secret IS NOT NULL AS has_secret, c.last_success_at, c.last_failure_at, c.last_failure,
                c.disabled_at
           FROM alert_channels c JOIN projects p ON p.id = c.project_id
          WHERE $1::int8 IS NULL OR c.project_id = $1
          ORDER BY c.id",
    )
    .bind(project_id)
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

/// Deletes a channel (of the given project, when one is named).
pub async fn delete_channel(pool: &PgPool, id: i64, project_id: Option<i64>) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "DELETE FROM alert_channels WHERE id = $1 AND ($2::int8 IS NULL OR project_id = $2)",
    )
    .bind(id)
    .bind(project_id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

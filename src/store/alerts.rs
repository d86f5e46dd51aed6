//! Alert channels, the outbox of triggers the writer records, and the deliveries the sender
//! works through. Claims use `FOR UPDATE SKIP LOCKED` and leases, so several Faultline
//! instances share the work and a delivery claimed by an instance that died is retried.

use std::collections::{BTreeMap, HashSet};

use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub use super::alert_channels::{
    channel_target, create_channel, delete_channel, list_channels, update_channel, ChannelKind,
    ChannelRow, NewChannel,
};
pub use super::alert_deliveries::{
    claim_due, delete_settled_before, enable_channel, mark_channel_failed, mark_delivered,
    mark_failed, recent_deliveries, renew_claim, DeliveryRow, DueDelivery,
};
pub use super::alert_digests::{
    claim_due_digests, held_issues, mark_digest_delivered, postpone_digest, take_cap_slots,
    DueDigest, HeldIssue,
};
use super::events::NewEvent;
use crate::domain::level::Level;

/// What happened to an issue that operators hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    NewIssue,
    Regression,
    /// More than a channel's threshold of events in its window.
    Spike,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::NewIssue, Trigger::Regression, Trigger::Spike];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::NewIssue => "new_issue",
            Trigger::Regression => "regression",
            Trigger::Spike => "spike",
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
    // The notification is sent at commit, and wakes every instance's sender at once.
    sqlx::query(
        "WITH recorded AS (
             INSERT INTO alert_outbox (issue_id, trigger, event_id, environment, release, level)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                                  $6::text[])
             RETURNING 1
         )
         SELECT pg_notify($7, count(*)::text) FROM recorded",
    )
    .bind(&issue_ids)
    .bind(&kinds)
    .bind(&event_ids)
    .bind(&environments)
    .bind(&releases)
    .bind(&levels)
    .bind(TRIGGERS_RECORDED)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The PostgreSQL notification channel a commit that recorded triggers notifies.
const TRIGGERS_RECORDED: &str = "faultline_alert_triggers";

/// A connection that hears whenever triggers are committed, by any instance.
pub async fn listen_for_triggers(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(TRIGGERS_RECORDED).await?;
    Ok(listener)
}

/// Records a spike for every channel that watches for them and every issue over its
/// threshold, unless that issue's last spike on that channel is within the channel's cooldown.
/// One instance at a time (an advisory lock), so two never record the same spike.
pub async fn detect_spikes(pool: &PgPool) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7261130001)")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let recorded = sqlx::query(
        // Issues seen within the window are the only candidates (issues_project_last_seen);
        // each is counted through events (issue_id, received_at), at most threshold + 1 rows.
        "INSERT INTO alert_outbox (issue_id, trigger, event_id, environment, release, level,
                                   channel_id, spike_count, spike_minutes)
         SELECT i.id, 'spike', e.event_id, e.environment, e.release, e.level,
                c.id, n.count, c.spike_minutes
           FROM alert_channels c
           JOIN issues i ON i.project_id = c.project_id AND i.status <> 'ignored'
                        AND i.last_seen > now() - make_interval(mins => c.spike_minutes)
          CROSS JOIN LATERAL (
                SELECT count(*) AS count FROM (
                    SELECT 1 FROM events ev
                     WHERE ev.issue_id = i.id
                       AND ev.received_at > now() - make_interval(mins => c.spike_minutes)
                     LIMIT c.spike_events + 1) recent) n
          CROSS JOIN LATERAL (
                SELECT ev.event_id, ev.environment, ev.release, ev.level FROM events ev
                 WHERE ev.issue_id = i.id
                   AND ev.received_at > now() - make_interval(mins => c.spike_minutes)
                 ORDER BY ev.received_at DESC LIMIT 1) e
          WHERE 'spike' = ANY (c.triggers) AND c.disabled_at IS NULL
            AND c.spike_events IS NOT NULL AND c.spike_minutes IS NOT NULL
            AND n.count > c.spike_events
            AND NOT EXISTS (
                SELECT 1 FROM alert_outbox o
                 WHERE o.channel_id = c.id AND o.issue_id = i.id AND o.trigger = 'spike'
                   AND o.created_at > now() - make_interval(mins => c.cooldown_minutes))",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(recorded.rows_affected())
}

/// Turns pending outbox rows into one delivery per matching channel, in one transaction.
/// Ignored issues alert no one; a channel hears only its triggers, environments and levels.
/// Storm control starts here: a delivery that would take its channel past `cap` (counting
/// those sent in the last `window_seconds` and those still waiting to go) is created already
/// held for the digest, so a storm's thousands never go through claims one by one. The
/// sender's cap check (`take_cap_slots`) still decides the rest, under the channel's lock.
pub async fn expand_outbox(pool: &PgPool, cap: i64, window_seconds: i64) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "WITH pending AS (
             SELECT id FROM alert_outbox WHERE expanded_at IS NULL
              ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED
         ), marked AS (
             UPDATE alert_outbox o SET expanded_at = now() FROM pending
              WHERE o.id = pending.id
             RETURNING o.*
         ), matched AS (
             SELECT m.id AS outbox_id, c.id AS channel_id,
                    row_number() OVER (PARTITION BY c.id ORDER BY m.id) AS rank
               FROM marked m
               JOIN issues i ON i.id = m.issue_id AND i.status <> 'ignored'
               JOIN alert_channels c ON c.project_id = i.project_id AND c.disabled_at IS NULL
              WHERE m.trigger = ANY (c.triggers)
                AND (m.channel_id IS NULL OR m.channel_id = c.id)
                AND (cardinality(c.environments) = 0 OR m.environment = ANY (c.environments))
                AND array_position($1::text[], m.level) >= array_position($1::text[], c.min_level)
         ), busy AS (
             SELECT d.channel_id, count(*) AS n FROM alert_deliveries d
              WHERE d.channel_id IN (SELECT channel_id FROM matched) AND d.held_at IS NULL
                AND (d.sent_at > now() - make_interval(secs => $3)
                     OR (d.sent_at IS NULL AND d.delivered_at IS NULL AND d.abandoned_at IS NULL))
              GROUP BY d.channel_id
         )
         INSERT INTO alert_deliveries (outbox_id, channel_id, held_at)
         SELECT m.outbox_id, m.channel_id,
                CASE WHEN m.rank + coalesce(b.n, 0) > $2 THEN now() END
           FROM matched m LEFT JOIN busy b USING (channel_id)
         ON CONFLICT (outbox_id, channel_id) DO NOTHING",
    )
    .bind(Level::ALL.map(Level::as_str).as_slice())
    .bind(cap)
    .bind(window_seconds as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.rows_affected())
}

/// One trigger per issue this batch created or reopened, carried by its newest new event.
pub fn triggers_of<'a>(
    events: &[(&'a NewEvent, i64)],
    created: &HashSet<i64>,
    regressed: &HashSet<i64>,
) -> Vec<NewTrigger<'a>> {
    let mut newest: BTreeMap<i64, &NewEvent> = BTreeMap::new();
    for (event, issue_id) in events {
        if created.contains(issue_id) || regressed.contains(issue_id) {
            let entry = newest.entry(*issue_id).or_insert(event);
            if event.occurred_at > entry.occurred_at {
                *entry = event;
            }
        }
    }
    newest
        .into_iter()
        .map(|(issue_id, event)| NewTrigger {
            issue_id,
            trigger: if created.contains(&issue_id) {
                Trigger::NewIssue
            } else {
                Trigger::Regression
            },
            event,
        })
        .collect()
}

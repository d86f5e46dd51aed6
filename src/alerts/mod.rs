//! Alerts: the writer records triggers in `alert_outbox` in the transaction of the events that
//! caused them (see `store::events`); this sender, one per instance, turns them into
//! deliveries per matching channel and posts each, retrying with backoff until it succeeds or
//! is refused for good. Claims are leased rows, so instances share the work and a delivery
//! claimed by an instance that died is sent again by another.

pub mod address;
pub mod commands;
pub mod email;
pub mod message;
mod poster;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

pub use poster::{sample_delivery, sign, Poster};

use crate::config::AlertSettings;
use crate::store::alerts::{self, DueDelivery};
use crate::tasks::supervise;

/// How often pending triggers, spikes and due retries are looked for; new triggers also wake
/// the sender at once, through PostgreSQL's LISTEN/NOTIFY.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Deliveries posted at the same time.
const SEND_AT_ONCE: usize = 4;
/// Least time between two rounds woken by notifications: during a storm of new issues every
/// commit notifies, and one round per commit would take CPU from ingest for nothing.
const MIN_ROUND_GAP: Duration = Duration::from_millis(100);
/// Deliveries sent per round, one after another.
const CLAIM_AT_ONCE: i64 = 50;
/// Issues a digest names, the most frequent first.
const DIGEST_TOP: i64 = 5;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 3600;
/// The longest wait a receiver's `Retry-After` is honoured for: a day. A receiver's header is
/// its own input (`inf`, `1e300`); past this it is read as a day.
const MAX_ASKED_SECONDS: i64 = 24 * 3600;

pub fn spawn_sender(pool: PgPool, base_url: String, settings: AlertSettings) {
    let poster = match Poster::new(base_url, &settings) {
        Ok(poster) => poster,
        Err(e) => {
            tracing::error!(error = %e, "alerts are off: could not build an HTTP client");
            return;
        }
    };
    let sender = Arc::new(Sender {
        pool,
        settings,
        poster,
    });
    tokio::spawn(supervise("the alert sender", move || sender.clone().run()));
}

struct Sender {
    pool: PgPool,
    settings: AlertSettings,
    poster: Poster,
}

/// How one attempt ended.
pub enum Outcome {
    Delivered,
    /// Worth trying again, no sooner than the receiver asked (`Retry-After`), if it did.
    Retry(String, Option<i64>),
    /// This notification cannot be taken, and retrying it cannot help.
    Refused(String),
    /// The webhook is wrong or gone (401/403/404/410): the channel is disabled.
    Gone(String),
}

impl Sender {
    async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(POLL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listener = match alerts::listen_for_triggers(&self.pool).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "alerts will be looked for every second only");
                None
            }
        };
        loop {
            let woken = tokio::select! {
                _ = ticks.tick() => false,
                _ = next_notification(&mut listener) => true,
            };
            let started = tokio::time::Instant::now();
            // Spikes are counted on the clock; a notification means new triggers.
            if let Err(e) = self.round(!woken).await {
                // The database is down or busy: the next round tries again.
                tracing::warn!(error = %e, "alert round failed");
            }
            tokio::time::sleep_until(started + MIN_ROUND_GAP).await;
        }
    }

    async fn round(&self, look_for_spikes: bool) -> sqlx::Result<()> {
        if look_for_spikes {
            alerts::detect_spikes(&self.pool).await?;
        }
        let settings = &self.settings;
        alerts::expand_outbox(
            &self.pool,
            settings.alert_cap,
            settings.alert_cap_window_seconds,
        )
        .await?;
        loop {
            let due =
                alerts::claim_due(&self.pool, CLAIM_AT_ONCE, self.settings.alert_lease_seconds)
                    .await?;
            if due.is_empty() {
                break;
            }
            let allowed = self.within_cap(&due).await?;
            let mut sends = Vec::new();
            for delivery in due.iter().filter(|d| allowed.contains(&d.delivery_id)) {
                sends.push(self.deliver(delivery));
            }
            let outcomes: Vec<sqlx::Result<()>> = futures_util::stream::iter(sends)
                .buffer_unordered(SEND_AT_ONCE)
                .collect()
                .await;
            outcomes.into_iter().collect::<sqlx::Result<()>>()?;
        }
        self.send_digests().await
    }

    /// Sends one claimed delivery, unless its claim was lost meanwhile, and records how it went.
    async fn deliver(&self, delivery: &DueDelivery) -> sqlx::Result<()> {
        if !alerts::renew_claim(&self.pool, delivery, self.settings.alert_lease_seconds).await? {
            return Ok(());
        }
        let outcome = self.poster.send(delivery).await;
        self.record(delivery, outcome).await
    }

    /// Storm control: a channel gets at most `alert_cap` notifications per window; what is
    /// over is held for the digest sent when the window ends, never dropped. Returns the
    /// claimed deliveries that may be sent now: retries, and first attempts within the cap.
    async fn within_cap(&self, due: &[DueDelivery]) -> sqlx::Result<Vec<i64>> {
        let (retries, first): (Vec<&DueDelivery>, Vec<&DueDelivery>) =
            due.iter().partition(|d| d.sent_before);
        let settings = &self.settings;
        let mut allowed = alerts::take_cap_slots(
            &self.pool,
            &first,
            settings.alert_cap,
            settings.alert_cap_window_seconds,
        )
        .await?;
        let held = first.len() - allowed.len();
        if held > 0 {
            tracing::info!(
                held,
                "alerts held back by their channels' caps, for the digests"
            );
        }
        allowed.extend(retries.iter().map(|d| d.delivery_id));
        Ok(allowed)
    }

    async fn send_digests(&self) -> sqlx::Result<()> {
        let settings = &self.settings;
        let due = alerts::claim_due_digests(
            &self.pool,
            settings.alert_cap_window_seconds,
            settings.alert_retry_seconds,
            settings.alert_lease_seconds,
        )
        .await?;
        for digest in due {
            let top = alerts::held_issues(&self.pool, &digest.delivery_ids, DIGEST_TOP).await?;
            match self.poster.send_digest(&digest, &top).await {
                Outcome::Delivered => {
                    tracing::info!(
                        alert.channel = digest.channel_id,
                        held = digest.held,
                        "alert digest delivered"
                    );
                    alerts::mark_digest_delivered(&self.pool, &digest).await?
                }
                Outcome::Gone(error) => {
                    tracing::error!(alert.channel = digest.channel_id, error = %error, "alert channel disabled: its webhook is gone");
                    alerts::mark_channel_failed(&self.pool, digest.channel_id, &error, true)
                        .await?;
                    self.postpone(&digest).await?
                }
                Outcome::Retry(error, _) | Outcome::Refused(error) => {
                    tracing::warn!(alert.channel = digest.channel_id, error = %error, "alert digest not delivered; will retry");
                    alerts::mark_channel_failed(&self.pool, digest.channel_id, &error, false)
                        .await?;
                    self.postpone(&digest).await?
                }
            }
        }
        Ok(())
    }

    /// A digest that failed is tried again after the retry interval, as a whole.
    async fn postpone(&self, digest: &alerts::DueDigest) -> sqlx::Result<()> {
        let wait = with_jitter(self.settings.alert_retry_seconds.max(1));
        alerts::postpone_digest(
            &self.pool,
            digest,
            Utc::now() + chrono::TimeDelta::seconds(wait),
        )
        .await
    }

    async fn record(&self, delivery: &DueDelivery, outcome: Outcome) -> sqlx::Result<()> {
        match outcome {
            Outcome::Delivered => {
                tracing::info!(
                    alert.delivery = delivery.delivery_id,
                    alert.channel = delivery.channel_id,
                    issue.id = delivery.issue_id,
                    "alert delivered"
                );
                alerts::mark_delivered(&self.pool, delivery).await
            }
            Outcome::Retry(error, asked)
                if delivery.attempts < self.settings.alert_max_attempts =>
            {
                let wait =
                    backoff_seconds(self.settings.alert_retry_seconds, delivery.attempts, asked);
                tracing::warn!(alert.delivery = delivery.delivery_id, alert.channel = delivery.channel_id,
                    attempt = delivery.attempts, retry_in_s = wait, error = %error, "alert not delivered; will retry");
                let retry_at = Utc::now() + chrono::TimeDelta::seconds(with_jitter(wait));
                alerts::mark_failed(&self.pool, delivery, &error, Some(retry_at), false).await
            }
            Outcome::Gone(error) => {
                tracing::error!(alert.delivery = delivery.delivery_id, alert.channel = delivery.channel_id,
                    error = %error, "alert channel disabled: its webhook is gone");
                alerts::mark_failed(&self.pool, delivery, &error, None, true).await
            }
            Outcome::Retry(error, _) | Outcome::Refused(error) => {
                tracing::error!(alert.delivery = delivery.delivery_id, alert.channel = delivery.channel_id,
                    attempt = delivery.attempts, error = %error, "alert abandoned");
                alerts::mark_failed(&self.pool, delivery, &error, None, false).await
            }
        }
    }
}
/// The next notification that triggers were recorded, and any that came with it; never, when
/// there is no listener. After an error (the database is down) it waits a round's time, so a
/// failing connection is not retried in a tight loop.
async fn next_notification(listener: &mut Option<PgListener>) {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    match listener.recv().await {
        Ok(_) => while listener.next_buffered().is_some() {},
        Err(e) => {
            tracing::debug!(error = %e, "alert notifications interrupted");
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// `first` seconds, doubling with each attempt, at most an hour; never sooner than the
/// receiver asked (up to a day).
fn backoff_seconds(first: i64, attempts: i32, asked: Option<i64>) -> i64 {
    let doubled = first
        .max(1)
        .saturating_mul(1i64 << attempts.clamp(1, 20).saturating_sub(1));
    let asked = asked.unwrap_or(0).clamp(0, MAX_ASKED_SECONDS);
    doubled.min(MAX_BACKOFF_SECONDS).max(asked)
}

/// Up to a tenth more, at random, so the deliveries that failed together (a receiver's
/// outage) do not all come back at the same second.
fn with_jitter(seconds: i64) -> i64 {
    use rand::Rng;
    seconds + rand::thread_rng().gen_range(0..=seconds / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        assert_eq!(backoff_seconds(30, 1, None), 30);
        assert_eq!(backoff_seconds(30, 2, None), 60);
        assert_eq!(backoff_seconds(30, 3, None), 120);
        assert_eq!(backoff_seconds(30, 30, None), 3600);
        assert_eq!(backoff_seconds(30, 1, Some(90)), 90);
        // A receiver's header cannot make the wait overflow (it stopped the sender) or shrink.
        assert_eq!(backoff_seconds(30, 1, Some(i64::MAX)), 24 * 3600);
        assert_eq!(backoff_seconds(30, 1, Some(i64::MIN)), 30);
        let far = with_jitter(backoff_seconds(30, 1, Some(i64::MAX)));
        assert!(chrono::Utc::now()
            .checked_add_signed(chrono::TimeDelta::seconds(far))
            .is_some());
    }
    #[test]
    fn jitter_adds_at_most_a_tenth() {
        for _ in 0..100 {
            let waited = with_jitter(300);
            assert!((300..=330).contains(&waited), "{waited}");
        }
    }
}

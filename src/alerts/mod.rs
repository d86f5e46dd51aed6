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

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

pub use poster::{sample_delivery, sign, Poster};

use crate::config::AlertSettings;
use crate::store::alerts::{self, DueDelivery};

/// How often pending triggers and due retries are looked for.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a claimed delivery is this instance's before another may take it over.
const LEASE_SECONDS: i64 = 60;
/// Deliveries sent per round, one after another.
const CLAIM_AT_ONCE: i64 = 50;
/// Issues a digest names, the most frequent first.
const DIGEST_TOP: i64 = 5;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 3600;

pub fn spawn_sender(pool: PgPool, base_url: String, settings: AlertSettings) {
    let poster = match Poster::new(base_url, &settings) {
        Ok(poster) => poster,
        Err(e) => {
            tracing::error!(error = %e, "alerts are off: could not build an HTTP client");
            return;
        }
    };
    let sender = Sender {
        pool,
        settings,
        poster,
    };
    tokio::spawn(sender.run());
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
    async fn run(self) {
        let mut ticks = tokio::time::interval(POLL_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = self.round().await {
                // The database is down or busy: the next round tries again.
                tracing::warn!(error = %e, "alert round failed");
            }
        }
    }

    async fn round(&self) -> sqlx::Result<()> {
        alerts::detect_spikes(&self.pool).await?;
        alerts::expand_outbox(&self.pool).await?;
        loop {
            let due = alerts::claim_due(&self.pool, CLAIM_AT_ONCE, LEASE_SECONDS).await?;
            if due.is_empty() {
                break;
            }
            for delivery in &due {
                if !alerts::renew_claim(&self.pool, delivery, LEASE_SECONDS).await? {
                    continue;
                }
                if !delivery.sent_before && !self.within_cap(delivery).await? {
                    continue;
                }
                let outcome = self.poster.send(delivery).await;
                self.record(delivery, outcome).await?;
            }
        }
        self.send_digests().await
    }

    /// Storm control: a channel gets at most `alert_cap` notifications per window; what is
    /// over is held for the digest sent when the window ends, never dropped.
    async fn within_cap(&self, delivery: &DueDelivery) -> sqlx::Result<bool> {
        let settings = &self.settings;
        let allowed = alerts::take_cap_slot(
            &self.pool,
            delivery,
            settings.alert_cap,
            settings.alert_cap_window_seconds,
        )
        .await?;
        if !allowed {
            tracing::info!(
                alert.delivery = delivery.delivery_id,
                alert.channel = delivery.channel_id,
                issue.id = delivery.issue_id,
                "alert held back by the channel's cap, for its digest"
            );
        }
        Ok(allowed)
    }

    async fn send_digests(&self) -> sqlx::Result<()> {
        let settings = &self.settings;
        let due = alerts::claim_due_digests(
            &self.pool,
            settings.alert_cap_window_seconds,
            settings.alert_retry_seconds,
            LEASE_SECONDS,
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
/// `first` seconds, doubling with each attempt, at most an hour; never sooner than the
/// receiver asked.
fn backoff_seconds(first: i64, attempts: i32, asked: Option<i64>) -> i64 {
    let doubled = first
        .max(1)
        .saturating_mul(1i64 << attempts.clamp(1, 20).saturating_sub(1));
    doubled.min(MAX_BACKOFF_SECONDS).max(asked.unwrap_or(0))
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
    }
    #[test]
    fn jitter_adds_at_most_a_tenth() {
        for _ in 0..100 {
            let waited = with_jitter(300);
            assert!((300..=330).contains(&waited), "{waited}");
        }
    }
}

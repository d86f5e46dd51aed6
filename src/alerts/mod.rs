//! Alerts: the writer records triggers in `alert_outbox` in the transaction of the events that
//! caused them (see `store::events`); this sender, one per instance, turns them into
//! deliveries per matching channel and posts each, retrying with backoff until it succeeds or
//! is refused for good. Claims are leased rows, so instances share the work and a delivery
//! claimed by an instance that died is sent again by another.

pub mod address;
pub mod commands;
pub mod email;
pub mod message;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

use crate::config::AlertSettings;
use crate::store::alerts::{self, DueDelivery, DueDigest, HeldIssue};
use address::GuardedResolver;
use email::{Email, Mailer};
use message::{Digest, Notification};
use serde_json::Value;

/// How often pending triggers and due retries are looked for.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a claimed delivery is this instance's before another may take it over.
const LEASE_SECONDS: i64 = 60;
/// Deliveries sent per round, one after another.
const CLAIM_AT_ONCE: i64 = 50;
/// Longest a receiver may take to answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Posts notifications: the sender's deliveries and `faultline alert test`.
pub struct Poster {
    client: reqwest::Client,
    mailer: Option<Mailer>,
    base_url: String,
    allow_private: bool,
}

impl Poster {
    /// No redirects (a public URL cannot bounce the request inward), no proxy from the
    /// environment (it would resolve names past the guard), every name resolved through
    /// [`GuardedResolver`] unless private receivers are allowed.
    pub fn new(base_url: String, settings: &AlertSettings) -> anyhow::Result<Self> {
        let allow_private = settings.allow_private_webhooks;
        let mut builder = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Faultline/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Poster {
            client: builder.build()?,
            mailer: Mailer::from_settings(
                settings.smtp_url.as_deref(),
                settings.smtp_from.as_deref(),
            )?,
            base_url,
            allow_private,
        })
    }
    /// Posts one notification and says how it went.
    pub async fn send(&self, delivery: &DueDelivery) -> Outcome {
        let notification = Notification::new(delivery, &self.base_url);
        if delivery.kind == "email" {
            return self.mail(&delivery.target, notification.email()).await;
        }
        let payload = match delivery.kind.as_str() {
            "slack" => notification.slack(),
            "discord" => notification.discord(),
            "teams" => notification.teams(),
            _ => notification.webhook(),
        };
        let target = Target {
            kind: &delivery.kind,
            url: &delivery.target,
            secret: delivery.secret.as_deref(),
        };
        self.post(&target, &delivery.delivery_id.to_string(), &payload)
            .await
    }

    /// Posts a channel's digest of what its cap held back.
    pub async fn send_digest(&self, digest: &DueDigest, top: &[HeldIssue]) -> Outcome {
        let message = Digest {
            project_name: &digest.project_name,
            held: digest.held,
            top: top
                .iter()
                .map(|i| (i.issue_id, i.title.clone(), i.event_count))
                .collect(),
            base_url: &self.base_url,
        };
        if digest.kind == "email" {
            return self.mail(&digest.target, message.email()).await;
        }
        let payload = match digest.kind.as_str() {
            "slack" => message.slack(),
            "discord" => message.discord(),
            "teams" => message.teams(),
            _ => message.webhook(),
        };
        let target = Target {
            kind: &digest.kind,
            url: &digest.target,
            secret: digest.secret.as_deref(),
        };
        let first = digest.delivery_ids.first().copied().unwrap_or_default();
        self.post(&target, &format!("digest-{first}"), &payload)
            .await
    }

    async fn mail(&self, to: &str, email: Email) -> Outcome {
        match &self.mailer {
            Some(mailer) => mailer.send(to, email).await,
            None => Outcome::Retry(
                "no SMTP server is configured: set FAULTLINE_SMTP_URL".into(),
                None,
            ),
        }
    }

    async fn post(&self, target: &Target<'_>, delivery_id: &str, payload: &Value) -> Outcome {
        let url = match target.kind {
            "discord" => discord_url(target.url),
            _ => target.url.to_owned(),
        };
        // IP literals never reach the resolver: they are checked here.
        if let Err(refused) = address::check_url(&url, self.allow_private) {
            return Outcome::Refused(refused.to_string());
        }
        let body = match serde_json::to_vec(payload) {
            Ok(body) => body,
            Err(e) => return Outcome::Refused(format!("could not encode the payload: {e}")),
        };
        let mut request = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Faultline-Delivery", delivery_id);
        if let Some(secret) = target.secret.filter(|s| !s.is_empty()) {
            let signature = sign(secret, Utc::now().timestamp(), &body);
            request = request.header("X-Faultline-Signature", signature);
        }
        match request.body(body).send().await {
            Ok(response) => outcome_of(response).await,
            // The receiver never answered: unreachable, refused, timed out.
            Err(e) => match refused_by_guard(&e) {
                Some(refused) => Outcome::Refused(refused.to_string()),
                None => Outcome::Retry(format!("could not reach the receiver: {e}"), None),
            },
        }
    }
}

/// Where and how a channel is posted to.
struct Target<'a> {
    kind: &'a str,
    url: &'a str,
    secret: Option<&'a str>,
}

/// The notification `alert test` and the dashboard's "Send test" post: a made-up issue, so
/// the receiver shows exactly what a real alert looks like.
pub fn sample_delivery(
    channel_id: i64,
    project_id: i64,
    project_name: String,
    kind: String,
    target: String,
    secret: Option<String>,
) -> DueDelivery {
    let now = Utc::now();
    DueDelivery {
        delivery_id: 0,
        attempts: 1,
        sent_before: false,
        channel_id,
        kind,
        target,
        secret,
        trigger: "test".into(),
        event_id: uuid::Uuid::nil(),
        environment: Some("production".into()),
        release: None,
        level: crate::domain::level::Level::Error.as_str().into(),
        spike_count: None,
        spike_minutes: None,
        project_id,
        project_name,
        issue_id: 0,
        title: "Test notification from Faultline".into(),
        culprit: "faultline alert test".into(),
        status: "unresolved".into(),
        event_count: 1,
        first_seen: now,
        last_seen: now,
        failed_request: None,
    }
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
        let due = alerts::due_digests(
            &self.pool,
            settings.alert_cap_window_seconds,
            settings.alert_retry_seconds,
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
                    alerts::mark_channel_failed(&self.pool, digest.channel_id, &error, true).await?
                }
                Outcome::Retry(error, _) | Outcome::Refused(error) => {
                    tracing::warn!(alert.channel = digest.channel_id, error = %error, "alert digest not delivered; will retry");
                    alerts::mark_channel_failed(&self.pool, digest.channel_id, &error, false)
                        .await?
                }
            }
        }
        Ok(())
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
/// The guard's refusal, when that is why the request could not be made (it comes back from
/// the resolver wrapped in the client's connection error).
fn refused_by_guard(error: &reqwest::Error) -> Option<&address::RefusedTarget> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<address::RefusedTarget>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// How much of a failed answer's body is kept with the failure.
const ANSWER_KEPT_BYTES: usize = 500;

/// Any 2xx is success (Teams answers 202, Discord 204); 429 and 5xx are worth retrying;
/// 401/403/404/410 mean the webhook is gone; any other answer means this notification cannot
/// be taken, and retrying it cannot help.
async fn outcome_of(mut response: reqwest::Response) -> Outcome {
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The receiver's own words, bounded: enough to tell "channel_not_found" from a typo.
    let mut answer = Vec::new();
    while answer.len() < ANSWER_KEPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            _ => break,
        }
    }
    answer.truncate(ANSWER_KEPT_BYTES);
    classify(
        status,
        retry_after.as_deref(),
        &String::from_utf8_lossy(&answer),
    )
}

fn classify(status: reqwest::StatusCode, retry_after: Option<&str>, answer: &str) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let asked = retry_after
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| s.ceil() as i64);
    let error = match answer.trim() {
        "" => format!("the receiver answered {status}"),
        said => format!("the receiver answered {status}: {said}"),
    };
    match status.as_u16() {
        429 | 500..=599 => Outcome::Retry(error, asked),
        401 | 403 | 404 | 410 => Outcome::Gone(error),
        _ => Outcome::Refused(error),
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

/// Discord reports a failed post only when asked to wait for it.
fn discord_url(target: &str) -> String {
    if target.contains("wait=") {
        target.to_owned()
    } else if target.contains('?') {
        format!("{target}&wait=true")
    } else {
        format!("{target}?wait=true")
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`: receivers recompute it with their copy of the
/// secret to check the origin, and reject old timestamps to refuse replays (docs/ALERTS.md).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Computed with Python's hmac module.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_honours_retry_after() {
        assert_eq!(backoff_seconds(30, 1, None), 30);
        assert_eq!(backoff_seconds(30, 2, None), 60);
        assert_eq!(backoff_seconds(30, 3, None), 120);
        assert_eq!(backoff_seconds(30, 30, None), 3600);
        assert_eq!(backoff_seconds(30, 1, Some(90)), 90);
    }

    #[test]
    fn answers_are_classified_as_delivered_retry_refused_or_gone() {
        let cases = [
            (200, "delivered"),
            (202, "delivered"),
            (204, "delivered"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
            (400, "refused"),
            (422, "refused"),
            (401, "gone"),
            (403, "gone"),
            (404, "gone"),
            (410, "gone"),
        ];
        for (status, expected) in cases {
            let status = reqwest::StatusCode::from_u16(status).unwrap();
            let got = match classify(status, Some("30"), "channel_not_found") {
                Outcome::Delivered => "delivered",
                Outcome::Retry(_, asked) => {
                    assert_eq!(asked, Some(30));
                    "retry"
                }
                Outcome::Refused(error) => {
                    assert!(error.contains("channel_not_found"), "{error}");
                    "refused"
                }
                Outcome::Gone(_) => "gone",
            };
            assert_eq!(got, expected, "{status}");
        }
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        for _ in 0..100 {
            let waited = with_jitter(300);
            assert!((300..=330).contains(&waited), "{waited}");
        }
    }

    #[test]
    fn discord_posts_wait_for_the_result() {
        assert_eq!(
            discord_url("https://d/api/webhooks/1/x"),
            "https://d/api/webhooks/1/x?wait=true"
        );
        assert_eq!(
            discord_url("https://d/h?thread_id=3"),
            "https://d/h?thread_id=3&wait=true"
        );
    }
}

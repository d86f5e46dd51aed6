//! Posting one notification: to a webhook over HTTP (through the address guard) or by
//! e-mail, and reading the receiver's answer as an [`Outcome`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::address::{self, GuardedResolver};
use super::email::{Email, Mailer};
use super::message::{Digest, Notification};
use super::Outcome;
use crate::config::AlertSettings;
use crate::store::alerts::{DueDelivery, DueDigest, HeldIssue};

/// Longest a receiver may take to answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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

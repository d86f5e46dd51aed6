//! What a notification says, in each channel's format. Pure: the sender reads a delivery from
//! the store, these functions build the bytes, the sender posts them. Event text is hostile:
//! every format escapes or bounds it so it cannot ping a channel, inject links or overflow.

use serde_json::{json, Value};

use super::email::{escape_html, Email};
use crate::domain::text::ellipsize;
use crate::store::alerts::DueDelivery;

/// The generic webhook payload's version: bumped only for changes receivers must know about.
pub const WEBHOOK_PAYLOAD_VERSION: u32 = 1;

/// A notification's facts, with the links already absolute.
pub struct Notification<'a> {
    pub delivery: &'a DueDelivery,
    pub issue_url: String,
    pub event_url: String,
}

impl<'a> Notification<'a> {
    pub fn new(delivery: &'a DueDelivery, base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        let issue_url = format!("{base}/issues/{}", delivery.issue_id);
        let event_url = format!("{issue_url}/events/{}", delivery.event_id.simple());
        Notification {
            delivery,
            issue_url,
            event_url,
        }
    }

    /// "New issue", "Regression", "Spike: 312 events in 5 min".
    fn headline(&self) -> String {
        let d = self.delivery;
        match d.trigger.as_str() {
            "regression" => "Regression".into(),
            "test" => "Test notification".into(),
            "spike" => format!(
                "Spike: {} events in {} min",
                d.spike_count.unwrap_or_default(),
                d.spike_minutes.unwrap_or_default()
            ),
            _ => "New issue".into(),
        }
    }

    /// One line for a chat preview or an e-mail subject.
    pub fn summary(&self) -> String {
        let d = self.delivery;
        format!(
            "[{}] {}: {}",
            d.project_name,
            self.headline(),
            ellipsize(&d.title, 200)
        )
    }

    /// `(label, value)` pairs every format shows, empty values left out.
    fn facts(&self) -> Vec<(&'static str, String)> {
        let d = self.delivery;
        let mut facts = vec![
            ("Project", d.project_name.clone()),
            ("Level", d.level.clone()),
            ("Environment", d.environment.clone().unwrap_or_default()),
            ("Release", d.release.clone().unwrap_or_default()),
            ("Request", d.failed_request.clone().unwrap_or_default()),
            ("Events", d.event_count.to_string()),
            (
                "First seen",
                d.first_seen.format("%Y-%m-%d %H:%M UTC").to_string(),
            ),
            (
                "Last seen",
                d.last_seen.format("%Y-%m-%d %H:%M UTC").to_string(),
            ),
        ];
        facts.retain(|(_, value)| !value.is_empty());
        facts
    }

    /// The documented, versioned JSON of generic webhooks (docs/ALERTS.md).
    pub fn webhook(&self) -> Value {
        let d = self.delivery;
        json!({
            "version": WEBHOOK_PAYLOAD_VERSION,
            "delivery_id": d.delivery_id,
            "trigger": d.trigger,
            "spike": d.spike_count.map(|count| json!({"events": count, "minutes": d.spike_minutes})),
            "project": {"id": d.project_id, "name": d.project_name},
            "issue": {
                "id": d.issue_id,
                "title": d.title,
                "culprit": d.culprit,
                "level": d.level,
                "status": d.status,
                "event_count": d.event_count,
                "first_seen": d.first_seen,
                "last_seen": d.last_seen,
                "request": d.failed_request,
                "url": self.issue_url,
            },
            "event": {
                "id": d.event_id.simple().to_string(),
                "environment": d.environment,
                "release": d.release,
                "level": d.level,
                "url": self.event_url,
            },
            "text": self.summary(),
        })
    }

    /// A plain-text and an HTML part, every value escaped in the HTML.
    pub fn email(&self) -> Email {
        let d = self.delivery;
        let facts = self.facts();
        let mut text = format!("{}: {}\n", self.headline(), d.title);
        if !d.culprit.is_empty() {
            text.push_str(&format!("{}\n", d.culprit));
        }
        text.push('\n');
        for (label, value) in &facts {
            text.push_str(&format!("{label}: {value}\n"));
        }
        text.push_str(&format!("\nOpen in Faultline: {}\n", self.issue_url));
        let rows: String = facts
            .iter()
            .map(|(label, value)| {
                format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                    escape_html(label),
                    escape_html(value)
                )
            })
            .collect();
        let html = format!(
            "<h2>{}: {}</h2><p><code>{}</code></p><table>{rows}</table><p><a href=\"{}\">Open in Faultline</a></p>",
            self.headline(),
            escape_html(&d.title),
            escape_html(&d.culprit),
            escape_html(&self.issue_url)
        );
        Email {
            subject: ellipsize(&self.summary(), 250),
            text,
            html,
        }
    }

    /// Slack Block Kit, plus a top-level `text` (Mattermost and other Slack-compatible
    /// receivers read only that).
    pub fn slack(&self) -> Value {
        let d = self.delivery;
        let fields: Vec<Value> = self
            .facts()
            .into_iter()
            .map(|(label, value)| {
                json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", slack_escape(&ellipsize(&value, 500)))})
            })
            .take(10)
            .collect();
        let mut heading = format!(
            "*<{}|{}>*",
            self.issue_url,
            slack_escape(&ellipsize(&d.title, 500))
        );
        if !d.culprit.is_empty() {
            heading.push_str(&format!(
                "\n`{}`",
                slack_escape(&ellipsize(&d.culprit, 300))
            ));
        }
        json!({
            "text": slack_escape(&self.summary()),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": ellipsize(&slack_escape(&format!("{}: {}", self.headline(), d.title)), 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": heading}, "fields": fields},
                {"type": "actions", "elements": [{
                    "type": "button", "style": "primary",
                    "text": {"type": "plain_text", "text": "Open in Faultline"},
                    "url": self.issue_url,
                }]},
            ],
        })
    }

    /// A Discord embed; mentions in event text never ping anyone.
    pub fn discord(&self) -> Value {
        let d = self.delivery;
        let fields: Vec<Value> = self
            .facts()
            .into_iter()
            .map(|(label, value)| json!({"name": label, "value": ellipsize(&value, 1000), "inline": true}))
            .collect();
        let color = if d.trigger == "regression" {
            0xE67E22
        } else {
            0xE74C3C
        };
        json!({
            "username": "Faultline",
            "content": ellipsize(&self.summary(), 1900),
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": ellipsize(&format!("{}: {}", self.headline(), d.title), 250),
                "url": self.issue_url,
                "description": ellipsize(&d.culprit, 1000),
                "color": color,
                "fields": fields,
                "timestamp": d.last_seen,
                "footer": {"text": "Faultline"},
            }],
        })
    }

    /// An Adaptive Card for a Microsoft Teams Workflows webhook.
    pub fn teams(&self) -> Value {
        let d = self.delivery;
        let facts: Vec<Value> = self
            .facts()
            .into_iter()
            .map(|(label, value)| json!({"title": label, "value": ellipsize(&value, 500)}))
            .collect();
        teams_card(
            json!([
                {"type": "TextBlock", "text": ellipsize(&format!("{}: {}", self.headline(), d.title), 300),
                 "weight": "Bolder", "size": "Medium", "wrap": true},
                {"type": "TextBlock", "text": ellipsize(&d.culprit, 300), "wrap": true, "isSubtle": true},
                {"type": "FactSet", "facts": facts},
            ]),
            json!([{"type": "Action.OpenUrl", "title": "Open in Faultline", "url": self.issue_url}]),
        )
    }
}

/// What a channel's cap held back, sent as one message when the cap's window ends.
pub struct Digest<'a> {
    pub project_name: &'a str,
    pub held: i64,
    /// The most frequent held issues, `(id, title, events)`.
    pub top: Vec<(i64, String, i64)>,
    pub base_url: &'a str,
}

impl Digest<'_> {
    fn issue_url(&self, id: i64) -> String {
        format!("{}/issues/{id}", self.base_url.trim_end_matches('/'))
    }

    /// "143 more new issues or regressions in checkout-api".
    pub fn summary(&self) -> String {
        format!(
            "[{}] {} more alerts held back by the channel's limit",
            self.project_name, self.held
        )
    }

    fn lines(&self, link: impl Fn(&str, &str) -> String) -> Vec<String> {
        self.top
            .iter()
            .map(|(id, title, events)| {
                format!("{} ({events} events)", link(&self.issue_url(*id), title))
            })
            .collect()
    }

    pub fn email(&self) -> Email {
        let text = self
            .lines(|url, title| format!("- {title}: {url}"))
            .join("\n");
        let items: String = self
            .lines(|url, title| {
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape_html(url),
                    escape_html(title)
                )
            })
            .iter()
            .map(|line| format!("<li>{line}</li>"))
            .collect();
        Email {
            subject: ellipsize(&self.summary(), 250),
            text: format!("{}\n\n{text}\n", self.summary()),
            html: format!("<p>{}</p><ul>{items}</ul>", escape_html(&self.summary())),
        }
    }

    pub fn webhook(&self) -> Value {
        let issues: Vec<Value> = self
            .top
            .iter()
            .map(|(id, title, events)| {
                json!({"id": id, "title": title, "event_count": events, "url": self.issue_url(*id)})
            })
            .collect();
        json!({
            "version": WEBHOOK_PAYLOAD_VERSION,
            "trigger": "digest",
            "project": {"name": self.project_name},
            "held_count": self.held,
            "issues": issues,
            "text": self.summary(),
        })
    }

    pub fn slack(&self) -> Value {
        let lines =
            self.lines(|url, title| format!("• <{url}|{}>", slack_escape(&ellipsize(title, 150))));
        json!({
            "text": slack_escape(&self.summary()),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": ellipsize(&format!(
                    "*{}*\n{}", slack_escape(&self.summary()), lines.join("\n")), 2900)}},
            ],
        })
    }

    pub fn discord(&self) -> Value {
        let lines = self.lines(|url, title| format!("• [{}]({url})", ellipsize(title, 150)));
        json!({
            "username": "Faultline",
            "content": ellipsize(&self.summary(), 1900),
            "allowed_mentions": {"parse": []},
            "embeds": [{"title": ellipsize(&self.summary(), 250), "description": ellipsize(&lines.join("\n"), 4000)}],
        })
    }

    pub fn teams(&self) -> Value {
        let lines = self.lines(|url, title| format!("- [{}]({url})", ellipsize(title, 150)));
        teams_card(
            json!([
                {"type": "TextBlock", "text": self.summary(), "weight": "Bolder", "wrap": true},
                {"type": "TextBlock", "text": lines.join("\n"), "wrap": true},
            ]),
            json!([]),
        )
    }
}

/// The envelope a Teams Workflows webhook takes: one Adaptive Card (1.4) with `body` and
/// `actions`.
fn teams_card(body: Value, actions: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// Slack reads `&`, `<` and `>` as markup (`<!channel>`, `<url|text>`).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn delivery(title: &str) -> DueDelivery {
        DueDelivery {
            delivery_id: 7,
            attempts: 1,
            sent_before: false,
            channel_id: 1,
            kind: "slack".into(),
            target: "http://hook".into(),
            secret: None,
            trigger: "new_issue".into(),
            event_id: uuid::Uuid::nil(),
            environment: Some("production".into()),
            release: None,
            level: "error".into(),
            spike_count: None,
            spike_minutes: None,
            project_id: 1,
            project_name: "shop".into(),
            issue_id: 42,
            title: title.into(),
            culprit: "app.orders in create".into(),
            status: "unresolved".into(),
            event_count: 1,
            first_seen: Utc::now(),
            last_seen: Utc::now(),
            failed_request: Some("POST /orders/{id} → 500".into()),
        }
    }

    #[test]
    fn slack_text_cannot_ping_a_channel_or_inject_a_link() {
        let d = delivery("<!channel> <https://evil.example|click> & more");
        let payload = Notification::new(&d, "https://fl.example/")
            .slack()
            .to_string();
        assert!(!payload.contains("<!channel>"), "{payload}");
        assert!(!payload.contains("<https://evil"), "{payload}");
        assert!(payload.contains("&lt;!channel&gt;"));
        assert!(payload.contains("https://fl.example/issues/42"));
        assert!(payload.contains("POST /orders/{id} → 500"));
    }

    #[test]
    fn discord_never_pings_and_stays_within_embed_limits() {
        let d = delivery(&"@everyone ".repeat(100));
        let payload = Notification::new(&d, "https://fl.example").discord();
        assert_eq!(payload["allowed_mentions"]["parse"], json!([]));
        assert!(
            payload["embeds"][0]["title"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= 256
        );
    }

    #[test]
    fn teams_gets_an_adaptive_card_with_facts_and_a_link() {
        let d = delivery("KeyError: 'sku'");
        let card = Notification::new(&d, "https://fl.example").teams();
        assert_eq!(card["type"], "message");
        let content = &card["attachments"][0]["content"];
        assert_eq!(
            card["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(content["version"], "1.4");
        assert_eq!(content["body"][2]["type"], "FactSet");
        assert_eq!(content["actions"][0]["url"], "https://fl.example/issues/42");
        let digest = Digest {
            project_name: "shop",
            held: 3,
            top: vec![(9, "E".into(), 1)],
            base_url: "https://fl.example",
        }
        .teams();
        assert_eq!(digest["attachments"][0]["content"]["version"], "1.4");
    }

    #[test]
    fn a_digest_counts_what_was_held_and_links_the_top_issues() {
        let digest = Digest {
            project_name: "shop",
            held: 143,
            top: vec![
                (9, "<!channel> KeyError".into(), 40),
                (3, "ValueError".into(), 12),
            ],
            base_url: "https://fl.example/",
        };
        let slack = digest.slack().to_string();
        assert!(slack.contains("143 more"), "{slack}");
        assert!(slack.contains("https://fl.example/issues/9"), "{slack}");
        assert!(!slack.contains("<!channel>"), "{slack}");
        let json = digest.webhook();
        assert_eq!(json["held_count"], 143);
        assert_eq!(json["issues"][1]["url"], "https://fl.example/issues/3");
        assert_eq!(digest.discord()["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn webhook_payload_names_trigger_issue_event_and_links() {
        let d = delivery("ZeroDivisionError: division by zero");
        let payload = Notification::new(&d, "https://fl.example").webhook();
        assert_eq!(payload["version"], 1);
        assert_eq!(payload["trigger"], "new_issue");
        assert_eq!(payload["issue"]["url"], "https://fl.example/issues/42");
        assert_eq!(
            payload["event"]["url"],
            "https://fl.example/issues/42/events/00000000000000000000000000000000"
        );
        assert_eq!(payload["issue"]["request"], "POST /orders/{id} → 500");
    }
}

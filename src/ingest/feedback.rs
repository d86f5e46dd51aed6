//! User feedback (PROTOCOL.md §14.1–14.4): the `user_report` and `feedback` envelope items,
//! the crash-report dialog's form and the API's body, each checked and turned into one
//! [`NewFeedback`]. Pure: no I/O. The text is scrubbed like events; pages escape it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::IngestError;
use super::scrub;
use crate::store::feedback::{FeedbackSource, NewFeedback};

/// Sentry's limits (its `UserReport` model and the develop docs).
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_EMAIL_CHARS: usize = 75;
pub const MAX_COMMENTS_CHARS: usize = 4096;
/// Page addresses and environments are cut, never refused: they only give context.
const MAX_URL_CHARS: usize = 2048;
const MAX_ENVIRONMENT_CHARS: usize = 64;
/// A feedback payload is a few kilobytes of text; anything far larger is not feedback.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Reports a project takes per minute through its public DSN (envelope items and the
/// DSN-authenticated API; a burst of as many, then one every half second): every report is a
/// row kept for the retention period. Far above what people type, far below what a script can
/// send. Operators posting with a token are not limited; the crash-report dialog has its own
/// limit per client address.
pub const REPORTS_PER_PROJECT_PER_MINUTE: u32 = 120;

/// Feedback items one envelope may carry (SDKs send one).
pub const MAX_ITEMS_PER_ENVELOPE: usize = 10;

/// What a person typed: the dialog's form fields, or the API's body.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct FeedbackForm {
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub comments: String,
}

/// Each refused field with the reason, keyed by the field's name (Sentry's `{"errors": …}`).
pub type FieldErrors = BTreeMap<&'static str, String>;

/// The form's fields once checked: every field required, within Sentry's limits, a plausible
/// e-mail address.
pub fn check_form(form: &FeedbackForm) -> Result<(String, String, String), FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = form.name.trim();
    let email = form.email.trim();
    let comments = form.comments.trim();
    if name.is_empty() {
        errors.insert("name", "This field is required.".into());
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.insert("name", too_long(MAX_NAME_CHARS));
    }
    if email.is_empty() {
        errors.insert("email", "This field is required.".into());
    } else if email.chars().count() > MAX_EMAIL_CHARS {
        errors.insert("email", too_long(MAX_EMAIL_CHARS));
    } else if !is_plausible_email(email) {
        errors.insert("email", "Enter a valid email address.".into());
    }
    if comments.is_empty() {
        errors.insert("comments", "This field is required.".into());
    } else if comments.chars().count() > MAX_COMMENTS_CHARS {
        errors.insert("comments", too_long(MAX_COMMENTS_CHARS));
    }
    if errors.is_empty() {
        Ok((name.to_owned(), email.to_owned(), comments.to_owned()))
    } else {
        Err(errors)
    }
}

fn too_long(max: usize) -> String {
    format!("Ensure this value has at most {max} characters.")
}

/// One `@` with something on each side, a dot in the domain, no spaces: what a form can check
/// without sending mail.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A form submission (dialog or API) about `event_id`, ready to store.
pub fn from_form(
    project_id: i64,
    event_id: Uuid,
    fields: (String, String, String),
    source: FeedbackSource,
    received_at: DateTime<Utc>,
) -> NewFeedback {
    let (name, email, comments) = fields;
    NewFeedback {
        project_id,
        report_id: event_id,
        event_id: Some(event_id),
        name: clean(&name),
        email: clean(&email),
        comments: clean(&comments),
        url: None,
        environment: None,
        source,
        received_at,
    }
}

/// The `user_report` item (§14.1): `{event_id, name, email, comments}` about an error event.
/// The envelope header's `event_id` wins over the payload's.
pub fn from_user_report(
    project_id: i64,
    payload: &[u8],
    header_event_id: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<NewFeedback, IngestError> {
    let report = parse_object(payload, "user_report")?;
    let event_id = header_event_id
        .or_else(|| report.get("event_id").and_then(Value::as_str))
        .ok_or_else(|| IngestError::malformed("user_report has no event_id"))?;
    let event_id = parse_event_id(event_id, "user_report event_id")?;
    let comments = bounded_field(&report, "comments", MAX_COMMENTS_CHARS, "user_report")?;
    if comments.trim().is_empty() {
        return Err(IngestError::malformed("user_report has no comments"));
    }
    Ok(NewFeedback {
        project_id,
        report_id: event_id,
        event_id: Some(event_id),
        name: bounded_field(&report, "name", MAX_NAME_CHARS, "user_report")?,
        email: bounded_field(&report, "email", MAX_EMAIL_CHARS, "user_report")?,
        comments,
        url: None,
        environment: None,
        source: FeedbackSource::UserReport,
        received_at,
    })
}

/// The `feedback` item (§14.2): an event whose `contexts.feedback` holds the message, the
/// contact and the error it is about. Name and e-mail fall back to the event's user.
pub fn from_feedback_event(
    project_id: i64,
    payload: &[u8],
    header_event_id: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<NewFeedback, IngestError> {
    let event = parse_object(payload, "feedback")?;
    let feedback = event
        .get("contexts")
        .and_then(|c| c.get("feedback"))
        .and_then(Value::as_object)
        .ok_or_else(|| IngestError::malformed("feedback item has no contexts.feedback"))?;
    let comments = bounded_field(feedback, "message", MAX_COMMENTS_CHARS, "feedback")?;
    if comments.trim().is_empty() {
        return Err(IngestError::malformed("feedback has no message"));
    }
    let user = event.get("user").and_then(Value::as_object);
    let from_user = |key: &str| {
        user.and_then(|u| u.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let mut name = bounded_field(feedback, "name", MAX_NAME_CHARS, "feedback")?;
    if name.is_empty() {
        name = clean(cut(from_user("name"), MAX_NAME_CHARS));
        if name.is_empty() {
            name = clean(cut(from_user("username"), MAX_NAME_CHARS));
        }
    }
    let mut email = bounded_field(feedback, "contact_email", MAX_EMAIL_CHARS, "feedback")?;
    if email.is_empty() {
        email = clean(cut(from_user("email"), MAX_EMAIL_CHARS));
    }
    let own_id = header_event_id
        .or_else(|| event.get("event_id").and_then(Value::as_str))
        .and_then(|id| Uuid::try_parse(id).ok())
        .unwrap_or_else(Uuid::new_v4);
    let event_id = match feedback.get("associated_event_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Some(parse_event_id(id, "associated_event_id")?),
        _ => None,
    };
    Ok(NewFeedback {
        project_id,
        report_id: own_id,
        event_id,
        name,
        email,
        comments,
        url: optional_text(feedback.get("url"), MAX_URL_CHARS),
        environment: optional_text(event.get("environment"), MAX_ENVIRONMENT_CHARS),
        source: FeedbackSource::Feedback,
        received_at,
    })
}

fn parse_object(payload: &[u8], what: &str) -> Result<Map<String, Value>, IngestError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(IngestError::too_large(format!(
            "{what} item is larger than the limit of {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    match serde_json::from_slice(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(IngestError::malformed(format!(
            "{what} payload must be a JSON object"
        ))),
        Err(e) => Err(IngestError::malformed(format!(
            "{what} payload is not valid JSON: {e}"
        ))),
    }
}

/// An event id in either of Sentry's spellings (32 hex digits, or a dashed UUID).
pub fn parse_event_id(raw: &str, what: &str) -> Result<Uuid, IngestError> {
    Uuid::try_parse(raw.trim())
        .map_err(|_| IngestError::malformed(format!("{what} is not a valid event id")))
}

/// A string field, refused (400) past `max` characters; absent or not a string reads as empty.
fn bounded_field(
    object: &Map<String, Value>,
    key: &str,
    max: usize,
    what: &str,
) -> Result<String, IngestError> {
    let text = object.get(key).and_then(Value::as_str).unwrap_or_default();
    if text.chars().count() > max {
        return Err(IngestError::malformed(format!(
            "{what} {key} is longer than {max} characters"
        )));
    }
    Ok(clean(text.trim()))
}

fn optional_text(value: Option<&Value>, max: usize) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(|text| clean(cut(text.trim(), max)))
        .filter(|text| !text.is_empty())
}

fn cut(text: &str, max: usize) -> &str {
    crate::domain::text::cut_chars(text, max)
}

/// Scrubbed like event text, and without NULs (PostgreSQL's text cannot hold them).
fn clean(text: &str) -> String {
    scrub::scrub_free_text(text).replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "fc6d8c0c43fc4630ad850ee518f1b9d0";

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn a_user_report_links_to_the_header_event_id_over_the_payloads() {
        let payload = br#"{"event_id":"00000000000000000000000000000001","name":"Jane","email":"jane@example.com","comments":"It broke"}"#;
        let report = from_user_report(7, payload, Some(EVENT), now()).unwrap();
        assert_eq!(report.event_id, Some(Uuid::try_parse(EVENT).unwrap()));
        assert_eq!(report.report_id, report.event_id.unwrap());
        assert_eq!(
            (report.name.as_str(), report.email.as_str()),
            ("Jane", "jane@example.com")
        );
        assert_eq!(report.comments, "It broke");
        assert_eq!(report.source, FeedbackSource::UserReport);
    }

    #[test]
    fn a_user_report_needs_an_event_id_and_comments_within_the_limit() {
        let no_id = br#"{"name":"Jane","comments":"x"}"#;
        assert!(matches!(
            from_user_report(7, no_id, None, now()),
            Err(IngestError::Malformed(_))
        ));
        let empty = format!(r#"{{"event_id":"{EVENT}","comments":"  "}}"#);
        assert!(from_user_report(7, empty.as_bytes(), None, now()).is_err());
        let long = format!(
            r#"{{"event_id":"{EVENT}","comments":"{}"}}"#,
            "é".repeat(MAX_COMMENTS_CHARS + 1)
        );
        let err = from_user_report(7, long.as_bytes(), None, now()).unwrap_err();
        assert!(err.to_string().contains("longer than 4096"), "{err}");
        let exact = format!(
            r#"{{"event_id":"{EVENT}","comments":"{}"}}"#,
            "é".repeat(MAX_COMMENTS_CHARS)
        );
        assert!(from_user_report(7, exact.as_bytes(), None, now()).is_ok());
    }

    #[test]
    fn a_feedback_event_reads_its_context_and_falls_back_to_the_user() {
        let payload = format!(
            r#"{{"type":"feedback","event_id":"{EVENT}","environment":"production",
                "user":{{"email":"u@example.com","username":"u1"}},
                "contexts":{{"feedback":{{"message":"The button does nothing","url":"https://shop.example/cart",
                "associated_event_id":"9ec79c33ec9942ab8353589fcb2e04dc","source":"widget"}}}}}}"#
        );
        let feedback = from_feedback_event(7, payload.as_bytes(), None, now()).unwrap();
        assert_eq!(feedback.report_id, Uuid::try_parse(EVENT).unwrap());
        assert_eq!(
            feedback.event_id,
            Some(Uuid::try_parse("9ec79c33ec9942ab8353589fcb2e04dc").unwrap())
        );
        assert_eq!(feedback.comments, "The button does nothing");
        assert_eq!(feedback.name, "u1");
        assert_eq!(feedback.email, "u@example.com");
        assert_eq!(feedback.url.as_deref(), Some("https://shop.example/cart"));
        assert_eq!(feedback.environment.as_deref(), Some("production"));
    }

    #[test]
    fn feedback_without_a_message_or_with_a_bad_associated_id_is_refused() {
        let no_message = br#"{"contexts":{"feedback":{"name":"x"}}}"#;
        assert!(from_feedback_event(7, no_message, None, now()).is_err());
        let no_context = br#"{"message":"hello"}"#;
        assert!(from_feedback_event(7, no_context, None, now()).is_err());
        let bad_id =
            br#"{"contexts":{"feedback":{"message":"hi","associated_event_id":"not-an-id"}}}"#;
        assert!(from_feedback_event(7, bad_id, None, now()).is_err());
        let standalone = br#"{"contexts":{"feedback":{"message":"hi"}}}"#;
        let feedback = from_feedback_event(7, standalone, None, now()).unwrap();
        assert_eq!(feedback.event_id, None);
    }

    #[test]
    fn oversized_payloads_are_refused_as_too_large() {
        let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(
            from_user_report(7, &huge, Some(EVENT), now()),
            Err(IngestError::TooLarge(_))
        ));
    }

    #[test]
    fn text_is_scrubbed_and_free_of_nul() {
        let payload = format!(
            r#"{{"event_id":"{EVENT}","comments":"card 4111 1111 1111 1111 then \u0000 nul"}}"#
        );
        let report = from_user_report(7, payload.as_bytes(), None, now()).unwrap();
        assert!(!report.comments.contains("4111"), "{}", report.comments);
        assert!(!report.comments.contains('\0'));
    }

    #[test]
    fn the_form_requires_every_field_within_limits() {
        let good = FeedbackForm {
            event_id: None,
            name: " Jane ".into(),
            email: "jane@example.com".into(),
            comments: "It broke".into(),
        };
        assert_eq!(
            check_form(&good).unwrap(),
            ("Jane".into(), "jane@example.com".into(), "It broke".into())
        );
        let errors = check_form(&FeedbackForm::default()).unwrap_err();
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["comments", "email", "name"]
        );
        let bad = FeedbackForm {
            email: "not an address".into(),
            name: "n".repeat(MAX_NAME_CHARS + 1),
            ..good.clone()
        };
        let errors = check_form(&bad).unwrap_err();
        assert!(errors["email"].contains("valid"));
        assert!(errors["name"].contains("at most 128"));
    }

    #[test]
    fn plausible_addresses() {
        assert!(is_plausible_email("a@b.co"));
        for bad in [
            "a@b", "@b.co", "a b@c.de", "a@.co", "a@b.co.", "a@b@c.de", "plain",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }
}

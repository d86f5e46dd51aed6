//! The project page's Alerts section: its channels with their state, adding and removing
//! them (admins), "Send test", and the latest deliveries.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::alert_form::{self, ChannelForm};
use super::auth::{CsrfForm, NoFields};
use super::view::exact_time;
use super::WebError;
use crate::alerts::{sample_delivery, Outcome, Poster};
use crate::domain::level::Level;
use crate::state::AppState;
use crate::store::alerts::{self, ChannelKind, ChannelRow, DeliveryRow, Trigger};
use crate::store::projects;

/// Deliveries the history shows.
const HISTORY: i64 = 100;

pub struct ChannelItem {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub triggers: String,
    pub filters: String,
    pub state: &'static str,
    pub last_success: String,
    pub last_failure: String,
    /// The edit form's values.
    pub on_new: bool,
    pub on_regression: bool,
    pub spike: String,
    pub environments: String,
    pub min_level: String,
    pub cooldown: String,
    pub has_secret: bool,
}

pub struct DeliveryItem {
    pub time: String,
    pub issue_id: i64,
    pub title: String,
    pub trigger: String,
    pub channel: String,
    pub status: String,
    pub attempts: i32,
}

/// What the project page shows under "Alerts".
pub struct AlertsSection {
    pub channels: Vec<ChannelItem>,
    pub history: Vec<DeliveryItem>,
    /// The outcome of "Send test", shown at once.
    pub notice: Option<String>,
    pub levels: Vec<&'static str>,
}

pub async fn section(
    state: &AppState,
    project_id: i64,
    notice: Option<String>,
) -> Result<AlertsSection, WebError> {
    let channels = alerts::list_channels(&state.pool, Some(project_id))
        .await?
        .into_iter()
        .map(channel_item)
        .collect();
    let history = alerts::recent_deliveries(&state.pool, project_id, HISTORY)
        .await?
        .into_iter()
        .map(delivery_item)
        .collect();
    Ok(AlertsSection {
        channels,
        history,
        notice,
        levels: Level::ALL.map(Level::as_str).to_vec(),
    })
}

fn channel_item(c: ChannelRow) -> ChannelItem {
    let failing = match (c.last_failure_at, c.last_success_at) {
        (Some(failed), Some(ok)) => failed > ok,
        (Some(_), None) => true,
        _ => false,
    };
    let state = if c.disabled_at.is_some() {
        "disabled"
    } else if failing {
        "failing"
    } else {
        "ok"
    };
    let mut filters = format!("level ≥ {}", c.min_level);
    if !c.environments.is_empty() {
        filters.push_str(&format!(", environment {}", c.environments.join(", ")));
    }
    let has = |trigger: Trigger| c.triggers.iter().any(|t| t == trigger.as_str());
    ChannelItem {
        id: c.id,
        on_new: has(Trigger::NewIssue),
        on_regression: has(Trigger::Regression),
        spike: match (c.spike_events, c.spike_minutes) {
            (Some(events), Some(minutes)) => format!("{events}/{minutes}m"),
            _ => String::new(),
        },
        environments: c.environments.join(", "),
        cooldown: format!("{}m", c.cooldown_minutes),
        has_secret: c.has_secret,
        target: shown_target(&c.kind, &c.target),
        kind: c.kind,
        triggers: c.triggers.join(", ").replace('_', " "),
        filters,
        min_level: c.min_level,
        state,
        last_success: c.last_success_at.map(exact_time).unwrap_or_default(),
        last_failure: match c.last_failure_at {
            Some(t) => format!("{}: {}", exact_time(t), c.last_failure.unwrap_or_default()),
            None => String::new(),
        },
    }
}

/// Webhook URLs carry their secret in the path: only the scheme and host are shown.
fn shown_target(kind: &str, target: &str) -> String {
    if kind == ChannelKind::Email.as_str() {
        return target.to_owned();
    }
    match reqwest::Url::parse(target) {
        Ok(url) => format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("?")),
        Err(_) => "(invalid URL)".into(),
    }
}

fn delivery_item(d: DeliveryRow) -> DeliveryItem {
    let status = if d.delivered_at.is_some() && d.held_at.is_some() {
        "delivered in a digest".to_owned()
    } else if d.delivered_at.is_some() {
        "delivered".to_owned()
    } else if d.abandoned_at.is_some() {
        format!("failed: {}", d.last_error.unwrap_or_default())
    } else if d.held_at.is_some() {
        "held for the digest".to_owned()
    } else if let Some(error) = d.last_error {
        format!("retrying: {error}")
    } else {
        "pending".to_owned()
    };
    DeliveryItem {
        time: exact_time(d.created_at),
        issue_id: d.issue_id,
        title: d.title,
        trigger: d.trigger.replace('_', " "),
        channel: format!("#{} {}", d.channel_id, d.kind),
        status,
        attempts: d.attempts,
    }
}

pub async fn add(
    path: web::Path<String>,
    CsrfForm { operator, form }: CsrfForm<ChannelForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.require_admin()?;
    let project_id = project_of(&state, &path).await?;
    let channel = alert_form::read(project_id, form, None, &state).await?;
    alerts::create_channel(&state.pool, &channel).await?;
    Ok(back_to(project_id))
}

/// Saves the edit form over a channel: its id, state and history stay.
pub async fn edit(
    path: web::Path<(String, String)>,
    CsrfForm { operator, form }: CsrfForm<ChannelForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.require_admin()?;
    let project_id = project_of(&state, &path.0).await?;
    let channel_id: i64 = path.1.parse().map_err(|_| WebError::NotFound)?;
    let (_, _, kind, target, secret) = alerts::channel_target(&state.pool, channel_id)
        .await?
        .filter(|(owner, ..)| *owner == project_id)
        .ok_or(WebError::NotFound)?;
    let kind = ChannelKind::parse(&kind).ok_or(WebError::NotFound)?;
    let current = alert_form::Current {
        kind,
        target,
        secret,
    };
    let channel = alert_form::read(project_id, form, Some(current), &state).await?;
    if !alerts::update_channel(&state.pool, channel_id, &channel).await? {
        return Err(WebError::NotFound);
    }
    Ok(back_to(project_id))
}

pub async fn remove(
    path: web::Path<(String, String)>,
    CsrfForm { operator, .. }: CsrfForm<NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.require_admin()?;
    let project_id = project_of(&state, &path.0).await?;
    let channel_id: i64 = path.1.parse().map_err(|_| WebError::NotFound)?;
    if !alerts::delete_channel(&state.pool, channel_id, Some(project_id)).await? {
        return Err(WebError::NotFound);
    }
    Ok(back_to(project_id))
}

/// Posts a sample notification now and shows the project page with the outcome.
pub async fn send_test(
    path: web::Path<(String, String)>,
    CsrfForm { operator, .. }: CsrfForm<NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    // Admins only, as the rest of channel management: a delivered test enables a channel
    // disabled for failing, and each test posts to the receiver.
    operator.require_admin()?;
    let project_id = project_of(&state, &path.0).await?;
    let channel_id: i64 = path.1.parse().map_err(|_| WebError::NotFound)?;
    let (owner, project_name, kind, target, secret) =
        alerts::channel_target(&state.pool, channel_id)
            .await?
            .filter(|(owner, ..)| *owner == project_id)
            .ok_or(WebError::NotFound)?;
    let sample = sample_delivery(channel_id, owner, project_name, kind, target, secret);
    let poster = Poster::new(state.public.base_url.clone(), &state.alerts)?;
    let notice = match poster.send(&sample).await {
        Outcome::Delivered => {
            // It works: a channel disabled for failing is enabled again.
            alerts::enable_channel(&state.pool, channel_id).await?;
            format!("Test notification delivered to channel #{channel_id}.")
        }
        Outcome::Retry(error, _) | Outcome::Refused(error) | Outcome::Gone(error) => {
            format!("Test notification to channel #{channel_id} failed: {error}")
        }
    };
    super::projects::render(&operator, project_id, &state, Some(notice)).await
}

async fn project_of(state: &AppState, raw: &str) -> Result<i64, WebError> {
    let project_id: i64 = raw.parse().map_err(|_| WebError::NotFound)?;
    projects::find(&state.pool, project_id)
        .await?
        .ok_or(WebError::NotFound)?;
    Ok(project_id)
}

fn back_to(project_id: i64) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/projects/{project_id}#alerts")))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_targets_are_shown_without_their_secret_path() {
        assert_eq!(
            shown_target("slack", "https://hooks.slack.com/services/T1/B2/s3cr3t"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(shown_target("email", "ops@example.com"), "ops@example.com");
    }
}

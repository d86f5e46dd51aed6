//! The Alerts section's add and edit forms, read into a channel or a 400 that says what is
//! wrong with them.

use serde::Deserialize;

use super::WebError;
use crate::alerts::{address, email, rules};
use crate::domain::level::Level;
use crate::state::AppState;
use crate::store::alerts::{ChannelKind, NewChannel, Trigger};

/// Least time between two spike alerts for one issue, when the form leaves it empty.
const DEFAULT_COOLDOWN_MINUTES: i32 = 30;

#[derive(Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    on_new: String,
    #[serde(default)]
    on_regression: String,
    #[serde(default)]
    environments: String,
    #[serde(default)]
    min_level: String,
    #[serde(default)]
    spike: String,
    #[serde(default)]
    cooldown: String,
}

/// The channel an edit starts from: its kind stays, and an empty target or secret keeps
/// what it has (the page never shows them).
pub struct Current {
    pub kind: ChannelKind,
    pub target: String,
    pub secret: Option<String>,
}

/// The form as a channel of `project_id`: a new one, or `current` edited.
pub async fn read(
    project_id: i64,
    form: ChannelForm,
    current: Option<Current>,
    state: &AppState,
) -> Result<NewChannel, WebError> {
    let kind = match &current {
        Some(current) => current.kind.clone(),
        None => kind_of(&form.kind)?,
    };
    let target = match (form.target.trim(), &current) {
        ("", Some(current)) => current.target.clone(),
        (typed, _) => {
            check_target(&kind, typed, state).await?;
            typed.to_owned()
        }
    };
    let secret = match (form.secret.trim(), current) {
        ("", Some(current)) => current.secret,
        ("", None) => None,
        (typed, _) => Some(typed.to_owned()),
    };
    let spike = match form.spike.trim() {
        "" => None,
        text => Some(rules::parse_spike(text).map_err(sentence)?),
    };
    let triggers = triggers_of(&form, spike.is_some())?;
    let cooldown_minutes = match form.cooldown.trim() {
        "" => DEFAULT_COOLDOWN_MINUTES,
        text => rules::parse_minutes(text).map_err(sentence)?,
    };
    Ok(NewChannel {
        project_id,
        kind,
        target,
        secret,
        triggers,
        environments: form
            .environments
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        min_level: Level::parse(&form.min_level).unwrap_or(Level::Debug),
        spike_events: spike.map(|(events, _)| events),
        spike_minutes: spike.map(|(_, minutes)| minutes),
        cooldown_minutes,
    })
}

fn sentence(error: String) -> WebError {
    WebError::BadRequest(format!("{error}."))
}

fn kind_of(chosen: &str) -> Result<ChannelKind, WebError> {
    match chosen {
        "json" => Ok(ChannelKind::Webhook),
        other => ChannelKind::parse(other)
            .filter(|k| *k != ChannelKind::Webhook)
            .ok_or_else(|| {
                WebError::BadRequest(
                    "Choose what the channel is: JSON webhook, Slack, Discord, Teams or e-mail."
                        .into(),
                )
            }),
    }
}

async fn check_target(kind: &ChannelKind, target: &str, state: &AppState) -> Result<(), WebError> {
    if *kind == ChannelKind::Email {
        return email::check_addresses(target).map_err(|e| sentence(e.to_string()));
    }
    match address::check_resolved(target, state.alerts.allow_private_webhooks).await {
        Ok(()) | Err(address::RefusedTarget::Unresolved) => Ok(()),
        Err(refused) => Err(sentence(refused.to_string())),
    }
}

fn triggers_of(form: &ChannelForm, spike: bool) -> Result<Vec<Trigger>, WebError> {
    let chosen = [
        (!form.on_new.is_empty(), Trigger::NewIssue),
        (!form.on_regression.is_empty(), Trigger::Regression),
        (spike, Trigger::Spike),
    ];
    let triggers: Vec<Trigger> = chosen
        .into_iter()
        .filter_map(|(on, trigger)| on.then_some(trigger))
        .collect();
    if triggers.is_empty() {
        return Err(WebError::BadRequest(
            "Choose at least one thing to alert on.".into(),
        ));
    }
    Ok(triggers)
}

//! Slack, Discord and Teams channels as their receivers get them over HTTP: each post has the
//! shape the service documents, carries the issue and the link, and is not signed (only JSON
//! webhooks with a secret are).

use faultline::domain::level::Level;
use faultline::store::alerts::{create_channel, ChannelKind, NewChannel, Trigger};
use serde_json::Value;

use crate::alert_receiver::Receiver;
use crate::helpers::{error_event, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_discord_and_teams_receivers_get_their_own_documented_shapes() {
    let app = spawn_app().await;
    let kinds = [ChannelKind::Slack, ChannelKind::Discord, ChannelKind::Teams];
    let mut receivers = Vec::new();
    for kind in kinds {
        let receiver = Receiver::unsigned();
        create_channel(
            &app.pool,
            &NewChannel {
                project_id: app.project_id,
                kind,
                target: receiver.start(),
                secret: None,
                triggers: vec![Trigger::NewIssue],
                environments: vec![],
                min_level: Level::Debug,
                spike_events: None,
                spike_minutes: None,
                cooldown_minutes: 30,
            },
        )
        .await
        .unwrap();
        receivers.push(receiver);
    }
    app.store_ok(&error_event("FormatError", "sku <b>&", "lookup", 1))
        .await;

    let slack = receivers[0].wait_for(1).await[0].2.clone();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("FormatError"),
        "a top-level text for Mattermost and the like: {slack}"
    );
    assert!(
        !text.contains("<b>"),
        "Slack's control characters are escaped: {text}"
    );
    let blocks = slack["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header", "{slack}");
    assert!(
        slack.to_string().contains("http://localhost:8000/issues/"),
        "{slack}"
    );

    let discord = receivers[1].wait_for(1).await[0].2.clone();
    let embed = &discord["embeds"][0];
    assert!(
        embed["title"].as_str().unwrap().contains("FormatError"),
        "{discord}"
    );
    assert!(
        embed["url"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost:8000/issues/"),
        "{discord}"
    );
    assert!(
        embed["fields"].as_array().is_some_and(|f| !f.is_empty()),
        "{discord}"
    );

    let teams = receivers[2].wait_for(1).await[0].2.clone();
    let attachment = &teams["attachments"][0];
    assert_eq!(teams["type"], "message", "{teams}");
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert!(
        card["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{teams}"
    );
    assert!(
        card["body"].as_array().is_some_and(|b| !b.is_empty()),
        "{teams}"
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    let all: Vec<&Value> = vec![&slack, &discord, &teams];
    assert!(
        all.iter().all(|p| !p.to_string().contains("stacktrace")),
        "never the event body"
    );
}

//! Alerts end to end: a real receiver over HTTP hears of new issues and regressions, signed,
//! once each, retried when it fails, filtered by environment.

use std::time::Duration;

use faultline::store::alerts::{create_channel, ChannelKind, NewChannel, Trigger};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::alert_receiver::{add_webhook, Receiver, SECRET};
use crate::helpers::{error_event, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_issue_and_its_regression_each_alert_once_signed_with_where_to_click() {
    let app = spawn_app().await;
    let receiver = Receiver::default();
    add_webhook(&app, &receiver.start(), &[]).await;

    let mut event = error_event("ZeroDivisionError", "division by zero", "divide", 3);
    event["environment"] = json!("production");
    event["request"] = json!({"method": "POST", "url": "https://shop.example/orders/17"});
    let event_id = app.store_ok(&event).await;
    // Recorded with the event, before any sender ran: a crash now would not lose it.
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 1);

    let posts = receiver.wait_for(1).await;
    let (_, delivery, payload) = &posts[0];
    assert!(!delivery.is_empty());
    assert_eq!(payload["version"], 1);
    assert_eq!(payload["trigger"], "new_issue");
    assert_eq!(payload["project"]["name"], "checkout-api");
    assert_eq!(
        payload["issue"]["title"],
        "ZeroDivisionError: division by zero"
    );
    assert_eq!(payload["issue"]["level"], "error");
    assert_eq!(payload["event"]["environment"], "production");
    assert_eq!(payload["event"]["id"], event_id);
    let issue_id = payload["issue"]["id"].as_i64().unwrap();
    assert_eq!(
        payload["issue"]["url"],
        format!("http://localhost:8000/issues/{issue_id}")
    );

    // More events of an open issue are not news.
    app.store_ok(&error_event(
        "ZeroDivisionError",
        "division by zero",
        "divide",
        4,
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.posts().len(), 1, "{:?}", receiver.posts());

    // Resolved, then seen again: a regression.
    sqlx::query("UPDATE issues SET status = 'resolved' WHERE id = $1")
        .bind(issue_id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.store_ok(&error_event(
        "ZeroDivisionError",
        "division by zero",
        "divide",
        5,
    ))
    .await;
    let posts = receiver.wait_for(2).await;
    assert_eq!(posts[1].2["trigger"], "regression");
    assert_eq!(posts[1].2["issue"]["id"], issue_id);
    assert_eq!(posts[1].2["issue"]["event_count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried_until_the_receiver_takes_it() {
    let app = spawn_app().await;
    let receiver = Receiver::default();
    *receiver.answers.lock().unwrap() = vec![503, 500];
    add_webhook(&app, &receiver.start(), &[]).await;
    app.store_ok(&error_event("KeyError", "sku", "lookup", 1))
        .await;

    // Retried after one second, then two, by a sender that looks once a second.
    let posts = receiver.wait_for_within(3, Duration::from_secs(30)).await;
    assert!(
        posts.iter().all(|p| p.1 == posts[0].1),
        "one delivery id across retries, so receivers can de-duplicate"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.posts().len(), 3, "delivered once, then no more");
    let (attempts, delivered): (i32, bool) =
        sqlx::query_as("SELECT attempts, delivered_at IS NOT NULL FROM alert_deliveries")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((attempts, delivered), (3, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_hears_only_its_environments_and_a_gone_webhook_disables_it_until_a_test_passes()
{
    let app = spawn_app().await;
    let receiver = Receiver::default();
    *receiver.answers.lock().unwrap() = vec![404];
    add_webhook(&app, &receiver.start(), &["production"]).await;

    let mut staging = error_event("StagingError", "x", "f", 1);
    staging["environment"] = json!("staging");
    app.store_ok(&staging).await;
    let mut production = error_event("ProductionError", "x", "g", 1);
    production["environment"] = json!("production");
    app.store_ok(&production).await;

    let posts = receiver.wait_for(1).await;
    assert_eq!(posts[0].2["issue"]["title"], "ProductionError: x");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.posts().len(),
        1,
        "404 means the webhook is gone: no retry"
    );
    let (failure, disabled): (Option<String>, bool) =
        sqlx::query_as("SELECT last_failure, disabled_at IS NOT NULL FROM alert_channels")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let failure = failure.unwrap();
    assert!(
        failure.contains("404") && failure.contains("channel_not_found"),
        "{failure}"
    );
    assert!(disabled, "a webhook that is gone disables its channel");

    // A disabled channel hears nothing more…
    let mut later = error_event("LaterError", "x", "h", 1);
    later["environment"] = json!("production");
    app.store_ok(&later).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(receiver.posts().len(), 1);
    // …until an admin's test notification gets through again (an operator may not send one).
    app.create_user("viewer@example.com", false).await;
    let (viewer, _) = app.try_login("viewer@example.com", PASSWORD, "/").await;
    let refused = viewer
        .post(&format!("/projects/{}/alerts/1/test", app.project_id), &[])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(receiver.posts().len(), 1, "nothing was posted");
    let admin = app.admin_browser().await;
    let tested = admin
        .post(&format!("/projects/{}/alerts/1/test", app.project_id), &[])
        .await;
    assert!(
        tested.body.contains("Test notification delivered"),
        "{}",
        tested.body
    );
    let disabled: bool = sqlx::query_scalar("SELECT disabled_at IS NOT NULL FROM alert_channels")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!disabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_private_addresses_are_refused_without_the_opt_in() {
    let app = spawn_app_with(|s| s.alerts.allow_private_webhooks = false).await;
    let receiver = Receiver::default();
    let url = receiver.start();
    // A literal address, and a name that resolves to one (checked as it is resolved).
    add_webhook(&app, &url, &[]).await;
    add_webhook(&app, &url.replace("127.0.0.1", "localhost"), &[]).await;
    app.store_ok(&error_event("SsrfProbe", "x", "f", 1)).await;

    let mut failures: Vec<String> = Vec::new();
    for _ in 0..200 {
        failures = sqlx::query_scalar(
            "SELECT last_failure FROM alert_channels WHERE last_failure IS NOT NULL ORDER BY id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if failures.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failures.len(), 2, "{failures:?}");
    for failure in &failures {
        assert!(failure.contains("private"), "{failure}");
    }
    let abandoned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alert_deliveries WHERE abandoned_at IS NOT NULL AND attempts = 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(abandoned, 2, "refused at once, not retried");
    assert!(receiver.posts().is_empty(), "nothing reached the receiver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_storm_sends_at_most_the_cap_and_one_digest_that_accounts_for_the_rest() {
    let app = spawn_app_with(|s| {
        s.alerts.alert_cap = 3;
        s.alerts.alert_cap_window_seconds = 4;
    })
    .await;
    let receiver = Receiver::default();
    add_webhook(&app, &receiver.start(), &[]).await;
    // A deploy that raises twelve new issues at once: sent together, so that even a slow
    // machine stores them all well within the cap's window.
    let storm: Vec<Value> = (0..12)
        .flat_map(|i| {
            (0..=i % 3).map(move |_| error_event(&format!("StormError{i}"), "boom", "f", 1))
        })
        .collect();
    join_all(storm.iter().map(|event| app.store_ok(event))).await;

    let posts = receiver.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let posts_after = receiver.posts();
    assert_eq!(posts_after.len(), 4, "3 alerts + 1 digest: {posts_after:?}");
    let singles = posts
        .iter()
        .filter(|p| p.2["trigger"] == "new_issue")
        .count();
    assert_eq!(singles, 3);
    let digest = &posts.iter().find(|p| p.2["trigger"] == "digest").unwrap().2;
    assert_eq!(digest["held_count"], 9, "{digest}");
    let named = digest["issues"].as_array().unwrap();
    assert_eq!(named.len(), 5, "the top five held issues");
    assert!(named[0]["event_count"].as_i64() >= named[4]["event_count"].as_i64());
    assert!(named[0]["url"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:8000/issues/"));

    let (delivered, held): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL), count(*) FILTER (WHERE held_at IS NOT NULL)
           FROM alert_deliveries",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (delivered, held),
        (12, 9),
        "every held alert is accounted for by the digest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_e_mail_alert_reaches_every_address_with_subject_link_and_fields_and_no_secret() {
    let sink = crate::smtp_sink::SmtpSink::default();
    let smtp_url = sink.start().await;
    let app = spawn_app_with(|s| {
        s.alerts.smtp_url = Some(smtp_url);
        s.alerts.smtp_from = Some("Faultline <alerts@example.com>".into());
    })
    .await;
    create_channel(
        &app.pool,
        &NewChannel {
            project_id: app.project_id,
            kind: ChannelKind::Email,
            target: "ops@example.com, Dev Team <dev@example.com>".into(),
            secret: None,
            triggers: Trigger::ALL.to_vec(),
            environments: vec![],
            min_level: faultline::domain::level::Level::Debug,
            spike_events: None,
            spike_minutes: None,
            cooldown_minutes: 30,
        },
    )
    .await
    .unwrap();
    let mut event = error_event("ZeroDivisionError", "division by zero", "divide", 3);
    event["environment"] = json!("production");
    event["exception"]["values"][0]["stacktrace"]["frames"][1]["vars"] =
        json!({"password": "hunter2"});
    event["request"] = json!({"method": "POST", "url": "https://shop.example/orders/17",
                              "headers": {"Authorization": "Bearer sk_live_abc"}});
    app.store_ok(&event).await;

    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = sink.mails();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.recipients, ["ops@example.com", "dev@example.com"]);
    let data = &mail.data;
    assert!(
        data.contains("Subject: [checkout-api] New issue: ZeroDivisionError: division by zero"),
        "{data}"
    );
    assert!(
        data.contains("From: Faultline <alerts@example.com>"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        data.contains(&format!("http://localhost:8000/issues/{issue_id}")),
        "{data}"
    );
    assert!(data.contains("Environment: production"), "{data}");
    assert!(
        data.contains("POST /orders/{id}") || data.contains("POST /orders/17"),
        "{data}"
    );
    assert!(
        !data.contains("hunter2") && !data.contains("sk_live_abc"),
        "{data}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_add_test_and_remove_channels_on_the_project_page_and_see_deliveries() {
    let app = spawn_app().await;
    let receiver = Receiver::default();
    let url = receiver.start();
    let admin = app.admin_browser().await;
    let project = format!("/projects/{}", app.project_id);

    let added = admin
        .post(
            &format!("{project}/alerts"),
            &[
                ("kind", "json"),
                ("target", &url),
                ("secret", SECRET),
                ("on_new", "1"),
                ("on_regression", "1"),
                ("environments", ""),
                ("min_level", "debug"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let page = admin.get(&project).await.body;
    assert!(page.contains("#1 webhook"), "{page}");
    assert!(
        page.contains("http://127.0.0.1/…"),
        "the URL's path is hidden: {page}"
    );
    assert!(!page.contains("/hook"), "{page}");

    // "Send test" delivers at once and says so.
    let tested = admin.post(&format!("{project}/alerts/1/test"), &[]).await;
    assert_eq!(tested.status, 200);
    assert!(
        tested
            .body
            .contains("Test notification delivered to channel #1."),
        "{}",
        tested.body
    );
    let posts = receiver.wait_for(1).await;
    assert_eq!(posts[0].2["trigger"], "test");

    // A real alert shows in the history.
    app.store_ok(&error_event("HistoryError", "x", "f", 1))
        .await;
    receiver.wait_for(2).await;
    let mut page = String::new();
    for _ in 0..200 {
        page = admin.get(&project).await.body;
        if page.contains("HistoryError") && page.contains(">delivered<") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        page.contains("Latest deliveries") && page.contains(">delivered<"),
        "{page}"
    );

    // Bad input is a clear 400; only admins change channels.
    let bad = admin
        .post(
            &format!("{project}/alerts"),
            &[
                ("kind", "email"),
                ("target", "not an address"),
                ("on_new", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("is not an e-mail address"),
        "{}",
        bad.body
    );
    app.create_user("viewer@example.com", false).await;
    let (viewer, _) = app
        .try_login("viewer@example.com", crate::helpers::PASSWORD, "/")
        .await;
    let refused = viewer
        .post(&format!("{project}/alerts/1/remove"), &[])
        .await;
    assert_eq!(refused.status, 403);

    let removed = admin.post(&format!("{project}/alerts/1/remove"), &[]).await;
    assert_eq!(removed.status, 303);
    assert!(admin.get(&project).await.body.contains("No one is told"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_alerts_once_with_its_count_and_the_cooldown_holds_the_next() {
    let app = spawn_app().await;
    let receiver = Receiver::default();
    create_channel(
        &app.pool,
        &NewChannel {
            project_id: app.project_id,
            kind: ChannelKind::Webhook,
            target: receiver.start(),
            secret: Some(SECRET.into()),
            triggers: vec![Trigger::Spike],
            environments: vec![],
            min_level: faultline::domain::level::Level::Debug,
            spike_events: Some(4),
            spike_minutes: Some(5),
            cooldown_minutes: 30,
        },
    )
    .await
    .unwrap();
    // Four events: not more than the threshold, no spike.
    for line in 0..4 {
        app.store_ok(&error_event("SpikeError", "x", "f", line))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(receiver.posts().is_empty(), "{:?}", receiver.posts());
    // The fifth crosses it.
    app.store_ok(&error_event("SpikeError", "x", "f", 9)).await;
    let posts = receiver.wait_for(1).await;
    let spike = &posts[0].2;
    assert_eq!(spike["trigger"], "spike");
    assert_eq!(spike["spike"]["events"], 5, "{spike}");
    assert_eq!(spike["spike"]["minutes"], 5);
    assert!(
        spike["text"]
            .as_str()
            .unwrap()
            .contains("Spike: 5 events in 5 min"),
        "{spike}"
    );
    // Still spiking, but within the cooldown: nothing more.
    for line in 10..16 {
        app.store_ok(&error_event("SpikeError", "x", "f", line))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.posts().len(), 1, "{:?}", receiver.posts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_edit_a_channel_in_place_keeping_its_hidden_url_and_secret() {
    let app = spawn_app().await;
    let url = Receiver::default().start();
    let admin = app.admin_browser().await;
    let project = format!("/projects/{}", app.project_id);
    let added = admin
        .post(
            &format!("{project}/alerts"),
            &[
                ("kind", "json"),
                ("target", &url),
                ("secret", SECRET),
                ("on_new", "1"),
                ("on_regression", "1"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);

    let edit = format!("{project}/alerts/1/edit");
    let edited = admin
        .post(
            &edit,
            &[
                ("target", ""),
                ("secret", ""),
                ("on_new", "1"),
                ("spike", "50/10m"),
                ("cooldown", "1h"),
                ("environments", "production, staging"),
                ("min_level", "error"),
            ],
        )
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    type Row = (
        String,
        Option<String>,
        Vec<String>,
        Vec<String>,
        String,
        Option<i32>,
        Option<i32>,
        i32,
    );
    let read = || async {
        sqlx::query_as::<_, Row>(
            "SELECT target, secret, triggers, environments, min_level, spike_events, spike_minutes,
                    cooldown_minutes FROM alert_channels WHERE id = 1",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let saved = read().await;
    assert_eq!(
        saved,
        (
            url.clone(),
            Some(SECRET.to_owned()),
            vec!["new_issue".to_owned(), "spike".to_owned()],
            vec!["production".to_owned(), "staging".to_owned()],
            "error".to_owned(),
            Some(50),
            Some(10),
            60
        )
    );
    let page = admin.get(&project).await.body;
    for shown in [
        r#"value="50/10m""#,
        r#"value="60m""#,
        r#"value="production, staging""#,
        r#"<option value="error" selected>"#,
    ] {
        assert!(page.contains(shown), "the edit form shows {shown}: {page}");
    }
    assert!(!page.contains(SECRET) && !page.contains("/hook"), "{page}");

    // A bad value is a 400 that changes nothing; others' channels and viewers get nowhere.
    let bad = admin
        .post(&edit, &[("on_new", "1"), ("spike", "lots")])
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("is not a spike threshold"),
        "{}",
        bad.body
    );
    assert_eq!(read().await, saved);
    let missing = admin
        .post(&format!("{project}/alerts/99/edit"), &[("on_new", "1")])
        .await;
    assert_eq!(missing.status, 404);
    app.create_user("viewer@example.com", false).await;
    let (viewer, _) = app
        .try_login("viewer@example.com", crate::helpers::PASSWORD, "/")
        .await;
    let refused = viewer.post(&edit, &[("on_new", "1")]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(read().await, saved);
}

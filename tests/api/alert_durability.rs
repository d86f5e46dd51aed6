//! Alerts are durable and sent once: through a `SIGKILL` right after the 200, with two
//! instances on one database, after a dead instance's lease runs out, through a receiver's
//! outage, and under a storm of a thousand new issues at the default cap.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::alert_receiver::{add_webhook, Receiver};
use crate::helpers::{
    error_event, free_port, spawn_app, spawn_app_with, start, test_settings, TestApp,
};

/// How many posts name each issue title.
fn posts_per_title(posts: &[(String, String, Value)]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for post in posts {
        let title = post.2["issue"]["title"].as_str().unwrap_or_default();
        *seen.entry(title.to_owned()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_each_notification_exactly_once() {
    // A cap above the 30 issues: every one is sent on its own.
    let one = spawn_app_with(|s| s.alerts.alert_cap = 100).await;
    let mut settings = test_settings(&one.database_url);
    settings.alerts.alert_cap = 100;
    let two = TestApp {
        project_id: one.project_id,
        key: one.key.clone(),
        ..start(settings).await
    };
    let receiver = Receiver::default();
    // A slow receiver keeps both senders busy at once.
    *receiver.delay.lock().unwrap() = Duration::from_millis(100);
    add_webhook(&one, &receiver.start(), &[]).await;
    for i in 0..30 {
        let app = if i % 2 == 0 { &one } else { &two };
        app.store_ok(&error_event(&format!("SharedError{i}"), "boom", "f", 1))
            .await;
    }

    receiver.wait_for_within(30, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let posts = receiver.posts();
    let per_title = posts_per_title(&posts);
    assert_eq!(per_title.len(), 30, "{per_title:?}");
    assert!(per_title.values().all(|n| *n == 1), "{per_title:?}");
    assert_eq!(posts.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_claimed_by_an_instance_that_died_is_sent_once_its_lease_runs_out() {
    let app = spawn_app().await;
    // The issue is stored before any channel exists, so this instance has nothing to send.
    app.store_ok(&error_event("OrphanedError", "boom", "f", 1))
        .await;
    // Once the sender has expanded the trigger (to no channel), it never looks at it again.
    let mut rounds = 0;
    while !sqlx::query_scalar::<_, bool>(
        "SELECT COALESCE(bool_and(expanded_at IS NOT NULL), false) FROM alert_outbox",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
    {
        rounds += 1;
        assert!(rounds < 200, "the sender never expanded the trigger");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let receiver = Receiver::default();
    add_webhook(&app, &receiver.start(), &[]).await;
    // What a dead instance leaves behind: a delivery it claimed (one attempt counted) with a
    // lease that ends in five seconds.
    sqlx::query(
        "INSERT INTO alert_deliveries (outbox_id, channel_id, attempts, next_attempt_at)
         SELECT o.id, c.id, 1, now() + interval '5 seconds'
           FROM alert_outbox o, alert_channels c",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(receiver.posts().is_empty(), "the lease holds until it ends");
    let posts = receiver.wait_for(1).await;
    assert_eq!(posts[0].2["issue"]["title"], "OrphanedError: boom");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.posts().len(), 1);
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM alert_deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        attempts, 2,
        "the dead instance's attempt and the one that delivered"
    );
}

/// `faultline serve` as its own process on `port`, alerting to local receivers quickly.
fn serve(app: &TestApp, port: u16, spool: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("serve")
        .env("FAULTLINE_SPOOL_DIR", spool)
        .env("DATABASE_URL", &app.database_url)
        .env("FAULTLINE_BIND", format!("127.0.0.1:{port}"))
        .env("FAULTLINE_BASE_URL", "http://localhost:8000")
        .env("FAULTLINE_ALLOW_PRIVATE_WEBHOOKS", "true")
        .env("FAULTLINE_ALERT_RETRY_SECONDS", "1")
        // A claim the killed process held is taken over after two seconds.
        .env("FAULTLINE_ALERT_LEASE_SECONDS", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("faultline serve starts")
}

async fn wait_until_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await {
            if answer.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("faultline at {base} did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_right_after_the_200_still_alerts_once_after_a_restart() {
    let app = spawn_app().await;
    let receiver = Receiver::default();
    add_webhook(&app, &receiver.start(), &[]).await;
    let port = free_port();
    let process = app.at_port(port);
    let spool = crate::helpers::new_spool_dir();
    let mut first = serve(&app, port, &spool);
    wait_until_ready(&app.client, &process.address).await;

    // Five new issues at once; the process dies the moment the last 200 is in.
    let sends = (0..5).map(|i| {
        let event = error_event(&format!("KilledError{i}"), "boom", "f", 1);
        let process = &process;
        async move { process.store_ok(&event).await }
    });
    futures_util::future::join_all(sends).await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    let mut second = serve(&app, port, &spool);
    let posts = receiver.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    // Each issue is heard. A post the kill cut short is sent again after the lease, with the
    // same delivery id: a receiver that de-duplicates on it takes each notification once.
    let mut ids_per_title: HashMap<String, HashSet<String>> = HashMap::new();
    for post in receiver.posts() {
        let title = post.2["issue"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ids_per_title
            .entry(title)
            .or_default()
            .insert(post.1.clone());
    }
    assert_eq!(ids_per_title.len(), 5, "{posts:?}");
    assert!(
        ids_per_title.values().all(|ids| ids.len() == 1),
        "{ids_per_title:?}"
    );
    let deliveries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alert_deliveries WHERE delivered_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        deliveries, 5,
        "one delivery per notification, each recorded delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_the_notification_once_it_is_back() {
    let app = spawn_app().await;
    // A port nothing listens on yet: every attempt is refused at connect.
    let port = free_port();
    let receiver = Receiver::default();
    add_webhook(&app, &format!("http://127.0.0.1:{port}/hook"), &[]).await;
    app.store_ok(&error_event("OutageError", "boom", "f", 1))
        .await;

    let mut failing = false;
    for _ in 0..100 {
        failing = sqlx::query_scalar("SELECT failing_since IS NOT NULL FROM alert_channels")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let attempts: i32 =
            sqlx::query_scalar("SELECT coalesce(max(attempts), 0) FROM alert_deliveries")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if failing && attempts >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        failing,
        "the channel shows it is failing while the receiver is down"
    );

    receiver.start_on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let posts = receiver.wait_for_within(1, Duration::from_secs(20)).await;
    assert_eq!(posts[0].2["issue"]["title"], "OutageError: boom");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.posts().len(), 1);
    let (delivered, failing_since): (bool, bool) = sqlx::query_as(
        "SELECT d.delivered_at IS NOT NULL, c.failing_since IS NOT NULL
           FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((delivered, failing_since), (true, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_new_issues_send_the_default_cap_and_one_digest_per_channel() {
    let app = spawn_app().await;
    let receivers = [Receiver::default(), Receiver::default()];
    for receiver in &receivers {
        add_webhook(&app, &receiver.start(), &[]).await;
    }
    let sends = (0..1000).map(|i| {
        let event = error_event(&format!("StormError{i}"), "boom", "f", 1);
        let app = &app;
        async move { app.store_ok(&event).await }
    });
    futures_util::stream::iter(sends)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(app.issue_count().await, 1000);

    // Every delivery is either sent (the cap: 20 per channel) or held for the digest.
    let mut settled = 0i64;
    for _ in 0..600 {
        settled = sqlx::query_scalar(
            "SELECT count(*) FROM alert_deliveries WHERE sent_at IS NOT NULL OR held_at IS NOT NULL",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if settled == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(settled, 2000);
    for receiver in &receivers {
        receiver.wait_for(20).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for receiver in &receivers {
        assert_eq!(receiver.posts().len(), 20, "the default cap");
    }

    // Ten minutes pass: the window ends and each channel gets its digest.
    sqlx::query(
        "UPDATE alert_deliveries SET held_at = held_at - interval '10 minutes',
                sent_at = sent_at - interval '10 minutes'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for receiver in &receivers {
        let posts = receiver.wait_for(21).await;
        let digest = &posts.last().unwrap().2;
        assert_eq!(digest["trigger"], "digest");
        assert_eq!(digest["held_count"], 980, "the digest counts what was held");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for receiver in &receivers {
        assert_eq!(receiver.posts().len(), 21, "cap + one digest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_is_claimed_whole_while_another_statement_holds_some_of_its_deliveries() {
    let app = spawn_app_with(|s| s.alerts.alert_cap = 2).await;
    let receiver = Receiver::default();
    add_webhook(&app, &receiver.start(), &[]).await;
    for i in 0..8 {
        app.store_ok(&error_event(&format!("HeldError{i}"), "boom", "f", 1))
            .await;
    }
    receiver.wait_for(2).await;
    let mut held = 0i64;
    for _ in 0..100 {
        held =
            sqlx::query_scalar("SELECT count(*) FROM alert_deliveries WHERE held_at IS NOT NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if held == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held, 6, "two sent, six held for the digest");

    // Another statement (an instance writing them, or an operator's UPDATE) holds three of
    // them. The server's own sender waits for its 10-minute window; this claim has none.
    let mut other = app.pool.begin().await.unwrap();
    sqlx::query(
        "SELECT id FROM alert_deliveries WHERE held_at IS NOT NULL ORDER BY id LIMIT 3 FOR UPDATE",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let pool = app.pool.clone();
    let claim =
        tokio::spawn(
            async move { faultline::store::alerts::claim_due_digests(&pool, 0, 30, 60).await },
        );
    tokio::time::sleep(Duration::from_millis(500)).await;
    other.commit().await.unwrap();
    let digests = claim.await.unwrap().unwrap();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].held, 6, "not the three that were free at first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_up_removes_settled_alerts_past_retention_and_keeps_pending_ones() {
    let app = spawn_app().await;
    let receiver = Receiver::default();
    add_webhook(&app, &receiver.start(), &[]).await;
    app.store_ok(&error_event("OldDelivered", "boom", "f", 1))
        .await;
    receiver.wait_for(1).await;
    // A second channel whose receiver never answers: its delivery stays pending.
    let port = free_port();
    add_webhook(&app, &format!("http://127.0.0.1:{port}/hook"), &[]).await;
    app.store_ok(&error_event("OldPending", "boom", "f", 1))
        .await;
    receiver.wait_for(2).await;
    sqlx::query("UPDATE alert_outbox SET created_at = now() - interval '100 days'")
        .execute(&app.pool)
        .await
        .unwrap();

    let report = faultline::cleanup::run_once(&app.pool, 90, |_| {})
        .await
        .unwrap()
        .expect("no other clean-up runs");
    assert_eq!(
        report.alerts_deleted, 1,
        "OldDelivered's trigger, delivered"
    );
    let left: Vec<String> =
        sqlx::query_scalar("SELECT i.title FROM alert_outbox o JOIN issues i ON i.id = o.issue_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        ["OldPending: boom"],
        "a pending delivery is never removed"
    );
}

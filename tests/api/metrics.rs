//! `/metrics` on its own listener, in Prometheus' text format, counting what ingest does.

use faultline::startup::Application;

use faultline::store::events::{write_batch_known, Aggregates};
use faultline::store::known::Known;

use crate::helpers::{error_event, prepared_event, spawn_app, test_settings};

/// A sample's value in the exposition text: the line that starts with `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_accepted_and_rejected_events_on_their_own_listener() {
    let app = spawn_app().await;
    let mut settings = test_settings(&app.database_url);
    settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    let application = Application::build(settings).await.unwrap();
    let (port, metrics_port) = (application.port(), application.metrics_port().unwrap());
    tokio::spawn(application.run_until_stopped());
    let server = app.at_port(port);
    let scrape = || async {
        let answer = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap()
    };
    // Other tests in this process count too: compare before and after.
    let before = scrape().await;
    let accepted =
        r#"faultline_ingest_requests_total{outcome="accepted",reason="event",status="200"}"#;
    let rejected =
        r#"faultline_ingest_requests_total{outcome="rejected",reason="malformed",status="400"}"#;
    for i in 0..3 {
        server
            .store_ok(&error_event("MetricError", &format!("{i}"), "f", 1))
            .await;
    }
    let bad = server
        .client
        .post(server.store_url())
        .header("X-Sentry-Auth", server.auth_header())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // A batch's deferred aggregates that no flush has taken yet (this server's flusher was
    // not told of it, and looks for such leftovers once a minute).
    let deferred = prepared_event(app.project_id, &error_event("DeferredError", "x", "f", 1));
    write_batch_known(
        &app.pool,
        &[&deferred],
        &Known::default(),
        Aggregates::Deferred,
    )
    .await
    .unwrap();

    let after = scrape().await;
    let grew =
        |series: &str| value(&after, series).unwrap_or(0.0) - value(&before, series).unwrap_or(0.0);
    assert!(grew(accepted) >= 3.0, "{after}");
    assert!(grew(rejected) >= 1.0, "{after}");
    for series in [
        "faultline_queue_depth",
        "faultline_queue_bytes",
        "faultline_batch_size",
        "faultline_batch_seconds",
        "faultline_spool_events 0",
        "faultline_spool_bytes",
        "faultline_database_down 0",
        "faultline_aggregate_deltas_waiting 1",
        r#"faultline_db_pool_connections{state="idle"}"#,
        r#"faultline_http_request_duration_seconds{method="POST",route="/api/{project_id}/store/",status="200""#,
    ] {
        assert!(after.contains(series), "{series} missing from:\n{after}");
    }
    // The public listener has no such page.
    let public = server
        .client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

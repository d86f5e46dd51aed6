//! Grouping over HTTP: which events end up in the same issue.

use serde_json::json;

use crate::helpers::{error_event, new_event_id, spawn_app};

#[tokio::test]
async fn same_error_on_shifted_lines_is_one_issue() {
    let app = spawn_app().await;
    app.store_ok(&error_event(
        "ValueError",
        "invalid literal 'abc'",
        "parse",
        10,
    ))
    .await;
    app.store_ok(&error_event(
        "ValueError",
        "invalid literal 'x-17'",
        "parse",
        42,
    ))
    .await;
    assert_eq!(app.issue_count().await, 1);
    assert_eq!(app.issues().await[0].1, 2);
}

#[tokio::test]
async fn different_exception_type_is_a_different_issue() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "parse", 10))
        .await;
    app.store_ok(&error_event("TypeError", "x", "parse", 10))
        .await;
    assert_eq!(app.issue_count().await, 2);
}

#[tokio::test]
async fn different_function_is_a_different_issue() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "parse", 10))
        .await;
    app.store_ok(&error_event("ValueError", "x", "render", 10))
        .await;
    assert_eq!(app.issue_count().await, 2);
}

#[tokio::test]
async fn custom_fingerprint_groups_unrelated_errors_together() {
    let app = spawn_app().await;
    for (ty, function) in [("ValueError", "a"), ("KeyError", "b")] {
        let mut event = error_event(ty, "x", function, 1);
        event["fingerprint"] = json!(["database-unavailable"]);
        app.store_ok(&event).await;
    }
    assert_eq!(app.issue_count().await, 1);
    let grouping: serde_json::Value = sqlx::query_scalar("SELECT grouping FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(grouping["kind"], "fingerprint");
    assert_eq!(grouping["values"], json!(["database-unavailable"]));
}

#[tokio::test]
async fn default_in_a_fingerprint_splits_the_default_group() {
    let app = spawn_app().await;
    for tenant in ["acme", "globex", "acme"] {
        let mut event = error_event("ValueError", "x", "parse", 1);
        event["fingerprint"] = json!(["{{ default }}", tenant]);
        app.store_ok(&event).await;
    }
    let mut plain = error_event("ValueError", "x", "parse", 1);
    plain["event_id"] = json!(new_event_id());
    app.store_ok(&plain).await;
    let counts: Vec<i64> = app.issues().await.into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        app.issue_count().await,
        3,
        "acme, globex and the plain default"
    );
    assert_eq!(counts.iter().sum::<i64>(), 4);
}

#[tokio::test]
async fn messages_differing_only_in_numbers_ids_and_uuids_are_one_issue() {
    let app = spawn_app().await;
    let messages = [
        "Payment declined for order 17 (request 6f1c2a9e-1b7d-4c1e-9a55-0c6c1f0f2b11, txn deadbeef0042)",
        "Payment declined for order 4242 (request 0b1e4d5c-9f3a-4e2b-8c7d-112233445566, txn 00c0ffee9876)",
    ];
    for message in messages {
        app.store_ok(&json!({"event_id": new_event_id(), "message": message, "level": "info"}))
            .await;
    }
    app.store_ok(
        &json!({"event_id": new_event_id(), "message": "Inventory sync failed for store 3"}),
    )
    .await;
    assert_eq!(app.issue_count().await, 2);
    let titles: Vec<String> = app.issues().await.into_iter().map(|(t, _)| t).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("Payment declined for order")),
        "{titles:?}"
    );
}

#[tokio::test]
async fn message_template_with_params_groups_by_template() {
    let app = spawn_app().await;
    for user in ["alice", "bob"] {
        let event = json!({"event_id": new_event_id(), "logentry": {"message": "User %s failed login", "params": [user], "formatted": format!("User {user} failed login")}});
        app.store_ok(&event).await;
    }
    assert_eq!(app.issue_count().await, 1);
}

#[tokio::test]
async fn event_with_neither_exception_nor_message_falls_into_one_fallback_group() {
    let app = spawn_app().await;
    app.store_ok(&json!({"event_id": new_event_id()})).await;
    app.store_ok(&json!({"event_id": new_event_id(), "extra": {"a": 1}}))
        .await;
    assert_eq!(app.issue_count().await, 1);
    let title: String = sqlx::query_scalar("SELECT title FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(title, "<unlabeled event>");
}

#[tokio::test]
async fn an_issue_takes_its_newest_events_title_level_and_metadata() {
    let app = spawn_app().await;
    let mut first = error_event("ValueError", "invalid literal 'abc'", "parse", 10);
    first["level"] = json!("warning");
    first["timestamp"] = json!("2026-11-30T10:00:00Z");
    app.store_ok(&first).await;
    // Same issue, a later event (a batch of its own): the issue is rewritten from it.
    let mut second = error_event("ValueError", "invalid literal 'x-17'", "parse", 42);
    second["level"] = json!("fatal");
    second["timestamp"] = json!("2026-11-30T11:00:00Z");
    app.store_ok(&second).await;
    let (count, title, level, value): (i64, String, String, Option<String>) =
        sqlx::query_as("SELECT event_count, title, level, metadata->>'value' FROM issues")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(count, 2);
    assert!(title.contains("x-17"), "{title}");
    assert_eq!(level, "fatal");
    assert_eq!(value.as_deref(), Some("invalid literal 'x-17'"));

    // An older event arriving late (an SDK's offline cache, a replayed spool) is counted but
    // does not take the issue back to what it said then.
    let mut late = error_event("ValueError", "invalid literal 'old'", "parse", 7);
    late["level"] = json!("info");
    late["timestamp"] = json!("2026-11-30T09:00:00Z");
    app.store_ok(&late).await;
    let (count, title, level, value, first_seen): (i64, String, String, Option<String>, String) =
        sqlx::query_as(
            "SELECT event_count, title, level, metadata->>'value',
                    to_char(first_seen AT TIME ZONE 'UTC', 'HH24:MI') FROM issues",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
    assert!(title.contains("x-17"), "{title}");
    assert_eq!(level, "fatal");
    assert_eq!(value.as_deref(), Some("invalid literal 'x-17'"));
    assert_eq!(first_seen, "09:00");
}

/// An SDK's retry of a stored event that now groups differently (a new fingerprint, a source
/// map uploaded in between) is skipped as a duplicate, and leaves no issue without events.
#[tokio::test]
async fn a_retried_event_that_groups_differently_creates_no_empty_issue() {
    let app = spawn_app().await;
    let event_id = new_event_id();
    app.store_ok(&json!({"event_id": event_id, "message": "retried", "fingerprint": ["first"]}))
        .await;
    app.store_ok(&json!({"event_id": event_id, "message": "retried", "fingerprint": ["second"]}))
        .await;
    let issues: Vec<(i64,)> = sqlx::query_as("SELECT event_count FROM issues")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(issues, [(1,)], "one issue, with the one stored event");
    // The retry's fingerprint still makes its own issue for a new event.
    app.store_ok(&json!({"message": "retried", "fingerprint": ["second"]}))
        .await;
    assert_eq!(app.event_count().await, 2);
    let counts: Vec<i64> = sqlx::query_scalar("SELECT event_count FROM issues ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(counts, [1, 1]);
}

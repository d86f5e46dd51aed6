//! Retention: expired events go with their daily partition; issues keep their totals.

use std::process::Command;

use crate::helpers::{error_event, eventually, lock_waiters, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_drops_expired_partitions_and_issues_keep_their_totals() {
    let app = spawn_app().await;
    let old = app
        .store_ok(&error_event("ValueError", "old", "f", 1))
        .await;
    let also_old = app
        .store_ok(&error_event("ValueError", "old too", "f", 1))
        .await;
    let recent = app
        .store_ok(&error_event("KeyError", "recent", "g", 1))
        .await;
    // Move two events 100 days back, as if they had arrived then.
    sqlx::query("SELECT faultline_create_event_partitions((now() - interval '100 days')::date, (now() - interval '100 days')::date)")
        .execute(&app.pool)
        .await
        .unwrap();
    for table in ["events", "event_ids"] {
        sqlx::query(&format!(
            "UPDATE {table} SET received_at = now() - interval '100 days' WHERE event_id = ANY($1)"
        ))
        .bind(vec![
            uuid::Uuid::parse_str(&old).unwrap(),
            uuid::Uuid::parse_str(&also_old).unwrap(),
        ])
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let database_url = app.database_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("cleanup")
            .env("DATABASE_URL", database_url)
            .env("FAULTLINE_RETENTION_DAYS", "90")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("(2 events)") && stdout.contains("done: 2 events removed in 1 partitions"),
        "{stdout}"
    );

    assert_eq!(app.event_count().await, 1);
    let ids: i64 = sqlx::query_scalar("SELECT count(*) FROM event_ids")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(ids, 1, "the de-duplication ids of expired events go too");
    app.stored_event(&recent).await;
    let (count, title): (i64, String) =
        sqlx::query_as("SELECT event_count, title FROM issues WHERE title LIKE 'ValueError%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(count, 2, "the issue keeps its total: {title}");

    let browser = app.admin_browser().await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues WHERE title LIKE 'ValueError%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = browser.get(&format!("/issues/{issue_id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("The events of this issue have expired"),
        "the page says why there is no event"
    );

    // Ingest goes on, into today's partition.
    app.store_ok(&error_event("ValueError", "new again", "f", 1))
        .await;
    let count: i64 = sqlx::query_scalar("SELECT event_count FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn partitions_exist_ahead_of_time() {
    let app = spawn_app().await;
    let ahead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'events'::regclass AND c.relname >= 'events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(ahead >= 14, "today and two weeks ahead: {ahead}");
}

#[tokio::test]
async fn event_bodies_stay_inline_in_their_partition() {
    let app = spawn_app().await;
    // ~9 KB that zstd cannot shrink below the 2 KB at which PostgreSQL would otherwise move
    // the body to the partition's TOAST table.
    let noise: Vec<String> = (0..250).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut event = error_event("BigBody", "noisy", "load", 7);
    event["extra"] = serde_json::json!({ "noise": noise });
    let id = app.store_ok(&event).await;

    let (partition, body_bytes): (String, i32) = sqlx::query_as(
        "SELECT e.tableoid::regclass::text, octet_length(e.body) FROM events e WHERE e.event_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        body_bytes > 4_000,
        "a body TOAST would have taken: {body_bytes} bytes"
    );
    let toast: String = sqlx::query_scalar(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = $1::regclass",
    )
    .bind(&partition)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let toasted: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {toast}"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(toasted, 0, "the body of {partition} went to {toast}");

    // Partitions made later keep the same settings.
    sqlx::query("SELECT faultline_create_event_partitions('2099-01-01', '2099-01-01')")
        .execute(&app.pool)
        .await
        .unwrap();
    let (options, storage): (Vec<String>, String) = sqlx::query_as(
        "SELECT c.reloptions, a.attstorage::text FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'body'
          WHERE c.relname = 'events_20990101'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(options, ["toast_tuple_target=8160"]);
    assert_eq!(storage, "e");
}

/// A partition drop left half done (the server stopped during `DETACH … CONCURRENTLY`, or
/// between the detach and the `DROP`) is finished by the next clean-up. A pending detach used
/// to fail every later run, and with it the rest of the clean-up; a detached table was never
/// dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_left_half_done_is_finished_by_the_next_clean_up() {
    let app = spawn_app().await;
    let days: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(now() - d * interval '1 day', 'YYYYMMDD') FROM unnest(ARRAY[100, 101]) d",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "SELECT faultline_create_event_partitions((now() - interval '101 days')::date, \
                                                  (now() - interval '100 days')::date)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (pending, detached) = (format!("events_{}", days[0]), format!("events_{}", days[1]));
    sqlx::query(&format!("ALTER TABLE events DETACH PARTITION {detached}"))
        .execute(&app.pool)
        .await
        .unwrap();

    // A concurrent detach waits for a reader of `events`, and is cancelled meanwhile.
    let mut reader = app.pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM events")
        .execute(&mut *reader)
        .await
        .unwrap();
    let pool = app.pool.clone();
    let detach = format!("ALTER TABLE events DETACH PARTITION {pending} CONCURRENTLY");
    let detaching = tokio::spawn(async move { sqlx::query(&detach).execute(&pool).await });
    eventually("the detach's wait for the reader", || async {
        lock_waiters(&app.pool).await >= 1
    })
    .await;
    sqlx::query(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE 'ALTER TABLE events DETACH%'
            AND pid <> pg_backend_pid()",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert!(
        detaching.await.unwrap().is_err(),
        "the detach was cancelled"
    );
    reader.commit().await.unwrap();
    let left_pending: bool = sqlx::query_scalar(
        "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = $1::regclass",
    )
    .bind(&pending)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(left_pending);

    let report = faultline::cleanup::run_once(&app.pool, 90, |_| {})
        .await
        .unwrap()
        .expect("no other clean-up runs");
    let mut dropped: Vec<String> = report.partitions_dropped.into_iter().map(|p| p.0).collect();
    dropped.sort();
    let mut expected = vec![pending, detached];
    expected.sort();
    assert_eq!(dropped, expected);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = ANY($1)")
        .bind(&expected)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

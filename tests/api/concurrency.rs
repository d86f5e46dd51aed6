//! Many clients, and several Faultline instances on one database, sending the same
//! fingerprints at once: exact counts and no duplicate issues; a bulk status change locks
//! issues in the writers' order.

use faultline::config::PipelineSettings;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{
    envelope, lock_waiters, new_event_id, spawn_app, start, test_settings, TestApp,
};

const FINGERPRINTS: usize = 5;
const CLIENTS: usize = 8;
const EVENTS_PER_CLIENT: usize = 25;

async fn send_burst(app: &TestApp, client: usize) {
    for i in 0..EVENTS_PER_CLIENT {
        let fingerprint = format!("group-{}", (client + i) % FINGERPRINTS);
        let event = json!({
            "event_id": new_event_id(),
            "message": "concurrent",
            "fingerprint": [fingerprint],
            "user": {"id": format!("user-{}", i % 3)},
            "tags": {"client": client.to_string()}
        });
        let response = app.post_envelope(envelope(&event, true)).await;
        assert_eq!(response.status(), 200);
    }
}

async fn assert_exact_counts(app: &TestApp, total: i64) {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT hash, event_count, user_count FROM issues ORDER BY hash")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), FINGERPRINTS, "one issue per fingerprint");
    assert_eq!(rows.iter().map(|r| r.1).sum::<i64>(), total);
    assert_eq!(app.event_count().await, total);
    for (_, _, users) in &rows {
        assert_eq!(*users, 3, "three distinct users per issue");
    }
    let per_issue: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT i.event_count, (SELECT count(*) FROM events e WHERE e.issue_id = i.id),
                (SELECT sum(count)::int8 FROM issue_hourly_counts h WHERE h.issue_id = i.id)
           FROM issues i",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for (counted, stored, hourly) in per_issue {
        assert_eq!(counted, stored);
        assert_eq!(counted, hourly);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_the_same_fingerprints_give_exact_counts() {
    let app = spawn_app().await;
    join_all((0..CLIENTS).map(|c| send_burst(&app, c))).await;
    assert_exact_counts(&app, (CLIENTS * EVENTS_PER_CLIENT) as i64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_give_exact_counts_and_no_duplicate_issues() {
    let first = spawn_app().await;
    let mut settings = test_settings(&first.database_url);
    // Small batches interleave the two writers' transactions as much as possible.
    settings.pipeline = PipelineSettings {
        batch_size: 4,
        batch_wait_ms: 1,
        ..PipelineSettings::default()
    };
    let second = TestApp {
        project_id: first.project_id,
        key: first.key.clone(),
        ..start(settings).await
    };
    let sends = (0..CLIENTS).map(|c| {
        let app = if c % 2 == 0 { &first } else { &second };
        send_burst(app, c)
    });
    join_all(sends).await;
    assert_exact_counts(&first, (CLIENTS * EVENTS_PER_CLIENT) as i64).await;
}

/// The writers lock a batch's issues in `(project_id, hash)` order. A bulk status change
/// locks them in that order too: holding none while it waits for the first, it can never
/// hold one a writer needs while waiting for another that writer holds (a deadlock, which
/// cost a second and failed one side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_status_change_locks_issues_in_the_writers_order() {
    let app = spawn_app().await;
    for i in 0..10 {
        app.store_ok(&json!({"message": "locking", "fingerprint": [format!("lock-{i}")]}))
            .await;
    }
    // Two issues whose id order (the order of a plain update) is not their hash order.
    let issues: Vec<(i64, String)> = sqlx::query_as("SELECT id, hash FROM issues ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let (later_in_hash_order, first_in_hash_order) = issues
        .iter()
        .flat_map(|x| issues.iter().map(move |y| (x, y)))
        .find(|(x, y)| x.0 < y.0 && x.1 > y.1)
        .map(|(x, y)| (x.0, y.0))
        .expect("ten random hashes are not all in id order");

    // A writer's batch holds the issue that comes first.
    let mut writer = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM issues WHERE id = $1 FOR UPDATE")
        .bind(first_in_hash_order)
        .execute(&mut *writer)
        .await
        .unwrap();
    let pool = app.pool.clone();
    let bulk = tokio::spawn(async move {
        faultline::store::issues::set_status(
            &pool,
            &[later_in_hash_order, first_in_hash_order],
            faultline::store::issues::IssueStatus::Resolved,
        )
        .await
    });
    let mut bulk_waits = false;
    for _ in 0..200 {
        let waiting = lock_waiters(&app.pool).await;
        if waiting == 1 {
            bulk_waits = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(bulk_waits, "the bulk change waits for the writer's issue");
    // The bulk change waits for the first issue and holds nothing, so the writer can take
    // the next one at once.
    sqlx::query("SELECT 1 FROM issues WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(later_in_hash_order)
        .execute(&mut *writer)
        .await
        .expect("the bulk change holds no issue the writer needs");
    writer.commit().await.unwrap();
    assert_eq!(bulk.await.unwrap().unwrap(), 2);
}

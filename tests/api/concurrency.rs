//! Many clients, and several Faultline instances on one database, sending the same
//! fingerprints at once: exact counts and no duplicate issues; a batch takes its issues, new
//! or not, in one order, and a bulk status change locks issues in that order too.

use faultline::config::PipelineSettings;
use faultline::store::events::{write_batch_known, Aggregates, NewEvent};
use faultline::store::known::Known;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{
    envelope, eventually, lock_waiters, new_event_id, prepared_event, spawn_app, start,
    test_settings, TestApp,
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
    eventually("the bulk change's wait for the writer's issue", || async {
        lock_waiters(&app.pool).await == 1
    })
    .await;
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

/// An event of the issue whose grouping hash is `hash` (chosen, to fix the lock order).
fn event_with_hash(app: &TestApp, hash: &str) -> NewEvent {
    let mut event = prepared_event(app.project_id, &json!({"message": format!("issue {hash}")}));
    event.hash = hash.to_owned();
    event
}

async fn issue_events(app: &TestApp, hash: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT event_count FROM issues WHERE project_id = $1 AND hash = $2")
        .bind(app.project_id)
        .bind(hash)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
}

/// A batch that creates an issue takes all its issues, old and new, in one order: while it
/// waits for an earlier issue that another writer is creating, it holds no later one. (It
/// used to lock the existing issues first, then insert the new ones: three writers around new
/// issues deadlocked, and one lost a second and its batch's first try.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_creating_an_issue_holds_no_later_issue_while_it_waits() {
    let app = spawn_app().await;
    let (earlier, later) = ("0".repeat(32), "f".repeat(32));
    let first = event_with_hash(&app, &later);
    write_batch_known(&app.pool, &[&first], &Known::default(), Aggregates::Now)
        .await
        .unwrap();

    // Another writer is creating the earlier issue and has not committed.
    let mut other = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO issues (project_id, hash, title, level, first_seen, last_seen, grouping)
         VALUES ($1, $2, 'other writer', 'error', now(), now(), '{}')",
    )
    .bind(app.project_id)
    .bind(&earlier)
    .execute(&mut *other)
    .await
    .unwrap();
    let batch = [
        event_with_hash(&app, &earlier),
        event_with_hash(&app, &later),
    ];
    let pool = app.pool.clone();
    let writing = tokio::spawn(async move {
        let events: Vec<&NewEvent> = batch.iter().collect();
        write_batch_known(&pool, &events, &Known::default(), Aggregates::Now).await
    });
    eventually("the batch's wait for the earlier issue", || async {
        lock_waiters(&app.pool).await == 1
    })
    .await;
    sqlx::query("SELECT 1 FROM issues WHERE project_id = $1 AND hash = $2 FOR UPDATE NOWAIT")
        .bind(app.project_id)
        .bind(&later)
        .execute(&mut *other)
        .await
        .expect("the waiting batch holds no later issue");
    other.commit().await.unwrap();

    assert_eq!(writing.await.unwrap().unwrap(), 2);
    assert_eq!(issue_events(&app, &earlier).await, Some(1));
    assert_eq!(issue_events(&app, &later).await, Some(2));
}

/// A writer remembers which issues exist, to lock them the quick way; one deleted since (here
/// by hand, as a project's deletion would) is created again, and its event stored.
#[tokio::test]
async fn an_issue_deleted_since_a_writer_saw_it_is_created_again() {
    let app = spawn_app().await;
    let known = Known::default();
    let hash = "a".repeat(32);
    for round in 0..2 {
        let event = event_with_hash(&app, &hash);
        let written = write_batch_known(&app.pool, &[&event], &known, Aggregates::Now).await;
        assert_eq!(written.unwrap(), 1, "round {round}");
        assert_eq!(issue_events(&app, &hash).await, Some(1), "round {round}");
        sqlx::query("DELETE FROM issues WHERE project_id = $1 AND hash = $2")
            .bind(app.project_id)
            .bind(&hash)
            .execute(&app.pool)
            .await
            .unwrap();
    }
}

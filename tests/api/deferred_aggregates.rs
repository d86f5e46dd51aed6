//! Aggregates deferred under load (tag values, events per hour, endpoints, users per issue)
//! end up exactly as if every batch had added its own: folded once, by whichever flush takes
//! them, including the one a restarted server runs first and the one a stopping server runs
//! last; an issue a batch holds only delays its user count, and a burst through HTTP defers
//! and then converges.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use faultline::store::aggregates::{self, Flushed};
use faultline::store::events::{write_batch_known, Aggregates, NewEvent};
use faultline::store::known::Known;
use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{
    error_event, eventually, exit_status, free_port, hold_issues_table, lock_waiters,
    new_spool_dir, prepared_event, send_sigterm, spawn_app, spawn_app_with, start, test_settings,
    warm_key_cache, TestApp,
};

/// Events over three issues, with repeating users, environments and failing endpoints, one
/// second apart (fixed times: the same events prepared twice compare equal).
fn varied_events(count: usize) -> Vec<Value> {
    let start = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(1);
    (0..count)
        .map(|i| {
            let mut event = error_event("KeyError", "missing", &format!("handler_{}", i % 3), 7);
            event["timestamp"] = json!((start + TimeDelta::seconds(i as i64)).to_rfc3339());
            event["user"] = json!({"id": format!("user-{}", i % 7)});
            event["environment"] = json!(["production", "staging"][i % 2]);
            event["tags"] = json!({"shard": format!("s{}", i % 4)});
            if i % 5 != 0 {
                event["request"] =
                    json!({"method": "POST", "url": format!("https://shop.example/orders/{i}")});
            }
            event
        })
        .collect()
}

fn prepared(app: &TestApp, events: &[Value]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|event| prepared_event(app.project_id, event))
        .collect()
}

async fn write(app: &TestApp, events: &[NewEvent], mode: Aggregates) {
    let batch: Vec<&NewEvent> = events.iter().collect();
    let written = write_batch_known(&app.pool, &batch, &Known::default(), mode)
        .await
        .unwrap();
    assert_eq!(written, events.len());
}

/// Every aggregate row and issue count, with issues named by their grouping hash (ids differ
/// between databases), sorted.
async fn aggregates_of(pool: &PgPool) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for query in [
        "SELECT format('issue %s events=%s users=%s', hash, event_count, user_count) FROM issues",
        "SELECT format('tag %s %s=%s n=%s %s %s', i.hash, t.key, t.value, t.count, t.first_seen, t.last_seen)
           FROM issue_tag_values t JOIN issues i ON i.id = t.issue_id",
        "SELECT format('hour %s %s n=%s', i.hash, h.hour, h.count)
           FROM issue_hourly_counts h JOIN issues i ON i.id = h.issue_id",
        "SELECT format('endpoint-hour %s %s %s n=%s %s', endpoint, environment, hour, count, last_seen)
           FROM endpoint_hourly_counts",
        "SELECT format('endpoint-issue %s %s %s n=%s %s', e.endpoint, e.environment, i.hash, e.count, e.last_seen)
           FROM endpoint_issues e JOIN issues i ON i.id = e.issue_id",
        "SELECT format('endpoint-user %s %s %s %s', endpoint, environment, user_key, last_seen)
           FROM endpoint_users",
    ] {
        rows.extend(
            sqlx::query_scalar::<_, String>(query)
                .fetch_all(pool)
                .await
                .unwrap(),
        );
    }
    rows.sort();
    rows
}

async fn waiting_deltas(pool: &PgPool) -> i64 {
    aggregates::waiting(pool).await.unwrap()
}

/// Events counted per hour, under the `shard` tag, and on endpoints (all environments).
async fn folded_counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT COALESCE((SELECT sum(count) FROM issue_hourly_counts), 0)::int8,
                COALESCE((SELECT sum(count) FROM issue_tag_values WHERE key = 'shard'), 0)::int8,
                COALESCE((SELECT sum(count) FROM endpoint_hourly_counts WHERE environment = '*'), 0)::int8",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn user_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT sum(user_count)::int8 FROM issues")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn deferred_batches_fold_into_exactly_what_immediate_batches_write() {
    let immediate = spawn_app().await;
    let deferred = spawn_app().await;
    let events = varied_events(60);
    let (first, rest) = events.split_at(25);
    write(&immediate, &prepared(&immediate, first), Aggregates::Now).await;
    write(&immediate, &prepared(&immediate, rest), Aggregates::Now).await;
    let expected = aggregates_of(&immediate.pool).await;
    assert!(
        expected.iter().any(|row| row.starts_with("endpoint-user")),
        "the events reach every aggregate: {expected:#?}"
    );

    // The same events, in three deferred batches: until a flush, only the deltas hold them.
    let stored = prepared(&deferred, &events);
    for batch in stored.chunks(20) {
        write(&deferred, batch, Aggregates::Deferred).await;
    }
    assert_eq!(waiting_deltas(&deferred.pool).await, 3);
    let before: Vec<String> = aggregates_of(&deferred.pool)
        .await
        .into_iter()
        .filter(|row| !row.starts_with("issue "))
        .collect();
    assert_eq!(before, Vec::<String>::new(), "nothing folded in yet");
    assert_eq!(user_count(&deferred.pool).await, 0);

    assert_eq!(
        aggregates::flush(&deferred.pool).await.unwrap(),
        Flushed::Folded
    );
    assert_eq!(waiting_deltas(&deferred.pool).await, 0);
    assert_eq!(aggregates_of(&deferred.pool).await, expected);

    // Folded once: another flush finds nothing and changes nothing.
    assert_eq!(
        aggregates::flush(&deferred.pool).await.unwrap(),
        Flushed::Nothing
    );
    assert_eq!(aggregates_of(&deferred.pool).await, expected);
}

#[tokio::test]
async fn a_flush_never_waits_for_an_issue_a_batch_holds_and_counts_its_users_next_time() {
    let app = spawn_app().await;
    let events = varied_events(21);
    let one_issue: Vec<Value> = events.into_iter().step_by(3).collect();
    write(&app, &prepared(&app, &one_issue), Aggregates::Deferred).await;

    // A batch in progress holds the issue.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM issues FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let flushed = tokio::time::timeout(Duration::from_secs(10), aggregates::flush(&app.pool))
        .await
        .expect("the flush does not wait for the held issue");
    assert_eq!(flushed.unwrap(), Flushed::Folded);
    holder.rollback().await.unwrap();
    let tag_users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM issue_tag_values WHERE key = 'user'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(tag_users, 7, "the tag values are folded in");
    assert_eq!(user_count(&app.pool).await, 0, "the held issue was skipped");
    assert_eq!(
        waiting_deltas(&app.pool).await,
        1,
        "its users wait for the next flush"
    );

    assert_eq!(aggregates::flush(&app.pool).await.unwrap(), Flushed::Folded);
    assert_eq!(user_count(&app.pool).await, 7);
    assert_eq!(waiting_deltas(&app.pool).await, 0);
}

/// Also when the restarted server's own batches never defer (no aggregate window): it still
/// folds what a process with a window left, as another instance's or its own before a change
/// of settings.
#[tokio::test]
async fn a_restarted_server_folds_in_what_a_stopped_one_deferred() {
    let app = spawn_app().await;
    let mut restarted = Vec::new();
    for (run, window_ms) in [(1, 5000), (2, 0)] {
        // What a process that died before its flush leaves behind.
        write(
            &app,
            &prepared(&app, &varied_events(30)),
            Aggregates::Deferred,
        )
        .await;
        assert_eq!(waiting_deltas(&app.pool).await, 1);

        let mut settings = test_settings(&app.database_url);
        settings.pipeline.aggregate_window_ms = window_ms;
        restarted.push(start(settings).await);
        eventually("the start-up flush", || async {
            waiting_deltas(&app.pool).await == 0
        })
        .await;
        assert_eq!(user_count(&app.pool).await, 3 * 7);
        let (hourly, _, _) = folded_counts(&app.pool).await;
        assert_eq!(hourly, 30 * run, "window {window_ms} ms");
    }
}

/// Settings under which a burst makes full batches: long batch waits, and a window far past
/// the test's end, which leaves the fold to the writers running dry. Commits held up by
/// [`hold_writers`] are not spooled.
fn bursty(settings: &mut faultline::config::Settings) {
    settings.pipeline.batch_wait_ms = 2000;
    settings.pipeline.batch_size = 40;
    settings.pipeline.aggregate_window_ms = 600_000;
    settings.spool.spool_after_ms = 120_000;
}

/// Holds the `issues` table until `writers` batches wait for it (or 20 s have passed: the
/// tests burst again when too few batches deferred), and two seconds more: the events sent
/// meanwhile queue up behind them, as they do when PostgreSQL falls behind, so the writers'
/// next batches start with a backlog however slowly this machine prepares them.
async fn hold_writers(pool: &PgPool, writers: i64) {
    let hold = hold_issues_table(pool).await;
    for _ in 0..200 {
        if lock_waiters(pool).await >= writers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    hold.commit().await.unwrap();
}

/// Whether some batch deferred its aggregates: it drew an id for its delta (sequences are not
/// transactional, so the draw shows even once the delta is folded and gone); how many.
async fn deltas_drawn(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM aggregate_deltas_id_seq",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_defers_its_aggregates_and_they_converge_once_it_ends() {
    let app = spawn_app_with(bursty).await;
    warm_key_cache(&app).await;
    let events = varied_events(210);
    let burst = join_all(events.iter().map(|event| app.store(event)));
    let (answers, ()) = tokio::join!(burst, hold_writers(&app.pool, 2));
    for answer in answers {
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(app.event_count().await, 210);

    assert!(
        deltas_drawn(&app.pool).await >= 1,
        "a batch that starts with events waiting defers its aggregates"
    );
    eventually("the fold", || async {
        waiting_deltas(&app.pool).await == 0 && user_count(&app.pool).await == 3 * 7
    })
    .await;
    let (hourly, shard_tags, endpoint_hits) = folded_counts(&app.pool).await;
    assert_eq!((hourly, shard_tags), (210, 210));
    assert_eq!(
        endpoint_hits,
        210 - 210 / 5,
        "every fifth event has no request"
    );
}

#[tokio::test]
async fn a_server_stopped_with_sigterm_folds_in_what_waits_before_it_exits() {
    let app = spawn_app().await;
    let port = free_port();
    let process = app.at_port(port);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("serve")
        .env("DATABASE_URL", &app.database_url)
        .env("FAULTLINE_BIND", format!("127.0.0.1:{port}"))
        .env("FAULTLINE_SPOOL_DIR", new_spool_dir())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("faultline serve starts");
    eventually("the server's start", || async {
        process
            .client
            .get(format!("{}/readyz", process.address))
            .send()
            .await
            .is_ok()
    })
    .await;
    // Past its start-up flush, deltas it was not told about wait for its next look (a minute
    // away), as the last window's deltas of a busy server would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    write(
        &app,
        &prepared(&app, &varied_events(30)),
        Aggregates::Deferred,
    )
    .await;

    send_sigterm(&child);
    let status = exit_status(child).await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        waiting_deltas(&app.pool).await,
        0,
        "folded in before exiting"
    );
    assert_eq!(user_count(&app.pool).await, 3 * 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deferring_at_once_fold_every_delta_exactly_once() {
    let first = spawn_app_with(bursty).await;
    let mut settings = test_settings(&first.database_url);
    bursty(&mut settings);
    let second = TestApp {
        project_id: first.project_id,
        key: first.key.clone(),
        ..start(settings).await
    };
    let events = varied_events(240);
    // Each instance's two writers wait, with events queued behind them. Should one instance's
    // events come too slowly to fill a batch that defers, another burst adds to the totals.
    let mut bursts = 0;
    loop {
        warm_key_cache(&first).await;
        warm_key_cache(&second).await;
        let burst = join_all(events.iter().enumerate().map(|(i, event)| {
            let app = if i % 2 == 0 { &first } else { &second };
            app.store(event)
        }));
        let (answers, ()) = tokio::join!(burst, hold_writers(&first.pool, 4));
        for answer in answers {
            assert_eq!(answer.status(), 200);
        }
        bursts += 1;
        let drawn = deltas_drawn(&first.pool).await;
        if drawn >= 2 {
            break;
        }
        assert!(bursts < 3, "{bursts} bursts deferred only {drawn} batch");
    }
    eventually("the fold", || async {
        waiting_deltas(&first.pool).await == 0 && user_count(&first.pool).await == 3 * 7
    })
    .await;
    let (hourly, shard_tags, _) = folded_counts(&first.pool).await;
    assert_eq!((hourly, shard_tags), (240 * bursts, 240 * bursts));
}

/// An environment longer than an index entry can hold was once written into a delta, and
/// every flush after it failed on the endpoint aggregates' keys: nothing folded again.
#[tokio::test]
async fn a_delta_with_a_huge_environment_folds_like_any_other() {
    let app = spawn_app().await;
    let mut events = varied_events(9);
    // Random, so that PostgreSQL cannot compress it into an index entry.
    let huge: String = (0..250).map(|_| crate::helpers::new_event_id()).collect();
    events[1]["environment"] = json!(huge);
    write(&app, &prepared(&app, &events), Aggregates::Deferred).await;
    assert_eq!(aggregates::flush(&app.pool).await.unwrap(), Flushed::Folded);
    assert_eq!(waiting_deltas(&app.pool).await, 0);
    let (hourly, _, endpoint_hits) = folded_counts(&app.pool).await;
    assert_eq!(
        (hourly, endpoint_hits),
        (9, 9 - 2),
        "every fifth event has no request"
    );
}

#[tokio::test]
async fn a_flush_while_another_is_at_work_leaves_the_deltas_to_it() {
    let app = spawn_app().await;
    write(
        &app,
        &prepared(&app, &varied_events(9)),
        Aggregates::Deferred,
    )
    .await;
    // Another instance's flush, as it holds the flush lock (`store::aggregates::FLUSH_LOCK`).
    let mut other = app.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(7261201003)")
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(aggregates::flush(&app.pool).await.unwrap(), Flushed::Busy);
    assert_eq!(waiting_deltas(&app.pool).await, 1);
    other.rollback().await.unwrap();
    assert_eq!(aggregates::flush(&app.pool).await.unwrap(), Flushed::Folded);
    assert_eq!(waiting_deltas(&app.pool).await, 0);
}

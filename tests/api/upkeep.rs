//! Upkeep: the server vacuums the counter tables it rewrites on every batch, by itself and
//! again and again, so they do not fill with dead row versions (whether or not PostgreSQL's
//! autovacuum is on).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::helpers::{error_event, spawn_app, TestApp};

/// When `issues` was last vacuumed by hand (autovacuum's runs are counted apart).
async fn last_vacuum_of_issues(app: &TestApp) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'issues'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn vacuumed_after(app: &TestApp, moment: DateTime<Utc>) -> bool {
    for _ in 0..60 {
        if last_vacuum_of_issues(app)
            .await
            .is_some_and(|at| at > moment)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

#[tokio::test]
async fn the_server_vacuums_the_issue_counters_at_start_and_again_after_writes() {
    let app = spawn_app().await;
    let started = Utc::now() - chrono::Duration::seconds(60);
    assert!(vacuumed_after(&app, started).await, "a vacuum at start-up");
    for n in 0..10 {
        app.store_ok(&error_event("UpkeepError", "again", "f", n))
            .await;
    }
    let written = Utc::now();
    assert!(
        vacuumed_after(&app, written).await,
        "another vacuum once events rewrote the issue's row"
    );
    let count: i64 = sqlx::query_scalar("SELECT event_count FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 10, "vacuuming never touches live counts");
}

//! Faults found in a careful read of the code, each pinned by a test that failed before its fix.

use serde_json::{json, Value};

use crate::helpers::{error_event, spawn_app};

#[tokio::test]
async fn the_api_answers_the_platform_of_an_issue() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let token = app.create_token("cli@example.com").await;
    let issues: Value = app
        .client
        .get(format!(
            "{}/api/0/projects/faultline/checkout-api/issues/",
            app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issues[0]["platform"], "python", "{issues}");
}

#[tokio::test]
async fn bulk_status_change_reaches_every_issue_of_the_project_past_ten_thousand() {
    let app = spawn_app().await;
    let other = faultline::store::projects::create(
        &app.pool,
        "other",
        &faultline::domain::keys::new_public_key(),
    )
    .await
    .unwrap();
    for (project, count) in [(app.project_id, 10_050), (other, 5)] {
        sqlx::query(
            "INSERT INTO issues (project_id, hash, title, culprit, level, first_seen, last_seen, grouping, metadata)
             SELECT $1, md5(n::text), 'T' || n, '', 'error', now(), now(), '{}', '{}'
               FROM generate_series(1, $2) AS n",
        )
        .bind(project)
        .bind(count)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let token = app.create_token("cli@example.com").await;
    let response = app
        .client
        .put(format!(
            "{}/api/0/projects/faultline/checkout-api/issues/?status=unresolved",
            app.address
        ))
        .bearer_auth(&token)
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let counts: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT project_id, status::text, count(*) FROM issues GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        counts,
        vec![
            (app.project_id, "resolved".to_owned(), 10_050),
            (other, "unresolved".to_owned(), 5)
        ]
    );
}

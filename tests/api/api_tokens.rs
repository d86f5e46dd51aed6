//! The Sentry-shaped API with bearer tokens.

use serde_json::{json, Value};

use crate::helpers::{error_event, spawn_app, TestApp};

async fn token(app: &TestApp) -> String {
    app.create_token("cli@example.com").await
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let link = response
        .headers()
        .get("link")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, response.json().await.unwrap_or(Value::Null), link)
}

#[tokio::test]
async fn api_lists_gets_and_updates_issues_with_sentrys_field_names() {
    let app = spawn_app().await;
    for user in ["a", "b"] {
        let mut event = error_event("ValueError", "bad input", "parse", 1);
        event["user"] = json!({"id": user});
        app.store_ok(&event).await;
    }
    app.store_ok(&error_event("KeyError", "k", "lookup", 1))
        .await;
    let token = token(&app).await;

    let (status, issues, link) = get(
        &app,
        &token,
        "/api/0/projects/faultline/checkout-api/issues/?query=is:unresolved&statsPeriod=24h",
    )
    .await;
    assert_eq!(status, 200);
    let issues = issues.as_array().unwrap().clone();
    assert_eq!(issues.len(), 2);
    let value_error = issues
        .iter()
        .find(|i| i["title"] == "ValueError: bad input")
        .unwrap();
    assert_eq!(value_error["count"], "2", "count is a string, as in Sentry");
    assert_eq!(value_error["userCount"], 2);
    assert_eq!(value_error["status"], "unresolved");
    assert_eq!(value_error["project"]["slug"], "checkout-api");
    assert_eq!(value_error["metadata"]["type"], "ValueError");
    assert!(value_error["shortId"]
        .as_str()
        .unwrap()
        .starts_with("CHECKOUT-API-"));
    assert_eq!(value_error["stats"]["24h"].as_array().unwrap().len(), 24);
    for key in [
        "firstSeen",
        "lastSeen",
        "culprit",
        "permalink",
        "level",
        "type",
        "isPublic",
        "hasSeen",
    ] {
        assert!(value_error.get(key).is_some(), "{key}");
    }
    assert!(link.contains("rel=\"next\"; results=\"false\""), "{link}");

    let id = value_error["id"].as_str().unwrap().to_owned();
    let (status, detail, _) = get(&app, &token, &format!("/api/0/issues/{id}/")).await;
    assert_eq!(status, 200);
    assert!(detail["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "user"));

    let response = app
        .client
        .put(format!("{}/api/0/issues/{id}/", app.address))
        .bearer_auth(&token)
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "resolved"
    );
    let (_, unresolved, _) = get(
        &app,
        &token,
        "/api/0/projects/faultline/checkout-api/issues/",
    )
    .await;
    assert_eq!(
        unresolved.as_array().unwrap().len(),
        1,
        "is:unresolved is implied"
    );
    let (_, everything, _) = get(
        &app,
        &token,
        "/api/0/projects/faultline/checkout-api/issues/?query=",
    )
    .await;
    assert_eq!(
        everything.as_array().unwrap().len(),
        2,
        "an empty query lists all"
    );

    let (status, events, _) = get(&app, &token, &format!("/api/0/issues/{id}/events/")).await;
    assert_eq!(status, 200);
    assert_eq!(events.as_array().unwrap().len(), 2);
    let (status, latest, _) =
        get(&app, &token, &format!("/api/0/issues/{id}/events/latest/")).await;
    assert_eq!(status, 200);
    assert_eq!(latest["groupID"], id.as_str());
    let entry_types: Vec<&str> = latest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(entry_types.contains(&"exception"));
    assert!(latest["tags"].as_array().is_some());

    let (status, _, _) = get(
        &app,
        &token,
        "/api/0/projects/other-org/checkout-api/issues/",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = get(
        &app,
        &token,
        "/api/0/projects/faultline/checkout-api/issues/?query=is:sideways",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bulk_update_resolves_the_named_issues() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    app.store_ok(&error_event("KeyError", "x", "g", 1)).await;
    let token = token(&app).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM issues WHERE title LIKE 'KeyError%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let response = app
        .client
        .put(format!(
            "{}/api/0/projects/faultline/checkout-api/issues/?id={id}",
            app.address
        ))
        .bearer_auth(&token)
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT title, status::text FROM issues ORDER BY title")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(statuses[0].1, "resolved");
    assert_eq!(statuses[1].1, "unresolved");
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    let app = spawn_app().await;
    let token = token(&app).await;
    assert_eq!(get(&app, &token, "/api/0/").await.0, 200);
    sqlx::query("UPDATE api_tokens SET revoked_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(get(&app, &token, "/api/0/").await.0, 401);
}

/// Parameters are checked before the database is asked: a bad `statsPeriod` is named in the
/// answer even when the search itself would be refused by PostgreSQL (a NUL character).
#[tokio::test]
async fn a_bad_stats_period_is_refused_before_any_query_runs() {
    let app = spawn_app().await;
    let token = app.create_token("cli@example.com").await;
    let (status, body) = app
        .api_get(
            &token,
            &format!(
                "{}/api/0/projects/faultline/{}/issues/?query=%00&statsPeriod=1y",
                app.address, app.project_id
            ),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("statsPeriod"),
        "{body}"
    );
}

//! Secrets never reach the database.

use serde_json::json;

use crate::helpers::{new_event_id, spawn_app};

#[tokio::test]
async fn frame_local_password_and_authorization_header_never_reach_the_database() {
    let app = spawn_app().await;
    let event = json!({
        "event_id": new_event_id(),
        "exception": {"values": [{"type": "LoginError", "value": "bad credentials", "stacktrace": {"frames": [
            {"module": "app.auth", "function": "login", "in_app": true, "vars": {"password": "hunter2-secret-pw", "user": "bob"}}
        ]}}]},
        "request": {
            "url": "https://shop.example/login?token=tok-query-secret&page=1",
            "headers": {"Authorization": "Bearer bearer-secret-value", "Cookie": "sessionid=cookie-secret", "Accept": "text/html"},
            "data": {"card": "4111 1111 1111 1111", "api_key": "key-secret-value"}
        },
        "extra": {"db": {"credentials": "extra-secret"}},
        "breadcrumbs": [{"message": "charged 4111-1111-1111-1111", "data": {"session": "crumb-secret"}}],
        "tags": {"auth_token": "tag-secret"}
    });
    let id = app.store_ok(&event).await;
    let stored = app.stored_event(&id).await.to_string();
    let tag_values: Vec<String> = sqlx::query_scalar("SELECT value FROM issue_tag_values")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let issue_rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', title, culprit, grouping::text, metadata::text) FROM issues",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let everything = format!("{stored} {} {}", tag_values.join(" "), issue_rows.join(" "));
    for secret in [
        "hunter2-secret-pw",
        "bearer-secret-value",
        "cookie-secret",
        // The card's groups as sent ("4111" alone also turns up in random event ids).
        "4111 1111",
        "4111-1111",
        "key-secret-value",
        "extra-secret",
        "crumb-secret",
        "tag-secret",
        "tok-query-secret",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} reached the database: {everything}"
        );
    }
    assert!(stored.contains("[Filtered]"));
    assert!(
        stored.contains("\"user\":\"bob\""),
        "non-secret vars are kept"
    );
    assert!(stored.contains("text/html"), "non-secret headers are kept");
}

//! The dashboard and API through real clients: headless Chromium (Debian's, driven by
//! playwright-core) and sentry-cli, both installed by the test command into tests/e2e.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::helpers::{error_event, new_event_id, spawn_app, TestApp, PASSWORD};

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

fn require_installed(path: &std::path::Path) {
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test, which installs the e2e clients",
        path.display()
    );
}

async fn run(mut command: Command) -> (bool, String) {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("client runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn seed(app: &TestApp) {
    for (i, value) in [
        "invalid literal for int() with base 10: 'abc'",
        "invalid literal for int() with base 10: 'x-17'",
        "invalid literal for int() with base 10: ''",
    ]
    .iter()
    .enumerate()
    {
        let mut event = error_event("ValueError", value, "parse_quantity", 10 + i as i64);
        event["environment"] = json!(if i == 0 { "staging" } else { "production" });
        event["release"] = json!("checkout@1.4.2");
        event["user"] =
            json!({"id": format!("user-{i}"), "email": format!("buyer{i}@example.com")});
        event["tags"] = json!({"region": "eu"});
        event["request"] = json!({"method": "POST", "url": "https://shop.example/cart/add?sku=42", "headers": {"User-Agent": "Mozilla/5.0"}});
        event["breadcrumbs"] = json!([{"timestamp": 1767268800, "category": "http", "message": "GET /cart", "level": "info"}]);
        event["contexts"] = json!({"os": {"name": "Linux", "version": "6.1"}, "runtime": {"name": "CPython", "version": "3.11.7"}});
        let frames = event["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array_mut()
            .unwrap();
        frames.insert(0, json!({"filename": "site-packages/flask/app.py", "function": "dispatch_request", "module": "flask.app", "lineno": 880, "in_app": false}));
        frames[2]["pre_context"] = json!([
            "def parse_quantity(raw):",
            "    \"\"\"Quantity from the form.\"\"\""
        ]);
        frames[2]["post_context"] = json!(["    return total"]);
        frames[2]["vars"] = json!({"raw": "'abc'"});
        let id = app.store_ok(&event).await;
        if i == 0 {
            send_user_report(app, &id, "Jane Doe", "I typed 'abc' in the quantity box.").await;
            send_user_report(
                app,
                &new_event_id(),
                "<b>Mallory</b>",
                "<script>alert(1)</script>",
            )
            .await;
        }
    }
    let mut crash = error_event("ZeroDivisionError", "division by zero", "apply_discount", 7);
    crash["exception"]["values"][0]["mechanism"] = json!({"type": "flask", "handled": false});
    app.store_ok(&crash).await;
    app.store_ok(&json!({"event_id": new_event_id(), "message": "Payment declined for order 1001", "level": "warning"})).await;
    let mut hostile = error_event(
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(2)>",
        "render",
        3,
    );
    hostile["tags"] = json!({"xss": "<b>bold</b>"});
    app.store_ok(&hostile).await;
}

/// A `user_report` envelope item about `event_id`, as the Java and .NET SDKs send it.
async fn send_user_report(app: &TestApp, event_id: &str, name: &str, comments: &str) {
    let payload = json!({"event_id": event_id, "name": name, "email": "buyer@example.com",
                         "comments": comments})
    .to_string();
    let body = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"user_report\",\"length\":{}}}\n{payload}\n",
        payload.len()
    );
    assert_eq!(app.post_envelope(body).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_and_shows_the_list_an_issue_and_an_event() {
    let app = spawn_app().await;
    seed(&app).await;
    // An admin: the tour adds an alert channel.
    app.create_user("operator@example.com", true).await;
    let script = e2e_dir().join("browser.mjs");
    require_installed(&e2e_dir().join("node_modules/playwright-core"));
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/screenshots");
    let mut command = Command::new("node");
    command
        .arg(&script)
        .env("BASE_URL", &app.address)
        .env("EMAIL", "operator@example.com")
        .env("PASSWORD", PASSWORD)
        .env("OUT_DIR", &out_dir);
    let (ok, output) = run(command).await;
    assert!(ok, "{output}");
    assert!(output.contains("browser tour passed"), "{output}");
    for name in [
        "light-issues",
        "light-issue",
        "light-alerts",
        "dark-alerts",
        "light-event",
        "dark-issues",
        "dark-event",
        "light-project",
        "light-feedback",
        "dark-feedback",
        "light-endpoints",
        "dark-endpoints",
    ] {
        let shot = out_dir.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&shot)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "{} was taken",
            shot.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_cli_lists_and_resolves_issues() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "bad quantity", "parse", 1))
        .await;
    app.store_ok(&error_event("KeyError", "'sku'", "lookup", 1))
        .await;
    let token = app.create_token("cli@example.com").await;
    // 3.x; the suite also has 2.x (sentry-cli-2) for source-map uploads.
    let cli = e2e_dir().join("node_modules/@sentry/cli/bin/sentry-cli");
    require_installed(&cli);
    let sentry_cli = |args: &[&str]| {
        let mut command = Command::new(&cli);
        command
            .args(args)
            .args(["--org", "faultline", "--project", "checkout-api"])
            .env("SENTRY_URL", &app.address)
            .env("SENTRY_AUTH_TOKEN", &token)
            .env("SENTRY_LOG_LEVEL", "warn");
        command
    };

    let (ok, listing) = run(sentry_cli(&["issues", "list"])).await;
    assert!(ok, "{listing}");
    assert!(
        listing.contains("ValueError: bad quantity") && listing.contains("KeyError: 'sku'"),
        "{listing}"
    );
    assert!(listing.contains("CHECKOUT-API-"), "short ids: {listing}");

    let id: i64 = sqlx::query_scalar("SELECT id FROM issues WHERE title LIKE 'KeyError%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (ok, output) = run(sentry_cli(&["issues", "resolve", "-i", &id.to_string()])).await;
    assert!(ok, "{output}");
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT title, status::text FROM issues ORDER BY title")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        vec![
            ("KeyError: 'sku'".into(), "resolved".into()),
            ("ValueError: bad quantity".into(), "unresolved".into())
        ]
    );

    let (ok, listing) = run(sentry_cli(&["issues", "list"])).await;
    let key_error_line = listing
        .lines()
        .find(|l| l.contains("KeyError"))
        .unwrap_or_default();
    assert!(
        ok && key_error_line.contains("| resolved "),
        "sentry-cli sees the new status: {listing}"
    );
    let (ok, unresolved) = run(sentry_cli(&["issues", "list", "--query", "is:unresolved"])).await;
    assert!(
        ok && !unresolved.contains("KeyError") && unresolved.contains("ValueError"),
        "{unresolved}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sdk_reports_an_error_and_the_users_words_through_the_dialog_and_capture_feedback()
{
    let app = spawn_app().await;
    require_installed(&e2e_dir().join("node_modules/@sentry/browser"));
    require_installed(&e2e_dir().join("node_modules/esbuild"));
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/screenshots");
    let mut command = Command::new("node");
    command
        .arg(e2e_dir().join("browser_sdk.mjs"))
        .env("DSN", app.dsn())
        .env("OUT_DIR", &out_dir);
    let (ok, output) = run(command).await;
    assert!(ok && output.contains("browser sdk passed"), "{output}");
    let line = output
        .lines()
        .find(|l| l.starts_with("{\"eventId\""))
        .expect("the script prints the event id");
    let event_id = serde_json::from_str::<serde_json::Value>(line).unwrap()["eventId"]
        .as_str()
        .unwrap()
        .to_owned();

    let (issue_id, title): (i64, String) = sqlx::query_as(
        "SELECT i.id, i.title FROM event_ids e JOIN issues i ON i.id = e.issue_id
          WHERE e.event_id = $1::uuid",
    )
    .bind(&event_id)
    .fetch_one(&app.pool)
    .await
    .expect("the browser's error is stored");
    assert!(title.starts_with("TypeError"), "{title}");
    let reports: Vec<(String, String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT source, name, email, comments, issue_id FROM user_feedback ORDER BY source",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(
        reports[0],
        (
            "crash_report_dialog".into(),
            "Jane Doe".into(),
            "jane@example.com".into(),
            "I entered SPRING as the coupon and the page went blank.".into(),
            Some(issue_id)
        )
    );
    assert_eq!(
        reports[1],
        (
            "feedback".into(),
            "Ana".into(),
            "ana@example.com".into(),
            "The coupon field rejects every code.".into(),
            Some(issue_id)
        )
    );
    let browser = app.admin_browser().await;
    let page = browser.get(&format!("/issues/{issue_id}")).await;
    assert!(
        page.body.contains("the page went blank") && page.body.contains("rejects every code"),
        "both reports are on the issue page"
    );
    for shot in ["report-dialog", "report-dialog-sent"] {
        assert!(out_dir.join(format!("{shot}.png")).exists(), "{shot}");
    }
}

//! The whole source-map chain as a team meets it: esbuild bundles and minifies a TypeScript
//! app (tests/e2e/ts-app) with source maps, the real sentry-cli injects debug ids and uploads
//! them with a token, the bundle throws in headless Chromium with @sentry/browser and in Node
//! with @sentry/node, and Faultline shows the original TypeScript on the page and in the API.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::helpers::{spawn_app, Browser, TestApp, PASSWORD};
use crate::sourcemaps::{run, sentry_cli, upload_args};

/// Line of the `throw` in tests/e2e/ts-app/src/checkout.ts.
const THROW_LINE: u64 = 19;

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Runs a Node client; returns the event id it printed last.
async fn event_id_from(mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect(&stdout);
    last["eventId"].as_str().expect("an event id").to_owned()
}

async fn build_and_upload(app: &TestApp, dist: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dist);
    let mut build = Command::new("node");
    build
        .arg(e2e_dir().join("ts_app.mjs"))
        .arg("build")
        .arg(dist);
    let output = build.output().expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = app.create_token("ci@example.com").await;
    let cli = sentry_cli("@sentry/cli");
    let dist = dist.to_str().unwrap();
    let (ok, output) = run(&cli, app, &token, &["sourcemaps", "inject", dist]).await;
    assert!(ok, "{output}");
    let upload = upload_args(dist, Some("shop@3.0.0"), true);
    let (ok, output) = run(&cli, app, &token, &upload).await;
    assert!(ok, "{output}");
}

/// The frame where the coupon is refused, as stored, is the TypeScript one.
fn assert_original_throw(event: &Value) {
    let frames = event["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .expect("frames");
    let throw = frames.last().expect("a frame");
    assert_eq!(throw["filename"], "src/checkout.ts", "{throw}");
    assert_eq!(throw["function"], "applyCoupon", "{throw}");
    assert_eq!(throw["lineno"], THROW_LINE);
    assert_eq!(throw["in_app"], true);
    assert!(
        throw["context_line"]
            .as_str()
            .unwrap_or("")
            .contains("throw new Error(`Coupon ${code} does not apply"),
        "{throw}"
    );
    if let Some(caller) = frames.iter().rev().nth(1) {
        if caller["filename"] == "src/browser.ts" {
            // Reported as `Object.xy` by Chromium: a method of the bundle's global.
            assert_eq!(caller["function"], "checkout", "{caller}");
        }
    }
    assert!(throw["minified"]["filename"]
        .as_str()
        .unwrap_or("")
        .ends_with("app.js"));
    assert!(
        frames
            .iter()
            .filter(|f| f["filename"]
                .as_str()
                .unwrap_or("")
                .contains("node_modules/"))
            .all(|f| f["in_app"] == false),
        "library frames are not the app's"
    );
}

async fn assert_shown_in_typescript(app: &TestApp, browser: &Browser, token: &str, event_id: &str) {
    let located = browser.get(&format!("/events/{event_id}")).await;
    let page = browser.get(&located.location).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("src/checkout.ts") && page.body.contains("applyCoupon"),
        "{}",
        page.body
    );
    assert!(page.body.contains("does not apply to a total of"));
    let (status, api_event) = app
        .api_get(
            token,
            &format!(
                "{}/api/0/projects/faultline/checkout-api/events/{event_id}/",
                app.address
            ),
        )
        .await;
    assert_eq!(status, 200);
    let frames = api_event["entries"][0]["data"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .expect("frames");
    let throw = frames.last().unwrap();
    assert_eq!(throw["filename"], "src/checkout.ts", "{api_event}");
    assert_eq!(throw["function"], "applyCoupon");
    assert_eq!(throw["lineno"], THROW_LINE, "{throw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_app_built_by_esbuild_shows_its_own_source_from_browser_and_node() {
    let app = spawn_app().await;
    assert!(
        e2e_dir().join("node_modules/@sentry/node").exists(),
        "run ./scripts/test, which installs the e2e clients"
    );
    // Inside the app's folder, as a build leaves it: maps name sources as ../../src/….
    let dist = e2e_dir().join("ts-app/dist");
    build_and_upload(&app, &dist).await;
    let token = app.create_token("reader@example.com").await;
    let operator = app.admin_browser().await;

    let mut browser = Command::new("node");
    browser
        .arg(e2e_dir().join("ts_app.mjs"))
        .arg("browser")
        .arg(&dist)
        .env("DSN", app.dsn());
    let from_browser = event_id_from(browser).await;
    let mut node = Command::new("node");
    node.arg(dist.join("node/app.js"))
        .env("FAULTLINE_DSN", app.dsn());
    let from_node = event_id_from(node).await;

    for (event_id, sdk) in [
        (&from_browser, "sentry.javascript.browser"),
        (&from_node, "sentry.javascript.node"),
    ] {
        let stored = app.stored_event(event_id).await;
        assert_eq!(stored["sdk"]["name"], sdk);
        assert_original_throw(&stored);
        assert_shown_in_typescript(&app, &operator, &token, event_id).await;
    }
    screenshot_event_page(&app, &from_browser).await;
}

/// Chromium opens the browser event's page as an operator and opens its minified frame.
async fn screenshot_event_page(app: &TestApp, event_id: &str) {
    app.create_user("operator@example.com", false).await;
    let issue: i64 = sqlx::query_scalar("SELECT issue_id FROM event_ids WHERE event_id = $1::uuid")
        .bind(event_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/screenshots");
    let mut page = Command::new("node");
    page.arg(e2e_dir().join("ts_app.mjs"))
        .arg("page")
        .env("BASE_URL", &app.address)
        .env("EMAIL", "operator@example.com")
        .env("PASSWORD", PASSWORD)
        .env("EVENT_PATH", format!("/issues/{issue}/events/{event_id}"))
        .env("OUT_DIR", &out_dir);
    let output = tokio::task::spawn_blocking(move || page.output())
        .await
        .unwrap()
        .expect("node runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && text.contains("event page checked"),
        "{text}"
    );
    for scheme in ["light", "dark"] {
        let shot = out_dir.join(format!("{scheme}-sourcemapped-event.png"));
        assert!(std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false));
    }
}

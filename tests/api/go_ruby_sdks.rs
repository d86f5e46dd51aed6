//! The official Go and Ruby SDKs, as Debian packages them (installed by the test command),
//! against a real server: the same scenario for each (tests/sdk/go_scenario, ruby_scenario.rb).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

/// Where Debian installs Go libraries; the scenario builds against it in GOPATH mode.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

async fn output_of(mut command: Command) -> Vec<String> {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the SDK client runs: ./scripts/test installs golang-go and ruby");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(|l| l.trim().to_owned()).collect()
}

async fn run_go_scenario(app: &TestApp) -> Vec<String> {
    assert!(
        Path::new(DEBIAN_GOPATH)
            .join("src/github.com/getsentry/sentry-go")
            .exists(),
        "golang-github-getsentry-sentry-go-dev is missing: run ./scripts/test"
    );
    let build_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-scenario");
    let binary = build_dir.join("go_scenario");
    let mut build = Command::new("go");
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(sdk_dir().join("go_scenario"))
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", build_dir.join("cache"));
    output_of(build).await;
    let mut run = Command::new(binary);
    run.env("FAULTLINE_DSN", app.dsn());
    output_of(run).await
}

async fn run_ruby_scenario(app: &TestApp) -> Vec<String> {
    let mut run = Command::new("ruby");
    run.arg(sdk_dir().join("ruby_scenario.rb"))
        .env("FAULTLINE_DSN", app.dsn());
    output_of(run).await
}

/// What both scenarios must give: the error captured twice from one line is one issue of two
/// events; the crash and the message are issues of their own; release, environment, server,
/// tags and user are kept on every event.
async fn assert_scenario_stored(app: &TestApp, ids: &[String], sdk_name: &str) -> Vec<Value> {
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(app.event_count().await, 4);
    let issues = app.issues().await;
    assert_eq!(issues.len(), 3, "{issues:?}");
    let mut counts: Vec<i64> = issues.iter().map(|(_, n)| *n).collect();
    counts.sort();
    assert_eq!(counts, [1, 1, 2], "{issues:?}");

    let mut events = Vec::new();
    for id in ids {
        let event = app.stored_event(&id.replace('-', "")).await;
        assert_eq!(event["release"], "checkout@1.4.2", "{event}");
        assert_eq!(event["environment"], "staging");
        assert_eq!(event["server_name"], "checkout-host-1");
        assert_eq!(event["tags"]["component"], "payments");
        assert_eq!(event["user"]["id"], "user-42");
        assert!(
            event["sdk"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with(sdk_name),
            "{}",
            event["sdk"]
        );
        events.push(event);
    }
    let same_issue: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT issue_id FROM events WHERE event_id = ANY($1::uuid[])")
            .bind(&ids[..2])
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(same_issue.len(), 1, "both lookups are one issue");
    events
}

fn frames(event: &Value) -> &Vec<Value> {
    let values = event["exception"]["values"].as_array().expect("exception");
    values.last().unwrap()["stacktrace"]["frames"]
        .as_array()
        .expect("frames")
}

fn has_function(event: &Value, function: &str) -> bool {
    frames(event)
        .iter()
        .any(|f| f["function"].as_str().unwrap_or("").ends_with(function))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sdk_scenario_groups_errors_panics_and_messages() {
    let app = spawn_app().await;
    let ids = run_go_scenario(&app).await;
    let events = assert_scenario_stored(&app, &ids, "sentry.go").await;

    let titles: Vec<String> = app.issues().await.into_iter().map(|(t, _)| t).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("*errors.errorString: order ") && t.ends_with(" not found")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("integer divide by zero")),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"Payment declined for order 1001".to_owned()),
        "{titles:?}"
    );
    assert!(has_function(&events[0], "findOrder") || has_function(&events[0], "lookupOrder"));
    assert!(has_function(&events[2], "applyDiscount"), "{}", events[2]);
    assert_eq!(
        events[3]["logentry"]["formatted"],
        "Payment declined for order 1001"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_sdk_scenario_groups_errors_crashes_and_messages() {
    let app = spawn_app().await;
    let ids = run_ruby_scenario(&app).await;
    let events = assert_scenario_stored(&app, &ids, "sentry.ruby").await;

    let titles: Vec<String> = app.issues().await.into_iter().map(|(t, _)| t).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("ArgumentError: order ") && t.ends_with(" not found")),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"ZeroDivisionError: divided by 0".to_owned()),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"Payment declined for order 1001".to_owned()),
        "{titles:?}"
    );
    let top = frames(&events[0]).last().unwrap();
    assert_eq!(top["function"], "find_order");
    assert!(top["context_line"]
        .as_str()
        .unwrap_or("")
        .contains("not found"));
    assert!(has_function(&events[2], "apply_discount"), "{}", events[2]);
}

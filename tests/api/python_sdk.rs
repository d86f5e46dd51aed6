//! The official Python SDK (installed by the test command into .venv) against a real server.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{spawn_app, TestApp};

fn python() -> PathBuf {
    match std::env::var_os("FAULTLINE_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

/// Runs one of tests/sdk/*.py with the app's DSN; returns what it printed, line by line.
async fn run_script(app: &TestApp, name: &str) -> (Vec<String>, String) {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test, which installs sentry-sdk",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(name);
    let dsn = app.dsn();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("FAULTLINE_DSN", dsn)
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout.lines().map(|l| l.trim().to_owned()).collect();
    (lines, stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_scenario_gives_exactly_four_issues_with_everything_kept() {
    let app = spawn_app().await;
    let (ids, stdout) = run_script(&app, "python_scenario.py").await;
    assert_eq!(ids.len(), 6, "{stdout}");

    assert_eq!(app.event_count().await, 6);
    let issues = app.issues().await;
    let titles: Vec<&str> = issues.iter().map(|(t, _)| t.as_str()).collect();
    let counts: Vec<i64> = issues.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        titles,
        vec![
            "KeyError: 'pear'",
            "Payment declined for order 2002",
            "RuntimeError: charge failed",
            "ValueError: invalid literal for int() with base 10: 'x-17'",
        ],
        "{issues:?}"
    );
    assert_eq!(counts, vec![1, 2, 1, 2]);

    // The first ValueError keeps everything that matters for debugging.
    let event = app.stored_event(&ids[0]).await;
    assert_eq!(event["release"], "checkout@1.4.2");
    assert_eq!(event["environment"], "staging");
    assert_eq!(event["server_name"], "checkout-host-1");
    assert_eq!(event["platform"], "python");
    assert_eq!(event["level"], "error");
    assert_eq!(event["sdk"]["name"], "sentry.python");
    assert_eq!(event["tags"]["component"], "payments");
    assert_eq!(event["user"]["id"], "user-42");
    assert_eq!(event["contexts"]["order"]["items"], 3);
    assert!(event["contexts"]["runtime"]["name"].is_string());
    assert!(event["timestamp"].is_string());
    let crumbs = event["breadcrumbs"]["values"].as_array().unwrap();
    assert!(
        crumbs.iter().any(|c| c["message"] == "adding abc"),
        "{crumbs:?}"
    );
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "ValueError");
    assert_eq!(exception["mechanism"]["handled"], true);
    let frames = exception["stacktrace"]["frames"].as_array().unwrap();
    let top = frames.last().unwrap();
    assert_eq!(top["function"], "parse_quantity");
    assert_eq!(top["module"], "__main__");
    assert!(top["filename"]
        .as_str()
        .unwrap()
        .ends_with("python_scenario.py"));
    assert!(top["lineno"].is_i64());
    assert!(top["context_line"].as_str().unwrap().contains("int(raw)"));
    assert!(top["pre_context"].is_array() && top["post_context"].is_array());
    assert_eq!(top["in_app"], true);
    assert_eq!(top["vars"]["raw"], "'abc'");
    assert_eq!(top["vars"]["secret_token"], "[Filtered]");

    // The chained exception keeps its cause first, the raised one last, as Sentry orders them.
    let chained = app.stored_event(&ids[3]).await;
    let chain: Vec<&str> = chained["exception"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(chain, vec!["KeyError", "RuntimeError"]);

    let message = app.stored_event(&ids[4]).await;
    assert_eq!(
        message["logentry"]["formatted"],
        "Payment declined for order 1001"
    );
    assert_eq!(message["level"], "info");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_service_feedback_reaches_its_issues_by_envelope_and_by_api() {
    let app = spawn_app().await;
    let (ids, stdout) = run_script(&app, "python_feedback.py").await;
    assert_eq!(ids.len(), 2, "{stdout}");
    let reports: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT f.event_id::text, f.source, f.comments, i.title
           FROM user_feedback f JOIN issues i ON i.id = f.issue_id ORDER BY f.id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let dashed = |id: &str| uuid::Uuid::parse_str(id).unwrap().to_string();
    assert_eq!(
        reports,
        vec![
            (
                dashed(&ids[0]),
                "user_report".into(),
                "The discount code made the total vanish.".into(),
                "ZeroDivisionError: division by zero".into()
            ),
            (
                dashed(&ids[1]),
                "api".into(),
                "My Amex card was refused twice.".into(),
                "KeyError: 'amex'".into()
            ),
        ]
    );
}

//! Replays of requests captured from real SDKs (tests/fixtures/sdk-requests, a copy of
//! shared/fixtures): sent byte for byte, with the SDK's own headers and encodings.

use std::path::{Path, PathBuf};

use crate::helpers::{spawn_app_with, TestApp};

/// The key and project the captures were made with.
const CAPTURE_KEY: &str = "abcdef0123456789abcdef0123456789";

struct Capture {
    name: String,
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn captures(sdk: &str) -> Vec<Capture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sdk-requests")
        .join(sdk);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".headers")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| read_capture(&dir, name))
        .collect()
}

fn read_capture(dir: &Path, name: String) -> Capture {
    let head = std::fs::read_to_string(dir.join(format!("{name}.headers"))).expect("headers file");
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let body = std::fs::read(dir.join(format!("{name}.body"))).expect("body file");
    Capture {
        name,
        request_line,
        headers,
        body,
    }
}

/// Sends the capture as raw HTTP/1.1, keeping its headers; a chunked capture is re-chunked.
async fn replay(app: &TestApp, capture: &Capture) -> (u16, String) {
    let mut request = format!("{} HTTP/1.1\r\n", capture.request_line).into_bytes();
    let chunked = capture
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    for (name, value) in &capture.headers {
        let skip = ["content-length", "transfer-encoding", "connection"];
        if !skip.contains(&name.to_ascii_lowercase().as_str()) {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    request.extend_from_slice(b"Connection: close\r\n");
    if chunked {
        request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in capture.body.chunks(1000) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request.extend_from_slice(
            format!("Content-Length: {}\r\n\r\n", capture.body.len()).as_bytes(),
        );
        request.extend_from_slice(&capture.body);
    }
    let (status, head, body) = app.raw_request(&request).await;
    (status, format!("{head}\n{body}"))
}

/// A fresh server whose first project has the captures' key, so it is project 1.
async fn app_for_captures() -> TestApp {
    let app = spawn_app_with(|_| {}).await;
    sqlx::query("UPDATE project_keys SET public_key = $1")
        .bind(CAPTURE_KEY)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.project_id, 1);
    app
}

async fn replay_all(app: &TestApp, sdk: &str) {
    for capture in captures(sdk) {
        let (status, answer) = replay(app, &capture).await;
        assert_eq!(status, 200, "{sdk}/{}: {answer}", capture.name);
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("access-control-allow-origin: *"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn python_sdk_captures_group_into_four_issues() {
    let app = app_for_captures().await;
    replay_all(&app, "sentry-python-2.75.0").await;
    assert_eq!(
        app.event_count().await,
        6,
        "six errors and messages; the transaction is dropped"
    );
    let mut counts: Vec<i64> = app.issues().await.into_iter().map(|(_, n)| n).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 1, 2, 2], "{:?}", app.issues().await);
    let titles: Vec<String> = app.issues().await.into_iter().map(|(t, _)| t).collect();
    assert!(
        titles.iter().any(|t| t.starts_with("ValueError")),
        "{titles:?}"
    );
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("Payment declined for order")),
        "{titles:?}"
    );
}

#[tokio::test]
async fn node_sdk_captures_chunked_without_content_type_are_stored() {
    let app = app_for_captures().await;
    replay_all(&app, "sentry-node-11.12.0").await;
    assert_eq!(
        app.event_count().await,
        3,
        "two errors and a message; the session is dropped"
    );
    let mut counts: Vec<i64> = app.issues().await.into_iter().map(|(_, n)| n).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2], "{:?}", app.issues().await);
    let environment: String = sqlx::query_scalar("SELECT DISTINCT environment FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(environment, "bars");
}

#[tokio::test]
async fn browser_sdk_captures_are_stored_with_their_message_title() {
    let app = app_for_captures().await;
    replay_all(&app, "sentry-browser-11.12.0").await;
    assert_eq!(app.event_count().await, 3);
    let titles: Vec<String> = app.issues().await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(
        titles.contains(&"browser message from bars".to_owned()),
        "{titles:?}"
    );
    let unhandled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM issues WHERE metadata->>'unhandled' = 'true'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(unhandled, 1, "the uncaught TypeError from a timer");
}

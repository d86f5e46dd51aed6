//! A small, fast run of `faultline-loadgen` against a real server: every acknowledged event must
//! be stored exactly once, in the expected number of issues. Correctness only, never speed.

#[allow(dead_code, reason = "shared helpers; this binary uses only a few")]
#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;

fn run_loadgen(app: &helpers::TestApp, compression: &str, events: u64, issues: u64) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline-loadgen"))
        .args(["--dsn", &app.dsn(), "--database-url", &app.database_url])
        .args([
            "--events",
            &events.to_string(),
            "--issues",
            &issues.to_string(),
        ])
        .args(["--concurrency", "8", "--compression", compression])
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_stored_once_in_its_issue() {
    let app = helpers::spawn_app().await;

    let report = run_loadgen(&app, "gzip", 300, 12);

    assert!(report.contains("300 acknowledged"), "{report}");
    assert!(
        report.contains("verify: ok   acknowledged 300, of which stored 300"),
        "{report}"
    );
    assert_eq!(app.event_count().await, 300);
    assert_eq!(app.issue_count().await, 12);
    let counted: i64 = app.issues().await.iter().map(|(_, count)| count).sum();
    assert_eq!(counted, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_and_plain_bodies_are_accepted_and_stored_too() {
    let app = helpers::spawn_app().await;

    run_loadgen(&app, "zstd", 60, 5);
    run_loadgen(&app, "identity", 60, 5);

    assert_eq!(app.event_count().await, 120);
    assert_eq!(app.issue_count().await, 5);
}

#[test]
fn the_symbolication_benchmark_maps_every_frame_and_reports_what_the_map_adds() {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline-loadgen"))
        .args(["--symbolication", "--events", "20"])
        .output()
        .expect("faultline-loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The run itself fails unless all 20 frames of every event were mapped.
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "prepare() with the map",
        "added by the map (p50)",
        "cache weight",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
}

#[test]
fn a_run_whose_requests_cannot_connect_fails_and_says_why() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let dsn = format!("http://0123456789abcdef0123456789abcdef@127.0.0.1:{port}/1");
    let output = Command::new(env!("CARGO_BIN_EXE_faultline-loadgen"))
        .args(["--dsn", &dsn, "--events", "3", "--issues", "1"])
        .args(["--concurrency", "1", "--timeout-secs", "5"])
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("connection errors 3"), "{stdout}");
    // The error and its causes: the OS's own words come from the innermost one.
    let first = stdout
        .lines()
        .find_map(|line| line.strip_prefix("first connection error: "))
        .unwrap_or_else(|| panic!("no first connection error in\n{stdout}"));
    assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");
    assert!(first.contains("onnection refused"), "{first}");
}

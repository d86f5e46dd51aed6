//! The `faultline` binary as a new user meets it: create a project, read its DSN, run the
//! server, send a first error with curl, and read the request log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, new_database_url};

fn faultline(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command
        .env("DATABASE_URL", database_url)
        .env("FAULTLINE_BASE_URL", "http://errors.example.com:8000")
        // Its own spool: a server left running from ./ (a benchmark) must not lock it out.
        .env("FAULTLINE_SPOOL_DIR", crate::helpers::new_spool_dir());
    command
}

fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().expect("faultline runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn project_create_prints_the_dsn_last_and_project_list_shows_it() {
    let database_url = new_database_url();
    let (ok, stdout, stderr) =
        run(faultline(&database_url).args(["project", "create", "checkout-api"]));
    assert!(ok, "{stderr}");
    let dsn = stdout.lines().last().expect("a last line");
    let rest = dsn.strip_prefix("http://").expect("http DSN");
    let (key, location) = rest.split_once('@').expect("key@host");
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    let project_id = location
        .strip_prefix("errors.example.com:8000/")
        .expect("host from FAULTLINE_BASE_URL");
    assert!(project_id.parse::<i64>().is_ok(), "{dsn}");

    let (ok, listing, stderr) = run(faultline(&database_url).args(["project", "list"]));
    assert!(ok, "{stderr}");
    assert!(
        listing.contains("checkout-api") && listing.contains(dsn),
        "{listing}"
    );

    let (ok, _, stderr) = run(faultline(&database_url).args(["project", "create", "checkout-api"]));
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");

    // A bad base URL is refused before the project is stored: fixed, the name is still free.
    let (ok, _, stderr) = run(faultline(&database_url)
        .env("FAULTLINE_BASE_URL", "errors.example.com:8000")
        .args(["project", "create", "mobile"]));
    assert!(!ok);
    assert!(stderr.contains("FAULTLINE_BASE_URL"), "{stderr}");
    let (ok, _, stderr) = run(faultline(&database_url).args(["project", "create", "mobile"]));
    assert!(ok, "{stderr}");
}

#[test]
fn help_documents_every_command_and_environment_variable() {
    let (ok, top, _) = run(Command::new(env!("CARGO_BIN_EXE_faultline")).arg("--help"));
    assert!(ok);
    for command in ["serve", "migrate", "project"] {
        assert!(top.contains(command), "{top}");
    }
    let (_, serve, _) =
        run(Command::new(env!("CARGO_BIN_EXE_faultline")).args(["serve", "--help"]));
    for variable in [
        "DATABASE_URL",
        "FAULTLINE_BIND",
        "FAULTLINE_BASE_URL",
        "FAULTLINE_MAX_BODY_BYTES",
        "FAULTLINE_MAX_DECOMPRESSED_BYTES",
        "FAULTLINE_MAX_EVENT_BYTES",
        "FAULTLINE_MAX_STRING_CHARS",
        "FAULTLINE_MAX_BREADCRUMBS",
        "FAULTLINE_MAX_FRAMES",
        "FAULTLINE_MAX_JSON_DEPTH",
        "LOG_FORMAT",
    ] {
        assert!(
            serve.contains(variable),
            "{variable} missing from serve --help"
        );
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_binary_takes_a_curl_event_and_logs_one_json_line_per_request_without_secrets() {
    let database_url = new_database_url();
    let (ok, stdout, stderr) =
        run(faultline(&database_url).args(["project", "create", "curl-app"]));
    assert!(ok, "{stderr}");
    let dsn = stdout.lines().last().unwrap().to_owned();
    let key = &dsn["http://".len()..dsn.find('@').unwrap()];
    let project_id = dsn.rsplit('/').next().unwrap();

    let port = free_port();
    let mut server = Server(
        faultline(&database_url)
            .arg("serve")
            .env("FAULTLINE_BIND", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts"),
    );
    let mut log = BufReader::new(server.0.stderr.take().unwrap());
    wait_until_listening(port);

    let url = format!(
        "http://127.0.0.1:{port}/api/{project_id}/store/?sentry_key={key}&sentry_version=7"
    );
    let curl = Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
        ])
        .arg(r#"{"message": "Hello from curl", "level": "warning", "tags": {"source": "curl"}}"#)
        .arg(&url)
        .output()
        .expect("curl is installed");
    let answer: Value = serde_json::from_slice(&curl.stdout).expect("JSON answer");
    assert_eq!(answer["id"].as_str().map(str::len), Some(32), "{answer}");

    drop(server);
    let mut lines = String::new();
    let mut line = String::new();
    while log.read_line(&mut line).unwrap_or(0) > 0 {
        lines.push_str(&line);
        line.clear();
    }
    let request_line = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["http.route"] == "/api/{project_id}/store/")
        .unwrap_or_else(|| panic!("no request line in:\n{lines}"));
    assert_eq!(request_line["http.status"], 200);
    assert_eq!(request_line["http.method"], "POST");
    assert!(request_line["request.id"].is_string());
    assert!(request_line["duration_ms"].is_number());
    assert!(
        !lines.contains(key),
        "the DSN key must never be logged:\n{lines}"
    );
    assert!(
        !lines.contains("Hello from curl"),
        "event bodies must never be logged"
    );
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn user_and_token_commands_manage_operators() {
    let database_url = new_database_url();
    let user = |args: &[&str], password: Option<&str>| {
        let mut command = faultline(&database_url);
        command.arg("user").args(args);
        if let Some(password) = password {
            command.env("FAULTLINE_PASSWORD", password);
        }
        run(&mut command)
    };
    let (ok, _, stderr) = user(
        &["create", "Admin@Example.com", "--admin"],
        Some("first password"),
    );
    assert!(ok, "{stderr}");
    let (ok, _, _) = user(&["create", "admin@example.com"], Some("first password"));
    assert!(!ok, "e-mails are unique, case-insensitively");
    let (ok, _, stderr) = user(&["create", "short@example.com"], Some("short"));
    assert!(!ok && stderr.contains("at least 8"), "{stderr}");

    // The password can also come on standard input.
    let mut command = faultline(&database_url);
    command
        .args(["user", "create", "ops@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped password\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let (_, listing, _) = user(&["list"], None);
    assert!(
        listing.contains("admin@example.com\tadmin")
            && listing.contains("ops@example.com\toperator"),
        "{listing}"
    );
    let (ok, _, _) = user(
        &["set-password", "ops@example.com"],
        Some("second password"),
    );
    assert!(ok);
    let (ok, stdout, stderr) = run(faultline(&database_url).args([
        "token",
        "create",
        "ops@example.com",
        "--label",
        "sentry-cli",
    ]));
    assert!(ok, "{stderr}");
    let token = stdout.lines().last().unwrap();
    assert_eq!(token.len(), 64);
    let (_, tokens, _) = run(faultline(&database_url).args(["token", "list"]));
    assert!(
        tokens.contains("ops@example.com\tactive\tsentry-cli") && !tokens.contains(token),
        "{tokens}"
    );
    let (ok, _, _) = user(&["delete", "ops@example.com"], None);
    assert!(ok);
    let (_, listing, _) = user(&["list"], None);
    assert!(!listing.contains("ops@example.com"));
}

#[test]
fn first_admin_comes_from_the_environment_when_no_user_exists() {
    let database_url = new_database_url();
    let port = free_port();
    let mut server = Server(
        faultline(&database_url)
            .arg("serve")
            .env("FAULTLINE_BIND", format!("127.0.0.1:{port}"))
            .env("FAULTLINE_ADMIN_EMAIL", "root@example.com")
            .env("FAULTLINE_ADMIN_PASSWORD", "compose password")
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    wait_until_listening(port);
    let (_, listing, _) = run(faultline(&database_url).args(["user", "list"]));
    assert!(listing.contains("root@example.com\tadmin"), "{listing}");
    let _ = server.0.kill();
}

/// A one-request HTTP receiver on a thread: answers 200 and hands back what it got.
fn one_shot_receiver() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        String::from_utf8_lossy(&request).to_string()
    });
    (url, handle)
}

#[test]
fn alert_channels_are_added_tested_listed_and_removed_from_the_command_line() {
    let database_url = new_database_url();
    let (ok, _, stderr) = run(faultline(&database_url).args(["project", "create", "shop"]));
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(faultline(&database_url).args([
        "alert",
        "add",
        "shop",
        "--webhook",
        "https://hooks.slack.com/services/T/B/secret",
        "--format",
        "slack",
        "--environment",
        "production",
        "--min-level",
        "error",
    ]));
    assert!(ok, "{stderr}");
    let slack_id = stdout.lines().last().unwrap().trim().to_owned();
    assert!(
        slack_id.parse::<i64>().is_ok(),
        "the id is the last line: {stdout}"
    );

    let (ok, listing, _) = run(faultline(&database_url).args(["alert", "list", "shop"]));
    assert!(ok);
    assert!(
        listing.contains(&format!(
            "{slack_id}\tshop\tslack\tnew_issue,regression\tproduction\tlevel>=error\tnothing sent yet"
        )),
        "{listing}"
    );
    assert!(
        !listing.contains("secret"),
        "the webhook URL is a credential: {listing}"
    );

    for (args, complaint) in [
        (vec!["--format", "pager"], "--format must be"),
        (vec!["--min-level", "loud"], "--min-level must be"),
        (vec!["--on", "sideways"], "unknown trigger"),
        (vec!["--on", "spike"], "needs a threshold"),
        (vec!["--spike", "lots"], "is not a spike threshold"),
    ] {
        let mut command = faultline(&database_url);
        command.args([
            "alert",
            "add",
            "shop",
            "--webhook",
            "https://example.com/hook",
        ]);
        let (ok, _, stderr) = run(command.args(args));
        assert!(!ok && stderr.contains(complaint), "{stderr}");
    }

    // A receiver on this machine: refused unless private webhooks are allowed.
    let (url, received) = one_shot_receiver();
    let add_local = |allow: &str| {
        let mut command = faultline(&database_url);
        command
            .env("FAULTLINE_ALLOW_PRIVATE_WEBHOOKS", allow)
            .args([
                "alert",
                "add",
                "shop",
                "--webhook",
                &url,
                "--secret",
                "s3cret",
            ]);
        run(&mut command)
    };
    let (ok, _, stderr) = add_local("false");
    assert!(!ok && stderr.contains("private"), "{stderr}");
    let (ok, stdout, stderr) = add_local("true");
    assert!(ok, "{stderr}");
    let json_id = stdout.lines().last().unwrap().trim().to_owned();
    let (ok, stdout, stderr) = run(faultline(&database_url)
        .env("FAULTLINE_ALLOW_PRIVATE_WEBHOOKS", "true")
        .args(["alert", "test", &json_id]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Delivered a test notification"), "{stdout}");
    let request = received.join().unwrap();
    assert!(request.contains("\"trigger\":\"test\""), "{request}");
    assert!(
        request.to_lowercase().contains("x-faultline-signature: t="),
        "{request}"
    );

    for id in [&slack_id, &json_id] {
        let (ok, _, stderr) = run(faultline(&database_url).args(["alert", "remove", id]));
        assert!(ok, "{stderr}");
    }
    let (_, listing, _) = run(faultline(&database_url).args(["alert", "list"]));
    assert!(listing.trim().is_empty(), "{listing}");
}

/// A setting outside what the server can work with is refused when read, naming the setting
/// and its range (a pool of 0 failed later as "could not connect"; a session of billions of
/// hours panicked at each login).
#[test]
fn settings_out_of_range_are_refused_with_their_range() {
    let database_url = new_database_url();
    for (variable, value, flag) in [
        ("FAULTLINE_DB_POOL_SIZE", "0", "--db-pool-size"),
        ("FAULTLINE_WRITERS", "0", "--writers"),
        ("FAULTLINE_SPOOL_AFTER_MS", "0", "--spool-after-ms"),
        (
            "FAULTLINE_SESSION_MAX_HOURS",
            "9999999999",
            "--session-max-hours",
        ),
        (
            "FAULTLINE_SOURCE_MAP_CACHE_MB",
            "0",
            "--source-map-cache-mb",
        ),
    ] {
        let (ok, _, stderr) = run(faultline(&database_url).arg("serve").env(variable, value));
        assert!(!ok, "{variable}={value} was accepted");
        assert!(
            stderr.contains(flag) && stderr.contains("is not in"),
            "{variable}: {stderr}"
        );
    }
}

/// A password typed at a terminal is not shown (the prompt turns the terminal's echo off): run
/// under `script`, which gives the command a terminal and records what it shows.
#[test]
fn a_password_typed_at_a_terminal_is_not_shown() {
    use std::io::{Read as _, Write as _};
    let database_url = new_database_url();
    let command = format!(
        "{} user create typed@example.com",
        env!("CARGO_BIN_EXE_faultline")
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DATABASE_URL", &database_url)
        .env("FAULTLINE_SPOOL_DIR", crate::helpers::new_spool_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut shown = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Password:") {
        let n = shown.read(&mut chunk).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"typed password\n").unwrap();
    drop(input);
    shown.read_to_end(&mut seen).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let shown = String::from_utf8_lossy(&seen);
    assert!(
        !shown.contains("typed password"),
        "the password was shown: {shown}"
    );
    let (ok, listing, _) = run(faultline(&database_url).args(["user", "list"]));
    assert!(ok && listing.contains("typed@example.com"), "{listing}");
}

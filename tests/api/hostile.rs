//! Hostile and broken input: each case gets its specific status, and the server keeps serving
//! with the events stored before it intact.

use serde_json::{json, Value};

use crate::helpers::{
    envelope, error_event, eventually, gzip, hold_issues_table, lock_waiters, new_event_id,
    prepared_event, spawn_app, spawn_app_with, warm_key_cache, TestApp,
};

struct Case {
    name: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expected: u16,
}

fn authed(app: &TestApp, name: &'static str, body: Vec<u8>, expected: u16) -> Case {
    Case {
        name,
        url: app.envelope_url(),
        headers: vec![("X-Sentry-Auth", app.auth_header())],
        body,
        expected,
    }
}

fn event_envelope(payload: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        new_event_id(),
        payload.len()
    )
    .into_bytes();
    body.extend_from_slice(payload);
    body
}

fn wrong_types_event() -> Value {
    json!({
        "event_id": 12, "timestamp": {"a": 1}, "level": ["x"], "platform": 3, "logger": [],
        "message": 42, "logentry": "plain", "exception": {"values": [5, {"type": 7, "value": {"v": 1},
            "stacktrace": {"frames": [{"lineno": "abc", "colno": [], "in_app": "maybe", "vars": 3, "pre_context": "x"}, 9]}}]},
        "breadcrumbs": {"values": "none"}, "tags": 17, "user": "bob", "request": [1], "contexts": {"os": "linux"},
        "extra": 1, "fingerprint": 3, "threads": {"values": [1]}, "sdk": "x", "release": {"v": 1}, "environment": false
    })
}

#[tokio::test]
async fn hostile_inputs_get_their_status_and_lose_nothing_already_stored() {
    let app = spawn_app().await;
    let before = app
        .store_ok(&error_event("ValueError", "stored before", "f", 1))
        .await;

    let other = spawn_app_other_project(&app).await;
    let deep = format!(
        "{{\"extra\":{}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let megabyte = json!({"event_id": new_event_id(), "message": "big", "extra": {"blob": "x".repeat(1_000_000)}});
    let frames: Vec<Value> = (0..10_000)
        .map(|i| json!({"function": format!("f{i}"), "module": "m", "in_app": true}))
        .collect();
    let many_frames = json!({"event_id": new_event_id(), "exception": {"values": [{"type": "Deep", "stacktrace": {"frames": frames}}]}});

    let cases = vec![
        authed(
            &app,
            "malformed JSON event",
            event_envelope(b"{\"message\": "),
            400,
        ),
        authed(
            &app,
            "invalid UTF-8 event",
            event_envelope(b"{\"message\": \"\xff\xfe\"}"),
            400,
        ),
        authed(
            &app,
            "event that is not an object",
            event_envelope(b"[1,2,3]"),
            400,
        ),
        authed(
            &app,
            "malformed envelope header",
            b"not json\n{}".to_vec(),
            400,
        ),
        authed(
            &app,
            "truncated envelope",
            b"{}\n{\"type\":\"event\",\"length\":40}\n{\"message\":\"cut".to_vec(),
            400,
        ),
        authed(
            &app,
            "length past the end",
            b"{}\n{\"type\":\"event\",\"length\":99999}\n{}\n".to_vec(),
            400,
        ),
        authed(&app, "empty body", Vec::new(), 400),
        authed(
            &app,
            "JSON nested 100,000 deep",
            event_envelope(deep.as_bytes()),
            400,
        ),
        Case {
            name: "missing key",
            url: app.envelope_url(),
            headers: vec![],
            body: envelope(&error_event("E", "v", "f", 1), true),
            expected: 401,
        },
        Case {
            name: "unknown key",
            url: app.envelope_url(),
            headers: vec![(
                "X-Sentry-Auth",
                "Sentry sentry_key=00000000000000000000000000000000".into(),
            )],
            body: envelope(&error_event("E", "v", "f", 1), true),
            expected: 401,
        },
        Case {
            name: "malformed key",
            url: app.envelope_url(),
            headers: vec![("X-Sentry-Auth", "Sentry sentry_key=<script>".into())],
            body: envelope(&error_event("E", "v", "f", 1), true),
            expected: 401,
        },
        Case {
            name: "key of another project",
            url: app.envelope_url(),
            headers: vec![("X-Sentry-Auth", format!("Sentry sentry_key={}", other))],
            body: envelope(&error_event("E", "v", "f", 1), true),
            expected: 403,
        },
        Case {
            name: "unknown project",
            url: format!("{}/api/999999/envelope/", app.address),
            headers: vec![("X-Sentry-Auth", app.auth_header())],
            body: envelope(&error_event("E", "v", "f", 1), true),
            expected: 404,
        },
        Case {
            name: "non-numeric project",
            url: format!("{}/api/abc/envelope/", app.address),
            headers: vec![("X-Sentry-Auth", app.auth_header())],
            body: envelope(&error_event("E", "v", "f", 1), true),
            expected: 404,
        },
        Case {
            name: "bad gzip",
            url: app.envelope_url(),
            headers: vec![
                ("X-Sentry-Auth", app.auth_header()),
                ("Content-Encoding", "gzip".into()),
            ],
            body: b"\x1f\x8b\x08\x00 definitely not gzip".to_vec(),
            expected: 400,
        },
        Case {
            name: "unsupported encoding",
            url: app.envelope_url(),
            headers: vec![
                ("X-Sentry-Auth", app.auth_header()),
                ("Content-Encoding", "compress".into()),
            ],
            body: b"{}".to_vec(),
            expected: 415,
        },
        authed(
            &app,
            "megabyte string (trimmed, kept)",
            envelope(&megabyte, true),
            200,
        ),
        authed(
            &app,
            "10,000 frames (trimmed, kept)",
            envelope(&many_frames, true),
            200,
        ),
        authed(
            &app,
            "every field of the wrong type (kept)",
            envelope(&wrong_types_event(), true),
            200,
        ),
        authed(
            &app,
            "event over 1 MiB",
            event_envelope(format!("{{\"message\":\"{}\"}}", "y".repeat(1_100_000)).as_bytes()),
            413,
        ),
    ];

    for case in cases {
        let mut request = app.client.post(&case.url).body(case.body);
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, case.expected, "{}: {text}", case.name);
        if status >= 400 {
            let body: Value = serde_json::from_str(&text).expect("errors are JSON");
            let message = body["error"].as_str().expect("errors say what is wrong");
            assert!(
                !message.is_empty() && !message.contains("sqlx") && !message.contains("panicked"),
                "{}: {message}",
                case.name
            );
        }
    }

    // Still serving, and what was stored before is intact.
    app.store_ok(&error_event("ValueError", "stored after", "g", 1))
        .await;
    assert_eq!(
        app.stored_event(&before).await["exception"]["values"][0]["value"],
        "stored before"
    );

    let big = app
        .stored_event(megabyte["event_id"].as_str().unwrap())
        .await;
    assert!(big["extra"]["blob"].as_str().unwrap().chars().count() <= 8193);
    let deep = app
        .stored_event(many_frames["event_id"].as_str().unwrap())
        .await;
    assert_eq!(
        deep["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .unwrap()
            .len(),
        250
    );
}

/// A second project on the same server; returns its key.
async fn spawn_app_other_project(app: &TestApp) -> String {
    let key = faultline::domain::keys::new_public_key();
    faultline::store::projects::create(&app.pool, "other", &key)
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn oversized_body_and_gzip_bomb_get_413() {
    let app = spawn_app_with(|s| {
        s.limits.max_body_bytes = 1024 * 1024;
        s.limits.max_decompressed_bytes = 4 * 1024 * 1024;
    })
    .await;
    let response = app.post_envelope(vec![b' '; 2 * 1024 * 1024]).await;
    assert_eq!(response.status(), 413);

    // 64 MiB of zeros: about 64 KiB on the wire.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let response = app
        .client
        .post(app.envelope_url())
        .header("X-Sentry-Auth", app.auth_header())
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    app.store_ok(&error_event("ValueError", "still serving", "f", 1))
        .await;
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_are_4xx_json() {
    let app = spawn_app().await;
    let response = app.client.get(app.envelope_url()).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let response = app
        .client
        .get(format!("{}/api/0/nope/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response.json::<Value>().await.unwrap()["error"].is_string(),
        "API paths answer JSON"
    );
    let response = app
        .client
        .get(format!("{}/nope", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response.text().await.unwrap().contains("<html"),
        "other paths answer a page"
    );
}

#[tokio::test]
async fn event_fields_of_the_wrong_type_are_dropped_and_noted_not_fatal() {
    let app = spawn_app().await;
    let mut event = wrong_types_event();
    event["event_id"] = json!(new_event_id());
    let id = app.store_ok(&event).await;
    let stored = app.stored_event(&id).await;
    assert_eq!(stored["level"], "error");
    let errors = stored["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["name"] == "exception.values.1.stacktrace.frames.0.lineno"),
        "{errors:?}"
    );
}

/// An event of ~16 KB of incompressible text (random hex in breadcrumbs).
fn bulky_event() -> Value {
    let noise = || (0..125).map(|_| new_event_id()).collect::<String>();
    let crumbs: Vec<Value> = (0..4).map(|_| json!({"message": noise()})).collect();
    json!({"event_id": new_event_id(), "message": "bulky", "breadcrumbs": {"values": crumbs}})
}

/// Large events waiting for a slow database cannot take the server's memory: past the queue's
/// byte budget new ones get 429 with Retry-After, however few they are, and the budget is
/// given back as the waiting ones are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_queues_byte_budget_get_429_until_it_drains() {
    let event = bulky_event();
    let size = prepared_event(1, &event).approximate_size();
    let app = spawn_app_with(|settings| {
        // Room for two such events, not three.
        settings.pipeline.queue_max_bytes = size * 5 / 2;
    })
    .await;
    warm_key_cache(&app).await;

    // The database is slow: every writer waits for the issues table.
    let hold = hold_issues_table(&app.pool).await;
    let app = std::sync::Arc::new(app);
    let mut waiting = Vec::new();
    for writers_waiting in 1..=2 {
        let mut event = event.clone();
        event["event_id"] = json!(new_event_id());
        let sender = app.clone();
        waiting.push(tokio::spawn(
            async move { sender.store(&event).await.status() },
        ));
        eventually("a writer holding the event", || async {
            lock_waiters(&app.pool).await >= writers_waiting
        })
        .await;
    }
    let mut third = event.clone();
    third["event_id"] = json!(new_event_id());
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), app.store(&third))
        .await
        .expect("answered at once, not queued behind the others");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    hold.commit().await.unwrap();
    for answer in waiting {
        assert_eq!(answer.await.unwrap(), 200);
    }
    assert_eq!(app.store(&third).await.status(), 200, "the budget is back");
    assert_eq!(app.event_count().await, 3);
}

/// Bodies in flight cannot take the server's memory either: while requests wait (here for a
/// slow database) holding theirs, one past the in-flight budget gets 429, and once they are
/// answered it fits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_in_flight_budget_get_429_until_the_others_are_answered() {
    let event = bulky_event();
    let size = serde_json::to_vec(&event).unwrap().len();
    let app = spawn_app_with(|settings| {
        // Room for one such body, not two.
        settings.limits.max_in_flight_bytes = size * 3 / 2;
    })
    .await;
    warm_key_cache(&app).await;

    let hold = hold_issues_table(&app.pool).await;
    let app = std::sync::Arc::new(app);
    let sender = app.clone();
    let first = event.clone();
    let waiting = tokio::spawn(async move { sender.store(&first).await.status() });
    eventually("a writer holding the event", || async {
        lock_waiters(&app.pool).await >= 1
    })
    .await;
    let mut second = event.clone();
    second["event_id"] = json!(new_event_id());
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), app.store(&second))
        .await
        .expect("answered at once, not queued behind the other");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    hold.commit().await.unwrap();
    assert_eq!(waiting.await.unwrap(), 200);
    assert_eq!(app.store(&second).await.status(), 200, "the budget is back");
    assert_eq!(app.event_count().await, 2);
}

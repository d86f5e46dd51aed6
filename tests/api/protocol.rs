//! The Sentry ingest protocol as SDKs use it: endpoints, auth forms, encodings, envelopes.

use std::io::Write;

use serde_json::{json, Value};

use crate::helpers::{envelope, error_event, gzip, new_event_id, spawn_app};

#[tokio::test]
async fn envelope_event_is_stored_and_answered_with_its_id_after_commit() {
    let app = spawn_app().await;
    let event = error_event("ValueError", "bad", "parse", 10);
    let response = app.post_envelope(envelope(&event, true)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("retry-after").is_none(),
        "never Retry-After on a 200"
    );
    let limits = response.headers()["x-sentry-rate-limits"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], event["event_id"]);
    // The answer came after the commit: the event is already there.
    assert_eq!(app.event_count().await, 1);
    let categories = limits.split(':').nth(1).unwrap();
    assert!(categories.split(';').any(|c| c == "transaction"));
    assert!(!categories
        .split(';')
        .any(|c| c == "error" || c == "default" || c.is_empty()));
}

#[tokio::test]
async fn store_endpoint_accepts_json_with_and_without_trailing_slash() {
    let app = spawn_app().await;
    for path in ["store/", "store"] {
        let event = error_event("KeyError", "k", "lookup", 5);
        let response = app
            .client
            .post(format!("{}/api/{}/{path}", app.address, app.project_id))
            .header("X-Sentry-Auth", app.auth_header())
            .header("Content-Type", "application/json")
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    for path in ["envelope/", "envelope"] {
        let event = error_event("KeyError", "k", "lookup", 5);
        let response = app
            .client
            .post(format!("{}/api/{}/{path}", app.address, app.project_id))
            .header("X-Sentry-Auth", app.auth_header())
            .body(envelope(&event, true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(app.event_count().await, 4);
    assert_eq!(app.issue_count().await, 1);
}

#[tokio::test]
async fn transaction_sent_to_store_is_accepted_and_dropped() {
    let app = spawn_app().await;
    let response = app
        .store(&json!({"type": "transaction", "transaction": "/cart", "spans": []}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.event_count().await, 0);
}

/// `/store/` parses its body once, then checks it: the size limit and JSON validity apply to
/// every payload, transactions included.
#[tokio::test]
async fn store_endpoint_refuses_oversize_and_invalid_payloads_before_dropping_transactions() {
    let app = spawn_app().await;
    let huge = "y".repeat(1_100_000);
    let oversize = app
        .store(&json!({"type": "transaction", "transaction": huge}))
        .await;
    assert_eq!(oversize.status(), 413);
    let invalid = app
        .client
        .post(app.store_url())
        .header("X-Sentry-Auth", app.auth_header())
        .header("Content-Type", "application/json")
        .body("{\"type\": \"transaction\"")
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert!(invalid.text().await.unwrap().contains("not valid JSON"));
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn store_endpoint_generates_an_id_when_the_event_has_none() {
    let app = spawn_app().await;
    let id = app.store_ok(&json!({"message": "no id here"})).await;
    assert_eq!(id.len(), 32);
    assert_eq!(
        app.stored_event(&id).await["logentry"]["formatted"],
        "no id here"
    );
}

#[tokio::test]
async fn every_auth_form_is_accepted() {
    let app = spawn_app().await;
    let url = app.envelope_url();
    let sentry_auth = format!("Sentry sentry_version=7,sentry_key={}", app.key);

    let event = error_event("E", "x-sentry-auth", "f", 1);
    let r = app
        .client
        .post(&url)
        .header("X-Sentry-Auth", &sentry_auth)
        .body(envelope(&event, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let event = error_event("E", "authorization", "f", 1);
    let r = app
        .client
        .post(&url)
        .header("Authorization", &sentry_auth)
        .body(envelope(&event, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let event = error_event("E", "query", "f", 1);
    let r = app
        .client
        .post(format!(
            "{url}?sentry_version=7&sentry_key={}&sentry_client=test",
            app.key
        ))
        .body(envelope(&event, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A tunnel forwards the envelope as is: the DSN in its header is the only credential.
    let event = error_event("E", "dsn header", "f", 1);
    let mut body = format!(
        "{{\"event_id\":\"{}\",\"dsn\":\"{}\"}}\n",
        event["event_id"].as_str().unwrap(),
        app.dsn()
    )
    .into_bytes();
    body.extend_from_slice(b"{\"type\":\"event\"}\n");
    body.extend_from_slice(event.to_string().as_bytes());
    let r = app
        .client
        .post(&url)
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(app.event_count().await, 4);
}

fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => gzip(data),
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
            w.write_all(data).unwrap();
            drop(w);
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        _ => data.to_vec(),
    }
}

#[tokio::test]
async fn every_content_encoding_is_decoded() {
    let app = spawn_app().await;
    for encoding in ["gzip", "deflate", "br", "zstd", "identity"] {
        let event = error_event("EncodingError", encoding, "decode", 1);
        let response = app
            .client
            .post(app.envelope_url())
            .header("X-Sentry-Auth", app.auth_header())
            .header("Content-Encoding", encoding)
            .body(compress(encoding, &envelope(&event, true)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{encoding}");
        let id = event["event_id"].as_str().unwrap();
        assert_eq!(
            app.stored_event(id).await["exception"]["values"][0]["value"],
            encoding
        );
    }
}

#[tokio::test]
async fn chunked_body_without_content_type_is_accepted_as_node_sends_it() {
    let app = spawn_app().await;
    let event = error_event("TypeError", "chunked", "render", 7);
    let body = envelope(&event, false);
    let (first, second) = body.split_at(body.len() / 2);
    let mut request = format!(
        "POST /api/{}/envelope/?sentry_key={}&sentry_version=7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.project_id, app.key
    )
    .into_bytes();
    for chunk in [first, second] {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, _, body) = app.raw_request(&request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn unknown_and_non_event_items_are_accepted_and_dropped() {
    let app = spawn_app().await;
    let event = error_event("ValueError", "with friends", "f", 1);
    let payload = event.to_string();
    let body = format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"session\"}}\n{{\"sid\":\"x\"}}\n{{\"type\":\"future_thing\",\"length\":3}}\nabc\n\
         {{\"type\":\"attachment\",\"length\":4,\"filename\":\"a.txt\"}}\n\x00\x01\n\x02\n{{\"type\":\"event\",\"length\":{len}}}\n{payload}\n\
         {{\"type\":\"client_report\"}}\n{{\"discarded_events\":[]}}\n",
        id = event["event_id"].as_str().unwrap(),
        len = payload.len()
    );
    let response = app.post_envelope(body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.event_count().await, 1);

    let transaction_only = format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"transaction\"}}\n{{\"type\":\"transaction\",\"spans\":[]}}\n",
        new_event_id()
    );
    let response = app.post_envelope(transaction_only).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-sentry-rate-limits"));
    assert_eq!(app.event_count().await, 1, "transactions are not stored");

    let response = app.post_envelope("{}\n").await;
    assert_eq!(
        response.status(),
        200,
        "an envelope that is only a header is fine"
    );
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn duplicate_event_id_is_stored_and_counted_once() {
    let app = spawn_app().await;
    let event = error_event("ValueError", "retry", "f", 1);
    for _ in 0..3 {
        assert_eq!(
            app.post_envelope(envelope(&event, true)).await.status(),
            200
        );
    }
    // Sent again concurrently, as a retrying SDK racing itself might.
    let sends = (0..5).map(|_| app.post_envelope(envelope(&event, true)));
    for response in futures_util::future::join_all(sends).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.event_count().await, 1);
    assert_eq!(
        app.issues().await,
        vec![("ValueError: retry".to_owned(), 1)]
    );
    let hourly: i64 = sqlx::query_scalar("SELECT sum(count)::int8 FROM issue_hourly_counts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(hourly, 1);
}

#[tokio::test]
async fn cors_preflight_and_post_answers_allow_browsers() {
    let app = spawn_app().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.envelope_url())
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type, x-sentry-auth",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-sentry-auth"));

    let event = error_event("TypeError", "cors", "f", 1);
    let ok = app.post_envelope(envelope(&event, false)).await;
    assert_eq!(ok.headers()["access-control-allow-origin"], "*");
    let exposed = ok.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for name in ["x-sentry-rate-limits", "retry-after", "x-sentry-error"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // Errors carry CORS headers too, or the browser SDK cannot read them.
    let refused = app
        .client
        .post(app.envelope_url())
        .body("{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn event_keeps_what_the_sdk_sent_for_debugging() {
    let app = spawn_app().await;
    let event = json!({
        "event_id": new_event_id(),
        "timestamp": 1767268800.5,
        "platform": "python", "level": "warning", "logger": "app",
        "release": "shop@1.2.3", "environment": "staging", "server_name": "web-1",
        "transaction": "/orders/{id}",
        "tags": [["region", "eu"], ["shard", 3]],
        "user": {"id": "u-1", "email": "a@example.com"},
        "request": {"method": "POST", "url": "https://shop.example/orders/5?x=1", "headers": {"User-Agent": "curl"}},
        "contexts": {"os": {"name": "Linux", "version": "6.1"}, "runtime": {"name": "CPython", "version": "3.11"}},
        "breadcrumbs": [{"timestamp": "2026-01-01T11:59:59Z", "category": "http", "message": "GET /cart"}],
        "extra": {"order": 5},
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
        "custom_key": {"kept": true},
        "exception": {"values": [
            {"type": "KeyError", "value": "'sku'", "stacktrace": {"frames": [
                {"module": "app.cart", "function": "add", "filename": "app/cart.py", "lineno": 4, "colno": 2, "in_app": true,
                 "pre_context": ["def add():"], "context_line": "  cart['sku']", "post_context": ["  return"], "vars": {"qty": "2"}}]}},
            {"type": "RuntimeError", "value": "cart failed", "mechanism": {"type": "chained", "handled": false}, "stacktrace": {"frames": [
                {"module": "app.views", "function": "checkout", "filename": "app/views.py", "lineno": 40, "in_app": true}]}}
        ]}
    });
    let id = app.store_ok(&event).await;
    let stored = app.stored_event(&id).await;
    assert_eq!(stored["timestamp"], "2026-01-01T12:00:00.500000Z");
    for key in [
        "platform",
        "level",
        "logger",
        "release",
        "environment",
        "server_name",
        "transaction",
        "sdk",
        "extra",
        "custom_key",
        "user",
    ] {
        assert_eq!(stored[key], event[key], "{key}");
    }
    assert_eq!(
        stored["contexts"]["os"],
        json!({"name": "Linux", "version": "6.1", "type": "os"})
    );
    assert_eq!(stored["contexts"]["runtime"]["version"], "3.11");
    assert_eq!(stored["tags"], json!({"region": "eu", "shard": "3"}));
    assert_eq!(
        stored["request"]["url"],
        "https://shop.example/orders/5?x=1"
    );
    assert_eq!(stored["breadcrumbs"]["values"][0]["message"], "GET /cart");
    let frame = &stored["exception"]["values"][0]["stacktrace"]["frames"][0];
    for key in [
        "module",
        "function",
        "filename",
        "lineno",
        "colno",
        "in_app",
        "pre_context",
        "context_line",
        "post_context",
        "vars",
    ] {
        assert_eq!(
            frame[key], event["exception"]["values"][0]["stacktrace"]["frames"][0][key],
            "{key}"
        );
    }
    assert_eq!(
        stored["exception"]["values"][1]["mechanism"]["handled"],
        false
    );

    let (title, culprit, level): (String, String, String) =
        sqlx::query_as("SELECT title, culprit, level FROM issues")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(title, "RuntimeError: cart failed");
    assert_eq!(culprit, "/orders/{id}");
    assert_eq!(level, "warning");

    let tags: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM issue_tag_values ORDER BY key, value")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let expected = [
        ("environment", "staging"),
        ("handled", "no"),
        ("level", "warning"),
        ("os", "Linux 6.1"),
        ("region", "eu"),
        ("release", "shop@1.2.3"),
        ("request", "POST /orders/{id}"),
        ("server_name", "web-1"),
        ("shard", "3"),
        ("url", "https://shop.example/orders/5"),
        ("user", "id:u-1"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(tags, expected);
    let users: i64 = sqlx::query_scalar("SELECT user_count FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn users_affected_counts_distinct_users_only() {
    let app = spawn_app().await;
    for user in ["a", "b", "a", "c", "b"] {
        let mut event = error_event("ValueError", "x", "f", 1);
        event["user"] = json!({"id": user});
        app.store_ok(&event).await;
    }
    let (events, users): (i64, i64) = sqlx::query_as("SELECT event_count, user_count FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((events, users), (5, 3));
}

#[tokio::test]
async fn resolved_issue_that_receives_an_event_is_reopened_as_a_regression() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    sqlx::query("UPDATE issues SET status = 'resolved'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let (status, regressed): (String, bool) =
        sqlx::query_as("SELECT status::text, regressed_at IS NOT NULL FROM issues")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), regressed), ("unresolved", true));
}

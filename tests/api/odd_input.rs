//! Odd but legal input is stored, never answered with a 5xx: a NUL character in any string
//! (which PostgreSQL refuses in `text` and `jsonb`), a lone UTF-16 surrogate escape (what
//! browsers' `JSON.stringify` emits for a cut emoji); and one event the database refuses never
//! takes the other events of its batch down with it.

use faultline::config::{PipelineSettings, SpoolSettings};
use faultline::ingest::error::IngestError;
use faultline::ingest::pipeline::Pipeline;
use faultline::spool::Spool;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{
    envelope, error_event, new_event_id, prepared_event, spawn_app, spawn_app_with,
};

const REPLACEMENT: char = '\u{FFFD}';

/// An event with a NUL in every string field the issue lists.
fn event_with_nul_everywhere() -> Value {
    json!({
        "event_id": new_event_id(),
        "message": "message\u{0}end",
        "logentry": {"message": "log %s\u{0}", "params": ["p\u{0}"]},
        "environment": "prod\u{0}uction",
        "release": "1.0\u{0}",
        "server_name": "web\u{0}1",
        "transaction": "GET /orders\u{0}",
        "fingerprint": ["fp\u{0}", "{{ default }}"],
        "tags": {"tag\u{0}key": "tag\u{0}value", "plain": "v\u{0}"},
        "user": {"id": "u\u{0}1", "email": "a\u{0}@example.com", "username": "bob\u{0}"},
        "extra": {"k\u{0}": "v\u{0}"},
        "breadcrumbs": [{"message": "crumb\u{0}", "category": "c\u{0}"}],
        "request": {"url": "https://shop.example/orders\u{0}", "method": "POST",
                    "headers": {"X-Custom\u{0}": "h\u{0}"}},
        "exception": {"values": [{
            "type": "Value\u{0}Error",
            "value": "bad\u{0}value",
            "module": "app\u{0}",
            "mechanism": {"type": "generic\u{0}", "handled": false},
            "stacktrace": {"frames": [{
                "function": "handle\u{0}", "module": "app.orders\u{0}",
                "filename": "app/orders\u{0}.py", "abs_path": "/srv/app/orders\u{0}.py",
                "lineno": 7, "in_app": true,
                "context_line": "x = 1\u{0}", "pre_context": ["a\u{0}"], "post_context": ["b\u{0}"],
                "vars": {"var\u{0}": "value\u{0}", "nested": {"k\u{0}": ["v\u{0}"]}}
            }]}
        }]}
    })
}

#[tokio::test]
async fn a_nul_in_any_string_of_an_event_is_replaced_and_the_event_stored_and_shown() {
    let app = spawn_app().await;
    let via_store = app.store_ok(&event_with_nul_everywhere()).await;
    let mut in_envelope = event_with_nul_everywhere();
    let via_envelope = in_envelope["event_id"].as_str().unwrap().to_owned();
    in_envelope["message"] = json!("from an envelope\u{0}");
    let response = app.post_envelope(envelope(&in_envelope, true)).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let stored = app.stored_event(&via_store).await;
    let text = stored.to_string();
    assert!(!text.contains("\\u0000"), "a NUL was stored: {text}");
    let exception = &stored["exception"]["values"][0];
    assert_eq!(exception["type"], format!("Value{REPLACEMENT}Error"));
    assert_eq!(exception["value"], format!("bad{REPLACEMENT}value"));
    let frame = &exception["stacktrace"]["frames"][0];
    assert_eq!(frame["function"], format!("handle{REPLACEMENT}"));
    assert_eq!(
        frame["vars"][format!("var{REPLACEMENT}")],
        format!("value{REPLACEMENT}")
    );
    assert_eq!(stored["environment"], format!("prod{REPLACEMENT}uction"));
    app.stored_event(&via_envelope).await;

    let (issue_id, title, environment): (i64, String, Option<String>) = sqlx::query_as(
        "SELECT i.id, i.title, e.environment FROM events e JOIN issues i ON i.id = e.issue_id
          WHERE e.event_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&via_store).unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        title,
        format!("Value{REPLACEMENT}Error: bad{REPLACEMENT}value")
    );
    assert_eq!(environment.unwrap(), format!("prod{REPLACEMENT}uction"));
    let tags: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM issue_tag_values WHERE issue_id = $1")
            .bind(issue_id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        tags.contains(&(
            format!("tag{REPLACEMENT}key"),
            format!("tag{REPLACEMENT}value")
        )),
        "{tags:?}"
    );

    let browser = app.admin_browser().await;
    let page = browser
        .get(&format!("/issues/{issue_id}/events/{via_store}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("bad{REPLACEMENT}value")));
    assert_eq!(
        browser.get(&format!("/issues/{issue_id}")).await.status,
        200
    );
    assert_eq!(browser.get("/").await.status, 200);
}

#[tokio::test]
async fn events_sent_in_the_same_batch_as_a_nul_event_are_all_stored() {
    // A long batch wait puts every concurrent event into one transaction.
    let app = spawn_app_with(|s| s.pipeline.batch_wait_ms = 200).await;
    let mut events: Vec<Value> = (0..12)
        .map(|i| error_event("KeyError", &format!("good {i}"), "handle", i))
        .collect();
    events.extend((0..3).map(|_| event_with_nul_everywhere()));
    let answers = join_all(events.iter().map(|event| app.store(event))).await;
    for answer in answers {
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    }
    assert_eq!(app.event_count().await, 15);
}

#[tokio::test]
async fn an_event_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored() {
    let app = spawn_app().await;
    let settings = PipelineSettings {
        batch_wait_ms: 300,
        writers: 1,
        ..PipelineSettings::default()
    };
    let spool_settings = SpoolSettings {
        // Isolating the refused event takes several tries: none of them may be spooled.
        spool_after_ms: crate::helpers::SLOW_COMMIT_MS,
        ..SpoolSettings::in_dir(crate::helpers::new_spool_dir())
    };
    let spool = std::sync::Arc::new(Spool::open(&spool_settings).unwrap());
    let pipeline = Pipeline::start(app.pool.clone(), &settings, spool, &spool_settings);
    let mut prepared: Vec<_> = (0..9)
        .map(|i| {
            prepared_event(
                app.project_id,
                &error_event("KeyError", &format!("good {i}"), "f", i),
            )
        })
        .collect();
    // Past normalisation, nothing can carry a NUL any more: plant one the way a future bug
    // might, in a column PostgreSQL checks.
    prepared[4].environment = Some("refused\u{0}environment".into());
    let refused = prepared[4].event_id;

    let results = join_all(prepared.iter().map(|e| pipeline.store(e.clone()))).await;
    for (event, result) in prepared.iter().zip(&results) {
        if event.event_id == refused {
            assert!(
                matches!(result, Err(IngestError::Internal(_))),
                "a refused event is a server fault (500), not an outage: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 8);
    assert!(!stored.contains(&refused));
}

/// Raw JSON text, so the escapes reach the server exactly as a browser writes them.
async fn store_raw_json(app: &crate::helpers::TestApp, json: String) -> (u16, String) {
    let response = app
        .client
        .post(app.store_url())
        .header("X-Sentry-Auth", app.auth_header())
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn lone_surrogate_escapes_are_stored_as_replacement_characters() {
    let app = spawn_app().await;
    let cases = [
        (r#"cut emoji \ud83d"#, format!("cut emoji {REPLACEMENT}")),
        (
            r#"\udc00 trailing alone"#,
            format!("{REPLACEMENT} trailing alone"),
        ),
        (
            r#"two highs \ud83d\ud83d"#,
            format!("two highs {REPLACEMENT}{REPLACEMENT}"),
        ),
        (r#"a pair \ud83d\ude00 stays"#, "a pair 😀 stays".to_owned()),
        (
            r#"escaped \\ud800 is text"#,
            r"escaped \ud800 is text".to_owned(),
        ),
    ];
    for (raw, expected) in cases {
        let id = new_event_id();
        let (status, body) = store_raw_json(
            &app,
            format!(r#"{{"event_id":"{id}","message":"{raw}","tags":{{"t":"{raw}"}}}}"#),
        )
        .await;
        assert_eq!(status, 200, "{raw}: {body}");
        let stored = app.stored_event(&id).await;
        assert_eq!(stored["logentry"]["formatted"], expected, "{raw}");
    }
    // Still a 400 when the JSON is broken for another reason.
    let (status, _) = store_raw_json(&app, r#"{"message":"\ud83d" "#.into()).await;
    assert_eq!(status, 400);
}

/// What old clients still in production send to `/store/` (shared/PROTOCOL.md §14.5).
#[tokio::test]
async fn legacy_store_bodies_of_old_raven_clients_are_accepted() {
    use base64::Engine;
    use std::io::Write;
    let app = spawn_app().await;
    let zlib = |data: &[u8]| {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    };
    let base64 = |data: &[u8]| {
        base64::engine::general_purpose::STANDARD
            .encode(data)
            .into_bytes()
    };
    type Encoder = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let cases: Vec<(&str, Encoder, Option<&str>)> = vec![
        (
            "raven-node: base64(zlib(JSON))",
            Box::new(move |j| base64(&zlib(j))),
            None,
        ),
        (
            "raven-python >= 5.6: zlib(JSON), Content-Encoding: deflate",
            Box::new(zlib),
            Some("deflate"),
        ),
        ("zlib(JSON) without the header", Box::new(zlib), None),
        ("base64(JSON)", Box::new(move |j| base64(j)), None),
    ];
    for (client, encode, content_encoding) in cases {
        let event = error_event("LegacyError", client, "f", 1);
        let body = encode(&serde_json::to_vec(&event).unwrap());
        let mut request = app
            .client
            .post(app.store_url())
            .header("Content-Type", "application/octet-stream")
            .header(
                "X-Sentry-Auth",
                format!(
                    "Sentry sentry_version=5, sentry_timestamp=1700000000000, \
                     sentry_client=raven-node/2.6.2, sentry_key={}, sentry_secret=unused",
                    app.key
                ),
            )
            .body(body);
        if let Some(encoding) = content_encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(
            answer.status(),
            200,
            "{client}: {}",
            answer.text().await.unwrap()
        );
        let stored = app.stored_event(event["event_id"].as_str().unwrap()).await;
        assert_eq!(stored["exception"]["values"][0]["value"], client);
    }

    // Bodies that are none of these are precise 400s.
    for (body, says) in [
        (
            &b"not base64 at all!"[..],
            "neither JSON, base64 text nor zlib",
        ),
        (&b"aGVsbG8gd29ybGQ="[..], "base64 text, but not of JSON"),
    ] {
        let answer = app
            .client
            .post(app.store_url())
            .header("X-Sentry-Auth", app.auth_header())
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
        let text = answer.text().await.unwrap();
        assert!(text.contains(says), "{text}");
    }
}

/// A timestamp PostgreSQL cannot store (`%Y` takes signed years) and an environment far past
/// Sentry's 64 characters (part of the endpoint aggregates' indexed keys) made the event a 500
/// and, once deferred under load, every later fold of aggregates fail. Both are now cut to
/// what can be stored, and the event is kept like any other.
#[tokio::test]
async fn an_unstorable_timestamp_and_a_huge_environment_are_cut_and_the_event_kept() {
    let app = spawn_app().await;
    let mut event = error_event("KeyError", "odd", "f", 1);
    event["timestamp"] = json!("-5000-01-01T00:00:00");
    // Random, so that PostgreSQL cannot compress it into an index entry.
    let huge: String = (0..250).map(|_| new_event_id()).collect();
    event["environment"] = json!(huge);
    event["request"] = json!({"method": "GET", "url": "https://shop.example/orders/1"});
    app.store_ok(&event).await;

    let (occurred_near_receipt, environment): (bool, String) = sqlx::query_as(
        "SELECT abs(extract(epoch FROM occurred_at - received_at)) < 1, environment FROM events",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(occurred_near_receipt, "the receipt time stands in");
    assert_eq!(environment, format!("{}…", &huge[..64]));
    let endpoint_environments: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT environment FROM endpoint_hourly_counts ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(endpoint_environments, ["*".to_owned(), environment]);
}

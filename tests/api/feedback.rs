//! User feedback, as SDKs, the crash-report dialog and server-side apps send it: stored,
//! linked to its event and issue (whichever arrives first), shown to operators, refused with
//! a clear 4xx when it is malformed or too large, and limited per address.

use serde_json::{json, Value};

use crate::helpers::{error_event, new_event_id, spawn_app, TestApp};

/// A `user_report` envelope as sentry-java sends it: item header with `content_type` and
/// `length`, envelope header `event_id` = the error's id.
fn java_user_report(event_id: &str, name: &str, email: &str, comments: &str) -> Vec<u8> {
    let payload = serde_json::to_vec(
        &json!({"event_id": event_id, "name": name, "email": email, "comments": comments}),
    )
    .unwrap();
    let mut body = format!(
        "{{\"event_id\":\"{event_id}\",\"sdk\":{{\"name\":\"sentry.java\",\"version\":\"8.12.0\"}}}}\n\
         {{\"type\":\"user_report\",\"content_type\":\"application/json\",\"length\":{}}}\n",
        payload.len()
    )
    .into_bytes();
    body.extend_from_slice(&payload);
    body.push(b'\n');
    body
}

/// A `feedback` envelope as @sentry/browser's `captureFeedback` sends it: no `length`.
fn js_feedback(own_id: &str, associated: Option<&str>, message: &str) -> Vec<u8> {
    let mut feedback = json!({"message": message, "contact_email": "ana@example.com",
                              "name": "Ana", "url": "https://shop.example/cart", "source": "api"});
    if let Some(id) = associated {
        feedback["associated_event_id"] = json!(id);
    }
    let event = json!({"type": "feedback", "event_id": own_id, "level": "info",
                       "environment": "production", "platform": "javascript",
                       "contexts": {"feedback": feedback}});
    format!(
        "{{\"event_id\":\"{own_id}\",\"sent_at\":\"2026-11-30T12:00:00Z\",\"sdk\":{{\"name\":\"sentry.javascript.browser\",\"version\":\"11.12.0\"}}}}\n\
         {{\"type\":\"feedback\"}}\n{}\n",
        event
    )
    .into_bytes()
}

async fn feedback_rows(app: &TestApp) -> Vec<(String, String, Option<i64>, String)> {
    sqlx::query_as(
        "SELECT name, comments, issue_id, source FROM user_feedback ORDER BY received_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn issue_of(app: &TestApp, event_id: &str) -> i64 {
    sqlx::query_scalar("SELECT issue_id FROM event_ids WHERE event_id = $1::uuid")
        .bind(event_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_report_is_linked_to_its_event_whichever_arrives_first() {
    let app = spawn_app().await;
    // After the event.
    let first = error_event("ValueError", "bad quantity", "parse_quantity", 10);
    let first_id = app.store_ok(&first).await;
    let answer = app
        .post_envelope(java_user_report(
            &first_id,
            "Jane",
            "jane@example.com",
            "I pressed pay twice",
        ))
        .await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["id"], first_id.as_str());

    // Before the event: kept, then linked when the event arrives.
    let mut second = error_event("KeyError", "sku", "lookup_sku", 20);
    let second_id = new_event_id();
    second["event_id"] = json!(second_id);
    let answer = app
        .post_envelope(java_user_report(
            &second_id,
            "Omar",
            "omar@example.com",
            "Cart was empty",
        ))
        .await;
    assert_eq!(answer.status(), 200);
    let rows = feedback_rows(&app).await;
    assert_eq!(rows[1].2, None, "no event yet: {rows:?}");
    app.store_ok(&second).await;

    let rows = feedback_rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].2, Some(issue_of(&app, &first_id).await));
    assert_eq!(
        rows[1].2,
        Some(issue_of(&app, &second_id).await),
        "linked by the writer"
    );
    assert!(rows.iter().all(|r| r.3 == "user_report"));

    // Operators read it on the issue page, with a link to the event, and the list marks it.
    let browser = app.admin_browser().await;
    let issue = issue_of(&app, &second_id).await;
    let page = browser.get(&format!("/issues/{issue}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("User feedback"), "{}", page.body);
    assert!(page.body.contains("Cart was empty"));
    assert!(page.body.contains("omar@example.com"));
    assert!(page
        .body
        .contains(&format!("/issues/{issue}/events/{second_id}#event")));
    assert!(
        !page.body.contains("I pressed pay twice"),
        "another issue's report"
    );
    let list = browser.get("/").await;
    assert_eq!(
        list.body.matches("badge-feedback").count(),
        2,
        "{}",
        list.body
    );
    let all = browser
        .get(&format!("/projects/{}/feedback", app.project_id))
        .await;
    assert_eq!(all.status, 200);
    assert!(all.body.contains("I pressed pay twice") && all.body.contains("Cart was empty"));

    // A repeat for the same event replaces the report (Sentry's rule), it does not add one.
    let answer = app
        .post_envelope(java_user_report(
            &first_id,
            "Jane",
            "jane@example.com",
            "Actually, once",
        ))
        .await;
    assert_eq!(answer.status(), 200);
    let rows = feedback_rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.1 == "Actually, once"));
}

#[tokio::test]
async fn feedback_items_from_capture_feedback_are_stored_with_their_context() {
    let app = spawn_app().await;
    let error_id = app
        .store_ok(&error_event("TypeError", "x is undefined", "checkout", 5))
        .await;
    let own_id = new_event_id();
    let answer = app
        .post_envelope(js_feedback(
            &own_id,
            Some(&error_id),
            "The pay button did nothing",
        ))
        .await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["id"], own_id.as_str());
    // A second piece of feedback about the same error is kept beside the first.
    app.post_envelope(js_feedback(
        &new_event_id(),
        Some(&error_id),
        "Still broken",
    ))
    .await;
    // Feedback about nothing in particular is kept too, without an issue.
    app.post_envelope(js_feedback(&new_event_id(), None, "Love the new design"))
        .await;
    type Row = (String, String, Option<String>, Option<String>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT comments, email, url, environment, issue_id FROM user_feedback ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let issue = issue_of(&app, &error_id).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].0, "The pay button did nothing");
    assert_eq!(rows[0].1, "ana@example.com");
    assert_eq!(rows[0].2.as_deref(), Some("https://shop.example/cart"));
    assert_eq!(rows[0].3.as_deref(), Some("production"));
    assert_eq!(
        (rows[0].4, rows[1].4, rows[2].4),
        (Some(issue), Some(issue), None)
    );
    assert_eq!(app.event_count().await, 1, "feedback is not an error event");
}

#[tokio::test]
async fn malformed_oversized_or_unauthorized_feedback_is_refused_and_nothing_is_lost() {
    let app = spawn_app().await;
    let event_id = app.store_ok(&error_event("E", "x", "f", 1)).await;
    app.post_envelope(java_user_report(&event_id, "A", "a@example.com", "kept"))
        .await;

    let long = "x".repeat(4097);
    let answer = app
        .post_envelope(java_user_report(&event_id, "A", "a@example.com", &long))
        .await;
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("4096"), "{body}");

    let huge = "y".repeat(70_000);
    let answer = app
        .post_envelope(java_user_report(&event_id, &huge, "a@example.com", "z"))
        .await;
    assert_eq!(answer.status(), 413);

    let no_id = b"{}\n{\"type\":\"user_report\"}\n{\"comments\":\"who?\"}\n".to_vec();
    assert_eq!(app.post_envelope(no_id).await.status(), 400);
    let no_message = b"{}\n{\"type\":\"feedback\"}\n{\"contexts\":{\"feedback\":{}}}\n".to_vec();
    assert_eq!(app.post_envelope(no_message).await.status(), 400);

    let wrong_key = app
        .client
        .post(app.envelope_url())
        .header(
            "X-Sentry-Auth",
            "Sentry sentry_key=00000000000000000000000000000000, sentry_version=7",
        )
        .body(java_user_report(&event_id, "A", "a@example.com", "forged"))
        .send()
        .await
        .unwrap();
    assert!(
        [401, 403].contains(&wrong_key.status().as_u16()),
        "{}",
        wrong_key.status()
    );
    let rows = feedback_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "kept");
}

fn dialog_url(app: &TestApp, event_id: &str) -> String {
    format!(
        "{}/api/embed/error-page/?dsn={}&eventId={event_id}&name=Jane%20Doe&email=jane%40example.com&title=Sorry!",
        app.address,
        app.dsn()
    )
}

#[tokio::test]
async fn the_crash_report_dialog_is_served_with_cors_and_takes_the_form() {
    let app = spawn_app().await;
    let event_id = app.store_ok(&error_event("E", "x", "f", 1)).await;
    let origin = "https://shop.example";

    let script = app
        .client
        .get(dialog_url(&app, &event_id))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["access-control-allow-origin"], origin);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let text = script.text().await.unwrap();
    assert!(text.contains(&format!("\"eventId\":\"{event_id}\"")));
    assert!(text.contains("\"title\":\"Sorry!\"") && text.contains("\"name\":\"Jane Doe\""));

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, dialog_url(&app, &event_id))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert!(preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));

    let post = |fields: Vec<(&'static str, String)>| {
        let url = dialog_url(&app, &event_id);
        let client = app.client.clone();
        async move {
            client
                .post(url)
                .header("Origin", origin)
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    let invalid = post(vec![
        ("name", "".into()),
        ("email", "not-an-address".into()),
        ("comments", "it broke".into()),
    ])
    .await;
    assert_eq!(invalid.status(), 400);
    assert_eq!(invalid.headers()["access-control-allow-origin"], origin);
    let body: Value = invalid.json().await.unwrap();
    assert!(
        body["errors"]["name"].is_string() && body["errors"]["email"].is_string(),
        "{body}"
    );
    assert!(body["errors"].get("comments").is_none());

    let saved = post(vec![
        ("name", "Jane Doe".into()),
        ("email", "jane@example.com".into()),
        ("comments", "I clicked checkout".into()),
    ])
    .await;
    assert_eq!(saved.status(), 200);
    assert_eq!(saved.json::<Value>().await.unwrap(), json!({}));
    let rows = feedback_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].3.as_str()),
        ("Jane Doe", "I clicked checkout", "crash_report_dialog")
    );
    assert_eq!(rows[0].2, Some(issue_of(&app, &event_id).await));

    let too_big = post(vec![("comments", "z".repeat(20_000))]).await;
    assert_eq!(too_big.status(), 413);
}

#[tokio::test]
async fn the_dialog_refuses_a_missing_event_id_a_bad_dsn_and_a_flood() {
    let app = spawn_app().await;
    let event_id = new_event_id();
    let get = |url: String| {
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let no_event = get(format!(
        "{}/api/embed/error-page/?dsn={}&eventId=undefined",
        app.address,
        app.dsn()
    ))
    .await;
    assert_eq!(no_event.status(), 400);
    assert_eq!(
        no_event.json::<Value>().await.unwrap(),
        json!({"eventId": "Missing or invalid parameter."})
    );
    let bad_dsn = get(format!(
        "{}/api/embed/error-page/?dsn=nonsense&eventId={event_id}",
        app.address
    ))
    .await;
    assert_eq!(bad_dsn.status(), 404);
    let wrong_key = app
        .dsn()
        .replace(&app.key, "0123456789abcdef0123456789abcdef");
    let forged = get(format!(
        "{}/api/embed/error-page/?dsn={wrong_key}&eventId={event_id}",
        app.address
    ))
    .await;
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().contains_key("access-control-allow-origin"));

    // Ten reports a minute per address, then 429 with Retry-After; nothing past it is stored.
    let url = dialog_url(&app, &event_id);
    let mut statuses = Vec::new();
    for n in 0..12 {
        let answer = app
            .client
            .post(&url)
            .form(&[
                ("name", "Flood".to_owned()),
                ("email", "f@example.com".to_owned()),
                ("comments", format!("report {n}")),
            ])
            .send()
            .await
            .unwrap();
        if answer.status() == 429 {
            assert!(answer.headers().contains_key("retry-after"));
        }
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[200; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // One event id, one report: the repeats replaced it.
    assert_eq!(feedback_rows(&app).await.len(), 1);
}

#[tokio::test]
async fn the_user_feedback_api_takes_tokens_and_dsns_and_lists_linked_reports() {
    let app = spawn_app().await;
    let token = app.create_token("ops@example.com").await;
    let event_id = app.store_ok(&error_event("E", "x", "f", 1)).await;
    let url = format!(
        "{}/api/0/projects/faultline/{}/user-feedback/",
        app.address, app.project_id
    );
    let report = json!({"event_id": event_id, "name": "Jane", "email": "jane@example.com",
                        "comments": "It broke!"});

    let answer = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let saved: Value = answer.json().await.unwrap();
    assert_eq!(saved["eventID"], event_id.as_str());
    assert_eq!(saved["comments"], "It broke!");
    assert_eq!(
        saved["issue"]["id"],
        issue_of(&app, &event_id).await.to_string()
    );

    // The DSN works too (Sentry's `Authorization: DSN …`), answered with an empty 200.
    let other_event = app.store_ok(&error_event("F", "y", "g", 2)).await;
    let answer = app
        .client
        .post(url.replace("user-feedback", "user-reports"))
        .header("Authorization", format!("DSN {}", app.dsn()))
        .json(
            &json!({"event_id": other_event, "name": "Bo", "email": "bo@example.com",
                      "comments": "Me too"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().is_empty());

    let forged = app
        .client
        .post(&url)
        .header(
            "Authorization",
            format!(
                "DSN {}",
                app.dsn()
                    .replace(&app.key, "0123456789abcdef0123456789abcdef")
            ),
        )
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let anonymous = app.client.post(&url).json(&report).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // A made-up DSN learns nothing of which projects exist: 401 for a missing one too.
    let made_up = "DSN http://0123456789abcdef0123456789abcdef@localhost/999";
    for project in ["no-such-project", "checkout-api"] {
        let answer = app
            .client
            .post(format!(
                "{}/api/0/projects/faultline/{project}/user-feedback/",
                app.address
            ))
            .header("Authorization", made_up)
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{project}");
    }

    let invalid = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"event_id": "nope", "name": "", "email": "x", "comments": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let errors: Value = invalid.json().await.unwrap();
    for field in ["event_id", "name", "email", "comments"] {
        assert!(errors[field].is_array(), "{field}: {errors}");
    }

    // Reports whose event never arrived are not listed (Sentry lists reports tied to issues).
    app.client
        .post(&url)
        .bearer_auth(&token)
        .json(
            &json!({"event_id": new_event_id(), "name": "C", "email": "c@example.com",
                      "comments": "orphan"}),
        )
        .send()
        .await
        .unwrap();
    let (_, list) = app.api_get(&token, &url).await;
    let comments: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["comments"].as_str().unwrap())
        .collect();
    assert_eq!(comments, ["Me too", "It broke!"]);
    let (_, resolved) = app.api_get(&token, &format!("{url}?status=resolved")).await;
    assert_eq!(resolved, json!([]));
    let (status, _) = app.api_get(&token, &format!("{url}?status=nonsense")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn hostile_feedback_text_is_inert_on_every_page_that_shows_it() {
    let app = spawn_app().await;
    let event_id = app.store_ok(&error_event("E", "plain", "f", 1)).await;
    let script = "<script>alert(1)</script>";
    let image = "\"><img src=x onerror=alert(2)>";
    let template = "{{ 7*7 }}{% raw %}${7*7}";
    app.post_envelope(java_user_report(
        &event_id,
        script,
        image,
        &format!("{script}\n{image}\n{template}"),
    ))
    .await;
    // The feedback widget's page address is shown too.
    let mut widget = js_feedback(&new_event_id(), Some(&event_id), script);
    let text = String::from_utf8(widget.clone()).unwrap();
    widget = text
        .replace("https://shop.example/cart", "javascript:alert(3)")
        .into_bytes();
    assert_eq!(app.post_envelope(widget).await.status(), 200);

    let browser = app.admin_browser().await;
    let issue = issue_of(&app, &event_id).await;
    for path in [
        format!("/issues/{issue}"),
        format!("/projects/{}/feedback", app.project_id),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains("<script>alert"),
            "{path}: raw script tag"
        );
        assert!(!page.body.contains("<img src=x"), "{path}: raw img tag");
        assert!(
            !page.body.contains("href=\"javascript:"),
            "{path}: javascript: link"
        );
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || page
                    .body
                    .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: the text is shown, escaped"
        );
        assert!(
            page.body.contains(template),
            "{path}: template syntax shown as text"
        );
    }
}

/// Feedback is not spooled: while PostgreSQL is away a report is a 503 the client may retry
/// (with Retry-After), never a 500, and it is stored once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_sent_while_the_database_is_down_is_a_503_to_retry() {
    let crate::outage::ProxiedApp {
        app,
        bootstrap,
        proxy,
    } = crate::outage::proxied_app(|_| {}).await;
    // The key is known (and cached) before the outage.
    let event_id = app.store_ok(&error_event("E", "x", "f", 1)).await;
    proxy.cut();
    let report = java_user_report(&event_id, "Jane", "jane@example.com", "during the outage");
    let answer = app.post_envelope(report.clone()).await;
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    proxy.restore().await;
    let mut status = 0;
    for _ in 0..50 {
        status = app.post_envelope(report.clone()).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(feedback_rows(&bootstrap).await.len(), 1);
}

/// An envelope with `items` user reports in it, each about an event of its own (a report
/// replaces an earlier one about the same event).
fn user_reports(items: usize) -> Vec<u8> {
    let mut body = b"{}\n".to_vec();
    for i in 0..items {
        let payload = json!({"event_id": new_event_id(), "name": "N", "email": "n@example.com",
                             "comments": format!("report {i}")});
        body.extend_from_slice(format!("{{\"type\":\"user_report\"}}\n{payload}\n").as_bytes());
    }
    body
}

/// A public DSN cannot fill the database with feedback: an envelope carries at most ten
/// reports, and a project takes 120 a minute through its DSN (envelopes and the API alike);
/// past that, 429 with Retry-After and nothing stored. Operators' tokens are not limited.
#[tokio::test]
async fn feedback_through_the_dsn_is_limited_per_envelope_and_per_project() {
    let app = spawn_app().await;
    let eleven = app.post_envelope(user_reports(11)).await;
    assert_eq!(eleven.status(), 400);
    assert!(eleven
        .text()
        .await
        .unwrap()
        .contains("at most 10 feedback items"));
    // The quota is 120 at once, then one more every half second: a slow machine sees a few
    // more accepted, never an unbounded number.
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..20 {
        let answer = app.post_envelope(user_reports(10)).await;
        match answer.status().as_u16() {
            200 => accepted += 10,
            429 => {
                refused = Some(answer);
                break;
            }
            other => panic!("answered {other}"),
        }
    }
    let refused = refused.expect("a 429 within 200 reports");
    assert!(refused.headers().contains_key("retry-after"));
    let replenished = 2 * started.elapsed().as_secs() as usize + 1;
    assert!(
        (120..=120 + replenished + 10).contains(&accepted),
        "{accepted} accepted"
    );
    assert_eq!(
        feedback_rows(&app).await.len(),
        accepted,
        "nothing refused is stored"
    );
    // The DSN-authenticated API draws on the same quota.
    let url = format!(
        "{}/api/0/projects/faultline/{}/user-feedback/",
        app.address, app.project_id
    );
    let report = json!({"event_id": new_event_id(), "name": "Jo", "email": "jo@example.com",
                        "comments": "too late"});
    let mut api_refused = false;
    for _ in 0..20 {
        let answer = app
            .client
            .post(&url)
            .header("Authorization", format!("DSN {}", app.dsn()))
            .json(&report)
            .send()
            .await
            .unwrap();
        if answer.status() == 429 {
            api_refused = true;
            break;
        }
        assert_eq!(answer.status(), 200);
    }
    assert!(api_refused, "the API is limited too");

    let token = app.create_token("ops@example.com").await;
    let by_operator = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(by_operator.status(), 200, "operators are not limited");
}

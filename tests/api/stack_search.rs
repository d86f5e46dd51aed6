//! Free text inside stack traces: the issue list and the API find an issue by a frame's
//! function or file, an exception's value or a message, within the project filter, and say
//! when the text is too short to look inside stack traces.

use serde_json::{json, Value};

use crate::helpers::{error_event, new_event_id, spawn_app, Browser, TestApp};

/// Titles the dashboard lists for `query` (any status).
async fn listed(browser: &Browser, query: &str) -> Vec<String> {
    let page = browser
        .get(&format!("/?status=all&query={}", urlencode(query)))
        .await;
    assert_eq!(page.status, 200, "{query}");
    let re = regex::Regex::new(r#"class="issue-title" href="/issues/\d+">([^<]+)</a>"#).unwrap();
    let mut titles: Vec<String> = re
        .captures_iter(&page.body)
        .map(|c| c[1].replace("&#39;", "'").replace("&#x27;", "'"))
        .collect();
    titles.sort();
    titles
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn seed(app: &TestApp, other_key: &str, other_project: i64) {
    // The function and file appear only in frames, never in a title or culprit.
    let mut quantity = error_event("ValueError", "bad input", "parse_quantity", 12);
    quantity["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array_mut()
        .unwrap()
        .insert(
            0,
            json!({"function": "load_basket", "module": "app.basket", "filename": "app/basket_loader.py", "lineno": 4}),
        );
    app.store_ok(&quantity).await;
    // The cause's value is only in the chain, not in the title (the raised exception's).
    app.store_ok(&json!({
        "event_id": new_event_id(),
        "exception": {"values": [
            {"type": "ConnectionResetError", "value": "connection reset by peer",
             "stacktrace": {"frames": [{"function": "send_charge", "module": "app.gateway", "filename": "app/gateway.py"}]}},
            {"type": "RuntimeError", "value": "charge failed",
             "stacktrace": {"frames": [{"function": "checkout", "module": "app.views", "filename": "app/views.py"}]}}
        ]}
    }))
    .await;
    app.store_ok(&json!({"event_id": new_event_id(),
                         "logentry": {"message": "Payment declined for order %s", "formatted": "Payment declined for order 1001"}}))
        .await;
    // The same function in another project.
    let mut elsewhere = error_event("TypeError", "elsewhere", "parse_quantity", 3);
    elsewhere["event_id"] = json!(new_event_id());
    let answer = app
        .client
        .post(format!("{}/api/{other_project}/store/", app.address))
        .header(
            "X-Sentry-Auth",
            format!("Sentry sentry_key={other_key}, sentry_version=7"),
        )
        .json(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn free_text_finds_frames_files_values_and_messages_within_the_project_filter() {
    let app = spawn_app().await;
    let other_key = faultline::domain::keys::new_public_key();
    let other = faultline::store::projects::create(&app.pool, "other", &other_key)
        .await
        .unwrap();
    seed(&app, &other_key, other).await;
    let browser = app.admin_browser().await;

    let value_error = "ValueError: bad input";
    assert_eq!(
        listed(&browser, "parse_quantity").await,
        ["TypeError: elsewhere", value_error]
    );
    assert_eq!(listed(&browser, "basket_loader.py").await, [value_error]);
    assert_eq!(
        listed(&browser, "APP.BASKET").await,
        [value_error],
        "case-insensitive"
    );
    assert_eq!(
        listed(&browser, "reset by peer").await,
        ["RuntimeError: charge failed"]
    );
    assert_eq!(
        listed(&browser, "send_charge").await,
        ["RuntimeError: charge failed"]
    );
    assert_eq!(
        listed(&browser, "declined for order").await,
        ["Payment declined for order 1001"]
    );
    assert!(listed(&browser, "no_such_function").await.is_empty());
    // LIKE's wildcards are text here.
    assert!(listed(&browser, "parse%quantity").await.is_empty());

    // The project filter holds.
    let page = browser
        .get(&format!(
            "/?status=all&project={}&query=parse_quantity",
            app.project_id
        ))
        .await;
    assert!(page.body.contains(value_error) && !page.body.contains("elsewhere"));

    // Too short for stack traces: titles only, and the page says so.
    let short = browser.get("/?status=all&query=pa").await;
    assert!(
        short.body.contains("shorter than 3 characters"),
        "{}",
        short.body
    );

    // The API's query is the same search.
    let token = app.create_token("api@example.com").await;
    let (_, found) = app
        .api_get(
            &token,
            &format!(
                "{}/api/0/projects/faultline/{}/issues/?query=send_charge",
                app.address, app.project_id
            ),
        )
        .await;
    let found = found.as_array().unwrap();
    let titles: Vec<&str> = found.iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["RuntimeError: charge failed"]);
}

#[tokio::test]
async fn an_issue_keeps_a_bounded_number_of_search_terms() {
    let app = spawn_app().await;
    // Ten events of one issue (one fingerprint), each with sixty functions of its own.
    for n in 0..10 {
        let frames: Vec<Value> = (0..60)
            .map(|f| json!({"function": format!("step_{n}_{f}"), "in_app": true}))
            .collect();
        app.store_ok(&json!({
            "event_id": new_event_id(),
            "fingerprint": ["nightly-job"],
            "exception": {"values": [{"type": "JobError", "value": format!("job {n}"),
                                      "stacktrace": {"frames": frames}}]}
        }))
        .await;
    }
    let (issues, terms, counted): (i64, i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM issues), (SELECT count(*) FROM issue_search_terms),
                (SELECT max(search_terms) FROM issues)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(issues, 1, "one issue");
    // Up to the bound (a term already stored may take a slot of the batch that reaches it).
    let max = faultline::store::search_terms::MAX_SEARCH_TERMS_PER_ISSUE as i64;
    assert!(
        (max - 10..=max).contains(&terms),
        "{terms} of 611 distinct terms kept"
    );
    assert_eq!(counted as i64, terms, "the issue's count matches its rows");
}

#[tokio::test]
async fn search_text_with_a_nul_is_refused_with_400_and_odd_characters_are_searched() {
    // A NUL cannot be stored, so it matches nothing: PostgreSQL refuses such text, which is the
    // client's mistake (400), never a fault (500).
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "bad", "parse_quantity", 1))
        .await;
    let browser = app.admin_browser().await;
    let token = app.create_token("api@example.com").await;
    for (text, expected) in [
        ("parse\u{0}quantity", 400),
        ("\u{0}", 400),
        ("%_\\", 200),
        ("é\u{FFFF}", 200),
    ] {
        let page = browser
            .get(&format!("/?status=all&query={}", urlencode(text)))
            .await;
        assert_eq!(page.status, expected, "{text:?}");
        let (status, _) = app
            .api_get(
                &token,
                &format!(
                    "{}/api/0/projects/faultline/{}/issues/?query={}",
                    app.address,
                    app.project_id,
                    urlencode(text)
                ),
            )
            .await;
        assert_eq!(status, expected, "{text:?}");
    }
}

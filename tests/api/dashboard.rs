//! What operators see: the issue list's filters, sort and pagination, the issue and event
//! pages, regressions, key revocation, and hostile event data rendered inert everywhere.

use serde_json::json;

use crate::helpers::{error_event, new_event_id, spawn_app, TestApp};

const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(2)>",
    "javascript:alert(3)",
    "{{ 7*7 }}{% raw %}${7*7}",
];

fn hostile_event() -> serde_json::Value {
    json!({
        "event_id": new_event_id(),
        "platform": "python",
        "transaction": XSS[1],
        "environment": XSS[0],
        "release": XSS[1],
        "tags": {XSS[0]: XSS[1], "link": XSS[2]},
        "user": {"id": XSS[0], "email": XSS[1]},
        "request": {"method": "GET", "url": XSS[2], "headers": {"X-Evil": XSS[0]}, "data": XSS[3]},
        "breadcrumbs": [{"message": XSS[0], "category": XSS[1], "data": {"k": XSS[3]}}],
        "contexts": {"os": {"name": XSS[0]}},
        "extra": {"x": XSS[1]},
        "exception": {"values": [{
            "type": XSS[0], "value": XSS[1],
            "stacktrace": {"frames": [{
                "filename": XSS[0], "function": XSS[1], "module": XSS[3], "in_app": true, "lineno": 3,
                "context_line": XSS[0], "pre_context": [XSS[1]], "post_context": [XSS[3]], "vars": {XSS[0]: XSS[1]}
            }]}
        }]}
    })
}

fn assert_inert(page: &str, what: &str) {
    assert!(!page.contains("<script>alert"), "{what}: raw script tag");
    assert!(!page.contains("<img src=x"), "{what}: raw img tag");
    assert!(
        !page.contains("href=\"javascript:"),
        "{what}: javascript: link"
    );
    let escaped = [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&#60;script&#62;alert(1)&#60;/script&#62;",
    ];
    assert!(
        escaped.iter().any(|e| page.contains(e)),
        "{what}: the text is shown, escaped"
    );
}

#[tokio::test]
async fn hostile_event_data_renders_as_inert_text_on_every_page() {
    let app = spawn_app().await;
    let id = app.store_ok(&hostile_event()).await;
    let browser = app.admin_browser().await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let list = browser.get("/?status=all").await;
    assert_eq!(list.status, 200);
    assert_inert(&list.body, "issue list");
    let issue = browser.get(&format!("/issues/{issue_id}")).await;
    assert_inert(&issue.body, "issue page");
    let event = browser
        .get(&format!("/issues/{issue_id}/events/{id}?full=1"))
        .await;
    assert_eq!(event.status, 200);
    assert_inert(&event.body, "event page");
    assert!(
        event.body.contains("javascript:alert(3)"),
        "the URL is shown as text"
    );
    assert!(
        event.body.contains("{{ 7*7 }}{% raw %}${7*7}"),
        "template syntax is shown, not evaluated"
    );
    let filtered = browser
        .get("/?environment=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_inert(&filtered.body, "filtered list");
}

async fn seed(app: &TestApp) {
    let cases = [
        ("AlphaError", "production", "1.0", "error", None),
        ("BetaError", "staging", "1.0", "warning", None),
        ("GammaError", "production", "2.0", "error", Some(false)),
        ("DeltaError", "production", "2.0", "fatal", None),
    ];
    for (i, (ty, env, release, level, handled)) in cases.iter().enumerate() {
        for n in 0..=i {
            let mut event = error_event(ty, "boom", &format!("f{i}"), 1);
            event["environment"] = json!(env);
            event["release"] = json!(release);
            event["level"] = json!(level);
            event["tags"] = json!({"region": if n % 2 == 0 { "eu" } else { "us" }});
            event["user"] = json!({"id": format!("u{n}")});
            if let Some(handled) = handled {
                event["exception"]["values"][0]["mechanism"]["handled"] = json!(handled);
                event["request"] =
                    json!({"method": "POST", "url": "https://shop.example/checkout?x=1"});
                event["contexts"] = json!({"response": {"status_code": 500}});
            }
            app.store_ok(&event).await;
        }
    }
}

fn titles(body: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"class="issue-title" href="/issues/\d+">([^<]+)</a>"#).unwrap();
    re.captures_iter(body)
        .map(|c| c[1].split(':').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn issue_list_filters_sorts_and_shows_filtered_counts() {
    let app = spawn_app().await;
    seed(&app).await;
    let browser = app.admin_browser().await;
    let cases: &[(&str, &[&str])] = &[
        (
            "/",
            &["DeltaError", "GammaError", "BetaError", "AlphaError"],
        ),
        (
            "/?sort=events",
            &["DeltaError", "GammaError", "BetaError", "AlphaError"],
        ),
        (
            "/?sort=first_seen",
            &["DeltaError", "GammaError", "BetaError", "AlphaError"],
        ),
        ("/?environment=staging", &["BetaError"]),
        ("/?release=2.0", &["DeltaError", "GammaError"]),
        ("/?level=fatal", &["DeltaError"]),
        ("/?query=Gamma", &["GammaError"]),
        (
            "/?query=region%3Aus",
            &["DeltaError", "GammaError", "BetaError"],
        ),
        ("/?unhandled=1", &["GammaError"]),
        ("/?status=resolved", &[]),
        // The search box reads the same syntax as the API (and Sentry).
        ("/?query=is%3Aunhandled", &["GammaError"]),
        ("/?query=level%3Afatal", &["DeltaError"]),
        ("/?query=environment%3Astaging", &["BetaError"]),
        ("/?query=is%3Aresolved", &[]),
    ];
    for (url, expected) in cases {
        let page = browser.get(url).await;
        assert_eq!(page.status, 200, "{url}");
        assert_eq!(titles(&page.body), *expected, "{url}");
    }
    let gamma = browser.get("/?query=Gamma").await.body;
    assert!(gamma.contains("unhandled"), "unhandled badge");
    assert!(
        gamma.contains("POST /checkout → 500"),
        "the request it failed on"
    );
    // Delta has 4 events, 2 of them tagged region:us.
    let us = browser.get("/?query=DeltaError+region%3Aus").await.body;
    assert!(
        us.contains(r#"<td class="num strong">2</td>"#),
        "counts respect the filter"
    );
    let bad = browser.get("/?sort=sideways").await;
    assert_eq!(bad.status, 400);
    let bad = browser.get("/?query=is%3Asideways").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("unknown status in is:sideways"),
        "{}",
        bad.body
    );
}

#[tokio::test]
async fn keyset_pagination_walks_every_issue_once() {
    let app = spawn_app().await;
    for i in 0..30 {
        app.store_ok(&error_event(&format!("Error{i:02}"), "x", "f", 1))
            .await;
    }
    let browser = app.admin_browser().await;
    let first = browser.get("/").await.body;
    let mut seen = titles(&first);
    assert_eq!(seen.len(), 25);
    let next = regex::Regex::new(r#"href="([^"]+)" rel="next""#)
        .unwrap()
        .captures(&first)
        .expect("a next link")[1]
        .replace("&amp;", "&");
    let second = browser.get(&next).await.body;
    let rest = titles(&second);
    assert_eq!(rest.len(), 5);
    seen.extend(rest);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 30, "no issue shown twice or skipped");
    assert!(!second.contains("rel=\"next\""));
    // A forged cursor is a 400, also one whose time PostgreSQL cannot hold (it was a 500).
    for forged in [
        "nonsense",
        "-1000000000000000000:1:0",
        "9223372036854775807:1:0",
    ] {
        let answer = browser.get(&format!("/?cursor={forged}")).await;
        assert_eq!(answer.status, 400, "{forged}");
    }
}

#[tokio::test]
async fn issue_page_shows_counts_tags_grouping_and_navigates_events() {
    let app = spawn_app().await;
    seed(&app).await;
    let browser = app.admin_browser().await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues WHERE title LIKE 'DeltaError%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = browser.get(&format!("/issues/{issue_id}")).await.body;
    assert!(page.contains("<dd>4</dd>"), "event count");
    assert!(
        page.contains("region") && page.contains("50%"),
        "tag distribution"
    );
    assert!(
        page.contains("app.orders :: f3") || page.contains("app.orders"),
        "why grouped shows the frames"
    );
    assert!(
        page.contains("Newer ›</span>"),
        "the latest event has no newer one"
    );
    let older = regex::Regex::new(r#"href="(/issues/\d+/events/[0-9a-f]{32})\#event">‹ Older"#)
        .unwrap()
        .captures(&page)
        .expect("older link")[1]
        .to_owned();
    let older_page = browser.get(&older).await;
    assert_eq!(older_page.status, 200);
    assert!(older_page.body.contains("Newer ›</a>"));
    let oldest = browser
        .get(&format!("/issues/{issue_id}/events/oldest"))
        .await
        .body;
    assert!(
        oldest.contains("‹ Older</span>"),
        "the oldest event has no older one"
    );
    let events_listed = regex::Regex::new(r#"<tr[^>]*>\s*<td><a href="/issues/\d+/events/"#)
        .unwrap()
        .find_iter(&page)
        .count();
    assert_eq!(events_listed, 4);

    let event_id: uuid::Uuid =
        sqlx::query_scalar("SELECT event_id FROM events WHERE issue_id = $1 LIMIT 1")
            .bind(issue_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let json = browser
        .get(&format!(
            "/issues/{issue_id}/events/{}/json",
            event_id.simple()
        ))
        .await;
    assert_eq!(json.status, 200);
    assert!(json.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let parsed: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(parsed["exception"]["values"][0]["type"], "DeltaError");
}

#[tokio::test]
async fn resolved_issue_with_a_new_event_shows_as_a_regression() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let browser = app.admin_browser().await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    browser
        .post(
            &format!("/issues/{issue_id}/status"),
            &[("status", "resolved")],
        )
        .await;
    assert!(
        titles(&browser.get("/").await.body).is_empty(),
        "resolved issues leave the default list"
    );
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let list = browser.get("/").await.body;
    assert_eq!(titles(&list), vec!["ValueError"]);
    assert!(list.contains("badge-warn\">regression"));
    assert!(browser
        .get(&format!("/issues/{issue_id}"))
        .await
        .body
        .contains("regression"));

    browser
        .post(
            &format!("/issues/{issue_id}/status"),
            &[("status", "ignored")],
        )
        .await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    assert!(
        titles(&browser.get("/").await.body).is_empty(),
        "ignored issues keep counting but stay hidden"
    );
    let count: i64 = sqlx::query_scalar("SELECT event_count FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn revoked_key_is_refused_by_ingest_at_once_and_rotation_issues_a_new_dsn() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let browser = app.admin_browser().await;
    let project = browser
        .get(&format!("/projects/{}", app.project_id))
        .await
        .body;
    assert!(project.contains(&app.key), "the DSN is shown");
    for language in [
        "Python",
        "JavaScript (browser)",
        "JavaScript (Node)",
        "Rust",
        "Java",
        "curl",
    ] {
        assert!(
            project.contains(&format!("<summary>{language}</summary>")),
            "{language} snippet"
        );
    }
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM project_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let revoked = browser
        .post(
            &format!("/projects/{}/keys/{key_id}/revoke", app.project_id),
            &[],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(
        app.store(&error_event("ValueError", "x", "f", 1))
            .await
            .status(),
        403
    );

    browser
        .post(
            &format!("/projects/{}/keys", app.project_id),
            &[("label", "mobile")],
        )
        .await;
    let new_key: String =
        sqlx::query_scalar("SELECT public_key FROM project_keys WHERE label = 'mobile'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let rotated_id: i64 = sqlx::query_scalar("SELECT id FROM project_keys WHERE label = 'mobile'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    browser
        .post(
            &format!("/projects/{}/keys/{rotated_id}/rotate", app.project_id),
            &[],
        )
        .await;
    let active: Vec<String> =
        sqlx::query_scalar("SELECT public_key FROM project_keys WHERE revoked_at IS NULL")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0], new_key, "rotation replaced the key");

    let created = browser.post("/projects", &[("name", "billing")]).await;
    assert_eq!(created.status, 303);
    let listing = browser.get("/projects").await.body;
    assert!(listing.contains("billing") && listing.contains("checkout-api"));
}

#[tokio::test]
async fn operators_who_are_not_admins_cannot_manage_projects() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    let (mut browser, _) = app
        .try_login("ops@example.com", crate::helpers::PASSWORD, "/")
        .await;
    browser.csrf = crate::helpers::csrf_in(&browser.get("/").await.body).unwrap();
    assert_eq!(
        browser
            .post("/projects", &[("name", "sneaky")])
            .await
            .status,
        403
    );
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM project_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        browser
            .post(
                &format!("/projects/{}/keys/{key_id}/revoke", app.project_id),
                &[]
            )
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn a_server_fault_shows_a_generic_page_and_is_filed_in_the_faultline_project() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    // A stored event that cannot be decoded: a real server-side fault when the page opens it.
    sqlx::query("UPDATE events SET body = '\\x00010203'::bytea")
        .execute(&app.pool)
        .await
        .unwrap();
    let browser = app.admin_browser().await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let page = browser.get(&format!("/issues/{issue_id}")).await;
    assert_eq!(page.status, 500);
    assert!(page.body.contains(faultline::error::GENERIC_ERROR));
    assert!(
        !page.body.contains("zstd") && !page.body.contains("Unknown frame"),
        "no internal detail on the page"
    );
    let error_id = regex::Regex::new(r"Error id: <code>([0-9a-f]{32})</code>")
        .unwrap()
        .captures(&page.body)
        .expect("an error id")[1]
        .to_owned();

    let mut filed = None;
    for _ in 0..200 {
        filed = sqlx::query_as::<_, (String, String)>(
            "SELECT i.title, t.value FROM issues i JOIN projects p ON p.id = i.project_id
               JOIN issue_tag_values t ON t.issue_id = i.id AND t.key = 'error_id'
              WHERE p.name = 'faultline'",
        )
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        if filed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (title, filed_id) = filed.expect("the fault was filed as an event");
    assert_eq!(filed_id, error_id, "the same error id as the page");
    assert!(title.starts_with("InternalError"), "{title}");

    // The same fault on every view files at most its route's share a minute (a burst of that
    // many, then one every six seconds).
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(
            browser.get(&format!("/issues/{issue_id}")).await.status,
            500
        );
    }
    let filed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events e JOIN projects p ON p.id = e.project_id
              WHERE p.name = 'faultline'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let share = faultline::self_report::FILED_PER_ROUTE_PER_MINUTE as i64;
    crate::helpers::eventually("the route's share filed", || async {
        filed().await >= share
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let refilled = started.elapsed().as_secs() as i64 / 6 + 1;
    let filed = filed().await;
    assert!(filed <= share + refilled, "{filed} of 21 faults filed");
}

/// The heading's issue count is exact up to 1,000 and "1000+" beyond, so a huge project never
/// pays for an exact count on every page view.
#[tokio::test]
async fn issue_list_heading_counts_up_to_a_thousand_then_says_1000_plus() {
    let app = spawn_app().await;
    app.store_ok(&error_event("SeedError", "x", "f", 1)).await;
    // 1,000 more issues of the same project, copied from the stored one in SQL: storing them
    // one by one through ingest would only make the test slow.
    sqlx::query(
        "INSERT INTO issues (project_id, hash, title, culprit, level, first_seen, last_seen, grouping)
         SELECT project_id, hash || n, title || n, culprit, level, first_seen, last_seen, grouping
           FROM issues, generate_series(1, 1000) n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let browser = app.admin_browser().await;
    let heading = |body: &str| {
        regex::Regex::new(r#"<span class="count-pill">([^<]+)</span>"#)
            .unwrap()
            .captures(body)
            .expect("a count in the heading")[1]
            .to_owned()
    };
    assert_eq!(heading(&browser.get("/").await.body), "1000+");
    sqlx::query("UPDATE issues SET status = 'resolved' WHERE title LIKE '%7'")
        .execute(&app.pool)
        .await
        .unwrap();
    let unresolved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM issues WHERE status = 'unresolved'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(unresolved <= 1000);
    assert_eq!(
        heading(&browser.get("/").await.body),
        unresolved.to_string()
    );
    assert_eq!(
        heading(&browser.get("/?status=resolved").await.body),
        (1001 - unresolved).to_string()
    );
}

/// The environment drop-down offers the values events carried; a value that arrives while the
/// offered list is cached can still be filtered on through the URL, and is then selected.
#[tokio::test]
async fn environment_choices_come_from_events_and_a_new_value_filters_at_once() {
    let app = spawn_app().await;
    let mut event = error_event("ProdError", "x", "f", 1);
    event["environment"] = json!("production");
    app.store_ok(&event).await;
    let browser = app.admin_browser().await;
    let first = browser.get("/").await.body;
    assert!(first.contains(r#"<option value="production" >production</option>"#));

    let mut event = error_event("CanaryError", "x", "g", 2);
    event["environment"] = json!("canary-7");
    app.store_ok(&event).await;
    let page = browser.get("/?environment=canary-7").await;
    assert_eq!(page.status, 200);
    assert_eq!(titles(&page.body), ["CanaryError"]);
    assert!(page
        .body
        .contains(r#"<option value="canary-7" selected>canary-7</option>"#));
}

//! Who may see what: every page and API route, enumerated from the router, refuses anonymous
//! visitors; login, logout, expiry, throttling, CSRF and security headers.

use faultline::api::API_ROUTES;
use faultline::web::{PAGE_ROUTES, PUBLIC_ROUTES};

use crate::helpers::{browser_client, error_event, spawn_app, spawn_app_with, PASSWORD};

fn concrete(path: &str) -> String {
    let re = regex::Regex::new(r"\{[^}]+\}").unwrap();
    re.replace_all(path, "1").into_owned()
}

#[tokio::test]
async fn every_page_route_sends_anonymous_visitors_to_login() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let client = browser_client();
    assert!(PAGE_ROUTES.len() >= 10);
    for (method, path) in PAGE_ROUTES {
        let url = format!("{}{}", app.address, concrete(path));
        let request = match *method {
            "get" => client.get(&url),
            "post" => client
                .post(&url)
                .form(&[("status", "resolved"), ("name", "x")]),
            other => panic!("untested method {other}"),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 303, "{method} {path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("/login?next="),
            "{method} {path} → {location}"
        );
    }
    let status: String = sqlx::query_scalar("SELECT status::text FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "unresolved", "an anonymous POST changed nothing");
}

#[tokio::test]
async fn every_api_route_refuses_anonymous_requests_with_401_json() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for (method, path) in API_ROUTES {
        let url = format!("{}{}", app.address, concrete(path));
        let request = match *method {
            "get" => client.get(&url),
            "put" => client
                .put(&url)
                .json(&serde_json::json!({"status": "resolved"})),
            "post" => client.post(&url).json(&serde_json::json!({})),
            other => panic!("untested method {other}"),
        };
        for request in [
            request.try_clone().unwrap(),
            request.header("Authorization", "Bearer not-a-token"),
        ] {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body["error"].is_string(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn public_routes_are_reachable_without_login() {
    let app = spawn_app().await;
    let client = browser_client();
    for (method, path) in PUBLIC_ROUTES.iter().filter(|(m, _)| *m == "get") {
        let path = path.replace("{file}", "style.css");
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
    }
}

#[tokio::test]
async fn login_opens_the_dashboard_and_logout_ends_the_session() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    let (browser, answer) = app
        .try_login("Ops@Example.com", PASSWORD, "/projects")
        .await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.location, "/projects",
        "back to where the operator was going"
    );
    let cookie = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("faultline_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain-http base URL: no Secure flag"
    );
    let home = browser.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("ops@example.com"));

    let out = browser.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    let session_value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("faultline_session=")
        .to_owned();
    let stale = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = stale
        .get(format!("{}/", app.address))
        .header("Cookie", format!("faultline_session={session_value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        303,
        "the old session cookie no longer works"
    );
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_generic_answer() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    let (_, wrong_password) = app
        .try_login("ops@example.com", "not the password", "/")
        .await;
    let (_, unknown_email) = app
        .try_login("nobody@example.com", "not the password", "/")
        .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_email.status, 401);
    assert!(wrong_password
        .body
        .contains("Incorrect e-mail or password."));
    assert!(unknown_email.body.contains("Incorrect e-mail or password."));
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_without_revealing_it_exists() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    for _ in 0..5 {
        let (_, answer) = app.try_login("ops@example.com", "guess", "/").await;
        assert_eq!(answer.status, 401);
    }
    let (_, throttled) = app.try_login("ops@example.com", PASSWORD, "/").await;
    assert_eq!(throttled.status, 429, "even the right password waits");
    for _ in 0..5 {
        app.try_login("ghost@example.com", "guess", "/").await;
    }
    let (_, ghost) = app.try_login("ghost@example.com", "guess", "/").await;
    assert_eq!(ghost.status, 429, "unknown accounts are throttled alike");
    let (_, other) = app.try_login("other@example.com", "guess", "/").await;
    assert_eq!(
        other.status, 401,
        "other accounts from this address are not yet throttled"
    );
}

/// Guesses sent at once count against each other: no more than the limit are checked (they
/// used to be counted only once checked, so a burst all got through the throttle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_sent_at_once_are_throttled_like_guesses_in_a_row() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    let guesses = (0..12).map(|_| app.try_login("ops@example.com", "guess", "/"));
    let answers = futures_util::future::join_all(guesses).await;
    let statuses: Vec<u16> = answers.iter().map(|(_, answer)| answer.status).collect();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
    let counted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM login_failures WHERE subject LIKE 'email:%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        counted, checked as i64,
        "refused guesses do not prolong the wait"
    );
}

/// A login removes the form's CSRF cookie where it was set (`/login`): a removal for another
/// path leaves the browser's copy in place.
#[tokio::test]
async fn a_login_removes_the_forms_csrf_cookie() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    let (_, answer) = app.try_login("ops@example.com", PASSWORD, "/").await;
    assert_eq!(answer.status, 303);
    let removal = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("faultline_login_csrf="))
        .expect("the CSRF cookie is removed")
        .to_owned();
    assert!(removal.contains("Path=/login"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
}

#[tokio::test]
async fn idle_and_expired_sessions_and_password_changes_end_access() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    for expire in [
        "UPDATE sessions SET expires_at = now() - interval '1 second'",
        "UPDATE sessions SET last_seen_at = now() - interval '13 hours'",
    ] {
        let (browser, _) = app.try_login("ops@example.com", PASSWORD, "/").await;
        assert_eq!(browser.get("/").await.status, 200);
        sqlx::query(expire).execute(&app.pool).await.unwrap();
        assert_eq!(browser.get("/").await.status, 303, "{expire}");
    }
    let (browser, _) = app.try_login("ops@example.com", PASSWORD, "/").await;
    let hash = faultline::domain::credentials::hash_password("a brand new password").unwrap();
    faultline::store::users::set_password(&app.pool, "ops@example.com", &hash)
        .await
        .unwrap();
    assert_eq!(
        browser.get("/").await.status,
        303,
        "a password change ends sessions"
    );
}

#[tokio::test]
async fn state_changing_forms_need_the_session_csrf_token() {
    let app = spawn_app().await;
    app.store_ok(&error_event("ValueError", "x", "f", 1)).await;
    let browser = app.admin_browser().await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!("/issues/{issue_id}/status");
    assert_eq!(
        browser
            .post_raw(&path, &[("status", "resolved")])
            .await
            .status,
        403,
        "missing token"
    );
    assert_eq!(
        browser
            .post_raw(&path, &[("status", "resolved"), ("csrf_token", "00ff")])
            .await
            .status,
        403,
        "wrong token"
    );
    assert_eq!(browser.post_raw("/logout", &[]).await.status, 403);
    // Every POST page, present and future: a route whose handler forgot the check fails here.
    let placeholder = regex::Regex::new(r"\{[a-z_]+\}").unwrap();
    for (method, route) in faultline::web::PAGE_ROUTES {
        if *method != "post" {
            continue;
        }
        let path = placeholder.replace_all(route, "1");
        let answer = browser
            .post_raw(&path, &[("name", "x"), ("label", "x")])
            .await;
        assert_eq!(answer.status, 403, "POST {route} without a token");
    }
    let status: String = sqlx::query_scalar("SELECT status::text FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "unresolved");
    assert_eq!(
        browser.post(&path, &[("status", "resolved")]).await.status,
        303
    );
    let status: String = sqlx::query_scalar("SELECT status::text FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "resolved");
}

#[tokio::test]
async fn only_same_site_next_targets_are_followed_after_login() {
    let app = spawn_app().await;
    app.create_user("ops@example.com", false).await;
    for (next, expected) in [
        ("/issues/7", "/issues/7"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
    ] {
        let (_, answer) = app.try_login("ops@example.com", PASSWORD, next).await;
        assert_eq!(answer.location, expected, "{next}");
    }
}

#[tokio::test]
async fn pages_carry_security_headers_and_errors_use_the_layout() {
    let app = spawn_app().await;
    let browser = app.admin_browser().await;
    for path in [
        "/",
        "/projects",
        "/login",
        "/issues/999999",
        "/no/such/page",
    ] {
        let page = browser.get(path).await;
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["x-content-type-options"], "nosniff");
        assert!(page.headers.contains_key("referrer-policy"));
    }
    let missing = browser.get("/issues/999999").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("class=\"topbar\"") && missing.body.contains("Not Found"));
    let client = reqwest::Client::new();
    let api_missing = client
        .get(format!("{}/api/0/nothing/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(api_missing.status(), 404);
    assert!(api_missing.json::<serde_json::Value>().await.unwrap()["error"].is_string());
}

/// Argon2 takes a good part of a second per login (more in a debug build); it runs on the
/// blocking pool, so with a single HTTP worker other requests are still answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_checks_do_not_hold_up_other_requests() {
    let app = spawn_app_with(|s| s.workers = 1).await;
    app.create_user("ops@example.com", false).await;
    let started = std::time::Instant::now();
    let (_, answer) = app.try_login("ops@example.com", PASSWORD, "/").await;
    assert_eq!(answer.status, 303);
    let one_login = started.elapsed();

    let logins: Vec<_> = (0..2)
        .map(|_| {
            let app = app.at_port(app.addr.port());
            tokio::spawn(async move {
                app.try_login("ops@example.com", PASSWORD, "/")
                    .await
                    .1
                    .status
            })
        })
        .collect();
    // Health checks all the while the logins run: none may wait for a password check.
    let mut waited = std::time::Duration::ZERO;
    while !logins.iter().all(|l| l.is_finished()) {
        let asked = std::time::Instant::now();
        let health = app
            .client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        waited = waited.max(asked.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for login in logins {
        assert_eq!(login.await.unwrap(), 303);
    }
    // On the worker thread, the first health check would wait for both password checks: at
    // least twice one login. A busy machine may delay one by a fraction of a login, not one.
    assert!(
        waited < one_login,
        "/healthz took {waited:?} while logins ran; one login takes {one_login:?}"
    );
}

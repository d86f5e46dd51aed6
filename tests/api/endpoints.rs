//! The Endpoints page: failing requests by method + route + status, with their counts and top
//! issues, narrowed by environment, each linking to its issues; hostile routes stay text.

use serde_json::json;

use crate::helpers::{error_event, spawn_app, Browser, TestApp};

/// An error of `function` failing on `method url` (with `route` as the transaction, if any).
async fn fail(
    app: &TestApp,
    function: &str,
    (method, url, route): (&str, &str, Option<&str>),
    environment: &str,
    user: &str,
) {
    let mut event = error_event("ValueError", &format!("in {function}"), function, 10);
    event["request"] = json!({"method": method, "url": url});
    if let Some(route) = route {
        event["transaction"] = json!(route);
    }
    event["contexts"] = json!({"response": {"status_code": 500}});
    event["environment"] = json!(environment);
    event["user"] = json!({"id": user});
    app.store_ok(&event).await;
}

const ORDERS: (&str, &str, Option<&str>) = (
    "post",
    "https://shop.example/orders/5?coupon=x",
    Some("/orders/{id}"),
);
const CART: (&str, &str, Option<&str>) = ("GET", "https://shop.example/cart", None);
const HOSTILE: (&str, &str, Option<&str>) = (
    "GET",
    "https://shop.example/<script>alert(1)</script>",
    None,
);

/// `(endpoint, events, issues, users, top issue titles)` of each row, in the page's order.
fn rows(body: &str) -> Vec<(String, String, String, String, Vec<String>)> {
    let row = regex::Regex::new(
        r#"(?s)<a class="endpoint-name" href="[^"]*"><code>(.*?)</code></a>.*?<ul class="top-issues">(.*?)</ul>\s*</td>\s*<td class="num strong">([^<]*)</td>\s*<td class="num">([^<]*)</td>\s*<td class="num">([^<]*)</td>"#,
    )
    .unwrap();
    let title = regex::Regex::new(r#"<a href="/issues/\d+">([^<]*)</a>"#).unwrap();
    row.captures_iter(body)
        .map(|c| {
            let titles = title
                .captures_iter(&c[2])
                .map(|t| t[1].to_owned())
                .collect();
            (
                c[1].to_owned(),
                c[3].to_owned(),
                c[4].to_owned(),
                c[5].to_owned(),
                titles,
            )
        })
        .collect()
}

async fn page(browser: &Browser, path: &str) -> String {
    let page = browser.get(path).await;
    assert_eq!(page.status, 200, "{path}");
    page.body
}

#[tokio::test]
async fn failing_requests_are_listed_by_endpoint_with_counts_and_top_issues() {
    let app = spawn_app().await;
    fail(&app, "create_order", ORDERS, "production", "u1").await;
    fail(&app, "create_order", ORDERS, "production", "u2").await;
    fail(&app, "create_order", ORDERS, "production", "u1").await;
    fail(&app, "reserve_stock", ORDERS, "staging", "u3").await;
    fail(&app, "show_cart", CART, "production", "u1").await;
    fail(&app, "show_cart", CART, "production", "u4").await;
    fail(&app, "render", HOSTILE, "production", "u5").await;
    // An error without a request is on no endpoint.
    app.store_ok(&error_event("KeyError", "x", "batch_job", 1))
        .await;
    let browser = app.admin_browser().await;

    let body = page(&browser, "/endpoints").await;
    let listed = rows(&body);
    let orders = "POST /orders/{id} → 500";
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), r.3.as_str()))
            .collect::<Vec<_>>(),
        [
            (orders, "4", "2", "3"),
            ("GET /cart → 500", "2", "1", "2"),
            (
                "GET /&#60;script&#62;alert(1)&#60;/script&#62; → 500",
                "1",
                "1",
                "1"
            ),
        ],
        "{body}"
    );
    assert_eq!(
        listed[0].4,
        [
            "ValueError: in create_order",
            "ValueError: in reserve_stock"
        ],
        "top issues, most events first"
    );
    assert!(!body.contains("<script>alert"), "hostile route is text");

    // The environment filter narrows counts and issues.
    let staging = rows(&page(&browser, "/endpoints?environment=staging").await);
    assert_eq!(staging.len(), 1);
    assert_eq!(
        (
            staging[0].0.as_str(),
            staging[0].1.as_str(),
            staging[0].2.as_str()
        ),
        (orders, "1", "1")
    );
    let other_project = page(&browser, "/endpoints?project=999").await;
    assert!(rows(&other_project).is_empty());
    assert!(other_project.contains("No failing requests"));
    assert_eq!(browser.get("/endpoints?period=forever").await.status, 400);

    // A row links to the issue list narrowed to its endpoint.
    let link = regex::Regex::new(r#"<a class="endpoint-name" href="([^"]*)">"#)
        .unwrap()
        .captures(&body)
        .unwrap()[1]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let issues = page(&browser, &link).await;
    let title = regex::Regex::new(r#"class="issue-title" href="/issues/\d+">([^<]+)</a>"#).unwrap();
    let mut titles: Vec<String> = title
        .captures_iter(&issues)
        .map(|c| c[1].to_owned())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "ValueError: in create_order",
            "ValueError: in reserve_stock"
        ]
    );
    assert!(
        issues.contains("Failed on <code>POST /orders/{id} → 500</code>"),
        "{issues}"
    );
}

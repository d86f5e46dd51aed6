//! From the event id a user's 500 page showed to the event: `/events/{event_id}` on the
//! dashboard and Sentry's event-id lookup in the API.

use serde_json::Value;

use crate::helpers::{browser_client, error_event, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_leads_to_its_event_page_and_through_the_api_to_its_issue() {
    let app = spawn_app().await;
    let event_id = app
        .store_ok(&error_event("LookupError", "order 7", "checkout", 3))
        .await;
    let issue_id: i64 = sqlx::query_scalar("SELECT id FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let dashed = uuid::Uuid::parse_str(&event_id)
        .unwrap()
        .hyphenated()
        .to_string();

    // The dashboard: simple or dashed id, 303 to the event's page; unknown ids are a 404.
    let admin = app.admin_browser().await;
    for id in [&event_id, &dashed] {
        let found = admin.get(&format!("/events/{id}")).await;
        assert_eq!(found.status, 303, "{}", found.body);
        assert_eq!(
            found.location,
            format!("/issues/{issue_id}/events/{event_id}")
        );
    }
    let page = admin
        .get(&format!("/issues/{issue_id}/events/{event_id}"))
        .await;
    assert!(page.body.contains("LookupError"), "{}", page.body);
    let unknown = uuid::Uuid::new_v4().simple().to_string();
    assert_eq!(admin.get(&format!("/events/{unknown}")).await.status, 404);
    assert_eq!(admin.get("/events/not-an-id").await.status, 404);
    // Pasted into the issue list's search box, an id opens its event; an unknown one says so
    // on the list.
    for id in [&event_id, &dashed] {
        let searched = admin.get(&format!("/?query=+{id}+")).await;
        assert_eq!(searched.status, 303, "{}", searched.body);
        assert_eq!(
            searched.location,
            format!("/issues/{issue_id}/events/{event_id}")
        );
    }
    let missing = admin.get(&format!("/?query={unknown}")).await;
    assert_eq!(missing.status, 200);
    assert!(
        missing
            .body
            .contains(&format!("No event has the id {unknown}.")),
        "{}",
        missing.body
    );
    // Only operators: an anonymous visitor is sent to log in.
    let anonymous = browser_client()
        .get(format!("{}/events/{event_id}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert!(anonymous.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));

    // The API, as Sentry answers it.
    let token = app.create_token("support@example.com").await;
    let lookup = |org: &str, id: &str| {
        app.client
            .get(format!(
                "{}/api/0/organizations/{org}/eventids/{id}/",
                app.address
            ))
            .bearer_auth(&token)
            .send()
    };
    let answer = lookup("faultline", &dashed).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["organizationSlug"], "faultline");
    assert_eq!(body["projectSlug"], "checkout-api");
    assert_eq!(body["groupId"], issue_id.to_string());
    assert_eq!(body["eventId"], event_id);
    assert_eq!(body["event"]["eventID"], event_id, "{body}");
    for (org, id) in [
        ("faultline", unknown.as_str()),
        ("other-org", event_id.as_str()),
        ("faultline", "nope"),
    ] {
        assert_eq!(lookup(org, id).await.unwrap().status(), 404, "{org} {id}");
    }
    let without_token = app
        .client
        .get(format!(
            "{}/api/0/organizations/faultline/eventids/{event_id}/",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status(), 401);
}

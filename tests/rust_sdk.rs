//! The official Rust `sentry` crate, through its real HTTP transport, against a real server.
//! Its own test binary: the SDK's panic hook is process-wide.

#[allow(dead_code, reason = "shared helpers; this binary uses only a few")]
#[path = "api/helpers.rs"]
mod helpers;

use std::time::Duration;

#[derive(Debug)]
struct PaymentDeclined {
    order: u32,
}

impl std::fmt::Display for PaymentDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "payment declined for order {}", self.order)
    }
}

impl std::error::Error for PaymentDeclined {}

#[test]
fn rust_sdk_error_and_panic_are_stored_as_two_issues() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(helpers::spawn_app());
    let guard = sentry::init((
        app.dsn(),
        sentry::ClientOptions {
            release: Some("billing@2.0.0".into()),
            environment: Some("ci".into()),
            ..Default::default()
        },
    ));
    assert!(guard.is_enabled());

    let first = sentry::capture_error(&PaymentDeclined { order: 17 });
    let second = sentry::capture_error(&PaymentDeclined { order: 18 });
    let crashed = std::thread::spawn(|| panic!("ledger is out of balance")).join();
    assert!(crashed.is_err());
    assert!(
        guard.flush(Some(Duration::from_secs(10))),
        "the SDK delivered everything"
    );

    runtime.block_on(async {
        assert_eq!(app.event_count().await, 3);
        let issues = app.issues().await;
        assert_eq!(issues.len(), 2, "{issues:?}");
        let error = app.stored_event(&first.simple().to_string()).await;
        assert_eq!(error["release"], "billing@2.0.0");
        assert_eq!(error["environment"], "ci");
        assert_eq!(error["sdk"]["name"], "sentry.rust");
        assert!(error["exception"]["values"][0]["value"]
            .as_str()
            .unwrap()
            .contains("order 17"));
        app.stored_event(&second.simple().to_string()).await;

        let (title, unhandled): (String, String) = sqlx::query_as(
            "SELECT title, metadata->>'unhandled' FROM issues WHERE title LIKE '%out of balance%'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("the panic is an issue");
        assert!(title.contains("ledger is out of balance"), "{title}");
        assert_eq!(unhandled, "true");
    });
}

//! PostgreSQL going away and coming back: ingest answers 503 with Retry-After meanwhile and
//! recovers by itself, without a restart. The database is reached through a proxy the test
//! can cut, so the outage is a real one for the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::helpers::{envelope, error_event, new_database_url, start, test_settings};

/// Forwards connections to PostgreSQL while `up`; cutting it drops every open connection.
struct DatabaseProxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl DatabaseProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused-ish
                }
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        DatabaseProxy { port, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_with_retry_after_and_ingest_recovers_by_itself() {
    let direct_url = new_database_url();
    let database = direct_url.rsplit('/').next().unwrap().to_owned();
    let proxy = DatabaseProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    // Create and migrate through the direct URL; the server then talks through the proxy.
    let bootstrap = start(test_settings(&direct_url)).await;
    let key = faultline::domain::keys::new_public_key();
    let project_id = faultline::store::projects::create(&bootstrap.pool, "outage", &key)
        .await
        .unwrap();
    let proxied_url = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let app = crate::helpers::TestApp {
        project_id,
        key,
        ..start(test_settings(&proxied_url)).await
    };

    let before = error_event("ValueError", "before", "f", 1);
    assert_eq!(
        app.post_envelope(envelope(&before, true)).await.status(),
        200
    );

    proxy.cut();
    let during = error_event("ValueError", "during", "f", 1);
    let response = app.post_envelope(envelope(&during, true)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], faultline::error::GENERIC_ERROR);
    assert!(body["error_id"].is_string());
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    proxy.restore();
    let after = error_event("ValueError", "after", "f", 1);
    let mut status = 0;
    for _ in 0..20 {
        status = app
            .post_envelope(envelope(&after, true))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ingest recovered without a restart");
    assert_eq!(
        bootstrap.event_count().await,
        2,
        "before and after are stored; during was refused"
    );
}

//! PostgreSQL going away and coming back: events are acknowledged into the spool meanwhile,
//! replayed once it is back, each stored once; only a full spool answers 503 with
//! Retry-After. The database is reached through a proxy the test can cut, so the outage is a
//! real one for the server.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use std::time::Duration;

use faultline::config::{Settings, SpoolSettings};
use serde_json::Value;

use crate::helpers::{envelope, error_event, new_database_url, start, test_settings, TestApp};

/// Forwards connections to PostgreSQL while up. Cutting it drops every open connection and
/// closes its port (new connections are refused, as when the database host is down);
/// restoring it listens on the same port again. The state is a watch channel, so a cut is
/// never missed by a task that was busy at that moment.
pub struct DatabaseProxy {
    pub port: u16,
    target: std::net::SocketAddr,
    up: watch::Sender<bool>,
}

impl DatabaseProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = DatabaseProxy {
            port,
            target,
            up: watch::channel(true).0,
        };
        proxy.forward(listener);
        proxy
    }

    fn forward(&self, listener: TcpListener) {
        let target = self.target;
        let mut up = self.up.subscribe();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    // The listener is dropped with this task: the port refuses connections.
                    _ = up.wait_for(|up| !*up) => return,
                };
                let Ok((mut client, _)) = accepted else {
                    return;
                };
                let mut cut = up.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Ends a cut; does nothing when the proxy is up.
    pub async fn restore(&self) {
        if self.up.send_replace(true) {
            return;
        }
        // The cut listener's task drops it as soon as it runs; until then the port is busy.
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", self.port)).await {
                self.forward(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the proxy's port did not come free");
    }
}

/// A server that reaches its database through a proxy the test can cut; `bootstrap` talks to
/// the database directly.
pub struct ProxiedApp {
    pub app: TestApp,
    pub bootstrap: TestApp,
    pub proxy: DatabaseProxy,
}

pub async fn proxied_app(adjust: impl FnOnce(&mut Settings)) -> ProxiedApp {
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
    let mut settings = test_settings(&proxied_url);
    // While the proxy is cut, new connections are retried until this deadline spools them.
    settings.spool.spool_after_ms = SpoolSettings::in_dir(Default::default()).spool_after_ms;
    adjust(&mut settings);
    let app = TestApp {
        project_id,
        key,
        ..start(settings).await
    };
    ProxiedApp {
        app,
        bootstrap,
        proxy,
    }
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let answer = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// Waits, up to 60 s, until the database holds `count` events.
async fn wait_for_events(bootstrap: &TestApp, count: i64) {
    for _ in 0..600 {
        if bootstrap.event_count().await >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bootstrap.event_count().await, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_ridden_out_in_the_spool_and_every_event_lands_once() {
    let ProxiedApp {
        app,
        bootstrap,
        proxy,
    } = proxied_app(|_| {}).await;
    let before = error_event("ValueError", "before", "f", 1);
    assert_eq!(
        app.post_envelope(envelope(&before, true)).await.status(),
        200
    );

    proxy.cut();
    for i in 0..20 {
        let during = error_event("ValueError", &format!("during {i}"), "f", 1);
        let answer = app.post_envelope(envelope(&during, true)).await;
        assert_eq!(answer.status(), 200, "acknowledged into the spool");
    }
    // Longer than the key cache keeps an answer fresh: known keys keep working without
    // each request waiting for the database (a 3 s client timeout would catch that).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    for i in 0..10 {
        let later = error_event("ValueError", &format!("during {}", 20 + i), "f", 1);
        let answer = patient
            .post(app.envelope_url())
            .header("X-Sentry-Auth", app.auth_header())
            .body(envelope(&later, true))
            .send()
            .await
            .expect("answered without waiting for the database");
        assert_eq!(answer.status(), 200);
    }
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "still accepting events: {body}");
    assert_eq!(body["database"], "down");
    assert_eq!(body["spooled_events"], 30, "{body}");
    assert_eq!(bootstrap.event_count().await, 1);

    proxy.restore().await;
    wait_for_events(&bootstrap, 31).await;
    let after = error_event("ValueError", "after", "f", 1);
    assert_eq!(
        app.post_envelope(envelope(&after, true)).await.status(),
        200
    );
    let counted: i64 = sqlx::query_scalar("SELECT sum(event_count)::int8 FROM issues")
        .fetch_one(&bootstrap.pool)
        .await
        .unwrap();
    assert_eq!(counted, 32, "issue counts are exact");
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, &body["database"], &body["spooled_events"]),
        (200, &"up".into(), &0.into()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_with_retry_after_and_loses_nothing_it_acknowledged() {
    let ProxiedApp {
        app,
        bootstrap,
        proxy,
    } = proxied_app(|s| s.spool.spool_max_bytes = 40_000).await;
    let before = error_event("ValueError", "before", "f", 1);
    assert_eq!(
        app.post_envelope(envelope(&before, true)).await.status(),
        200
    );

    proxy.cut();
    let mut acknowledged = 1;
    let mut refused = None;
    for i in 0..200 {
        let during = error_event("ValueError", &format!("during {i}"), "f", 1);
        let answer = app.post_envelope(envelope(&during, true)).await;
        if answer.status() == 200 {
            acknowledged += 1;
            continue;
        }
        refused = Some(answer);
        break;
    }
    let refused = refused.expect("the spool fills up");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], faultline::error::GENERIC_ERROR);
    assert!(body["error_id"].is_string());
    let (status, body) = ready(&app).await;
    assert_eq!(
        status, 503,
        "neither the database nor the spool can take events: {body}"
    );

    proxy.restore().await;
    wait_for_events(&bootstrap, acknowledged).await;
    assert!(
        acknowledged > 2,
        "some events fit in the spool: {acknowledged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_outage_under_load_gives_no_5xx_and_every_2xx_is_stored_once() {
    let ProxiedApp {
        app,
        bootstrap,
        proxy,
    } = proxied_app(|_| {}).await;
    let app = std::sync::Arc::new(app);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut acknowledged, mut server_errors) = (Vec::new(), 0);
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let event = error_event(
                        &format!("OutageLoad{}", n % 5),
                        &format!("c{client}"),
                        "f",
                        1,
                    );
                    let status = app.post_envelope(envelope(&event, true)).await.status();
                    if status == 200 {
                        acknowledged.push(event["event_id"].as_str().unwrap().to_owned());
                    } else if status.is_server_error() {
                        server_errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (acknowledged, server_errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(30)).await;
    proxy.restore().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut acknowledged, mut server_errors) = (Vec::new(), 0);
    for client in clients {
        let (ids, errors) = client.await.unwrap();
        acknowledged.extend(ids);
        server_errors += errors;
    }
    assert_eq!(server_errors, 0, "no 5xx through the outage");
    assert!(
        acknowledged.len() > 500,
        "the load ran: {}",
        acknowledged.len()
    );

    // Within 60 s of the cut ending, every acknowledged event is stored, once.
    wait_for_events(&bootstrap, acknowledged.len() as i64).await;
    let ids: Vec<uuid::Uuid> = acknowledged
        .iter()
        .map(|id| uuid::Uuid::parse_str(id).unwrap())
        .collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
        .bind(&ids)
        .fetch_one(&bootstrap.pool)
        .await
        .unwrap();
    assert_eq!(stored, acknowledged.len() as i64);
    let counted: i64 = sqlx::query_scalar("SELECT sum(event_count)::int8 FROM issues")
        .fetch_one(&bootstrap.pool)
        .await
        .unwrap();
    assert_eq!(counted, stored, "issue counts are exact");
}

/// While the database is away the dashboard answers 503 with Retry-After, not a 500, and files
/// no fault of its own (an outage is not a bug, and filing one would need the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_answer_503_while_the_database_is_away_and_file_no_fault() {
    let ProxiedApp {
        app,
        bootstrap,
        proxy,
    } = proxied_app(|_| {}).await;
    let browser = app.admin_browser().await;
    assert_eq!(browser.get("/").await.status, 200);
    proxy.cut();
    let page = browser.get("/").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
    assert!(
        page.body.contains("database is not answering"),
        "{}",
        page.body
    );
    proxy.restore().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let filed: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE name = $1")
        .bind(faultline::self_report::PROJECT_NAME)
        .fetch_one(&bootstrap.pool)
        .await
        .unwrap();
    assert_eq!(filed, 0, "no fault filed for an outage");
}

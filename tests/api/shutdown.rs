//! A real `faultline serve` process under load: stopped with SIGTERM it answers what is in
//! flight, replays what its spool holds, and exits 0; killed with SIGKILL at 20 random moments, some while PostgreSQL is cut
//! off, and restarted on the same spool, it ends with every acknowledged event stored once.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::helpers::{
    error_event, exit_status, free_port, hold_issues_table, new_spool_dir, send_sigterm, spawn_app,
    TestApp, SLOW_COMMIT_MS,
};
use crate::outage::DatabaseProxy;

/// While PostgreSQL is cut off, how soon events go to the spool instead.
const CUT_OFF_SPOOL_AFTER_MS: u64 = 500;

/// `faultline serve` on `port`; a commit not done within `spool_after_ms` is spooled.
fn serve(database_url: &str, port: u16, spool: &Path, spool_after_ms: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("FAULTLINE_BIND", format!("127.0.0.1:{port}"))
        .env("FAULTLINE_SPOOL_DIR", spool)
        .env("FAULTLINE_SPOOL_AFTER_MS", spool_after_ms.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("faultline serve starts")
}

/// The test's app on `port` (another process's), with a client that gives up after 10 s.
fn at_port(app: &TestApp, port: u16) -> TestApp {
    TestApp {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        ..app.at_port(port)
    }
}

async fn readiness(app: &TestApp) -> Option<serde_json::Value> {
    let answer = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .ok()?;
    answer.json().await.ok()
}

async fn wait_until_ready(app: &TestApp) {
    for _ in 0..200 {
        if readiness(app).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("faultline did not start");
}

/// Four clients sending new events until told to stop (or the server is gone); the ids of
/// those answered 200 go into `acknowledged`.
fn load(
    app: &TestApp,
    acknowledged: &Arc<Mutex<HashSet<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|client| {
            let app = at_port(app, app.addr.port());
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let event = error_event(
                        &format!("LoadError{}", n % 7),
                        &format!("c{client}"),
                        "f",
                        1,
                    );
                    let id = event["event_id"].as_str().unwrap().to_owned();
                    // A killed server refuses or drops requests: not acknowledged, try again.
                    let sent = app
                        .client
                        .post(app.store_url())
                        .header("X-Sentry-Auth", app.auth_header())
                        .json(&event)
                        .send()
                        .await;
                    match sent {
                        Ok(answer) if answer.status() == 200 => {
                            acknowledged.lock().unwrap().insert(id);
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

async fn stored_of(app: &TestApp, ids: &HashSet<String>) -> i64 {
    let ids: Vec<uuid::Uuid> = ids
        .iter()
        .map(|id| uuid::Uuid::parse_str(id).unwrap())
        .collect();
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
        .bind(&ids)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_what_is_in_flight_and_exits_0() {
    let app = spawn_app().await;
    let port = free_port();
    let process = at_port(&app, port);
    let spool = new_spool_dir();
    // Events spooled because a commit waited on a busy machine would stay in the spool until
    // the next start: this test counts on the database alone.
    let child = serve(&app.database_url, port, &spool, SLOW_COMMIT_MS);
    wait_until_ready(&process).await;
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let clients = load(&process, &acknowledged);
    tokio::time::sleep(Duration::from_millis(800)).await;

    send_sigterm(&child);
    let status = exit_status(child).await;
    for client in clients {
        client.abort();
    }
    assert!(status.success(), "exit status {status:?}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "the load ran: {}",
        acknowledged.len()
    );
    assert_eq!(
        stored_of(&app, &acknowledged).await,
        acknowledged.len() as i64,
        "every acknowledged event is stored"
    );
}

/// An instance scaled away must not leave acknowledged events in a spool directory that no
/// process may open again: stopped with SIGTERM while PostgreSQL answers, it replays its spool
/// before it exits (waiting for the replay already at work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_replays_the_spool_before_it_exits() {
    let app = spawn_app().await;
    let port = free_port();
    let process = at_port(&app, port);
    let mut child = serve(
        &app.database_url,
        port,
        &new_spool_dir(),
        CUT_OFF_SPOOL_AFTER_MS,
    );
    wait_until_ready(&process).await;
    let mut acknowledged = HashSet::new();
    let send = async |acknowledged: &mut HashSet<String>| {
        let event = error_event("SpooledError", "waits", "f", 1);
        let answer = process.store(&event).await;
        assert_eq!(answer.status(), 200);
        acknowledged.insert(event["event_id"].as_str().unwrap().to_owned());
    };
    send(&mut acknowledged).await;

    // PostgreSQL answers but cannot commit: the writers spool, and the replayer waits too.
    let hold = hold_issues_table(&app.pool).await;
    for _ in 0..3 {
        send(&mut acknowledged).await;
    }
    let ready = readiness(&process).await.unwrap();
    // (The first may have been spooled too, on a slow machine.)
    assert!(ready["spooled_events"].as_u64().unwrap() >= 3, "{ready}");

    send_sigterm(&child);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "it waits for the spool's replay"
    );
    hold.commit().await.unwrap();
    let status = exit_status(child).await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        stored_of(&app, &acknowledged).await,
        4,
        "the spooled events are stored before the process ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_with_and_without_the_database_loses_no_acknowledged_event() {
    let app = spawn_app().await;
    let proxy = DatabaseProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let database = app.database_url.rsplit('/').next().unwrap();
    let proxied_url = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let port = free_port();
    let process = at_port(&app, port);
    let spool = new_spool_dir();
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut acknowledged_while_cut = 0;
    for round in 0..20 {
        let mut child = serve(&proxied_url, port, &spool, CUT_OFF_SPOOL_AFTER_MS);
        wait_until_ready(&process).await;
        let clients = load(&process, &acknowledged);
        let (before_cut, after_cut) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(200..700), rng.gen_range(300..800))
        };
        tokio::time::sleep(Duration::from_millis(before_cut)).await;
        if round % 2 == 1 {
            // The database goes away too: what is acknowledged now is only in the spool.
            proxy.cut();
            let before = acknowledged.lock().unwrap().len();
            tokio::time::sleep(Duration::from_millis(after_cut)).await;
            acknowledged_while_cut += acknowledged.lock().unwrap().len() - before;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        for client in clients {
            client.abort();
        }
        proxy.restore().await;
    }

    // One last start replays whatever the killed processes left in the spool.
    let mut child = serve(&proxied_url, port, &spool, CUT_OFF_SPOOL_AFTER_MS);
    wait_until_ready(&process).await;
    for _ in 0..100 {
        let ready = readiness(&process).await.unwrap_or_default();
        if ready["spooled_events"] == 0 && ready["database"] == "up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        acknowledged_while_cut > 0,
        "some events were acknowledged from the spool alone"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "the load ran: {}",
        acknowledged.len()
    );
    assert_eq!(
        stored_of(&app, &acknowledged).await,
        acknowledged.len() as i64,
        "every acknowledged event is stored, once (event ids are unique)"
    );
    let counted: i64 = sqlx::query_scalar("SELECT coalesce(sum(event_count), 0)::int8 FROM issues")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        counted,
        app.event_count().await,
        "issue counts match the stored events"
    );
}

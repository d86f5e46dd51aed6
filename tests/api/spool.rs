//! The spool on disk: what a process that died left behind is replayed at start-up, a damaged
//! record and an unreadable end are quarantined (never thrown away), a second process on the
//! same directory is refused, and a replayed segment sends the writers back to PostgreSQL.

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use faultline::config::{Limits, SpoolSettings};
use faultline::ingest::normalize::EnvelopeContext;
use faultline::ingest::process;
use faultline::spool::{self, Spool};
use faultline::startup::Application;

use crate::helpers::{error_event, new_spool_dir, spawn_app, start, test_settings, TestApp};

fn prepared(app: &TestApp, value: &str) -> faultline::store::events::NewEvent {
    let event = error_event("SpooledError", value, "f", 1);
    process::prepare(
        &serde_json::to_vec(&event).unwrap(),
        app.project_id,
        &EnvelopeContext::default(),
        Utc::now(),
        &Limits::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_process_spool_is_replayed_at_start_up_quarantining_damage_and_a_torn_tail() {
    let app = spawn_app().await;
    let dir = new_spool_dir();
    let settings = SpoolSettings::in_dir(dir.clone());
    let events: Vec<_> = (0..5).map(|i| prepared(&app, &format!("v{i}"))).collect();
    {
        // What a process killed while PostgreSQL was away leaves: three batches, the last
        // cut short mid-write.
        let spool = Spool::open(&settings).unwrap();
        spool.append(&[&events[0], &events[1]]).unwrap();
        spool.append(&[&events[2], &events[3]]).unwrap();
    }
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "spool"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let first_frame = spool::encode_all(&[&events[0]]).len();
    // Damage the second event's record (in the middle of the file)…
    bytes[first_frame + 40] ^= 0x55;
    // …and leave half of a fifth one at the end.
    let torn = spool::encode_all(&[&events[4]]);
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::File::create(&segment)
        .unwrap()
        .write_all(&bytes)
        .unwrap();

    let mut restarted = test_settings(&app.database_url);
    restarted.spool = settings;
    let _second = start(restarted).await;
    for _ in 0..100 {
        if app.event_count().await >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.event_count().await, 3, "events 0, 2 and 3");
    for kept in [0, 2, 3] {
        app.stored_event(&events[kept].event_id.simple().to_string())
            .await;
    }
    let quarantined = std::fs::read(dir.join("quarantine")).unwrap();
    assert_eq!(
        quarantined.len(),
        spool::encode_all(&[&events[1]]).len() + torn.len() / 2,
        "the damaged record, whole, then the torn one's half, for an operator"
    );
    assert!(!segment.exists(), "a replayed segment is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_spool_directory_is_refused_with_a_clear_message() {
    let app = spawn_app().await;
    let dir = new_spool_dir();
    let mut first = test_settings(&app.database_url);
    first.spool = SpoolSettings::in_dir(dir.clone());
    let _first = start(first).await;
    let mut second = test_settings(&app.database_url);
    second.spool = SpoolSettings::in_dir(dir.clone());
    let Err(refused) = Application::build(second).await else {
        panic!("a second process on one spool directory must not start");
    };
    let message = format!("{refused:#}");
    assert!(
        message.contains("another Faultline process is using the spool directory"),
        "{message}"
    );
}

/// A live commit that is merely slow marks PostgreSQL down, and later batches go to the spool.
/// Once a replay has committed a segment, PostgreSQL is known to answer: the writers go back
/// to it then, not only after the whole spool is drained.
#[tokio::test]
async fn a_replayed_segment_sends_the_writers_back_to_postgresql() {
    let app = spawn_app().await;
    let spool = Spool::open(&SpoolSettings::in_dir(new_spool_dir())).unwrap();
    let events: Vec<_> = (0..2).map(|i| prepared(&app, &format!("r{i}"))).collect();
    spool.append(&[&events[0], &events[1]]).unwrap();
    // What a batch past `spool_after` does while a replay is under way.
    spool.mark_database_down();

    spool::replay::replay_all(&spool, &app.pool).await.unwrap();
    assert_eq!(app.event_count().await, 2);
    assert_eq!(spool.events(), 0);
    assert!(
        !spool.is_database_down(),
        "the writers use PostgreSQL again"
    );
}

/// The one segment file in `dir`.
fn segment_in(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "spool"))
        .unwrap()
}

/// What cannot be read is kept in the quarantine, and no more: a record behind a damaged
/// length (reading finds the next intact record again and replays it), or the zeros a crash
/// can leave at the end (once, not as hundreds of empty records). The count of waiting events
/// comes back to zero.
#[tokio::test]
async fn damage_in_a_segment_quarantines_only_the_damaged_bytes_and_the_count_returns_to_zero() {
    let app = spawn_app().await;
    for damage in ["a damaged length", "a zero-filled tail"] {
        let dir = new_spool_dir();
        let settings = SpoolSettings::in_dir(dir.clone());
        let events: Vec<_> = (0..3)
            .map(|i| prepared(&app, &format!("{damage} {i}")))
            .collect();
        {
            let spool = Spool::open(&settings).unwrap();
            spool.append(&[&events[0]]).unwrap();
            if damage == "a damaged length" {
                spool.append(&[&events[1], &events[2]]).unwrap();
            }
        }
        let segment = segment_in(&dir);
        let mut bytes = std::fs::read(&segment).unwrap();
        let first = spool::encode_all(&[&events[0]]).len();
        let second = first + spool::encode_all(&[&events[1]]).len();
        let damaged = if damage == "a damaged length" {
            bytes[first..first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            first..second
        } else {
            bytes.extend_from_slice(&[0; 4096]);
            first..bytes.len()
        };
        std::fs::write(&segment, &bytes).unwrap();

        let spool = Spool::open(&settings).unwrap();
        let (waiting, intact) = if damage == "a damaged length" {
            (3, 2)
        } else {
            (1, 1)
        };
        assert_eq!(spool.events(), waiting, "{damage}: records waiting");
        let stored_before = app.event_count().await;
        spool::replay::replay_all(&spool, &app.pool).await.unwrap();
        assert_eq!(app.event_count().await - stored_before, intact, "{damage}");
        assert_eq!(spool.events(), 0, "{damage}: nothing waits any more");
        let quarantined = std::fs::read(dir.join("quarantine")).unwrap();
        assert_eq!(quarantined, bytes[damaged], "{damage}: kept whole");
    }
    assert_eq!(
        app.event_count().await,
        2 + 1,
        "every intact record, the one behind the damaged length too"
    );
}

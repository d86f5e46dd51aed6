//! Drains the spool into PostgreSQL: whenever events wait (or the database was found down),
//! it checks the database every second; once it answers, writers go back to it and the
//! sealed segments are written oldest first, each deleted only after its events are
//! committed. Writing is idempotent through the `event_ids` ledger, so an event both committed
//! and spooled (a commit that was slow, not failed) is stored once.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::frame::{self, Record};
use super::Spool;
use crate::store;
use crate::store::events::{Aggregates, NewEvent};
use crate::store::known::Known;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Events per transaction while replaying.
const REPLAY_BATCH: usize = 500;

pub fn spawn(spool: Arc<Spool>, pool: PgPool) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = spool.wake_replayer.notified() => {}
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            if spool.events() == 0 && !spool.is_database_down() {
                continue;
            }
            if !store::ping(&pool).await {
                tokio::time::sleep(CHECK_EVERY).await;
                continue;
            }
            spool.mark_database_up();
            if let Err(e) = replay_all(&spool, &pool).await {
                tracing::warn!(error = %e, "spool replay interrupted; it resumes when PostgreSQL answers");
                if e.downcast_ref::<sqlx::Error>()
                    .is_some_and(store::is_unavailable)
                {
                    spool.mark_database_down();
                }
                tokio::time::sleep(CHECK_EVERY).await;
            }
        }
    });
}

/// Replays every sealed segment, oldest first; waits for a replay already at work to end.
pub async fn replay_all(spool: &Spool, pool: &PgPool) -> anyhow::Result<()> {
    let _replaying = spool.replaying.lock().await;
    // Known issues are locked the quick way, as the writers do, from the second batch on.
    let known = Known::default();
    let segments = spool.seal()?;
    for path in segments {
        let bytes = tokio::fs::read(&path).await?;
        let segment = read_segment(&bytes);
        write_events(
            spool,
            pool,
            &known,
            &segment.events,
            &segment.frames,
            &bytes,
        )
        .await?;
        for (range, why) in &segment.unreadable {
            quarantine(spool, &path, &bytes[range.clone()], why)?;
        }
        // PostgreSQL just took a segment: writers that a slow commit sent to the spool during
        // this replay go back to it now, not once every segment is drained.
        spool.mark_database_up();
        spool.remove_segment(&path, bytes.len() as u64, segment.records)?;
        metrics::counter!("faultline_spool_replayed_events_total")
            .increment(segment.events.len() as u64);
        tracing::info!(
            spool.segment = %path.display(),
            events = segment.events.len(),
            spool.events_left = spool.events(),
            "spooled events replayed into PostgreSQL"
        );
    }
    spool.settle_counts_if_empty();
    Ok(())
}

/// What a segment holds.
struct Segment {
    /// The events to replay, and the byte range of each one's frame.
    events: Vec<NewEvent>,
    frames: Vec<Range<usize>>,
    /// What cannot be replayed, and why: quarantined once the segment's events are written
    /// (a replay that an outage interrupts reads the segment again, and would keep them twice).
    unreadable: Vec<(Range<usize>, &'static str)>,
    /// Every record read, unreadable ones included: what the spool counted for the segment.
    records: u64,
}

/// Reads a segment: its events, and what cannot be replayed (a damaged or unreadable record,
/// whatever cannot be read at the end: a record torn by a crash, a zero-filled tail). None
/// stops the replay, and the intact frames after damage are read.
fn read_segment(bytes: &[u8]) -> Segment {
    let mut segment = Segment {
        events: Vec::new(),
        frames: Vec::new(),
        unreadable: Vec::new(),
        records: 0,
    };
    for record in frame::records(bytes) {
        match record {
            Record::Frame(payload, range) => {
                segment.records += 1;
                match frame::decode(payload) {
                    Some(event) => {
                        segment.events.push(event);
                        segment.frames.push(range);
                    }
                    None => segment.unreadable.push((range, "unreadable record")),
                }
            }
            Record::Damaged(range, why) => {
                segment.records += 1;
                segment.unreadable.push((range, why));
            }
            Record::TornTail(range) => segment.unreadable.push((
                range,
                "the segment's end is no whole record (a write torn by a crash, or damage)",
            )),
        }
    }
    segment
}

fn quarantine(spool: &Spool, path: &Path, frame: &[u8], why: &str) -> std::io::Result<()> {
    tracing::error!(
        spool.segment = %path.display(),
        bytes = frame.len(),
        why,
        "a spooled record cannot be replayed; it is kept in the spool's quarantine file"
    );
    metrics::counter!("faultline_spool_quarantined_records_total").increment(1);
    spool.quarantine(frame)
}

/// Writes the events in batches, each tried again after a deadlock as the writers do. A batch
/// PostgreSQL refuses for its data is written one event at a time, and the refused events are
/// quarantined; an outage stops the replay (the segment stays, and is replayed again from its
/// start, idempotently).
async fn write_events(
    spool: &Spool,
    pool: &PgPool,
    known: &Known,
    events: &[NewEvent],
    frames: &[Range<usize>],
    bytes: &[u8],
) -> anyhow::Result<()> {
    for (chunk, chunk_frames) in events.chunks(REPLAY_BATCH).zip(frames.chunks(REPLAY_BATCH)) {
        let batch: Vec<&NewEvent> = chunk.iter().collect();
        match store::events::write_batch_retrying(pool, &batch, known, Aggregates::Now).await {
            Ok(_) => continue,
            Err(e) if store::is_unavailable(&e) => return Err(e.into()),
            Err(_) => {}
        }
        for (event, range) in batch.iter().zip(chunk_frames) {
            match store::events::write_batch_retrying(pool, &[*event], known, Aggregates::Now).await
            {
                Ok(_) => {}
                Err(e) if store::is_unavailable(&e) => return Err(e.into()),
                Err(e) => {
                    tracing::error!(event.id = %event.event_id, error = %e, "PostgreSQL refuses a spooled event");
                    spool.quarantine(&bytes[range.clone()])?;
                }
            }
        }
    }
    Ok(())
}

//! The write pipeline: handlers queue prepared events; one writer task takes them in batches
//! (up to `batch_size`, or whatever arrived within `batch_wait_ms`), writes each batch in one
//! transaction, and only then answers every waiting handler. One commit covers many events.
//! A batch PostgreSQL cannot take (it is down, or the commit takes longer than
//! `spool_after_ms`) goes to the local spool instead, fsync'd before the handlers hear of it:
//! a 200 always means committed or spooled.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::aggregate_flush::AggregateFlusher;
use super::error::IngestError;
use crate::config::{PipelineSettings, SpoolSettings};
use crate::spool::{self, Spool, SpoolError};
use crate::store::events::{Aggregates, NewEvent};
use crate::store::known::Known;
use crate::tasks::supervise;
use crate::{memory, store};

/// How long the queue must stay empty after some writing before freed memory is handed back.
const IDLE_BEFORE_RELEASING_MEMORY: Duration = Duration::from_secs(5);

/// The smallest batch that defers its aggregates. Measured on two cores (issue 13): batches
/// average ~57 events when the writers are saturated, and 5–10 at 1,000 events/s, where
/// deferring saved no PostgreSQL work and only added the flush's bursts to p99.
const DEFER_FROM_EVENTS: usize = 32;

/// A batch that already holds this many waiting events is written at once, without waiting
/// `batch_wait` for more: the writers are behind, and more arrive while it commits.
const NO_WAIT_FROM_EVENTS: usize = 32;

/// How long the queue must stay empty before deferred aggregates are folded in without
/// waiting for their window: the burst is over.
const IDLE_BEFORE_FLUSHING: Duration = Duration::from_millis(100);

/// Why an event was not stored.
#[derive(Debug, Clone)]
enum WriteFailure {
    /// PostgreSQL is down or cannot work right now, and the spool could not take the event
    /// either: the client may retry (503).
    Unavailable(Arc<anyhow::Error>),
    /// PostgreSQL refused this event's data: a fault of Faultline's (500, filed).
    Refused(Arc<sqlx::Error>),
}

impl WriteFailure {
    fn classify(error: sqlx::Error) -> Self {
        if store::is_unavailable(&error) {
            WriteFailure::Unavailable(Arc::new(error.into()))
        } else {
            WriteFailure::Refused(Arc::new(error))
        }
    }
}

type Reply = Result<(), WriteFailure>;

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Reply>,
    /// The event's share of the queue's memory, given back when the job is dropped (answered).
    _room: OwnedSemaphorePermit,
}

/// The handlers' end of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    queue: mpsc::Sender<Job>,
    /// The queue's memory budget, one permit per byte of [`NewEvent::approximate_size`].
    room: Arc<Semaphore>,
    budget: usize,
}

impl Pipeline {
    /// Starts the writer tasks on the current Tokio runtime, and the task that folds in the
    /// aggregates they defer. They have their own connections (`pool` should be theirs alone,
    /// one per writer and one for the flusher), so a burst of requests can never starve them.
    pub fn start(
        pool: PgPool,
        settings: &PipelineSettings,
        spool: Arc<Spool>,
        spool_settings: &SpoolSettings,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(settings.queue_capacity.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        let wrote_since_idle = Arc::new(AtomicBool::new(false));
        let known = Arc::new(Known::default());
        // The flusher runs even when no batch here defers: it folds what an earlier process,
        // or another instance with a window, left behind.
        let flusher = AggregateFlusher::start(
            pool.clone(),
            Duration::from_millis(settings.aggregate_window_ms),
        );
        let flusher = (settings.aggregate_window_ms > 0).then_some(flusher);
        for _ in 0..settings.writers.max(1) {
            let writer = Writer {
                pool: pool.clone(),
                jobs: jobs.clone(),
                wrote_since_idle: wrote_since_idle.clone(),
                batch_size: settings.batch_size.max(1),
                batch_wait: Duration::from_millis(settings.batch_wait_ms),
                spool: spool.clone(),
                spool_after: Duration::from_millis(spool_settings.spool_after_ms),
                known: known.clone(),
                flusher: flusher.clone(),
            };
            // A bug hit by one batch never silently removes a writer. Events of the batch it
            // was writing were not acknowledged: their handlers see the reply dropped and
            // answer 500 (filed as a fault).
            tokio::spawn(supervise("an event writer", move || writer.clone().run()));
        }
        // One event's share must fit a `u32` (the semaphore's unit of acquiring).
        let budget = settings
            .queue_max_bytes
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Pipeline {
            queue,
            room: Arc::new(Semaphore::new(budget)),
            budget,
        }
    }

    /// Queues the event and waits until it is committed. A full queue (by events or by bytes)
    /// is a 429 (the client may retry later); a database failure is a 503.
    pub async fn store(&self, event: NewEvent) -> Result<(), IngestError> {
        let (reply, answer) = oneshot::channel();
        metrics::gauge!("faultline_queue_depth")
            .set((self.queue.max_capacity() - self.queue.capacity()) as f64);
        metrics::gauge!("faultline_queue_bytes")
            .set((self.budget - self.room.available_permits()) as f64);
        // Capped at the budget, so that any one event fits once the queue is empty.
        let size = event.approximate_size().min(self.budget) as u32;
        let room =
            (self.room.clone().try_acquire_many_owned(size)).map_err(|_| IngestError::QueueFull)?;
        self.queue
            .try_send(Job {
                event,
                reply,
                _room: room,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => IngestError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => {
                    IngestError::Internal(anyhow::anyhow!("the event writer has stopped"))
                }
            })?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(WriteFailure::Unavailable(e))) => Err(IngestError::Unavailable(
                anyhow::anyhow!("could not store the event batch: {e}"),
            )),
            Ok(Err(WriteFailure::Refused(e))) => Err(IngestError::Internal(anyhow::anyhow!(
                "the database refused the event: {e}"
            ))),
            Err(_) => Err(IngestError::Internal(anyhow::anyhow!(
                "the event writer dropped an event"
            ))),
        }
    }
}

/// One of the writers. They take turns collecting a batch from the shared queue, then write
/// theirs while the next one collects: one transaction's commit overlaps the next batch.
#[derive(Clone)]
struct Writer {
    pool: PgPool,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    /// Set after every batch; the writer that then finds the queue idle clears it and releases
    /// freed memory, once per burst.
    wrote_since_idle: Arc<AtomicBool>,
    batch_size: usize,
    batch_wait: Duration,
    spool: Arc<Spool>,
    spool_after: Duration,
    /// Search terms and issues the writers have stored, so batches send and check less.
    known: Arc<Known>,
    /// Where batches written under load leave their aggregates; `None`: never deferred.
    flusher: Option<Arc<AggregateFlusher>>,
}

impl Writer {
    async fn run(self) {
        while let Some((batch, backlog)) = self.collect_batch().await {
            let events: Vec<&NewEvent> = batch.iter().map(|job| &job.event).collect();
            let started = Instant::now();
            let mode = self.aggregates_mode(batch.len(), backlog);
            let replies = self.write(&events, mode).await;
            if let (Aggregates::Deferred, Some(flusher)) = (mode, &self.flusher) {
                flusher.deferred();
            }
            metrics::histogram!("faultline_batch_size").record(events.len() as f64);
            metrics::histogram!("faultline_batch_seconds").record(started.elapsed().as_secs_f64());
            tracing::debug!(
                batch.size = events.len(),
                duration_ms = started.elapsed().as_millis() as u64,
                "batch written"
            );
            self.wrote_since_idle.store(true, Ordering::Relaxed);
            for (job, reply) in batch.into_iter().zip(replies) {
                // A handler whose client went away no longer listens; nothing to do then.
                let _ = job.reply.send(reply);
            }
        }
    }

    /// Deferred only under load: when events were already waiting as the batch started and it
    /// holds at least [`DEFER_FROM_EVENTS`]. Folding many batches' totals at once then saves
    /// much of the aggregate upserts; at lighter load there is little to merge, and counts
    /// stay current the moment their batch commits.
    fn aggregates_mode(&self, batch_len: usize, backlog: bool) -> Aggregates {
        if self.flusher.is_some() && backlog && batch_len >= DEFER_FROM_EVENTS {
            Aggregates::Deferred
        } else {
            Aggregates::Now
        }
    }

    /// Commits the batch, or spools what PostgreSQL cannot take; one reply per event.
    async fn write(&self, events: &[&NewEvent], mode: Aggregates) -> Vec<Reply> {
        let replies = if self.spool.is_database_down() {
            // No point waiting for a database known to be away: straight to the spool.
            vec![Err(unavailable("PostgreSQL is down")); events.len()]
        } else {
            let written = write_isolating_refusals(&self.pool, events, &self.known, mode);
            match tokio::time::timeout(self.spool_after, written).await {
                Ok(replies) => replies,
                // The commit may still complete: the spooled copy is then stored once.
                Err(_) => vec![Err(unavailable("the commit took too long")); events.len()],
            }
        };
        self.spool_unavailable(events, replies).await
    }

    /// Spools the events whose write failed for want of the database; they are answered 200
    /// once fsync'd, or 503 if the spool cannot take them either.
    async fn spool_unavailable(&self, events: &[&NewEvent], mut replies: Vec<Reply>) -> Vec<Reply> {
        let waiting: Vec<usize> = (0..events.len())
            .filter(|&i| matches!(replies[i], Err(WriteFailure::Unavailable(_))))
            .collect();
        if waiting.is_empty() {
            return replies;
        }
        self.spool.mark_database_down();
        let batch: Vec<&NewEvent> = waiting.iter().map(|&i| events[i]).collect();
        let frames = spool::encode_all(&batch);
        let spool = self.spool.clone();
        let count = batch.len() as u64;
        let appended = tokio::task::spawn_blocking(move || spool.append_frames(&frames, count))
            .await
            .unwrap_or_else(|e| Err(SpoolError::Io(std::io::Error::other(e))));
        match appended {
            Ok(()) => {
                metrics::counter!("faultline_events_spooled_total").increment(count);
                for &i in &waiting {
                    replies[i] = Ok(());
                }
            }
            Err(e) => {
                tracing::error!(batch.size = count, error = %e, "events could not be spooled");
                for &i in &waiting {
                    replies[i] = Err(unavailable(&e.to_string()));
                }
            }
        }
        replies
    }

    /// The next batch: the first waiting event and every other already waiting, then — unless
    /// that is [`NO_WAIT_FROM_EVENTS`] or more — whatever else arrives within `batch_wait`, up
    /// to `batch_size`; and whether events were already waiting (a backlog: the writers are
    /// busy). `None` once the queue is closed.
    async fn collect_batch(&self) -> Option<(Vec<Job>, bool)> {
        let mut jobs = self.jobs.lock().await;
        let (first, backlog) = match jobs.try_recv() {
            Ok(job) => (job, true),
            Err(_) => (self.next_job(&mut jobs).await?, false),
        };
        let mut batch = vec![first];
        while batch.len() < self.batch_size {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() >= NO_WAIT_FROM_EVENTS {
            return Some((batch, backlog));
        }
        let deadline = Instant::now() + self.batch_wait;
        while batch.len() < self.batch_size {
            match tokio::time::timeout_at(deadline, jobs.recv()).await {
                Ok(Some(job)) => batch.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        Some((batch, backlog))
    }

    /// Waits for the next job; when the queue stays empty after a burst, gives the memory the
    /// burst freed back to the operating system while waiting.
    async fn next_job(&self, jobs: &mut mpsc::Receiver<Job>) -> Option<Job> {
        if let Some(flusher) = &self.flusher {
            match tokio::time::timeout(IDLE_BEFORE_FLUSHING, jobs.recv()).await {
                Ok(job) => return job,
                Err(_) => flusher.idle(),
            }
        }
        loop {
            match tokio::time::timeout(IDLE_BEFORE_RELEASING_MEMORY, jobs.recv()).await {
                Ok(job) => return job,
                Err(_) => {
                    if self.wrote_since_idle.swap(false, Ordering::Relaxed) {
                        memory::release_freed_memory();
                    }
                }
            }
        }
    }
}

fn unavailable(why: &str) -> WriteFailure {
    WriteFailure::Unavailable(Arc::new(anyhow::anyhow!("{why}")))
}

/// Writes `events` and returns one reply per event, in order. When PostgreSQL refuses a batch
/// for its data (not for an outage), the batch is split in halves, each written in its own
/// transaction, until the refused events stand alone: one bad event costs about
/// 2·log₂(batch) extra transactions and fails only itself, never its neighbours.
async fn write_isolating_refusals(
    pool: &PgPool,
    events: &[&NewEvent],
    known: &Known,
    mode: Aggregates,
) -> Vec<Reply> {
    let mut replies: Vec<Reply> = vec![Ok(()); events.len()];
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..events.len());
    while let Some(range) = pending.pop() {
        let written =
            store::events::write_batch_retrying(pool, &events[range.clone()], known, mode).await;
        let Err(error) = written else {
            continue;
        };
        let failure = WriteFailure::classify(error);
        match &failure {
            WriteFailure::Refused(_) if range.len() > 1 => {
                let middle = range.start + range.len() / 2;
                // Popped first half first: events keep their order across the retries.
                pending.push(middle..range.end);
                pending.push(range.start..middle);
                continue;
            }
            WriteFailure::Refused(e) => {
                let event = events[range.start];
                tracing::error!(
                    project.id = event.project_id,
                    event.id = %event.event_id,
                    error = %e,
                    "the database refused an event"
                );
            }
            WriteFailure::Unavailable(e) => {
                tracing::error!(batch.size = range.len(), error = %e, "batch could not be written");
            }
        }
        for reply in &mut replies[range] {
            *reply = Err(failure.clone());
        }
    }
    replies
}

//! Folds in the aggregates that batches written under load deferred (`store::aggregates`):
//! once a window has passed, so that one upsert per key covers many batches, or as soon as the
//! writers run out of work, so that the counts catch up when a burst ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::store;
use crate::store::aggregates::Flushed;

/// How often the flusher looks for deltas nobody announced: ones a crashed process (or
/// another instance that has gone quiet) left behind.
const LEFTOVER_CHECK: Duration = Duration::from_secs(60);

/// How long a failed flush waits before the next try; the deltas stay stored meanwhile.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The writers' handle on the flushing task.
pub struct AggregateFlusher {
    /// Some batch deferred its aggregates since the last flush began.
    deferred: AtomicBool,
    /// Woken by the first deferral after a flush.
    due: Notify,
    /// Woken when the writers find no work while deltas wait.
    idle: Notify,
    window: Duration,
}

impl AggregateFlusher {
    /// Starts the flushing task, with its own connection from `pool`. It first folds whatever
    /// an earlier process left.
    pub fn start(pool: PgPool, window: Duration) -> Arc<Self> {
        let flusher = Arc::new(AggregateFlusher {
            deferred: AtomicBool::new(false),
            due: Notify::new(),
            idle: Notify::new(),
            window,
        });
        tokio::spawn(flusher.clone().run(pool));
        flusher
    }

    /// A batch deferred its aggregates (called once it committed).
    pub fn deferred(&self) {
        if !self.deferred.swap(true, Ordering::AcqRel) {
            self.due.notify_one();
        }
    }

    /// The writers found the queue empty for a while.
    pub fn idle(&self) {
        if self.deferred.load(Ordering::Acquire) {
            self.idle.notify_one();
        }
    }

    async fn run(self: Arc<Self>, pool: PgPool) {
        let mut flush_now = true;
        loop {
            if !flush_now {
                let _ = tokio::time::timeout(LEFTOVER_CHECK, self.due.notified()).await;
                tokio::select! {
                    _ = tokio::time::sleep(self.window) => {}
                    _ = self.idle.notified() => {}
                }
            }
            // Cleared first: a batch that commits during the flush is either in it or calls
            // for the next one.
            self.deferred.store(false, Ordering::Release);
            let flushed = store::aggregates::flush(&pool).await;
            if let Err(e) = &flushed {
                tracing::warn!(error = %e, "deferred aggregates could not be folded in yet");
            }
            match flushed {
                Ok(Flushed::Folded) => {
                    metrics::counter!("faultline_aggregate_flushes_total").increment(1);
                    flush_now = false;
                }
                Ok(Flushed::Nothing) => flush_now = false,
                // Another instance's flush may have started before this instance's last
                // deltas were committed: try again shortly rather than at the next deferral.
                Ok(Flushed::Busy) | Err(_) => {
                    self.deferred.store(true, Ordering::Release);
                    tokio::time::sleep(RETRY_AFTER).await;
                    flush_now = true;
                }
            }
        }
    }
}

//! Keeps the counter tables compact while the server runs, and links user feedback whose event
//! was stored while the feedback was being saved (the writer links the rest at once).
//!
//! Every batch rewrites its issues' rows (counts, last seen), so at a steady 1,000 events/s
//! the 500-row `issues` table gathers thousands of dead row versions a second. PostgreSQL's
//! autovacuum visits a table at most once a minute, and not at all where it is switched off:
//! on such a server `issues` grew to 160 MB of dead rows in ten minutes and the writers' p99
//! doubled. A `VACUUM` of these small tables every few seconds keeps them at their real size.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::{feedback, maintenance};

const EVERY: Duration = Duration::from_secs(10);

/// Runs for the life of the server. Says once, at start, when autovacuum is off, since the
/// other tables then depend on the operator's own vacuuming.
pub fn spawn_background(pool: PgPool) {
    tokio::spawn(async move {
        if let Ok(false) = maintenance::autovacuum_enabled(&pool).await {
            tracing::warn!(
                "PostgreSQL's autovacuum is off: Faultline vacuums its counter tables itself, \
                 but the planner statistics and other tables need autovacuum = on"
            );
        }
        let mut ticker = tokio::time::interval(EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = maintenance::vacuum_counter_tables(&pool).await {
                tracing::warn!(error = %e, "could not vacuum the counter tables");
            }
            if let Err(e) = feedback::link_pending(&pool).await {
                tracing::warn!(error = %e, "could not link user feedback to its events");
            }
        }
    });
}

//! Upkeep of the tables the writer updates in place.

use sqlx::PgPool;

/// The small tables whose rows every batch rewrites (and the deltas every flush of deferred
/// aggregates deletes): each update leaves a dead row version and dead index entries behind,
/// so they bloat within minutes unless vacuumed. `SKIP_LOCKED`:
/// when another instance (or autovacuum) is at it, this one does not queue behind it.
const VACUUM_COUNTER_TABLES: &str =
    "VACUUM (SKIP_LOCKED) issues, issue_hourly_counts, endpoint_hourly_counts, endpoint_issues, aggregate_deltas";

/// Whether PostgreSQL's own autovacuum runs on this server.
pub async fn autovacuum_enabled(pool: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT current_setting('autovacuum') = 'on'")
        .fetch_one(pool)
        .await
}

/// Vacuums the counter tables. Never blocks the writers: `VACUUM` takes no lock that
/// conflicts with row updates.
pub async fn vacuum_counter_tables(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::raw_sql(VACUUM_COUNTER_TABLES).execute(pool).await?;
    Ok(())
}

//! Every SQL query Faultline runs lives under this module.

pub mod aggregates;
pub mod alert_channels;
pub mod alert_deliveries;
pub mod alert_digests;
pub mod alerts;
pub mod artifacts;
mod batch_issues;
pub mod endpoints;
pub mod event_body;
pub mod event_reads;
pub mod events;
pub mod feedback;
pub mod issue_filter;
pub mod issues;
pub mod keys;
pub mod known;
pub mod load_check;
pub mod maintenance;
pub mod projects;
pub mod retention;
pub mod search_terms;
pub mod users;

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::DatabaseSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to PostgreSQL, creating the database first if it does not exist. The pool
/// reconnects by itself, so a database that goes away and comes back needs no restart.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let url = &settings.database_url;
    let options: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    if !Postgres::database_exists(url)
        .await
        .context("could not reach PostgreSQL")?
    {
        Postgres::create_database(url)
            .await
            .context("could not create the database")?;
        tracing::info!(
            database = options.get_database().unwrap_or_default(),
            "created database"
        );
    }
    PgPoolOptions::new()
        .max_connections(settings.db_pool_size)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .context("could not connect to PostgreSQL")
}

/// A separate pool on the same database, for work that must not wait behind requests (the
/// event writers).
pub fn dedicated_pool(pool: &PgPool, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// A separate pool whose transactions commit without waiting for the WAL flush
/// (`synchronous_commit = off`). Only for bookkeeping that is safe to redo: the alert
/// sender's claims, expansions and outcomes. A PostgreSQL crash can lose their last moments,
/// which at worst sends a notification again with the same delivery id; it never loses a
/// trigger (those are written in the event writer's transaction, which waits for the flush).
/// It keeps the sender's many small commits from queueing behind ingest's for the disk.
pub fn bookkeeping_pool(pool: &PgPool, size: u32) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("synchronous_commit", "off")]);
    PgPoolOptions::new()
        .max_connections(size.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options)
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("could not apply database migrations")
}

/// Whether `error` means PostgreSQL cannot do any work right now (unreachable, shutting down,
/// out of resources, read-only after a fail-over, still conflicting after retries) rather than
/// refusing this statement's data. The first is an outage a client may wait out; the second
/// is a fault that retrying the same statement would only repeat.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            let class = e
                .code()
                .map(|code| code.chars().take(2).collect::<String>());
            matches!(
                class.as_deref(),
                Some("08" | "25" | "40" | "53" | "55" | "57" | "58")
            )
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// Deadlocks and serialization failures: the same transaction succeeds when simply run again.
pub fn is_transient(error: &sqlx::Error) -> bool {
    let code = error.as_database_error().and_then(|e| e.code());
    matches!(code.as_deref(), Some("40P01") | Some("40001"))
}

/// Whether PostgreSQL refused text the request carried: a NUL character (which its `text`
/// cannot hold) in a search, a filter or a form field. A client's mistake (400), not a fault.
pub fn is_invalid_text(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => matches!(e.code().as_deref(), Some("22021" | "22P05")),
        _ => false,
    }
}

/// Whether the database answers at all (for `/readyz`).
pub async fn ping(pool: &PgPool) -> bool {
    let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), query).await,
        Ok(Ok(1))
    )
}

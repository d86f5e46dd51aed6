//! What every request handler can reach. Its own module, so handlers and start-up both depend
//! on it instead of on each other.

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::{AlertSettings, DashboardSettings, Limits, PublicSettings};
use crate::ingest::body::InFlightMemory;
use crate::ingest::keys::KeyCache;
use crate::ingest::pipeline::Pipeline;
use crate::rate_limit::PerMinute;
use crate::source_maps::SourceMapCache;
use crate::spool::Spool;
use crate::web::filter_values::FilterValues;

/// What every handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub limits: Limits,
    pub keys: KeyCache,
    pub pipeline: Pipeline,
    /// The memory ingest requests in flight may hold in their bodies.
    pub in_flight: InFlightMemory,
    /// Where events wait while PostgreSQL is away (for `/readyz`).
    pub spool: Arc<Spool>,
    pub public: PublicSettings,
    pub dashboard: DashboardSettings,
    pub filter_values: FilterValues,
    /// For "Send test" and checking webhook URLs as channels are added.
    pub alerts: AlertSettings,
    /// Crash-report dialog submissions per client address.
    pub report_limiter: PerMinute<std::net::IpAddr>,
    /// Feedback reports per project through the public DSN.
    pub feedback_limiter: PerMinute<i64>,
    /// Faults of Faultline's own filed per route.
    pub fault_limiter: PerMinute<String>,
    /// Parsed source maps, for ingest and for event pages.
    pub source_maps: SourceMapCache,
}

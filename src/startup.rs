//! Building the HTTP server: bind first (so tests can ask for port 0 and learn the real port),
//! then serve.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;

use crate::config::{DashboardSettings, Settings};
use crate::domain::credentials;
use crate::error::ApiError;
use crate::ingest::body::InFlightMemory;
use crate::ingest::keys::KeyCache;
use crate::ingest::pipeline::Pipeline;
use crate::rate_limit::PerMinute;
use crate::source_maps::SourceMapCache;
use crate::spool::Spool;
use crate::state::AppState;
use crate::{ingest, store, telemetry, web as dashboard};

/// How long a stopping server tries to fold in deferred aggregates before leaving them.
const FINAL_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a stopping server replays its spool into PostgreSQL, once its last request is
/// answered, before leaving the rest for the next start. A replay cut short by SIGKILL (an
/// orchestrator's grace ending first) loses nothing: segments are deleted only once committed,
/// and writing is idempotent.
const FINAL_REPLAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Applied to every answer: pages never run inline script, are never framed, and never let
/// the browser guess a content type.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub struct Application {
    port: u16,
    metrics: Option<(Server, u16)>,
    server: Server,
    spool: Arc<Spool>,
    /// For the last fold of deferred aggregates, once the server has stopped.
    pool: PgPool,
}

impl Application {
    /// Connects to the database (creating and migrating it), starts the writer, binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // First: a second process on the same spool directory stops here, touching nothing.
        let spool = Arc::new(Spool::open(&settings.spool)?);
        let pool = store::connect(&settings.database).await?;
        store::migrate(&pool).await?;
        create_first_admin(&pool, &settings.dashboard).await?;
        // Today's partition must exist before the first event; the job keeps them coming.
        store::retention::create_partitions(&pool, chrono::Utc::now().date_naive()).await?;
        crate::cleanup::spawn_background(pool.clone(), settings.retention.retention_days);
        crate::upkeep::spawn_background(pool.clone());
        // Its own small pool (a listening connection and four senders): sending alerts never
        // waits behind, or holds up, requests.
        crate::alerts::spawn_sender(
            store::bookkeeping_pool(&pool, 5),
            settings.public.base_url.clone(),
            settings.alerts.clone(),
        );
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("could not listen on {}", settings.bind))?;
        crate::spool::replay::spawn(spool.clone(), store::dedicated_pool(&pool, 2));
        Self::from_parts(settings, pool, spool, listener)
    }

    pub fn from_parts(
        settings: Settings,
        pool: PgPool,
        spool: Arc<Spool>,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let final_flush_pool = pool.clone();
        let state = web::Data::new(AppState {
            pipeline: Pipeline::start(
                // One connection per writer, and the aggregate flusher's.
                store::dedicated_pool(&pool, settings.pipeline.writers as u32 + 1),
                &settings.pipeline,
                spool.clone(),
                &settings.spool,
            ),
            in_flight: InFlightMemory::new(settings.limits.max_in_flight_bytes),
            spool: spool.clone(),
            keys: KeyCache::new(pool.clone(), spool.clone()),
            limits: settings.limits.clone(),
            public: settings.public.clone(),
            // The admin password was needed once, at start-up; handlers never see it.
            dashboard: DashboardSettings {
                admin_password: None,
                ..settings.dashboard.clone()
            },
            filter_values: Default::default(),
            alerts: settings.alerts.clone(),
            report_limiter: PerMinute::new(ingest::report_dialog::REPORTS_PER_MINUTE),
            feedback_limiter: PerMinute::new(ingest::feedback::REPORTS_PER_PROJECT_PER_MINUTE),
            fault_limiter: PerMinute::new(crate::self_report::FILED_PER_ROUTE_PER_MINUTE),
            source_maps: SourceMapCache::new(settings.limits.source_map_cache_mb * 1024 * 1024),
            pool,
        });
        let metrics = match settings.metrics_bind {
            Some(bind) => {
                let (server, port) =
                    crate::metrics::serve(bind, state.pool.clone(), state.spool.clone())
                        .with_context(|| format!("could not listen for metrics on {bind}"))?;
                tracing::info!(port, "Prometheus metrics at /metrics");
                Some((server, port))
            }
            None => None,
        };
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(security_headers())
                .wrap(middleware::from_fn(crate::self_report::record_faults))
                .wrap(middleware::from_fn(telemetry::log_request))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                // The API's /api/0/ routes go first: the ingest scope /api/{project_id} would
                // otherwise claim them.
                .configure(crate::api::configure)
                .configure(ingest::routes::configure)
                .configure(dashboard::configure)
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        // SIGTERM/SIGINT: stop accepting, let requests in flight finish (their events are
        // committed or spooled first), then stop.
        .shutdown_timeout(settings.shutdown_timeout);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        tracing::info!(port, "Faultline is listening");
        Ok(Application {
            port,
            metrics,
            server: server.run(),
            spool,
            pool: final_flush_pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// Serves until SIGTERM or SIGINT, then until the requests in flight are answered.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        if let Some((metrics, _)) = self.metrics {
            // It stops with the process: a scrape during shutdown still answers.
            tokio::spawn(metrics);
        }
        self.server.await?;
        // Every answered event is committed or spooled by now. The spooled ones go to
        // PostgreSQL if it answers: an instance scaled away would otherwise leave them in a
        // directory no process may ever open again.
        let replayed =
            tokio::time::timeout(FINAL_REPLAY_TIMEOUT, replay_spool(&self.spool, &self.pool)).await;
        if !matches!(replayed, Ok(Ok(()))) || self.spool.events() > 0 {
            tracing::warn!(
                spool.events = self.spool.events(),
                "acknowledged events wait in the spool for the next start on this directory"
            );
        }
        // The aggregates deferred by batches are folded in here rather than at the next start
        // (or left for it if the database is away).
        let flushed =
            tokio::time::timeout(FINAL_FLUSH_TIMEOUT, fold_deferred_aggregates(&self.pool)).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!("deferred aggregates are left for the next start");
        }
        tracing::info!(
            spool.events = self.spool.events(),
            "Faultline stopped: every request in flight was answered"
        );
        Ok(())
    }
}

/// Replays what waits in the spool, if PostgreSQL answers; waits for the replayer task's
/// replay when one is at work.
async fn replay_spool(spool: &Spool, pool: &PgPool) -> anyhow::Result<()> {
    if spool.holds_no_segment() || !store::ping(pool).await {
        return Ok(());
    }
    crate::spool::replay::replay_all(spool, pool).await
}

/// Folds in the deferred aggregates, waiting for a flush already at work (the flusher task's,
/// or another instance's) to finish first.
async fn fold_deferred_aggregates(pool: &PgPool) -> sqlx::Result<()> {
    while store::aggregates::flush(pool).await? == store::aggregates::Flushed::Busy {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready while events can be accepted: the database answers, or the spool has room.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = store::ping(&state.pool).await;
    let spool = &state.spool;
    let body = json!({
        "status": if database || spool.has_room() { "ready" } else { "unavailable" },
        "database": if database { "up" } else { "down" },
        "spooled_events": spool.events(),
        "spool_bytes": spool.bytes(),
    });
    if database || spool.has_room() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// JSON for API paths, a page in the site's layout for everything else.
async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    if req.path().starts_with("/api/") {
        Err(ApiError::NotFound("no such API route".into()).into())
    } else {
        Err(dashboard::WebError::NotFound.into())
    }
}

fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
}

/// `FAULTLINE_ADMIN_EMAIL` and `FAULTLINE_ADMIN_PASSWORD` create the first admin, once, when
/// there is no user yet (the compose set-up).
async fn create_first_admin(pool: &PgPool, settings: &DashboardSettings) -> anyhow::Result<()> {
    // Compose passes unset variables as empty strings.
    let given = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    let (Some(email), Some(password)) = (
        given(&settings.admin_email),
        given(&settings.admin_password),
    ) else {
        return Ok(());
    };
    let email = credentials::normalize_email(&email).context("FAULTLINE_ADMIN_EMAIL")?;
    credentials::check_password(&password).context("FAULTLINE_ADMIN_PASSWORD")?;
    let hash = credentials::hash_password(&password)?;
    if store::users::create_first_admin(pool, &email, &hash).await? {
        tracing::info!("created the first admin from FAULTLINE_ADMIN_EMAIL");
    }
    Ok(())
}

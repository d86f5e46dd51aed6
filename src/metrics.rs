//! Prometheus metrics on a listener of their own (`FAULTLINE_METRICS_BIND`, off when unset),
//! so the scrape endpoint is never exposed with the public one. The `metrics` facade records
//! them where they happen (ingest answers, the writers, the spool, every HTTP request); the
//! `metrics-exporter-prometheus` recorder renders them. Gauges that are read rather than
//! counted (database pool, spool size) are set when scraped.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::spool::Spool;

/// The process's recorder, installed once (tests start many servers in one process).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the only metrics recorder of the process")
    })
}

/// Installs the recorder, so what happens before the first scrape is counted too.
pub fn install() {
    handle();
}

struct Sources {
    pool: PgPool,
    spool: Arc<Spool>,
}

/// Serves `GET /metrics` on `bind`; returns the server and its port.
pub fn serve(bind: SocketAddr, pool: PgPool, spool: Arc<Spool>) -> anyhow::Result<(Server, u16)> {
    install();
    let listener = TcpListener::bind(bind)?;
    let port = listener.local_addr()?.port();
    let sources = web::Data::new(Sources { pool, spool });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(sources.clone())
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, port))
}

async fn render(sources: web::Data<Sources>) -> HttpResponse {
    let pool = &sources.pool;
    let idle = pool.num_idle() as f64;
    metrics::gauge!("faultline_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("faultline_db_pool_connections", "state" => "busy")
        .set(f64::from(pool.size()) - idle);
    metrics::gauge!("faultline_spool_events").set(sources.spool.events() as f64);
    metrics::gauge!("faultline_spool_bytes").set(sources.spool.bytes() as f64);
    metrics::gauge!("faultline_database_down").set(if sources.spool.is_database_down() {
        1.0
    } else {
        0.0
    });
    // Left out of this scrape when the database is slow or away: a scrape must not hang.
    let waiting = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        crate::store::aggregates::waiting(pool),
    )
    .await;
    if let Ok(Ok(waiting)) = waiting {
        metrics::gauge!("faultline_aggregate_deltas_waiting").set(waiting as f64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle().render())
}

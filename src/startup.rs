//! Building the HTTP server: bind first (so tests can ask for port 0 and learn the real port),
//! then serve.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;

use crate::config::{Limits, Settings};
use crate::error::ApiError;
use crate::ingest::keys::KeyCache;
use crate::ingest::pipeline::Pipeline;
use crate::{ingest, store, telemetry};

/// What every handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub limits: Limits,
    pub keys: KeyCache,
    pub pipeline: Pipeline,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects to the database (creating and migrating it), starts the writer, binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = store::connect(&settings.database).await?;
        store::migrate(&pool).await?;
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("could not listen on {}", settings.bind))?;
        Self::from_parts(settings, pool, listener)
    }

    pub fn from_parts(
        settings: Settings,
        pool: PgPool,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            pipeline: Pipeline::start(pool.clone(), &settings.pipeline),
            keys: KeyCache::new(pool.clone()),
            limits: settings.limits.clone(),
            pool,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(telemetry::log_request))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .configure(ingest::routes::configure)
                .default_service(web::to(not_found))
        })
        .listen(listener)?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        tracing::info!(port, "Faultline is listening");
        Ok(Application {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if store::ping(&state.pool).await {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "database unreachable" }))
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such page".into()))
}

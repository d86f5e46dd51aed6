//! Faultline watches itself: every 500 it answers is also recorded as an event of a built-in
//! project named `faultline`, so operators see their server's own faults in the dashboard.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use chrono::Utc;
use serde_json::json;

use crate::domain::keys::new_public_key;
use crate::ingest::normalize::EnvelopeContext;
use crate::ingest::process;
use crate::state::AppState;
use crate::store::projects;

/// The project Faultline's own faults are filed under.
pub const PROJECT_NAME: &str = "faultline";

/// Faults filed per route per minute. A bug that fails every request of a busy route would
/// otherwise file an event (and its database work) per request; past this each is still
/// logged with its error id.
pub const FILED_PER_ROUTE_PER_MINUTE: u32 = 10;

/// What an error answer leaves in the response's extensions for this middleware to report.
#[derive(Debug, Clone)]
pub struct FaultReport {
    pub error_id: String,
    pub detail: String,
}

pub async fn record_faults(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let report = response
        .response()
        .extensions()
        .get::<FaultReport>()
        .cloned();
    if let Some(report) = report {
        let request = response.request();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".into());
        let method = request.method().to_string();
        if let Some(state) = request.app_data::<web::Data<AppState>>().cloned() {
            if state.fault_limiter.take(route.clone(), 1).is_ok() {
                actix_web::rt::spawn(async move { file(&state, &report, &method, &route).await });
            } else {
                tracing::warn!(error_id = %report.error_id, route = %route,
                    "fault not filed: this route filed its share this minute");
            }
        }
    }
    Ok(response)
}

async fn file(state: &AppState, report: &FaultReport, method: &str, route: &str) {
    // Created on the first fault, so a healthy installation has no extra project.
    let project_id = match projects::ensure(&state.pool, PROJECT_NAME, &new_public_key()).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error_id = %report.error_id, error = %e, "could not find the built-in project");
            return;
        }
    };
    let event = json!({
        "level": "error",
        "platform": "rust",
        "logger": "faultline",
        "transaction": route,
        "exception": {"values": [{
            "type": "InternalError",
            "value": report.detail,
            "mechanism": {"type": "faultline", "handled": false},
        }]},
        "tags": {"error_id": report.error_id, "route": route},
        "request": {"method": method, "url": route},
        "sdk": {"name": "faultline.self", "version": env!("CARGO_PKG_VERSION")},
    });
    let payload = event.to_string();
    let prepared = process::prepare(
        payload.as_bytes(),
        project_id,
        &EnvelopeContext::default(),
        Utc::now(),
        &state.limits,
    );
    match prepared {
        Ok(event) => {
            if let Err(e) = state.pipeline.store(event).await {
                tracing::warn!(error_id = %report.error_id, error = %e, "could not record Faultline's own fault");
            }
        }
        Err(e) => {
            tracing::warn!(error_id = %report.error_id, error = %e, "could not prepare Faultline's own fault")
        }
    }
}

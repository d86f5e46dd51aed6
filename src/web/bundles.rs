//! The project page's "Source maps" section: the bundles sentry-cli uploaded, and removing one.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::auth::{CsrfForm, NoFields};
use super::view::exact_time;
use super::WebError;
use crate::state::AppState;
use crate::store::artifacts;

/// Bundles listed on the project page.
const SHOWN: i64 = 50;

pub struct BundleItem {
    pub id: i64,
    pub uploaded: String,
    pub release: String,
    pub files: i32,
    pub size: String,
    pub debug_ids: Vec<String>,
}

pub async fn items(state: &AppState, project_id: i64) -> Result<Vec<BundleItem>, WebError> {
    Ok(artifacts::bundles_of(&state.pool, project_id, SHOWN)
        .await?
        .into_iter()
        .map(|b| BundleItem {
            id: b.id,
            uploaded: exact_time(b.created_at),
            release: match (b.release, b.dist) {
                (Some(release), Some(dist)) => format!("{release} ({dist})"),
                (Some(release), None) => release,
                _ => String::new(),
            },
            files: b.file_count,
            size: human_size(b.size),
            debug_ids: b.debug_ids.iter().map(|id| id.to_string()).collect(),
        })
        .collect())
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / (1 << 10) as f64),
        b => format!("{b} B"),
    }
}

/// `POST /projects/{id}/bundles/{bundle_id}/remove` (admins).
pub async fn remove(
    path: web::Path<(String, String)>,
    CsrfForm { operator, .. }: CsrfForm<NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.require_admin()?;
    let project_id: i64 = path.0.parse().map_err(|_| WebError::NotFound)?;
    let bundle_id: i64 = path.1.parse().map_err(|_| WebError::NotFound)?;
    if !artifacts::remove_from_project(&state.pool, project_id, bundle_id).await? {
        return Err(WebError::NotFound);
    }
    state.source_maps.forget_all();
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/projects/{project_id}#source-maps"),
        ))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2048), "2.0 kB");
        assert_eq!(human_size(3 * 1024 * 1024 + 1), "3.0 MB");
    }
}

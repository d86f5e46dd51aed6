//! Source-map uploads as sentry-cli 2.x and 3.x make them (PROTOCOL.md §14.6): the chunk
//! upload options, chunks (multipart, gzip'd or not, named by their SHA-1), and the artifact
//! bundle assembly that first reports missing chunks, then builds and indexes the bundle.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{check_org, project_from_path, ApiUser};
use crate::domain::artifact_bundle;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::artifacts::{self, Assembled};

/// Bytes per chunk (a power of two, as sentry-cli ≤ 2.39 requires).
const CHUNK_SIZE: usize = 8 * 1024 * 1024;
const CHUNKS_PER_REQUEST: usize = 64;
/// Most bytes one chunk POST may carry.
const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Largest bundle Faultline assembles: assembly holds it (and its files) in memory. Also the
/// most one chunk POST may inflate to (one bundle's chunks; a gzip'd part of zeros is tiny).
const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// Chunk POSTs and assemblies at work at once (what sentry-cli is told it may send at once):
/// each may hold up to ~100 MB.
const UPLOAD_CONCURRENCY: usize = 2;
static UPLOAD_WORK: Semaphore = Semaphore::const_new(UPLOAD_CONCURRENCY);

/// Waits for a turn among the uploads and assemblies at work.
async fn upload_turn() -> Result<SemaphorePermit<'static>, ApiError> {
    UPLOAD_WORK
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("uploads closed: {e}")))
}

/// `GET /api/0/organizations/{org}/chunk-upload/`: how to upload.
pub(super) async fn chunk_upload_options(
    req: HttpRequest,
    _user: ApiUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_org(&state, &path)?;
    let connection = req.connection_info();
    let url = format!(
        "{}://{}/api/0/organizations/{}/chunk-upload/",
        connection.scheme(),
        connection.host(),
        path.as_str()
    );
    Ok(HttpResponse::Ok().json(json!({
        "url": url,
        "chunkSize": CHUNK_SIZE,
        "chunksPerRequest": CHUNKS_PER_REQUEST,
        "maxRequestSize": MAX_REQUEST_BYTES,
        "maxFileSize": MAX_BUNDLE_BYTES,
        "concurrency": UPLOAD_CONCURRENCY,
        "hashAlgorithm": "sha1",
        "compression": ["gzip"],
        // sentry-cli 2.x takes the chunked path only when `release_files` is offered; the bundle
        // then goes to the artifact bundle assembly, since that is offered too.
        "accept": ["release_files", "artifact_bundles", "artifact_bundles_v2"],
    })))
}

/// `POST …/chunk-upload/`: one multipart part per chunk, named `file` (or `file_gzip`), its
/// filename the SHA-1 of the uncompressed chunk, which is checked.
pub(super) async fn upload_chunks(
    _user: ApiUser,
    path: web::Path<String>,
    mut payload: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_org(&state, &path)?;
    let _turn = upload_turn().await?;
    let mut chunks = Vec::new();
    let (mut received, mut inflated) = (0usize, 0usize);
    while let Some(mut field) = payload.try_next().await.map_err(bad_multipart)? {
        if chunks.len() == CHUNKS_PER_REQUEST {
            return Err(chunk_error("Too many chunks"));
        }
        let gzipped = field.name() == Some("file_gzip");
        let checksum = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| is_sha1_hex(name))
            .ok_or_else(|| ApiError::bad_request("each chunk's filename is its SHA-1"))?;
        let mut data = Vec::new();
        while let Some(bytes) = field.try_next().await.map_err(bad_multipart)? {
            received += bytes.len();
            if received > MAX_REQUEST_BYTES {
                return Err(chunk_error("Request too large"));
            }
            data.extend_from_slice(&bytes);
        }
        let data = if gzipped { gunzip(&data)? } else { data };
        if data.len() > CHUNK_SIZE {
            return Err(chunk_error("Chunk size too large"));
        }
        inflated += data.len();
        if inflated > MAX_BUNDLE_BYTES {
            return Err(chunk_error("Request too large"));
        }
        if sha1_hex(&data) != checksum {
            return Err(ApiError::bad_request(format!(
                "chunk {checksum} does not match its checksum"
            )));
        }
        chunks.push((checksum, data));
    }
    artifacts::save_chunks(&state.pool, &chunks).await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssembleRequest {
    checksum: String,
    #[serde(default)]
    chunks: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

/// `POST /api/0/organizations/{org}/artifactbundle/assemble/`: reports the chunks Faultline
/// lacks; once it has them all, builds the bundle, indexes its files for the projects and
/// answers `ok` (assembly runs within the request: bundles are bounded).
pub(super) async fn assemble_bundle(
    _user: ApiUser,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_org(&state, &path)?;
    let _turn = upload_turn().await?;
    // Read here, after the token was checked: a bad body from an anonymous caller is a 401.
    let request: AssembleRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a valid assemble request: {e}")))?;
    let checksum = request.checksum.trim().to_ascii_lowercase();
    if !is_sha1_hex(&checksum) || !request.chunks.iter().all(|c| is_sha1_hex(c)) {
        return Err(ApiError::bad_request("checksums are 40 hexadecimal digits"));
    }
    if request.projects.is_empty() {
        return Err(ApiError::bad_request("name at least one project"));
    }
    if request.dist.is_some() && request.version.is_none() {
        return Err(ApiError::bad_request("dist needs a version"));
    }
    let mut project_ids = Vec::new();
    for slug in &request.projects {
        project_ids.push(project_from_path(&state, &path, slug).await?.id);
    }
    let chunks: Vec<String> = request
        .chunks
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let missing = artifacts::missing_chunks(&state.pool, &chunks).await?;
    if !missing.is_empty() {
        return Ok(state_answer("not_found", &missing, None));
    }
    if artifacts::bundle_exists(&state.pool, &checksum).await? {
        // Stored before: only the projects may be new.
        link_existing(&state, &checksum, &project_ids).await?;
        state.source_maps.forget_all();
        return Ok(state_answer("ok", &[], None));
    }
    if chunks.is_empty() {
        return Ok(state_answer("not_found", &[], None));
    }
    let bytes = match artifacts::concatenate(&state.pool, &chunks, MAX_BUNDLE_BYTES).await? {
        Assembled::Bytes(bytes) => bytes,
        Assembled::Missing => return Ok(state_answer("not_found", &chunks, None)),
        Assembled::TooLarge => {
            let why = format!("the bundle is larger than {MAX_BUNDLE_BYTES} bytes");
            return Ok(state_answer("error", &[], Some(&why)));
        }
    };
    if sha1_hex(&bytes) != checksum {
        let why = "the chunks do not make up the bundle's checksum";
        return Ok(state_answer("error", &[], Some(why)));
    }
    let bundle = match artifact_bundle::read(&bytes) {
        Ok(mut bundle) => {
            bundle.release = bundle.release.or(request.version);
            bundle.dist = bundle.dist.or(request.dist);
            bundle
        }
        Err(e) => return Ok(state_answer("error", &[], Some(&e.to_string()))),
    };
    artifacts::save_bundle(
        &state.pool,
        &checksum,
        bytes.len() as i64,
        &bundle,
        &project_ids,
        &chunks,
    )
    .await?;
    state.source_maps.forget_all();
    tracing::info!(
        bundle.checksum = %checksum,
        bundle.files = bundle.files.len(),
        "artifact bundle stored"
    );
    Ok(state_answer("ok", &[], None))
}

/// Adds projects to a bundle stored before (the same upload for another project).
async fn link_existing(
    state: &AppState,
    checksum: &str,
    project_ids: &[i64],
) -> Result<(), ApiError> {
    let empty = artifact_bundle::Bundle {
        bundle_id: None,
        release: None,
        dist: None,
        files: Vec::new(),
    };
    artifacts::save_bundle(&state.pool, checksum, 0, &empty, project_ids, &[]).await?;
    Ok(())
}

fn state_answer(state: &str, missing: &[String], detail: Option<&str>) -> HttpResponse {
    // `missingChunks` is always present: sentry-cli has no default for it.
    HttpResponse::Ok().json(json!({"state": state, "missingChunks": missing, "detail": detail}))
}

fn is_sha1_hex(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(CHUNK_SIZE as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| ApiError::bad_request("a file_gzip chunk is not valid gzip"))?;
    Ok(out)
}

fn chunk_error(message: &str) -> ApiError {
    ApiError::bad_request(message.to_owned())
}

fn bad_multipart(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::bad_request(format!("the chunk upload is not valid multipart: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_forty_hex_digits() {
        assert!(is_sha1_hex(&sha1_hex(b"chunk")));
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert!(!is_sha1_hex("da39a3ee"));
        assert!(!is_sha1_hex(&"g".repeat(40)));
    }
}

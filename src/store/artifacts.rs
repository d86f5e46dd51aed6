//! Source-map uploads: chunks by checksum, assembled bundles, and their files.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::artifact_bundle::Bundle;

/// Stores chunks; one already stored is kept as it is (content-addressed).
pub async fn save_chunks(pool: &PgPool, chunks: &[(String, Vec<u8>)]) -> sqlx::Result<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let (checksums, data): (Vec<&str>, Vec<&[u8]>) = chunks
        .iter()
        .map(|(checksum, data)| (checksum.as_str(), data.as_slice()))
        .unzip();
    sqlx::query(
        "INSERT INTO upload_chunks (checksum, data)
         SELECT * FROM UNNEST($1::text[], $2::bytea[]) ORDER BY 1
         ON CONFLICT (checksum) DO NOTHING",
    )
    .bind(&checksums)
    .bind(&data)
    .execute(pool)
    .await?;
    Ok(())
}

/// The checksums of `chunks` that are not stored, in their order.
pub async fn missing_chunks(pool: &PgPool, chunks: &[String]) -> sqlx::Result<Vec<String>> {
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT checksum FROM upload_chunks WHERE checksum = ANY($1)")
            .bind(chunks)
            .fetch_all(pool)
            .await?;
    Ok(chunks
        .iter()
        .filter(|c| !stored.contains(c))
        .cloned()
        .collect())
}

/// What a bundle's chunks make up.
pub enum Assembled {
    /// Their bytes, concatenated in the given order.
    Bytes(Vec<u8>),
    /// One of them has gone.
    Missing,
    /// More than the most a bundle may hold: nothing was read.
    TooLarge,
}

/// The chunks' bytes, concatenated in the given order, if they make up no more than
/// `max_bytes`: their sizes are added up first (a chunk may be named many times), so a list
/// that names one large chunk thousands of times is refused without holding it thousands of
/// times.
pub async fn concatenate(
    pool: &PgPool,
    chunks: &[String],
    max_bytes: usize,
) -> sqlx::Result<Assembled> {
    let sizes: HashMap<String, i64> = sqlx::query_as(
        "SELECT checksum, length(data)::int8 FROM upload_chunks WHERE checksum = ANY($1)",
    )
    .bind(chunks)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut total: usize = 0;
    for checksum in chunks {
        match sizes.get(checksum) {
            Some(size) => total = total.saturating_add(*size as usize),
            None => return Ok(Assembled::Missing),
        }
        if total > max_bytes {
            return Ok(Assembled::TooLarge);
        }
    }
    let rows: HashMap<String, Vec<u8>> =
        sqlx::query_as("SELECT checksum, data FROM upload_chunks WHERE checksum = ANY($1)")
            .bind(chunks)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let mut out = Vec::with_capacity(total);
    for checksum in chunks {
        match rows.get(checksum) {
            Some(data) => out.extend_from_slice(data),
            None => return Ok(Assembled::Missing),
        }
    }
    Ok(Assembled::Bytes(out))
}

/// Whether a bundle with this checksum is stored.
pub async fn bundle_exists(pool: &PgPool, checksum: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM artifact_bundles WHERE checksum = $1)")
        .bind(checksum)
        .fetch_one(pool)
        .await
}

/// Stores an assembled bundle for the projects, with its files, in one transaction, and
/// drops the chunks it was made of. The same bundle again only adds projects.
pub async fn save_bundle(
    pool: &PgPool,
    checksum: &str,
    size: i64,
    bundle: &Bundle,
    project_ids: &[i64],
    chunks: &[String],
) -> sqlx::Result<i64> {
    let mut tx = pool.begin().await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO artifact_bundles (checksum, bundle_id, release, dist, file_count, size)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (checksum) DO NOTHING RETURNING id",
    )
    .bind(checksum)
    .bind(bundle.bundle_id)
    .bind(&bundle.release)
    .bind(&bundle.dist)
    .bind(bundle.files.len() as i32)
    .bind(size)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match inserted {
        Some(id) => {
            for file in &bundle.files {
                sqlx::query(
                    "INSERT INTO artifact_files (bundle_id, path, file_type, url, debug_id, sourcemap, content)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(&file.path)
                .bind(&file.file_type)
                .bind(&file.url)
                .bind(file.debug_id)
                .bind(&file.sourcemap)
                .bind(&file.content)
                .execute(&mut *tx)
                .await?;
            }
            id
        }
        None => {
            sqlx::query_scalar("SELECT id FROM artifact_bundles WHERE checksum = $1")
                .bind(checksum)
                .fetch_one(&mut *tx)
                .await?
        }
    };
    sqlx::query(
        "INSERT INTO artifact_bundle_projects (bundle_id, project_id)
         SELECT $1, p FROM UNNEST($2::int8[]) AS p ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(project_ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM upload_chunks WHERE checksum = ANY($1)")
        .bind(chunks)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// One uploaded file of a project, found by debug id and type.
#[derive(Debug, sqlx::FromRow)]
pub struct ArtifactFile {
    pub bundle_id: i64,
    pub url: String,
    pub file_type: String,
    pub sourcemap: Option<String>,
    pub content: Vec<u8>,
}

/// A project's files, newest bundle first: the queries below add the condition.
const PROJECT_FILES: &str = "SELECT f.bundle_id, f.url, f.file_type, f.sourcemap, f.content
           FROM artifact_files f
           JOIN artifact_bundle_projects bp ON bp.bundle_id = f.bundle_id AND bp.project_id = $1
           JOIN artifact_bundles b ON b.id = f.bundle_id";

/// The project's source map and minified file with this debug id (each the newest bundle's,
/// if several), in one query: `(map, minified)`.
pub async fn files_by_debug_id(
    pool: &PgPool,
    project_id: i64,
    debug_id: uuid::Uuid,
) -> sqlx::Result<(Option<ArtifactFile>, Option<ArtifactFile>)> {
    let sql = format!(
        "SELECT DISTINCT ON (f.file_type) f.bundle_id, f.url, f.file_type, f.sourcemap, f.content
           FROM ({PROJECT_FILES}
                  WHERE f.debug_id = $2 AND f.file_type IN ('source_map', 'minified_source')) f
          ORDER BY f.file_type, f.bundle_id DESC"
    );
    let files: Vec<ArtifactFile> = sqlx::query_as(&sql)
        .bind(project_id)
        .bind(debug_id)
        .fetch_all(pool)
        .await?;
    let (mut map, mut minified) = (None, None);
    for file in files {
        match file.file_type.as_str() {
            "source_map" => map = Some(file),
            _ => minified = Some(file),
        }
    }
    Ok((map, minified))
}

/// The project's file served at `url` (`~/path`, any host) in `release` (and `dist`, if
/// given), for events whose SDK reported no debug ids.
pub async fn file_by_url(
    pool: &PgPool,
    project_id: i64,
    release: &str,
    dist: Option<&str>,
    url: &str,
    file_type: &str,
) -> sqlx::Result<Option<ArtifactFile>> {
    let sql = format!(
        "{PROJECT_FILES} WHERE f.url = $4 AND f.file_type = $5 AND b.release = $2
            AND ($3::text IS NULL OR b.dist = $3)
          ORDER BY f.bundle_id DESC LIMIT 1"
    );
    sqlx::query_as(&sql)
        .bind(project_id)
        .bind(release)
        .bind(dist)
        .bind(url)
        .bind(file_type)
        .fetch_optional(pool)
        .await
}

/// Marks bundles as used now (at most hourly per bundle: retention only needs the day).
pub async fn touch_bundles(pool: &PgPool, bundle_ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE artifact_bundles SET last_used_at = now()
          WHERE id = ANY($1) AND last_used_at < now() - interval '1 hour'",
    )
    .bind(bundle_ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes chunks stored before `chunk_cutoff` and never assembled, and bundles unused since
/// `cutoff`.
pub async fn delete_unused_before(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    chunk_cutoff: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let chunks = sqlx::query("DELETE FROM upload_chunks WHERE created_at < $1")
        .bind(chunk_cutoff)
        .execute(pool)
        .await?
        .rows_affected();
    let bundles = sqlx::query("DELETE FROM artifact_bundles WHERE last_used_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(chunks + bundles)
}

/// One of a project's uploaded bundles, for the project page.
#[derive(Debug, sqlx::FromRow)]
pub struct BundleRow {
    pub id: i64,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub file_count: i32,
    pub size: i64,
    pub created_at: DateTime<Utc>,
    /// The distinct debug ids of its files (at most a few, for display).
    pub debug_ids: Vec<uuid::Uuid>,
}

/// Whether any bundle was uploaded for the project: most projects have none, and their events
/// then need no lookup at all.
pub async fn project_has_bundles(pool: &PgPool, project_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM artifact_bundle_projects WHERE project_id = $1)",
    )
    .bind(project_id)
    .fetch_one(pool)
    .await
}

/// The project's bundles, newest first.
pub async fn bundles_of(
    pool: &PgPool,
    project_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<BundleRow>> {
    sqlx::query_as(
        "SELECT b.id, b.release, b.dist, b.file_count, b.size, b.created_at,
                ARRAY(SELECT DISTINCT f.debug_id FROM artifact_files f
                       WHERE f.bundle_id = b.id AND f.debug_id IS NOT NULL LIMIT 3) AS debug_ids
           FROM artifact_bundles b
           JOIN artifact_bundle_projects p ON p.bundle_id = b.id AND p.project_id = $1
          ORDER BY b.created_at DESC, b.id DESC LIMIT $2",
    )
    .bind(project_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Removes a bundle from a project, and the bundle itself when no project has it any more.
/// False when the project did not have it.
pub async fn remove_from_project(
    pool: &PgPool,
    project_id: i64,
    bundle_id: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let removed = sqlx::query(
        "DELETE FROM artifact_bundle_projects WHERE project_id = $1 AND bundle_id = $2",
    )
    .bind(project_id)
    .bind(bundle_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM artifact_bundles b WHERE b.id = $1
            AND NOT EXISTS (SELECT 1 FROM artifact_bundle_projects p WHERE p.bundle_id = b.id)",
    )
    .bind(bundle_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(removed > 0)
}

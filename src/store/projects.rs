//! Projects and their DSN keys, as the CLI manages them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectWithKey {
    pub id: i64,
    pub name: String,
    pub public_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateProjectError {
    #[error("a project named {0:?} already exists")]
    NameTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates a project and its first key in one transaction.
pub async fn create(
    pool: &PgPool,
    name: &str,
    public_key: &str,
) -> Result<i64, CreateProjectError> {
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| CreateProjectError::NameTaken(name.to_owned()))?;
    sqlx::query("INSERT INTO project_keys (project_id, public_key) VALUES ($1, $2)")
        .bind(id)
        .bind(public_key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Every project with its oldest active key (the one its DSN shows).
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<ProjectWithKey>> {
    sqlx::query_as(
        "SELECT p.id, p.name, p.created_at,
                (SELECT k.public_key FROM project_keys k
                  WHERE k.project_id = p.id AND k.revoked_at IS NULL
                  ORDER BY k.id LIMIT 1) AS public_key
           FROM projects p ORDER BY p.id",
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectSummary {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub issue_count: i64,
    pub event_count: i64,
    pub unresolved_count: i64,
}

/// Every project with its issue and event totals.
pub async fn list_with_counts(pool: &PgPool) -> sqlx::Result<Vec<ProjectSummary>> {
    sqlx::query_as(
        "SELECT p.id, p.name, p.created_at,
                count(i.id) AS issue_count,
                COALESCE(sum(i.event_count), 0)::int8 AS event_count,
                count(i.id) FILTER (WHERE i.status = 'unresolved') AS unresolved_count
           FROM projects p LEFT JOIN issues i ON i.project_id = p.id
          GROUP BY p.id ORDER BY p.name",
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn find(pool: &PgPool, project_id: i64) -> sqlx::Result<Option<Project>> {
    sqlx::query_as("SELECT id, name, created_at FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(pool)
        .await
}

pub async fn find_by_name(pool: &PgPool, name: &str) -> sqlx::Result<Option<Project>> {
    sqlx::query_as("SELECT id, name, created_at FROM projects WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectKey {
    pub id: i64,
    pub public_key: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn keys(pool: &PgPool, project_id: i64) -> sqlx::Result<Vec<ProjectKey>> {
    sqlx::query_as(
        "SELECT id, public_key, label, created_at, revoked_at FROM project_keys
          WHERE project_id = $1 ORDER BY revoked_at IS NOT NULL, id",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await
}

pub async fn add_key(
    pool: &PgPool,
    project_id: i64,
    public_key: &str,
    label: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO project_keys (project_id, public_key, label) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(project_id)
    .bind(public_key)
    .bind(label)
    .fetch_one(pool)
    .await
}

pub async fn revoke_key(pool: &PgPool, project_id: i64, key_id: i64) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE project_keys SET revoked_at = now() WHERE id = $1 AND project_id = $2 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(project_id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Replaces a key by a new one in one transaction: the old key stops working at once.
pub async fn rotate_key(
    pool: &PgPool,
    project_id: i64,
    key_id: i64,
    new_public_key: &str,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let label: Option<String> = sqlx::query_scalar(
        "UPDATE project_keys SET revoked_at = now() WHERE id = $1 AND project_id = $2 AND revoked_at IS NULL
         RETURNING label",
    )
    .bind(key_id)
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(label) = label else { return Ok(false) };
    sqlx::query("INSERT INTO project_keys (project_id, public_key, label) VALUES ($1, $2, $3)")
        .bind(project_id)
        .bind(new_public_key)
        .bind(label)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The id of the project named `name`, creating it (with `public_key`) when missing.
pub async fn ensure(pool: &PgPool, name: &str, public_key: &str) -> sqlx::Result<i64> {
    if let Some(project) = find_by_name(pool, name).await? {
        return Ok(project.id);
    }
    match create(pool, name, public_key).await {
        Ok(id) => Ok(id),
        // Another instance created it meanwhile.
        Err(CreateProjectError::NameTaken(_)) => match find_by_name(pool, name).await? {
            Some(project) => Ok(project.id),
            None => Err(sqlx::Error::RowNotFound),
        },
        Err(CreateProjectError::Database(e)) => Err(e),
    }
}

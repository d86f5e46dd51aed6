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

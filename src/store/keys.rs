//! Looking up the DSN key an ingest request presents.

use sqlx::PgPool;

/// What the database says about a (project, key) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyLookup {
    pub project_exists: bool,
    /// The project the key belongs to, if the key exists.
    pub key_project_id: Option<i64>,
    pub revoked: bool,
}

pub async fn lookup(pool: &PgPool, project_id: i64, public_key: &str) -> sqlx::Result<KeyLookup> {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1) AS project_exists,
                k.project_id AS key_project_id,
                COALESCE(k.revoked_at IS NOT NULL, false) AS revoked
           FROM (SELECT 1) AS one
           LEFT JOIN project_keys k ON k.public_key = $2",
    )
    .bind(project_id)
    .bind(public_key)
    .fetch_one(pool)
    .await
}

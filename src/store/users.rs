//! Operators, their login sessions, failed-login records and API tokens.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// No `Debug`: it holds the password hash.
#[derive(Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with e-mail {0} already exists")]
    EmailTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn create(
    pool: &PgPool,
    email: &str,
    password_hash: &str,
    is_admin: bool,
) -> Result<i64, CreateUserError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, is_admin) VALUES ($1, $2, $3)
         ON CONFLICT (email) DO NOTHING RETURNING id",
    )
    .bind(email)
    .bind(password_hash)
    .bind(is_admin)
    .fetch_optional(pool)
    .await?;
    id.ok_or_else(|| CreateUserError::EmailTaken(email.to_owned()))
}

/// Creates the first admin only when there is no user at all (compose start-up).
pub async fn create_first_admin(
    pool: &PgPool,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "INSERT INTO users (email, password_hash, is_admin)
         SELECT $1, $2, true WHERE NOT EXISTS (SELECT 1 FROM users)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(password_hash)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn find_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(
        "SELECT id, email, password_hash, is_admin, created_at FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<User>> {
    sqlx::query_as(
        "SELECT id, email, password_hash, is_admin, created_at FROM users ORDER BY email",
    )
    .fetch_all(pool)
    .await
}

/// Changes the password and ends every session of the user, in one transaction.
pub async fn set_password(pool: &PgPool, email: &str, password_hash: &str) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let id: Option<i64> =
        sqlx::query_scalar("UPDATE users SET password_hash = $2 WHERE email = $1 RETURNING id")
            .bind(email)
            .bind(password_hash)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(id) = id {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id.is_some())
}

pub async fn delete(pool: &PgPool, email: &str) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM users WHERE email = $1")
        .bind(email)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// A logged-in operator, as a session or token lookup finds them. No `Debug`: it holds the
/// session's CSRF token.
#[derive(Clone, sqlx::FromRow)]
pub struct SessionUser {
    pub user_id: i64,
    pub email: String,
    pub is_admin: bool,
    pub csrf_token: String,
    pub last_seen_at: DateTime<Utc>,
}

pub async fn create_session(
    pool: &PgPool,
    token_hash: &str,
    user_id: i64,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// The session's user, if the session exists, is younger than its absolute expiry and was
/// used within `idle_seconds`.
pub async fn find_session(
    pool: &PgPool,
    token_hash: &str,
    idle_seconds: i64,
) -> sqlx::Result<Option<SessionUser>> {
    sqlx::query_as(
        "SELECT s.user_id, u.email, u.is_admin, s.csrf_token, s.last_seen_at
           FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.token_hash = $1 AND s.expires_at > now()
            AND s.last_seen_at > now() - make_interval(secs => $2)",
    )
    .bind(token_hash)
    .bind(idle_seconds as f64)
    .fetch_optional(pool)
    .await
}

pub async fn touch_session(pool: &PgPool, token_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete_session(pool: &PgPool, token_hash: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Failed logins per subject (`email:…`, `ip:…`) within the last `window_seconds`.
pub async fn recent_failures(
    pool: &PgPool,
    subjects: &[String],
    window_seconds: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT subject, count(*) FROM login_failures
          WHERE subject = ANY($1) AND failed_at > now() - make_interval(secs => $2)
          GROUP BY subject",
    )
    .bind(subjects)
    .bind(window_seconds as f64)
    .fetch_all(pool)
    .await
}

/// Records a login attempt as a failure of each subject before its password is checked, so
/// that attempts made at once count against each other; returns its time, which names it for
/// [`forget_attempt`].
pub async fn record_attempt(pool: &PgPool, subjects: &[String]) -> sqlx::Result<DateTime<Utc>> {
    let at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO login_failures (subject) SELECT unnest($1::text[]) RETURNING failed_at",
    )
    .bind(subjects)
    .fetch_one(pool)
    .await?;
    // Old records only slow the count down; a day is far past any throttling window.
    sqlx::query("DELETE FROM login_failures WHERE failed_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(at)
}

/// Takes back an attempt [`record_attempt`] recorded: it succeeded, or was refused unchecked.
pub async fn forget_attempt(
    pool: &PgPool,
    subjects: &[String],
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE subject = ANY($1) AND failed_at = $2")
        .bind(subjects)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn clear_failures(pool: &PgPool, subject: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE subject = $1")
        .bind(subject)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn create_token(
    pool: &PgPool,
    user_id: i64,
    token_hash: &str,
    label: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, token_hash, label) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(label)
    .fetch_one(pool)
    .await
}

/// The operator behind an API token that is not revoked; records its use.
pub async fn find_token_user(
    pool: &PgPool,
    token_hash: &str,
) -> sqlx::Result<Option<(i64, String, bool)>> {
    sqlx::query_as(
        "UPDATE api_tokens t SET last_used_at = now()
           FROM users u
          WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.id = t.user_id
         RETURNING u.id, u.email, u.is_admin",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

pub async fn revoke_token(pool: &PgPool, token_id: i64) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(token_id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub email: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn list_tokens(pool: &PgPool) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(
        "SELECT t.id, u.email, t.label, t.created_at, t.last_used_at, t.revoked_at
           FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id",
    )
    .fetch_all(pool)
    .await
}

//! `/login` and `/logout`. Failed logins are throttled per account and per client address,
//! and the answer never tells whether the e-mail exists.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::auth::{self, CsrfForm, NoFields, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use super::WebError;
use crate::domain::credentials;
use crate::state::AppState;
use crate::store::users;

/// Where the login form's CSRF cookie is sent (and so where it must be removed).
const LOGIN_PATH: &str = "/login";

/// Failed attempts allowed per account, and per client address, within the window.
const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
const MAX_FAILURES_PER_ADDRESS: i64 = 20;
const FAILURE_WINDOW_SECONDS: i64 = 15 * 60;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, WebError> {
    let csrf = credentials::random_token();
    render(
        &req,
        &csrf,
        auth::safe_next(&query.next),
        "",
        None,
        actix_web::http::StatusCode::OK,
    )
}

fn render(
    req: &HttpRequest,
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, WebError> {
    let page = LoginPage {
        csrf_token: csrf,
        next,
        email,
        error,
    };
    let body = page.render().map_err(|e| WebError::Internal(e.into()))?;
    let cookie = actix_web::cookie::Cookie::build(LOGIN_CSRF_COOKIE, csrf.to_owned())
        .path(LOGIN_PATH)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .secure(is_https(req))
        .finish();
    Ok(HttpResponse::build(status)
        .cookie(cookie)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn is_https(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.public.base_url.starts_with("https://"))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

pub async fn submit(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let expected = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if expected.is_empty() || !credentials::same_token(&expected, &form.csrf_token) {
        return Err(WebError::Forbidden(
            "The login form expired. Reload the page and try again.".into(),
        ));
    }
    let email = credentials::canonical_email(&form.email);
    let subjects = vec![
        format!("email:{email}"),
        format!("ip:{}", client_address(&req)),
    ];
    // Counted before the check, so that guesses sent at once count against each other (checked
    // first and counted after, any number of them got through while the hashes were checked).
    let attempt = users::record_attempt(&state.pool, &subjects).await?;
    if is_throttled(&state, &subjects).await? {
        // A refused attempt checks nothing, and does not prolong the wait.
        users::forget_attempt(&state.pool, &subjects, attempt).await?;
        return Err(WebError::TooManyAttempts);
    }
    let user = users::find_by_email(&state.pool, &email).await?;
    let hash = user
        .as_ref()
        .map_or(credentials::dummy_hash(), |u| u.password_hash.as_str())
        .to_owned();
    let password = form.password.clone();
    let verified = check_password(hash, password).await?;
    let Some(user) = user.filter(|_| verified) else {
        let csrf = credentials::random_token();
        let message = "Incorrect e-mail or password.";
        return render(
            &req,
            &csrf,
            auth::safe_next(&form.next),
            &email,
            Some(message),
            actix_web::http::StatusCode::UNAUTHORIZED,
        );
    };
    users::forget_attempt(&state.pool, &subjects, attempt).await?;
    users::clear_failures(&state.pool, &subjects[0]).await?;
    let token = credentials::random_token();
    let max_hours = state.dashboard.session_max_hours;
    let expires_at = Utc::now() + chrono::Duration::hours(max_hours);
    users::create_session(
        &state.pool,
        &credentials::token_hash(&token),
        user.id,
        &credentials::random_token(),
        expires_at,
    )
    .await?;
    tracing::info!(user.id = user.id, "operator logged in");
    Ok(HttpResponse::SeeOther()
        .cookie(auth::session_cookie(token, is_https(&req), max_hours))
        .cookie(auth::expired_cookie(LOGIN_CSRF_COOKIE, LOGIN_PATH))
        .insert_header((header::LOCATION, auth::safe_next(&form.next).to_owned()))
        .finish())
}

/// Whether a subject has more failures in the window than it may, this attempt included.
async fn is_throttled(state: &AppState, subjects: &[String]) -> Result<bool, WebError> {
    let counts = users::recent_failures(&state.pool, subjects, FAILURE_WINDOW_SECONDS).await?;
    Ok(counts.iter().any(|(subject, n)| {
        let limit = if subject.starts_with("email:") {
            MAX_FAILURES_PER_ACCOUNT
        } else {
            MAX_FAILURES_PER_ADDRESS
        };
        *n > limit
    }))
}

/// Password checks running at once: Argon2 holds ~19 MiB and tens of milliseconds of CPU per
/// check, on purpose; many logins at once wait here instead of taking the machine's memory.
static PASSWORD_CHECKS: Semaphore = Semaphore::const_new(4);

/// Checks the password on a blocking thread, so a login never stalls the other requests of
/// its worker.
async fn check_password(hash: String, password: String) -> Result<bool, WebError> {
    let _turn = PASSWORD_CHECKS
        .acquire()
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("password checks closed: {e}")))?;
    web::block(move || credentials::verify_password(&hash, &password))
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("password check failed: {e}")))
}

fn client_address(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

pub async fn logout(
    req: HttpRequest,
    _checked: CsrfForm<NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        users::delete_session(&state.pool, &credentials::token_hash(cookie.value())).await?;
    }
    Ok(HttpResponse::SeeOther()
        .cookie(auth::expired_cookie(SESSION_COOKIE, "/"))
        .insert_header((header::LOCATION, "/login"))
        .finish())
}

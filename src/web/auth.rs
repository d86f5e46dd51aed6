//! Operators' login: Argon2id password hashes, random session tokens stored hashed, CSRF
//! tokens, and throttling of failed logins per account and per client address.

use std::future::Future;
use std::pin::Pin;

use super::WebError;
use crate::domain::credentials::{same_token, token_hash};
use crate::state::AppState;
use crate::store::users;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, FromRequest, HttpRequest};

pub const SESSION_COOKIE: &str = "faultline_session";
pub const LOGIN_CSRF_COOKIE: &str = "faultline_login_csrf";
/// A session's last use is written at most this often, not on every request.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// A logged-in operator. Extracting it from a request that has no valid session answers with
/// a redirect to the login page.
#[derive(Clone)]
pub struct Operator {
    pub user_id: i64,
    pub email: String,
    pub is_admin: bool,
    pub csrf_token: String,
}

/// Never the CSRF token: `Debug` output may reach a log.
impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// Every state-changing form carries the session's CSRF token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        if !submitted.is_empty() && same_token(submitted, &self.csrf_token) {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "The form's security token is missing or wrong. Reload the page and try again."
                    .into(),
            ))
        }
    }

    pub fn require_admin(&self) -> Result<(), WebError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "Only administrators can do this.".into(),
            ))
        }
    }
}

impl FromRequest for Operator {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { operator_from_session(&req).await })
    }
}

/// A state-changing form from a logged-in operator, its CSRF token already checked: a POST
/// handler that takes this cannot forget the check.
pub struct CsrfForm<T> {
    pub operator: Operator,
    pub form: T,
}

/// A form with nothing but its token (revoke, rotate, log out).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// The form's own fields plus the token every form carries.
#[derive(serde::Deserialize)]
struct WithToken<T> {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    fields: T,
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let operator = Operator::from_request(req, payload);
        let form = web::Form::<WithToken<T>>::from_request(req, payload);
        Box::pin(async move {
            let operator = operator.await?;
            let web::Form(submitted) = form
                .await
                .map_err(|_| WebError::BadRequest("The form could not be read.".into()))?;
            operator.check_csrf(&submitted.csrf_token)?;
            Ok(CsrfForm {
                operator,
                form: submitted.fields,
            })
        })
    }
}

async fn operator_from_session(req: &HttpRequest) -> Result<Operator, WebError> {
    let login_required = || WebError::LoginRequired(next_target(req));
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| WebError::Internal(anyhow::anyhow!("application state is missing")))?;
    let cookie = req.cookie(SESSION_COOKIE).ok_or_else(login_required)?;
    let hash = token_hash(cookie.value());
    let idle_seconds = state.dashboard.session_idle_minutes * 60;
    let session = users::find_session(&state.pool, &hash, idle_seconds)
        .await
        .map_err(WebError::from)?
        .ok_or_else(login_required)?;
    if (chrono::Utc::now() - session.last_seen_at).num_seconds() > TOUCH_EVERY_SECONDS {
        users::touch_session(&state.pool, &hash)
            .await
            .map_err(WebError::from)?;
    }
    Ok(Operator {
        user_id: session.user_id,
        email: session.email,
        is_admin: session.is_admin,
        csrf_token: session.csrf_token,
    })
}

/// The page to come back to after logging in.
fn next_target(req: &HttpRequest) -> String {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into())
}

/// Only same-site paths are followed after login: `/issues/3`, never `//evil.example` or
/// `https://evil.example`.
pub fn safe_next(next: &str) -> &str {
    let same_site = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if same_site {
        next
    } else {
        "/"
    }
}

pub fn session_cookie(token: String, secure: bool, max_age_hours: i64) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::hours(max_age_hours))
        .finish()
}

/// Removes the cookie `name` set for `path` (a browser keeps a cookie removed for another).
pub fn expired_cookie(name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, "").path(path).http_only(true).finish();
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_next_targets_are_followed() {
        assert_eq!(safe_next("/issues/3?x=1"), "/issues/3?x=1");
        for hostile in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(hostile), "/", "{hostile}");
        }
    }
}

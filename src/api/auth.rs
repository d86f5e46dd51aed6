//! Bearer-token authentication for the API. Tokens are stored hashed.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};

use crate::domain::credentials::token_hash;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::users;

/// The operator behind the request's `Authorization: Bearer …` token.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub user_id: i64,
    pub email: String,
    pub is_admin: bool,
}

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { user_from_token(&req).await })
    }
}

pub(super) async fn user_from_token(req: &HttpRequest) -> Result<ApiUser, ApiError> {
    let unauthorized = || {
        ApiError::Unauthorized("authentication required: send Authorization: Bearer <token>".into())
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is missing")))?;
    let found = users::find_token_user(&state.pool, &token_hash(token))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let (user_id, email, is_admin) =
        found.ok_or_else(|| ApiError::Unauthorized("invalid or revoked API token".into()))?;
    Ok(ApiUser {
        user_id,
        email,
        is_admin,
    })
}

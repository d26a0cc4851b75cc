//! Accounts: tenants, users, sign-in sessions and API tokens.
//!
//! Routes: `/api/v1/auth/*`, `/api/v1/tenants`, `/api/v1/users`. This module
//! also verifies user bearer tokens for every other domain (the
//! [`Identity`] extractor).

pub mod routes;
pub mod service;
pub mod store;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{bearer_token, cookie, AuthError, Identity};
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::AccountsService;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::login))
        .routes(routes!(routes::logout))
        .routes(routes!(routes::verify))
        .routes(routes!(routes::whoami))
        .routes(routes!(routes::list_api_tokens, routes::create_api_token))
        .routes(routes!(routes::revoke_api_token))
        .routes(routes!(routes::list_tenants, routes::create_tenant))
        .routes(routes!(routes::list_users, routes::create_user))
        .routes(routes!(routes::get_user, routes::update_user))
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input: {0}")]
    Invalid(FieldErrors),
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("too many failed attempts; retry in {retry_after_s}s")]
    Throttled { retry_after_s: u64 },
    #[error("no such user")]
    UserNotFound,
    #[error("no such API token")]
    TokenNotFound,
    #[error("already revoked")]
    AlreadyRevoked,
    #[error("an admin cannot disable or demote themselves")]
    SelfLockout,
    #[error("external JWTs cannot be revoked here")]
    NotRevocable,
    #[error("only local users have API tokens")]
    LocalUsersOnly,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(f) => ApiError::validation(f),
            AccountError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::INVALID_CREDENTIALS,
                "Email or password is incorrect",
            ),
            AccountError::Throttled { retry_after_s } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                "Too many failed sign-in attempts. Please try again later.",
            )
            .with_retry_after(retry_after_s),
            AccountError::UserNotFound => {
                ApiError::not_found(codes::USER_NOT_FOUND, "No such user in your tenant")
            }
            AccountError::TokenNotFound => {
                ApiError::not_found(codes::TOKEN_NOT_FOUND, "No such API token")
            }
            AccountError::AlreadyRevoked => {
                ApiError::conflict(codes::ALREADY_REVOKED, "This token was already revoked")
            }
            AccountError::SelfLockout => ApiError::conflict(
                codes::SELF_LOCKOUT,
                "You cannot disable or demote yourself; ask another admin",
            ),
            AccountError::NotRevocable => ApiError::bad_request(
                codes::NOT_REVOCABLE,
                "External JWTs expire on their own; sign out at the identity provider",
            ),
            AccountError::LocalUsersOnly => ApiError::forbidden(
                "API tokens belong to local users; external JWT users cannot manage them",
            ),
            AccountError::Auth(a) => a.into(),
            AccountError::Store(s) => s.into(),
            AccountError::Internal(msg) => ApiError::internal().with_cause(msg),
        }
    }
}

/// A user caller, verified from its bearer token (once per request), or
/// from the console session cookie when there is no bearer token: then a
/// write must carry the session's CSRF token (`auth::cookie`).
impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(id) = parts.extensions.get::<Identity>() {
            return Ok(id.clone());
        }
        let cookie = match bearer_token(parts) {
            Some(_) => None,
            None => cookie::session_from_headers(&parts.headers),
        };
        if let Some(session) = cookie {
            let identity = state.accounts.verify_bearer(session).await?;
            cookie::check_csrf(&parts.method, &parts.headers, session)?;
            // the session's own rate-limit budget, as for a bearer token
            state
                .limits
                .remember_token(&crate::http::middleware::token_key(session));
            parts.extensions.insert(identity.clone());
            return Ok(identity);
        }
        let token = bearer_token(parts).ok_or(AuthError::MissingToken)?;
        let identity = state.accounts.verify_bearer(token).await?;
        state
            .limits
            .remember_token(&crate::http::middleware::token_key(token));
        parts.extensions.insert(identity.clone());
        Ok(identity)
    }
}

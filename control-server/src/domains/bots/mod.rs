//! Bots: CRUD, the lifecycle (transition, ban, unban) with its log and ban
//! archive (`/api/v1/bots/*`). Tenant-wide: viewers read, operators write.

pub mod routes;
pub mod service;
pub mod store;

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::BotsService;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_bots, routes::create_bot))
        .routes(routes!(routes::list_archive))
        .routes(routes!(
            routes::get_bot,
            routes::patch_bot,
            routes::delete_bot
        ))
        .routes(routes!(routes::get_lifecycle))
        .routes(routes!(routes::get_transitions))
        .routes(routes!(routes::get_is_banned))
        .routes(routes!(routes::get_log))
        .routes(routes!(routes::transition))
        .routes(routes!(routes::ban))
        .routes(routes!(routes::unban))
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("invalid list query: {0}")]
    InvalidListQuery(FieldErrors),
    #[error("invalid bot body: {0}")]
    InvalidBody(FieldErrors),
    #[error("invalid transition: {0}")]
    InvalidTransition(FieldErrors),
    #[error("use the ban endpoint")]
    UseBanEndpoint,
    #[error("invalid ban body: {0}")]
    InvalidBan(FieldErrors),
    #[error("bot is not banned")]
    NotBanned,
    #[error("bot not found")]
    NotFound,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A 400 with `code` and `details.fields`.
fn fields(code: &'static str, f: FieldErrors) -> ApiError {
    let mut e = ApiError::validation(f);
    e.code = code;
    e
}

impl From<BotError> for ApiError {
    fn from(e: BotError) -> Self {
        match e {
            BotError::InvalidListQuery(f) => fields(codes::BOTS_INVALID_LIST_QUERY, f),
            BotError::InvalidBody(f) => fields(codes::BOTS_INVALID_MUTATION_BODY, f),
            BotError::InvalidTransition(f) => fields(codes::BOTS_TRANSITION_VALIDATION_FAILED, f),
            BotError::UseBanEndpoint => ApiError::bad_request(
                codes::BOTS_TRANSITION_VALIDATION_FAILED,
                "Use /lifecycle/ban endpoint for ban transitions",
            ),
            BotError::InvalidBan(f) => fields(codes::BOTS_INVALID_BAN_BODY, f),
            BotError::NotBanned => ApiError::new(
                StatusCode::CONFLICT,
                codes::BOTS_UNBAN_VALIDATION_FAILED,
                "Bot is not banned",
            ),
            BotError::NotFound => ApiError::not_found(codes::BOT_NOT_FOUND, "Bot not found"),
            BotError::Auth(a) => a.into(),
            BotError::Store(StoreError::Conflict(m)) => ApiError::conflict(codes::CONFLICT, m),
            BotError::Store(s) => s.into(),
        }
    }
}

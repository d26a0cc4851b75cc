//! Finance: operations (money in and out, gold sales) and the daily
//! statistics and gold price history computed from them in SQL
//! (`/api/v1/finance/*`). Tenant-wide: viewers read, operators write.

pub mod routes;
pub mod service;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::FinanceService;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_operations, routes::create_operation))
        .routes(routes!(
            routes::get_operation,
            routes::patch_operation,
            routes::delete_operation
        ))
        .routes(routes!(routes::daily_stats))
        .routes(routes!(routes::gold_price_history))
}

#[derive(Debug, thiserror::Error)]
pub enum FinanceError {
    #[error("invalid list query: {0}")]
    InvalidListQuery(FieldErrors),
    #[error("invalid statistics query: {0}")]
    InvalidStatsQuery(FieldErrors),
    #[error("invalid finance operation: {0}")]
    InvalidCreate(FieldErrors),
    #[error("invalid finance operation patch: {0}")]
    InvalidPatch(FieldErrors),
    #[error("finance operation not found")]
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

impl From<FinanceError> for ApiError {
    fn from(e: FinanceError) -> Self {
        match e {
            FinanceError::InvalidListQuery(f) => fields(codes::FINANCE_INVALID_LIST_QUERY, f),
            FinanceError::InvalidStatsQuery(f) => fields(codes::FINANCE_INVALID_STATS_QUERY, f),
            FinanceError::InvalidCreate(f) => fields(codes::FINANCE_INVALID_CREATE_BODY, f),
            FinanceError::InvalidPatch(f) => fields(codes::FINANCE_INVALID_PATCH_BODY, f),
            FinanceError::NotFound => ApiError::not_found(
                codes::FINANCE_OPERATION_NOT_FOUND,
                "Finance operation not found",
            ),
            FinanceError::Auth(a) => a.into(),
            FinanceError::Store(s) => s.into(),
        }
    }
}

//! Theme assets (inventory §2.16, issue #13): background images of the
//! tenant's UI kept in the object store. A client asks for an upload URL
//! (`presign-upload`), uploads the image to it, then `complete`s the
//! asset: the server checks the object is there with the declared size and
//! image type. Lists carry short-lived download URLs; deletes are soft.

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

pub use service::ThemeService;
pub use store::AssetStatus;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_assets))
        .routes(routes!(routes::presign_upload))
        .routes(routes!(routes::complete))
        .routes(routes!(routes::delete_asset))
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("invalid upload request: {0}")]
    InvalidPresign(FieldErrors),
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("theme asset not found")]
    NotFound,
    #[error("theme asset deleted")]
    Deleted,
    #[error("nothing uploaded yet")]
    UploadMissing,
    #[error("the upload is not what was declared: {0}")]
    UploadInvalid(String),
    #[error("object store: {0}")]
    ObjectStore(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ThemeError> for ApiError {
    fn from(e: ThemeError) -> Self {
        match e {
            ThemeError::InvalidPresign(f) => {
                let mut api = ApiError::validation(f);
                api.code = codes::THEME_ASSET_INVALID_PRESIGN_BODY;
                api
            }
            ThemeError::Validation(f) => ApiError::validation(f),
            ThemeError::NotFound => {
                ApiError::not_found(codes::THEME_ASSET_NOT_FOUND, "No such theme asset")
            }
            ThemeError::Deleted => {
                ApiError::conflict(codes::ASSET_DELETED, "The theme asset was deleted")
            }
            ThemeError::UploadMissing => ApiError::conflict(
                codes::THEME_ASSET_UPLOAD_MISSING,
                "Nothing was uploaded to the asset's URL yet; upload, then complete",
            ),
            ThemeError::UploadInvalid(why) => ApiError::conflict(
                codes::THEME_ASSET_UPLOAD_INVALID,
                format!("The upload was refused and the asset marked failed: {why}"),
            ),
            ThemeError::ObjectStore(cause) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::OBJECT_STORE_UNAVAILABLE,
                "The object store failed; try again shortly",
            )
            .with_retry_after(2)
            .with_cause(cause),
            ThemeError::Auth(a) => a.into(),
            ThemeError::Store(s) => s.into(),
        }
    }
}

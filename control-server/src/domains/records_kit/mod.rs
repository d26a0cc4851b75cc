//! The typed-record kit: one service ([`RecordsService`]) and one set of
//! HTTP handlers ([`routes`]) for every domain whose collections are
//! declared as [`crate::records::KindSpec`]s — today resources
//! (`/api/v1/resources/{kind}`) and workspace (`/api/v1/workspace/{kind}`).
//!
//! A domain contributes only what differs: its kinds (in its `store.rs`),
//! its typed id and a [`RecordsApi`] (base path, tag, PUT alias or not,
//! error codes and messages), by implementing [`RecordsDomain`]. The
//! validation, SQL, rendering and OpenAPI come from `crate::records`; the
//! rules (roles, shallow merge in one transaction, sealing of secrets) from
//! [`service`]; the handlers from [`routes`]. Errors are one enum,
//! [`RecordError`], mapped once to the domain's codes by
//! [`RecordError::into_api`].

pub mod routes;
pub mod service;

use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::error::ApiError;
use crate::records::{ApiShape, KindSpec};
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::RecordsService;

/// A domain served by the kit.
pub trait RecordsDomain: Sized + Send + Sync + 'static {
    /// The typed id of the domain's records.
    type Id: From<String> + AsRef<str> + Clone + serde::Serialize + Send + Sync + 'static;
    /// The domain's paths, kinds and error codes.
    fn api() -> &'static RecordsApi;
    /// The domain's service in the application state.
    fn service(state: &AppState) -> &RecordsService<Self>;
}

/// How a domain exposes its kinds.
pub struct RecordsApi {
    /// Paths, tag, kinds, PUT alias, codes (also what the OpenAPI says).
    pub shape: ApiShape<'static>,
    /// `resource` in "Unknown resource kind `x`; expected …".
    pub noun: &'static str,
    /// The message of a 404 (`Resource not found`).
    pub not_found_message: &'static str,
}

impl RecordsApi {
    /// The kind named in the path.
    pub fn kind(&self, k: &str) -> Result<&'static KindSpec, RecordError> {
        self.shape
            .kinds
            .iter()
            .copied()
            .find(|s| s.kind == k)
            .ok_or_else(|| RecordError::InvalidKind(k.chars().take(64).collect()))
    }

    /// `licenses, proxies or subscriptions`.
    fn expected_kinds(&self) -> String {
        let names: Vec<&str> = self.shape.kinds.iter().map(|s| s.kind).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// The domain's routes: list and create on `{base}/{kind}`; read, PATCH
/// (and PUT when the shape says so) and delete on `{base}/{kind}/{id}`;
/// `extra_paths` joins the OpenAPI document (their routes are the caller's).
pub fn routes<D: RecordsDomain>(extra_paths: Map<String, Value>) -> OpenApiRouter<AppState> {
    use axum::routing::get;
    let shape = &D::api().shape;
    let item = get(routes::get_one::<D>)
        .patch(routes::update::<D>)
        .delete(routes::delete::<D>);
    let item = if shape.put {
        item.put(routes::update::<D>)
    } else {
        item
    };
    OpenApiRouter::with_openapi(routes::openapi(shape, extra_paths))
        .route(
            &format!("{}/{{kind}}", shape.base),
            get(routes::list::<D>).post(routes::create::<D>),
        )
        .route(&format!("{}/{{kind}}/{{id}}", shape.base), item)
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unknown kind `{0}`")]
    InvalidKind(String),
    #[error("record not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("stored secret of {kind} cannot be opened: {cause}")]
    SecretUnreadable { kind: &'static str, cause: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RecordError {
    /// The answer, with the domain's codes and messages.
    pub fn into_api(self, api: &RecordsApi) -> ApiError {
        match self {
            RecordError::InvalidKind(k) => ApiError::bad_request(
                api.shape.invalid_kind_code,
                format!(
                    "Unknown {} kind `{k}`; expected {}",
                    api.noun,
                    api.expected_kinds()
                ),
            ),
            RecordError::NotFound | RecordError::Store(StoreError::NotFound(_)) => {
                ApiError::not_found(api.shape.not_found_code, api.not_found_message)
            }
            RecordError::Validation(f) => {
                ApiError::validation(f).recode_validation(api.shape.invalid_body_code)
            }
            RecordError::SecretUnreadable { kind, cause } => ApiError::internal().with_cause(
                format!("the secret of one of {kind} does not open with the data key: {cause}"),
            ),
            RecordError::Auth(a) => a.into(),
            RecordError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RecordsDomain;
    use crate::domains::resources::Resources;
    use crate::domains::workspace::Workspace;

    /// The document built as JSON survives utoipa's types unchanged (no
    /// constraint silently dropped on the way into the served OpenAPI).
    fn round_trips<D: RecordsDomain>(extra_needles: &[&str]) {
        let doc =
            serde_json::to_value(super::routes::<D>(Default::default()).into_openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 6, "{paths:?}");
        let text = doc.to_string();
        for needle in [
            "maxLength",
            "pattern",
            "minProperties",
            "additionalProperties",
            "minimum",
            "enum",
            "date-time",
            "ErrorEnvelope",
        ]
        .iter()
        .chain(extra_needles)
        {
            assert!(text.contains(needle), "{needle} lost");
        }
    }

    #[test]
    fn openapi_round_trips_through_utoipa() {
        round_trips::<Resources>(&["oneOf"]);
        round_trips::<Workspace>(&[]);
    }

    #[test]
    fn invalid_kind_messages_name_every_kind() {
        let msg = |api: &super::RecordsApi| api.expected_kinds();
        assert_eq!(msg(Resources::api()), "licenses, proxies or subscriptions");
        assert_eq!(msg(Workspace::api()), "notes, calendar or kanban");
    }
}

//! Resources: licenses, proxies and subscriptions under
//! `/api/v1/resources/{kind}` (list, read, create, shallow-merge update
//! with PATCH or PUT, delete; the records kit, `super::records_kit`), plus
//! the admin-only `GET /api/v1/resources/proxies/{id}/password`. Typed
//! fields are real columns, anything else passes through as JSON
//! (`crate::records`); the kinds are declared in `store`.

pub mod routes;
pub mod store;

use std::sync::Arc;

use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use super::records_kit::{self, RecordsApi, RecordsDomain, RecordsService};
use crate::crypto::DataKeys;
use crate::db::ids::ResourceId;
use crate::db::Db;
use crate::http::codes;
use crate::records::ApiShape;
use crate::state::AppState;

/// The resources domain, as the records kit serves it.
pub struct Resources;

pub type ResourcesService = RecordsService<Resources>;

static API: RecordsApi = RecordsApi {
    shape: ApiShape {
        base: "/api/v1/resources",
        tag: "resources",
        kinds: &[&store::LICENSES, &store::PROXIES, &store::SUBSCRIPTIONS],
        put: true,
        not_found_code: codes::RESOURCE_NOT_FOUND,
        invalid_kind_code: codes::RESOURCES_INVALID_KIND,
        invalid_body_code: codes::RESOURCES_INVALID_BODY,
        invalid_list_query_code: codes::RESOURCES_INVALID_LIST_QUERY,
    },
    noun: "resource",
    not_found_message: "Resource not found",
};

impl RecordsDomain for Resources {
    type Id = ResourceId;
    fn api() -> &'static RecordsApi {
        &API
    }
    fn service(state: &AppState) -> &ResourcesService {
        &state.resources
    }
}

impl ResourcesService {
    /// Proxy passwords are sealed with `keys`.
    pub fn new(db: Db, keys: Arc<DataKeys>) -> ResourcesService {
        RecordsService::with_keys(db, Some(keys))
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    records_kit::routes::<Resources>(routes::extra_paths()).route(
        "/api/v1/resources/proxies/{id}/password",
        get(routes::proxy_password),
    )
}

//! Workspace: notes, calendar events and kanban tasks under
//! `/api/v1/workspace/{kind}` (list, read, create, shallow-merge PATCH,
//! delete; no PUT, as the original) — the records kit
//! (`super::records_kit`). Typed fields are real columns, anything else
//! passes through as JSON (`crate::records`); the kinds are declared in
//! `store`.

pub mod store;

use serde_json::Map;
use utoipa_axum::router::OpenApiRouter;

use super::records_kit::{self, RecordsApi, RecordsDomain, RecordsService};
use crate::db::ids::WorkspaceItemId;
use crate::db::Db;
use crate::http::codes;
use crate::records::ApiShape;
use crate::state::AppState;

/// The workspace domain, as the records kit serves it.
pub struct Workspace;

pub type WorkspaceService = RecordsService<Workspace>;

static API: RecordsApi = RecordsApi {
    shape: ApiShape {
        base: "/api/v1/workspace",
        tag: "workspace",
        kinds: &[&store::NOTES, &store::CALENDAR, &store::KANBAN],
        put: false,
        not_found_code: codes::WORKSPACE_ENTITY_NOT_FOUND,
        invalid_kind_code: codes::WORKSPACE_INVALID_KIND,
        invalid_body_code: codes::WORKSPACE_INVALID_BODY,
        invalid_list_query_code: codes::WORKSPACE_INVALID_LIST_QUERY,
    },
    noun: "workspace",
    not_found_message: "Workspace item not found",
};

impl RecordsDomain for Workspace {
    type Id = WorkspaceItemId;
    fn api() -> &'static RecordsApi {
        &API
    }
    fn service(state: &AppState) -> &WorkspaceService {
        &state.workspace
    }
}

impl WorkspaceService {
    /// Workspace kinds hold no secrets: no data key.
    pub fn new(db: Db) -> WorkspaceService {
        RecordsService::with_keys(db, None)
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    records_kit::routes::<Workspace>(Map::new())
}

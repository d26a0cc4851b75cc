//! HTTP handlers and DTOs of the VM registry.

use axum::extract::{RawQuery, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::service::{RegisterInput, VmView};
use super::store::{VmStatus, VM_LIST};
use crate::auth::Identity;
use crate::db::ids::UserId;
use crate::http::codes;
use crate::http::envelope::{created, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{list_query_doc, opt_text, ApiJson, ApiPath};
use crate::state::AppState;

fn vm_uuid_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(super::service::VM_UUID_PATTERN))
        .description(Some(
            "8-128 characters of A-Z a-z 0-9 : _ - (stored lower-cased)",
        ))
        .build()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterVm {
    /// The VM's UUID (SMBIOS / Proxmox), compared case-insensitively.
    #[schema(schema_with = vm_uuid_schema)]
    pub vm_uuid: String,
    /// The owner (admins only; default: the caller, or the stored owner
    /// when the VM exists). Must be a user of the tenant.
    pub user_id: Option<UserId>,
    #[schema(schema_with = opt_text::<0, 200>)]
    pub vm_name: Option<String>,
    #[schema(schema_with = opt_text::<0, 100>)]
    pub project_id: Option<String>,
    /// Admins only, unless it is the VM's current status (new VM: `active`).
    #[schema(schema_with = opt_vm_status_schema)]
    pub status: Option<VmStatus>,
    /// Free-form JSON object (replaces the stored one when given).
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Register a VM, or update its registration (operator+). Upsert on the
/// tenant and `vm_uuid`: `created_at` and fields left out are kept.
/// Operators register and update only their own VMs.
#[utoipa::path(post, path = "/api/v1/vm/register", tag = "vms", security(("bearer" = [])),
    request_body = RegisterVm,
    responses((status = 201, body = Envelope<VmView>),
              (status = 400, description = "VM_REGISTER_INVALID_BODY (`details.fields`; the original's code), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN (role, user_id override, status), VM_OWNER_MISMATCH", body = ErrorEnvelope),
              (status = 404, description = "USER_NOT_FOUND (user_id)", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    identity: Identity,
    body: Result<ApiJson<RegisterVm>, ApiError>,
) -> Result<Reply<VmView>, ApiError> {
    // Body errors keep the original's code, whether serde or the service
    // finds them (its runners may test for it).
    let ApiJson(req) = body.map_err(|e| e.recode_validation(codes::VM_REGISTER_INVALID_BODY))?;
    let input = RegisterInput {
        vm_uuid: req.vm_uuid,
        user_id: req.user_id,
        vm_name: req.vm_name,
        project_id: req.project_id,
        status: req.status,
        metadata: req.metadata,
    };
    let vm = state
        .vms
        .register(&identity, input)
        .await
        .map_err(|e| ApiError::from(e).recode_validation(codes::VM_REGISTER_INVALID_BODY))?;
    Ok(created(vm))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VmPath {
    /// The VM's UUID (any case).
    #[param(pattern = "^[A-Za-z0-9:_-]{8,128}$")]
    pub uuid: String,
}

/// The registration of a VM (its owner; admins: any VM of the tenant).
#[utoipa::path(get, path = "/api/v1/vm/{uuid}/resolve", tag = "vms", security(("bearer" = [])),
    params(VmPath),
    responses((status = 200, body = Envelope<VmView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "VM_UUID_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn resolve(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<VmPath>,
) -> Result<Reply<VmView>, ApiError> {
    Ok(ok(state.vms.resolve(&identity, &p.uuid).await?))
}

list_query_doc!(VmListQuery, VM_LIST);

/// Registered VMs the caller may see (own; admins: the tenant), newest
/// first. List kit: sort on created_at, updated_at, vm_uuid, vm_name,
/// project_id, status; filter on those and user_id; `q` searches vm_uuid
/// and vm_name.
#[utoipa::path(get, path = "/api/v1/vms", tag = "vms", security(("bearer" = [])),
    params(VmListQuery),
    responses((status = 200, body = Envelope<Vec<VmView>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_vms(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<VmView>>, ApiError> {
    let (params, _) = VM_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(state.vms.list(&identity, &params).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchVm {
    /// `paused` and `revoked` VMs cannot lease licenses.
    #[schema(schema_with = vm_status_schema)]
    pub status: VmStatus,
}

/// Change a VM's status (admin).
#[utoipa::path(patch, path = "/api/v1/vms/{uuid}", tag = "vms", security(("bearer" = [])),
    params(VmPath), request_body = PatchVm,
    responses((status = 200, body = Envelope<VmView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "VM_UUID_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn patch_vm(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<VmPath>,
    ApiJson(req): ApiJson<PatchVm>,
) -> Result<Reply<VmView>, ApiError> {
    Ok(ok(state
        .vms
        .set_status(&identity, &p.uuid, req.status)
        .await?))
}

/// A string restricted to `values` (the text enums' derived schemas name
/// the Rust variants, not the stored strings), optionally `null`.
pub(crate) fn text_enum_schema(values: &[&str], nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::Type;
    let mut all: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    let ty = if nullable {
        all.push(serde_json::Value::Null);
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(ty)
        .enum_values(Some(all))
        .build()
}

const VM_STATUSES: &[&str] = &["active", "paused", "revoked"];

/// `active`, `paused` or `revoked`.
pub fn vm_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(VM_STATUSES, false)
}

/// `active`, `paused`, `revoked` or `null`.
pub fn opt_vm_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(VM_STATUSES, true)
}

//! HTTP handlers and DTOs of licensing: tenant licenses, entitlements, the
//! audit trail, and execution leases.

use axum::extract::{RawQuery, State};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, SchemaType};
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

use super::service::{
    AuditView, CreateLicense, EntitlementView, HeartbeatAnswer, IssuedLease, LeaseInput, LeaseView,
    LicenseView, PatchLicense, RevokeAnswer, ENTITLED_MODULE_PATTERN, MAX_MODULES, MODULE_PATTERN,
};
use super::store::{LicenseStatus, LicenseType, AUDIT_LIST, LICENSE_LIST};
use crate::auth::Identity;
use crate::db::ids::{LeaseId, LicenseId, UserId};
use crate::domains::vms::routes::text_enum_schema;
use crate::http::envelope::{created, ok, paged, Deleted, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{lenient_int, list_query_doc, opt_text, ApiJson, ApiPath};
use crate::state::AppState;

// ---- schemas of what the service checks ----

fn entitled_module() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(ENTITLED_MODULE_PATTERN))
}

fn modules_variants(nullable: bool) -> utoipa::openapi::Schema {
    let mut b = OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(entitled_module())
                .max_items(Some(MAX_MODULES))
                .description(Some("Module names; `*` allows every module.")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(entitled_module()))
                .additional_properties(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
                .max_properties(Some(MAX_MODULES))
                .description(Some(
                    "{module: true|false}; the key `*` set to true allows every module.",
                )),
        );
    if nullable {
        b = b.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    utoipa::openapi::Schema::OneOf(b.build())
}

/// `modules` of a PUT: an array of names or an object of booleans.
pub fn modules_request_schema() -> utoipa::openapi::Schema {
    modules_variants(false)
}

/// `modules` of an answer (`null` when never set).
pub fn modules_response_schema() -> utoipa::openapi::Schema {
    modules_variants(true)
}

fn module_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(MODULE_PATTERN))
        .description(Some("1-200 characters of A-Z a-z 0-9 . _ : -"))
        .build()
}

fn vm_uuid_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::domains::vms::service::VM_UUID_PATTERN))
        .description(Some("8-128 characters of A-Z a-z 0-9 : _ - (any case)"))
        .build()
}

/// 1..200 characters, no control characters or bidirectional overrides.
fn required_text_200() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(
            r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{1,200}$",
        ))
        .description(Some(
            "1-200 characters; no control characters or bidirectional overrides.",
        ))
        .build()
}

/// Absent: `None`; `null`: `Some(None)`; a value: `Some(Some(v))`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn nullable_int<'de, D>(d: D) -> Result<Option<Option<i64>>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient_int::<D, i64>(d).map(Some)
}

// ---- tenant licenses ----

list_query_doc!(LicenseListQuery, LICENSE_LIST);

/// The tenant's licenses (admin), newest first. List kit: sort on
/// created_at, updated_at, expires_at, type, status; filter on those and
/// user_id.
#[utoipa::path(get, path = "/api/v1/tenant-licenses", tag = "licensing", security(("bearer" = [])),
    params(LicenseListQuery),
    responses((status = 200, body = Envelope<Vec<LicenseView>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_licenses(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<LicenseView>>, ApiError> {
    let (params, _) = LICENSE_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(
        state.licensing.list_licenses(&identity, &params).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLicenseRequest {
    /// Default `subscription`.
    #[serde(rename = "type")]
    #[schema(schema_with = opt_license_type_schema)]
    pub license_type: Option<LicenseType>,
    /// Default `active`.
    #[schema(schema_with = opt_license_status_schema)]
    pub status: Option<LicenseStatus>,
    /// Epoch ms; a subscription is active only before it.
    #[serde(default, deserialize_with = "lenient_int")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 253402300799999_i64)]
    pub expires_at_ms: Option<i64>,
    /// Limit the license to one user of the tenant (default: every user).
    pub user_id: Option<UserId>,
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// Create a tenant license (admin; audited).
#[utoipa::path(post, path = "/api/v1/tenant-licenses", tag = "licensing", security(("bearer" = [])),
    request_body = CreateLicenseRequest,
    responses((status = 201, body = Envelope<LicenseView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "USER_NOT_FOUND (user_id)", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_license(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateLicenseRequest>,
) -> Result<Reply<LicenseView>, ApiError> {
    let input = CreateLicense {
        user_id: req.user_id,
        license_type: req.license_type,
        status: req.status,
        expires_at_ms: req.expires_at_ms,
        metadata: req.metadata,
    };
    Ok(created(
        state.licensing.create_license(&identity, input).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LicensePath {
    /// The license id.
    #[param(value_type = String)]
    pub id: LicenseId,
}

/// One tenant license (admin).
#[utoipa::path(get, path = "/api/v1/tenant-licenses/{id}", tag = "licensing", security(("bearer" = [])),
    params(LicensePath),
    responses((status = 200, body = Envelope<LicenseView>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "LICENSE_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_license(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<LicensePath>,
) -> Result<Reply<LicenseView>, ApiError> {
    Ok(ok(state.licensing.get_license(&identity, &p.id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchLicenseRequest {
    #[serde(rename = "type")]
    #[schema(schema_with = opt_license_type_schema)]
    pub license_type: Option<LicenseType>,
    #[schema(schema_with = opt_license_status_schema)]
    pub status: Option<LicenseStatus>,
    /// Epoch ms; `null` removes the expiry.
    #[serde(default, deserialize_with = "nullable_int")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 253402300799999_i64)]
    pub expires_at_ms: Option<Option<i64>>,
    /// `null`: the license covers every user of the tenant.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<Option<UserId>>,
    /// Replaces the stored metadata (`null` or absent: kept).
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// Change a tenant license (admin; audited). Fields left out are kept.
#[utoipa::path(patch, path = "/api/v1/tenant-licenses/{id}", tag = "licensing", security(("bearer" = [])),
    params(LicensePath), request_body = PatchLicenseRequest,
    responses((status = 200, body = Envelope<LicenseView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "LICENSE_NOT_FOUND, USER_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn patch_license(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<LicensePath>,
    ApiJson(req): ApiJson<PatchLicenseRequest>,
) -> Result<Reply<LicenseView>, ApiError> {
    let patch = PatchLicense {
        user_id: req.user_id,
        license_type: req.license_type,
        status: req.status,
        expires_at_ms: req.expires_at_ms,
        metadata: req.metadata,
    };
    Ok(ok(state
        .licensing
        .update_license(&identity, &p.id, patch)
        .await?))
}

/// Delete a tenant license (admin; audited). Leases it granted end at their
/// next heartbeat unless another license covers the user.
#[utoipa::path(delete, path = "/api/v1/tenant-licenses/{id}", tag = "licensing", security(("bearer" = [])),
    params(LicensePath),
    responses((status = 200, body = Envelope<Deleted>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "LICENSE_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn delete_license(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<LicensePath>,
) -> Result<Reply<Deleted>, ApiError> {
    state.licensing.delete_license(&identity, &p.id).await?;
    Ok(ok(Deleted { deleted: true }))
}

// ---- entitlements ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// A user of the caller's tenant.
    #[param(value_type = String)]
    pub user_id: UserId,
}

/// A user's module entitlements (admin).
#[utoipa::path(get, path = "/api/v1/entitlements/{user_id}", tag = "licensing", security(("bearer" = [])),
    params(UserPath),
    responses((status = 200, body = Envelope<EntitlementView>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "USER_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_entitlement(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<UserPath>,
) -> Result<Reply<EntitlementView>, ApiError> {
    Ok(ok(state
        .licensing
        .get_entitlement(&identity, &p.user_id)
        .await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEntitlement {
    /// The modules the user may lease.
    #[schema(schema_with = modules_request_schema)]
    pub modules: Value,
}

/// Replace a user's module entitlements (admin; audited).
#[utoipa::path(put, path = "/api/v1/entitlements/{user_id}", tag = "licensing", security(("bearer" = [])),
    params(UserPath), request_body = PutEntitlement,
    responses((status = 200, body = Envelope<EntitlementView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "USER_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn put_entitlement(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<UserPath>,
    ApiJson(req): ApiJson<PutEntitlement>,
) -> Result<Reply<EntitlementView>, ApiError> {
    Ok(ok(state
        .licensing
        .put_entitlement(&identity, &p.user_id, req.modules)
        .await?))
}

// ---- audit ----

list_query_doc!(AuditListQuery, AUDIT_LIST);

/// Who changed which license, entitlement or lease (admin), newest first.
/// List kit: sort on created_at, action; filter on created_at, action,
/// target_type, target_id, actor_id; `q` searches target_id.
#[utoipa::path(get, path = "/api/v1/license-audit", tag = "licensing", security(("bearer" = [])),
    params(AuditListQuery),
    responses((status = 200, body = Envelope<Vec<AuditView>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_audit(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<AuditView>>, ApiError> {
    let (params, _) = AUDIT_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(state.licensing.list_audit(&identity, &params).await?))
}

// ---- leases ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// A registered, active VM owned by the lease's user.
    #[schema(schema_with = vm_uuid_schema)]
    pub vm_uuid: String,
    /// Lease for another user of the tenant (admins only).
    pub user_id: Option<UserId>,
    #[schema(schema_with = required_text_200)]
    pub agent_id: String,
    #[schema(schema_with = required_text_200)]
    pub runner_id: String,
    #[schema(schema_with = module_schema)]
    pub module: String,
    #[schema(schema_with = opt_text::<0, 100>)]
    pub version: Option<String>,
}

/// Lease a module for a VM (operator+). The check chain, in order:
/// `VM_NOT_REGISTERED` (404), `VM_OWNER_MISMATCH`, `VM_INACTIVE`,
/// `LICENSE_INACTIVE`, `ENTITLEMENT_REQUIRED`, `MODULE_NOT_ALLOWED` (403).
/// The token is an HS256 JWT (`jti` = `lease_id`), shown once.
#[utoipa::path(post, path = "/api/v1/license/lease", tag = "licensing", security(("bearer" = [])),
    request_body = LeaseRequest,
    responses((status = 201, body = Envelope<IssuedLease>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, VM_OWNER_MISMATCH, VM_INACTIVE, LICENSE_INACTIVE, ENTITLEMENT_REQUIRED, MODULE_NOT_ALLOWED", body = ErrorEnvelope),
              (status = 404, description = "VM_NOT_REGISTERED, USER_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn lease(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> Result<Reply<IssuedLease>, ApiError> {
    let input = LeaseInput {
        vm_uuid: req.vm_uuid,
        user_id: req.user_id,
        agent_id: req.agent_id,
        runner_id: req.runner_id,
        module: req.module,
        version: req.version,
    };
    Ok(created(state.licensing.lease(&identity, input).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub lease_id: LeaseId,
}

/// Keep a lease alive (its user, whoever leased it, or an admin): the check
/// chain runs again, then `expires_at` moves to now + the lease TTL, never
/// past `max_expires_at`.
#[utoipa::path(post, path = "/api/v1/license/heartbeat", tag = "licensing", security(("bearer" = [])),
    request_body = LeaseRef,
    responses((status = 200, body = Envelope<HeartbeatAnswer>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, LEASE_OWNER_MISMATCH, VM_OWNER_MISMATCH, VM_INACTIVE, LICENSE_INACTIVE, ENTITLEMENT_REQUIRED, MODULE_NOT_ALLOWED", body = ErrorEnvelope),
              (status = 404, description = "LEASE_NOT_FOUND, VM_NOT_REGISTERED", body = ErrorEnvelope),
              (status = 409, description = "LEASE_INACTIVE, LEASE_EXPIRED", body = ErrorEnvelope)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<LeaseRef>,
) -> Result<Reply<HeartbeatAnswer>, ApiError> {
    Ok(ok(state
        .licensing
        .heartbeat(&identity, &req.lease_id)
        .await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeLease {
    pub lease_id: LeaseId,
    #[schema(schema_with = opt_text::<0, 500>)]
    pub reason: Option<String>,
}

/// Revoke a lease (admin; audited): its heartbeats and token checks fail at once.
#[utoipa::path(post, path = "/api/v1/license/revoke", tag = "licensing", security(("bearer" = [])),
    request_body = RevokeLease,
    responses((status = 200, body = Envelope<RevokeAnswer>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "LEASE_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "LEASE_INACTIVE (already revoked)", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<RevokeLease>,
) -> Result<Reply<RevokeAnswer>, ApiError> {
    Ok(ok(state
        .licensing
        .revoke(&identity, &req.lease_id, req.reason)
        .await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyLease {
    /// The token from `/license/lease`.
    #[schema(max_length = 8192)]
    pub lease_token: String,
}

/// Check a lease token (its user, whoever leased it, or an admin):
/// signature and issuer (401 `UNAUTHORIZED` when forged, tampered or
/// signed by an unknown key), the lease row by `jti` in the caller's tenant
/// (404), the stored hash (401), status (409 `LEASE_INACTIVE`) and expiry
/// (409 `LEASE_EXPIRED`).
#[utoipa::path(post, path = "/api/v1/license/verify", tag = "licensing", security(("bearer" = [])),
    request_body = VerifyLease,
    responses((status = 200, body = Envelope<LeaseView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, description = "UNAUTHORIZED (bearer or lease token)", body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, LEASE_OWNER_MISMATCH", body = ErrorEnvelope),
              (status = 404, description = "LEASE_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "LEASE_INACTIVE, LEASE_EXPIRED", body = ErrorEnvelope)))]
pub async fn verify(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<VerifyLease>,
) -> Result<Reply<LeaseView>, ApiError> {
    Ok(ok(state
        .licensing
        .verify(&identity, &req.lease_token)
        .await?))
}

const LICENSE_TYPES: &[&str] = &["perpetual", "alltime", "subscription"];
const LICENSE_STATUSES: &[&str] = &["active", "expired", "revoked"];
const LEASE_STATUSES: &[&str] = &["active", "revoked", "expired"];

pub fn license_type_schema() -> utoipa::openapi::Object {
    text_enum_schema(LICENSE_TYPES, false)
}
pub fn opt_license_type_schema() -> utoipa::openapi::Object {
    text_enum_schema(LICENSE_TYPES, true)
}
pub fn license_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(LICENSE_STATUSES, false)
}
pub fn opt_license_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(LICENSE_STATUSES, true)
}
pub fn lease_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(LEASE_STATUSES, false)
}

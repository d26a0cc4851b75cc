//! HTTP handlers and DTOs of unattend profiles and previews.

use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use utoipa::ToSchema;

use super::builder::{vm_seed, VmContext};
use super::config::UnattendConfig;
use super::service::{Preview, Profile, ProfileInput, ProfilePatch};
use super::store::PROFILE_LIST;
use super::UnattendError;
use crate::auth::Identity;
use crate::db::ids::UnattendProfileId;
use crate::http::envelope::{created, ok, paged, Deleted, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{ApiJson, ListQueryDoc};
use crate::state::AppState;
use crate::validate::FieldErrors;

/// Body of POST and PUT.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: String,
    /// Make this the owner's default profile (clears the previous default).
    pub is_default: Option<bool>,
    pub config: UnattendConfig,
}

/// Body of PATCH: only the given fields change; `config` replaces the whole configuration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatchBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub config: Option<UnattendConfig>,
}

/// The VM a preview is built for (all optional). With `vm_uuid` (and the
/// VM's `vmid` and `batch_index`, as given to generate-iso-payload) the
/// preview is byte for byte the answer file on that VM's ISO; with nothing,
/// a stable preview: seed 0, first VM of its batch.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// The VM's UUID (default the nil UUID). Without `seed`, the seed is
    /// derived from it exactly as for the VM's ISO.
    #[schema(format = Uuid)]
    pub vm_uuid: Option<String>,
    /// The Proxmox VM id (100..999999999).
    #[schema(minimum = 100, maximum = 999_999_999)]
    pub vmid: Option<u32>,
    /// 0-based position in the batch (the `sequential` suffix is this + 1).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub batch_index: Option<u32>,
    /// The seed of random names and subsets. Default: derived from
    /// `vm_uuid` (SHA-256 based, stable across regenerations, nothing
    /// stored), the seed the VM's ISO uses; 0 without `vm_uuid`. A seed
    /// given here overrides the derived one.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub seed: Option<u64>,
}

/// An unsaved configuration to preview, and the VM (as in `PreviewBody`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewConfigBody {
    /// The configuration to build.
    pub config: UnattendConfig,
    /// The VM's UUID (default the nil UUID). Without `seed`, the seed is
    /// derived from it exactly as for the VM's ISO.
    #[schema(format = Uuid)]
    pub vm_uuid: Option<String>,
    /// The Proxmox VM id (100..999999999).
    #[schema(minimum = 100, maximum = 999_999_999)]
    pub vmid: Option<u32>,
    /// 0-based position in the batch (the `sequential` suffix is this + 1).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub batch_index: Option<u32>,
    /// The seed of random names and subsets. Default: derived from
    /// `vm_uuid` (SHA-256 based, stable across regenerations, nothing
    /// stored), the seed the VM's ISO uses; 0 without `vm_uuid`. A seed
    /// given here overrides the derived one.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub seed: Option<u64>,
}

/// The builder's context for a preview. The seed is the caller's, else
/// [`vm_seed`] of the given `vm_uuid` (what generate-iso-payload uses for
/// that VM), else 0.
fn vm_context(
    vm_uuid: Option<String>,
    vmid: Option<u32>,
    batch_index: Option<u32>,
    seed: Option<u64>,
) -> Result<VmContext, ApiError> {
    let derived_seed;
    let vm_uuid = match vm_uuid {
        None => {
            derived_seed = 0;
            uuid::Uuid::nil().to_string()
        }
        Some(u) => {
            let u = uuid::Uuid::parse_str(&u)
                .map(|u| u.to_string())
                .map_err(|_| {
                    UnattendError::Validation(FieldErrors::one("vm_uuid", "must be a UUID"))
                })?;
            derived_seed = vm_seed(&u);
            u
        }
    };
    let mut f = FieldErrors::default();
    if let Some(v) = vmid {
        f.check(
            (100..=999_999_999).contains(&v),
            "vmid",
            "must be between 100 and 999999999",
        );
    }
    if let Some(b) = batch_index {
        f.check(
            b <= 1_000_000,
            "batch_index",
            "must be between 0 and 1000000",
        );
    }
    if let Some(s) = seed {
        f.check(
            i64::try_from(s).is_ok(),
            "seed",
            "must be between 0 and 9223372036854775807",
        );
    }
    f.into_fields().map_err(UnattendError::Validation)?;
    Ok(VmContext {
        vm_uuid,
        vmid,
        batch_index: batch_index.unwrap_or(0),
        ip: None,
        seed: seed.unwrap_or(derived_seed),
    })
}

/// Unattend profiles the caller may see (own; admins: the tenant's), newest
/// first. List kit: sort on created_at, updated_at, name, is_default;
/// filter on those and owner_user_id; `q` searches name.
#[utoipa::path(get, path = "/api/v1/unattend-profiles", tag = "unattend", security(("bearer" = [])),
    params(ListQueryDoc),
    responses((status = 200, body = Envelope<Vec<Profile>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_profiles(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Profile>>, ApiError> {
    let (params, _) = PROFILE_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(state.unattend.list(&identity, &params).await?))
}

/// Create a profile (operator+); 409 `UNATTEND_PROFILE_NAME_TAKEN` when the
/// owner already has one with this name.
#[utoipa::path(post, path = "/api/v1/unattend-profiles", tag = "unattend", security(("bearer" = [])),
    request_body = ProfileBody,
    responses((status = 201, body = Envelope<Profile>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 409, description = "UNATTEND_PROFILE_NAME_TAKEN", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_profile(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(b): ApiJson<ProfileBody>,
) -> Result<Reply<Profile>, ApiError> {
    let input = ProfileInput {
        name: b.name,
        is_default: b.is_default,
        config: b.config,
    };
    Ok(created(state.unattend.create(&identity, input).await?))
}

/// One profile (own; admins: any of the tenant).
#[utoipa::path(get, path = "/api/v1/unattend-profiles/{id}", tag = "unattend", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Profile>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope),
              (status = 404, description = "UNATTEND_PROFILE_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_profile(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<UnattendProfileId>,
) -> Result<Reply<Profile>, ApiError> {
    Ok(ok(state.unattend.get(&identity, &id).await?))
}

/// Replace a profile's name, default flag and configuration (operator+).
#[utoipa::path(put, path = "/api/v1/unattend-profiles/{id}", tag = "unattend", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ProfileBody,
    responses((status = 200, body = Envelope<Profile>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "UNATTEND_PROFILE_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "UNATTEND_PROFILE_NAME_TAKEN", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(profile = %id))]
pub async fn replace_profile(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<UnattendProfileId>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> Result<Reply<Profile>, ApiError> {
    let patch = ProfilePatch {
        name: Some(b.name),
        is_default: Some(b.is_default.unwrap_or(false)),
        config: Some(b.config),
    };
    Ok(ok(state.unattend.update(&identity, &id, patch).await?))
}

/// Change some of a profile's fields (operator+).
#[utoipa::path(patch, path = "/api/v1/unattend-profiles/{id}", tag = "unattend", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ProfilePatchBody,
    responses((status = 200, body = Envelope<Profile>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "UNATTEND_PROFILE_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "UNATTEND_PROFILE_NAME_TAKEN", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(profile = %id))]
pub async fn patch_profile(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<UnattendProfileId>,
    ApiJson(b): ApiJson<ProfilePatchBody>,
) -> Result<Reply<Profile>, ApiError> {
    let patch = ProfilePatch {
        name: b.name,
        is_default: b.is_default,
        config: b.config,
    };
    Ok(ok(state.unattend.update(&identity, &id, patch).await?))
}

/// Delete a profile (operator+).
#[utoipa::path(delete, path = "/api/v1/unattend-profiles/{id}", tag = "unattend", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Deleted>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope),
              (status = 404, description = "UNATTEND_PROFILE_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(profile = %id))]
pub async fn delete_profile(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<UnattendProfileId>,
) -> Result<Reply<Deleted>, ApiError> {
    state.unattend.delete(&identity, &id).await?;
    Ok(ok(Deleted { deleted: true }))
}

/// The answer file (`data.xml`) a VM would get from this profile, with the
/// resolved computer and user names and the further ISO files.
#[utoipa::path(post, path = "/api/v1/unattend-profiles/{id}/preview", tag = "unattend", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PreviewBody,
    responses((status = 200, body = Envelope<Preview>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "UNATTEND_PROFILE_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn preview_profile(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<UnattendProfileId>,
    ApiJson(b): ApiJson<PreviewBody>,
) -> Result<Reply<Preview>, ApiError> {
    let ctx = vm_context(b.vm_uuid, b.vmid, b.batch_index, b.seed)?;
    Ok(ok(state.unattend.preview(&identity, &id, &ctx).await?))
}

/// The answer file of an unsaved configuration.
#[utoipa::path(post, path = "/api/v1/unattend-profiles/preview", tag = "unattend", security(("bearer" = [])),
    request_body = PreviewConfigBody,
    responses((status = 200, body = Envelope<Preview>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn preview_config(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(b): ApiJson<PreviewConfigBody>,
) -> Result<Reply<Preview>, ApiError> {
    let ctx = vm_context(b.vm_uuid, b.vmid, b.batch_index, b.seed)?;
    Ok(ok(state
        .unattend
        .preview_config(&identity, b.config, &ctx)?))
}

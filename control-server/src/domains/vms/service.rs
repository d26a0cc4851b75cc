//! The VM registry's rules: who may register (upsert) a VM for whom, who
//! sees it, and admin status changes. Other domains ask [`VmsService::find`].

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::store::{self, Upsert, VmRow, VmStatus};
use super::VmError;
use crate::auth::{Identity, Role};
use crate::db::ids::UserId;
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreResult, TenantScope};
use crate::domains::accounts::AccountsService;
use crate::validate::FieldErrors;

/// The pattern of a VM UUID as the API takes it (lower-cased on storage).
pub const VM_UUID_PATTERN: &str = "^[A-Za-z0-9:_-]{8,128}$";

/// A VM UUID as sent: 8..128 of `[A-Za-z0-9:_-]`, lower-cased. `None` if
/// the text does not match.
pub fn normalize_vm_uuid(raw: &str) -> Option<String> {
    ((8..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')))
    .then(|| raw.to_ascii_lowercase())
}

/// A registered VM as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VmView {
    pub tenant_id: String,
    /// Lower-cased.
    pub vm_uuid: String,
    /// The owner: leases for this VM are issued to this user only.
    pub user_id: String,
    pub vm_name: Option<String>,
    pub project_id: Option<String>,
    #[schema(schema_with = super::routes::vm_status_schema)]
    pub status: VmStatus,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub created_by: String,
    /// Epoch milliseconds (the original's fields).
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

impl From<VmRow> for VmView {
    fn from(r: VmRow) -> Self {
        VmView {
            tenant_id: r.tenant_id.into_string(),
            vm_uuid: r.vm_uuid,
            user_id: r.user_id.into_string(),
            vm_name: r.vm_name,
            project_id: r.project_id,
            status: r.status,
            metadata: r
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
            created_by: r.created_by.into_string(),
            created_at_ms: r.created_at,
            updated_at_ms: r.updated_at,
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        }
    }
}

/// `POST /vm/register` after parsing.
pub struct RegisterInput {
    pub vm_uuid: String,
    pub user_id: Option<UserId>,
    pub vm_name: Option<String>,
    pub project_id: Option<String>,
    pub status: Option<VmStatus>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

pub struct VmsService {
    db: Db,
    accounts: Arc<AccountsService>,
}

impl VmsService {
    pub fn new(db: Db, accounts: Arc<AccountsService>) -> VmsService {
        VmsService { db, accounts }
    }

    /// The VM `vm_uuid` (any case) of the tenant, whoever owns it: for
    /// other domains' checks (licensing, provisioning). No role gate — the
    /// caller has already decided who asks.
    pub async fn find(&self, scope: &TenantScope, vm_uuid: &str) -> StoreResult<Option<VmRow>> {
        match normalize_vm_uuid(vm_uuid) {
            Some(u) => store::get(self.db.reader(), scope, &u).await,
            None => Ok(None),
        }
    }

    /// Register (or re-register) a VM. Operators register for themselves;
    /// admins may name another user of the tenant (`user_id`), change
    /// another user's VM and set a status. An existing VM keeps its owner
    /// unless `user_id` names a new one, its `created_at`, and every field
    /// the request leaves out.
    pub async fn register(
        &self,
        caller: &Identity,
        input: RegisterInput,
    ) -> Result<VmView, VmError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        let vm_uuid = normalize_vm_uuid(&input.vm_uuid);
        f.check(
            vm_uuid.is_some(),
            "vm_uuid",
            "must be 8-128 characters of A-Z a-z 0-9 : _ -",
        );
        if let Some(n) = &input.vm_name {
            f.display_text("vm_name", n, 200);
        }
        if let Some(p) = &input.project_id {
            f.display_text("project_id", p, 100);
        }
        f.into_fields().map_err(VmError::Validation)?;
        let vm_uuid = vm_uuid.unwrap_or_default();
        let admin = caller.has(Role::Admin);
        if let Some(u) = &input.user_id {
            if *u != caller.user_id {
                if !admin {
                    return Err(VmError::OwnerOverrideForbidden);
                }
                if !self.accounts.user_exists(&scope, u).await? {
                    return Err(VmError::UserNotFound);
                }
            }
        }
        let metadata = input
            .metadata
            .map(|m| serde_json::Value::Object(m).to_string());
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let existing = store::get(&mut tx, &scope, &vm_uuid).await?;
        if let Some(e) = &existing {
            if e.user_id != caller.user_id && !admin {
                return Err(VmError::OwnerMismatch);
            }
        }
        let current = existing.as_ref().map_or(VmStatus::Active, |e| e.status);
        if input.status.is_some_and(|s| s != current) && !admin {
            return Err(VmError::StatusForbidden);
        }
        let owner = input
            .user_id
            .or_else(|| existing.as_ref().map(|e| e.user_id.clone()))
            .unwrap_or_else(|| caller.user_id.clone());
        let row = store::upsert(
            &mut tx,
            &scope,
            Upsert {
                vm_uuid: &vm_uuid,
                user_id: &owner,
                vm_name: input.vm_name.as_deref(),
                project_id: input.project_id.as_deref(),
                status: input.status,
                metadata: metadata.as_deref(),
                by: &caller.user_id,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(vm_uuid = %row.vm_uuid, owner = %row.user_id, "VM registered");
        Ok(row.into())
    }

    /// The VM if the caller may see it (its owner; admins: the tenant).
    async fn visible(&self, caller: &Identity, raw: &str) -> Result<VmRow, VmError> {
        let scope = caller.scope();
        let vm_uuid = normalize_vm_uuid(raw).ok_or_else(|| {
            VmError::Validation(FieldErrors::one(
                "uuid",
                "must be 8-128 characters of A-Z a-z 0-9 : _ -",
            ))
        })?;
        match store::get(self.db.reader(), &scope, &vm_uuid).await? {
            Some(r) if r.user_id == caller.user_id || caller.has(Role::Admin) => Ok(r),
            _ => Err(VmError::NotFound),
        }
    }

    pub async fn resolve(&self, caller: &Identity, vm_uuid: &str) -> Result<VmView, VmError> {
        Ok(self.visible(caller, vm_uuid).await?.into())
    }

    /// VMs the caller may see (own; admins: the tenant).
    pub async fn list(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<VmView>, VmError> {
        let scope = caller.scope();
        let owner = (!caller.has(Role::Admin)).then_some(&caller.user_id);
        let page = store::list(self.db.reader(), self.db.backend(), &scope, owner, params).await?;
        Ok(page.map(VmView::from))
    }

    /// Pause, revoke or re-activate a VM (admin).
    pub async fn set_status(
        &self,
        caller: &Identity,
        vm_uuid: &str,
        status: VmStatus,
    ) -> Result<VmView, VmError> {
        let scope = caller.require(Role::Admin)?;
        let row = self.visible(caller, vm_uuid).await?;
        let row = store::set_status(self.db.writer(), &scope, &row.vm_uuid, status, now_ms())
            .await?
            .ok_or(VmError::NotFound)?;
        tracing::info!(vm_uuid = %row.vm_uuid, status = %status, by = %caller.user_id, "VM status changed");
        Ok(row.into())
    }
}

//! Licensing rules: tenant licenses and entitlements (admin, audited), and
//! execution leases — the check chain of inventory §2.9, signed lease
//! tokens stored hashed, heartbeats that extend a lease up to its maximum
//! lifetime, immediate revocation.
//!
//! Other domains ask [`LicensingService::has_active_license`] /
//! [`LicensingService::active_license`] ("does this tenant, and this user,
//! hold an active license or subscription?") and
//! [`LicensingService::verify_lease_token`] (artifacts' resolve-download).

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::keys::{LeaseClaims, LeaseKeys, TokenProblem, ISSUER};
use super::store::{
    self, AuditRow, EntitlementRow, LeaseRow, LeaseStatus, LicenseFields, LicenseRow,
    LicenseStatus, LicenseType, NewAudit, NewLease,
};
use super::LicensingError;
use crate::auth::secret::hash_token;
use crate::auth::{Identity, Role};
use crate::config::LicensingConfig;
use crate::db::ids::{LeaseId, LicenseId, UserId};
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreResult, TenantScope, Write};
use crate::domains::accounts::AccountsService;
use crate::domains::vms::{normalize_vm_uuid, VmStatus, VmsService};
use crate::validate::FieldErrors;

/// Latest accepted `expires_at_ms` (9999-12-31T23:59:59.999Z).
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
/// Most modules in one entitlement.
pub const MAX_MODULES: usize = 500;
/// A module name in a lease request.
pub const MODULE_PATTERN: &str = "^[A-Za-z0-9._:-]{1,200}$";
/// A module name in an entitlement (`*`: every module).
pub const ENTITLED_MODULE_PATTERN: &str = r"^(\*|[A-Za-z0-9._:-]{1,200})$";

pub fn valid_module(m: &str) -> bool {
    (1..=200).contains(&m.len())
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn valid_entitled(m: &str) -> bool {
    m == "*" || valid_module(m)
}

/// Check an entitlement's `modules` (an array of names or an object of
/// booleans); the field errors name the offending entry.
pub fn check_modules(modules: &Value) -> Result<(), FieldErrors> {
    let mut f = FieldErrors::default();
    match modules {
        Value::Array(items) => {
            f.check(items.len() <= MAX_MODULES, "modules", "at most 500 modules");
            for (i, m) in items.iter().enumerate() {
                if !m.as_str().is_some_and(valid_entitled) {
                    f.add(
                        &format!("modules[{i}]"),
                        "must be `*` or 1-200 characters of A-Z a-z 0-9 . _ : -",
                    );
                }
            }
        }
        Value::Object(map) => {
            f.check(map.len() <= MAX_MODULES, "modules", "at most 500 modules");
            for (k, v) in map {
                if !valid_entitled(k) {
                    f.add(
                        &format!("modules.{k}"),
                        "the name must be `*` or 1-200 characters of A-Z a-z 0-9 . _ : -",
                    );
                } else if !v.is_boolean() {
                    f.add(&format!("modules.{k}"), "must be true or false");
                }
            }
        }
        _ => f.add(
            "modules",
            "must be an array of module names or an object {module: true|false}",
        ),
    }
    f.into_fields()
}

/// Does an entitlement's `modules` allow `module`?
pub fn allows(modules: &Value, module: &str) -> bool {
    match modules {
        Value::Array(items) => items
            .iter()
            .any(|m| m.as_str().is_some_and(|m| m == module || m == "*")),
        Value::Object(map) => {
            map.get(module).and_then(Value::as_bool) == Some(true)
                || map.get("*").and_then(Value::as_bool) == Some(true)
        }
        _ => false,
    }
}

// ---- views ----

/// A tenant license as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LicenseView {
    pub id: String,
    pub tenant_id: String,
    /// `null`: the license covers every user of the tenant.
    pub user_id: Option<String>,
    #[serde(rename = "type")]
    #[schema(schema_with = super::routes::license_type_schema)]
    pub license_type: LicenseType,
    #[schema(schema_with = super::routes::license_status_schema)]
    pub status: LicenseStatus,
    /// Epoch milliseconds (`null`: no expiry).
    pub expires_at_ms: Option<i64>,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// Whether it grants execution now (status active and perpetual,
    /// alltime, or an unexpired subscription).
    pub active: bool,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl LicenseView {
    fn of(r: &LicenseRow, now: i64) -> LicenseView {
        LicenseView {
            id: r.id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            user_id: r.user_id.as_ref().map(UserId::to_string),
            license_type: r.license_type,
            status: r.status,
            expires_at_ms: r.expires_at,
            expires_at: r.expires_at.map(ms_to_rfc3339),
            active: r.is_active(now),
            metadata: r
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
            created_by: r.created_by.to_string(),
            updated_by: r.updated_by.to_string(),
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        }
    }
}

/// A user's module entitlements.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntitlementView {
    pub user_id: String,
    /// An array of module names or an object {module: bool} (`*`: every
    /// module); `null` when none were ever set (leases: `ENTITLEMENT_REQUIRED`).
    #[schema(schema_with = super::routes::modules_response_schema)]
    pub modules: Option<Value>,
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
}

impl EntitlementView {
    fn of(user: &UserId, row: Option<EntitlementRow>) -> EntitlementView {
        match row {
            Some(r) => EntitlementView {
                user_id: r.user_id.to_string(),
                modules: serde_json::from_str(&r.modules).ok(),
                updated_by: Some(r.updated_by.to_string()),
                updated_at: Some(ms_to_rfc3339(r.updated_at)),
            },
            None => EntitlementView {
                user_id: user.to_string(),
                modules: None,
                updated_by: None,
                updated_at: None,
            },
        }
    }
}

/// An issued lease, with its token (shown once). Times are epoch ms, as the
/// original's runners expect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedLease {
    pub lease_id: String,
    /// HS256 JWT (`jti` = `lease_id`); present it to resolve downloads.
    pub token: String,
    #[schema(schema_with = super::routes::lease_status_schema)]
    pub status: LeaseStatus,
    /// Epoch ms: heartbeat before this.
    pub expires_at: i64,
    /// Epoch ms: heartbeats do not extend the lease past this.
    pub max_expires_at: i64,
    pub tenant_id: String,
    pub user_id: String,
    pub vm_uuid: String,
    pub module: String,
    pub version: Option<String>,
    pub agent_id: String,
    pub runner_id: String,
    pub license_id: String,
}

/// A lease (without its token). Times are epoch ms.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseView {
    pub lease_id: String,
    #[schema(schema_with = super::routes::lease_status_schema)]
    pub status: LeaseStatus,
    pub tenant_id: String,
    pub user_id: String,
    pub vm_uuid: String,
    pub module: String,
    pub version: Option<String>,
    pub agent_id: String,
    pub runner_id: String,
    pub license_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_expires_at: i64,
    pub last_heartbeat_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<&LeaseRow> for LeaseView {
    fn from(r: &LeaseRow) -> Self {
        LeaseView {
            lease_id: r.id.to_string(),
            status: r.status,
            tenant_id: r.tenant_id.to_string(),
            user_id: r.user_id.to_string(),
            vm_uuid: r.vm_uuid.clone(),
            module: r.module.clone(),
            version: r.version.clone(),
            agent_id: r.agent_id.clone(),
            runner_id: r.runner_id.clone(),
            license_id: r.license_id.to_string(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            max_expires_at: r.max_expires_at,
            last_heartbeat_at: r.last_heartbeat_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatAnswer {
    pub lease_id: String,
    #[schema(schema_with = super::routes::lease_status_schema)]
    pub status: LeaseStatus,
    /// Epoch ms: extended by the lease TTL, at most `max_expires_at`.
    pub expires_at: i64,
    pub max_expires_at: i64,
    pub last_heartbeat_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevokeAnswer {
    pub lease_id: String,
    #[schema(schema_with = super::routes::lease_status_schema)]
    pub status: LeaseStatus,
    /// Epoch ms.
    pub revoked_at: i64,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    pub id: String,
    pub actor_id: String,
    /// `license.created|updated|deleted`, `entitlement.updated`,
    /// `lease.issued|revoked`.
    pub action: String,
    /// `license`, `entitlement` or `lease`.
    pub target_type: String,
    pub target_id: String,
    /// What changed (before/after for licenses and entitlements).
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: String,
}

impl From<AuditRow> for AuditView {
    fn from(r: AuditRow) -> Self {
        AuditView {
            id: r.id,
            actor_id: r.actor_id.into_string(),
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
            created_at: ms_to_rfc3339(r.created_at),
        }
    }
}

// ---- inputs ----

pub struct CreateLicense {
    pub user_id: Option<UserId>,
    pub license_type: Option<LicenseType>,
    pub status: Option<LicenseStatus>,
    pub expires_at_ms: Option<i64>,
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// `None`: keep; `Some(None)`: clear (nullable fields).
pub struct PatchLicense {
    pub user_id: Option<Option<UserId>>,
    pub license_type: Option<LicenseType>,
    pub status: Option<LicenseStatus>,
    pub expires_at_ms: Option<Option<i64>>,
    pub metadata: Option<serde_json::Map<String, Value>>,
}

pub struct LeaseInput {
    pub vm_uuid: String,
    pub user_id: Option<UserId>,
    pub agent_id: String,
    pub runner_id: String,
    pub module: String,
    pub version: Option<String>,
}

pub struct LicensingService {
    db: Db,
    cfg: LicensingConfig,
    keys: LeaseKeys,
    vms: Arc<VmsService>,
    accounts: Arc<AccountsService>,
}

impl LicensingService {
    pub fn new(
        db: Db,
        cfg: LicensingConfig,
        data_dir: &Path,
        vms: Arc<VmsService>,
        accounts: Arc<AccountsService>,
    ) -> anyhow::Result<LicensingService> {
        let keys = LeaseKeys::load(cfg.lease_secret.as_deref(), data_dir)?;
        Ok(LicensingService {
            db,
            cfg,
            keys,
            vms,
            accounts,
        })
    }

    // ---- for other domains ----

    /// The license that grants execution now to `user` (`Some`: a
    /// tenant-wide license or that user's own; `None`: any active license
    /// of the tenant), or `None`. No role gate: the calling domain decides
    /// who asks (provisioning's "active subscription" check, §8 item 10).
    pub async fn active_license(
        &self,
        scope: &TenantScope,
        user: Option<&UserId>,
    ) -> StoreResult<Option<LicenseView>> {
        let now = now_ms();
        Ok(store::find_active(self.db.reader(), scope, user, now)
            .await?
            .map(|r| LicenseView::of(&r, now)))
    }

    /// [`Self::active_license`] as a yes/no.
    pub async fn has_active_license(
        &self,
        scope: &TenantScope,
        user: Option<&UserId>,
    ) -> StoreResult<bool> {
        Ok(self.active_license(scope, user).await?.is_some())
    }

    /// Verify a lease token presented in `scope`'s tenant: signature (any
    /// configured key), issuer, expiry, then the lease row by `jti`, the
    /// stored hash, status and expiry. The lease is returned whoever owns
    /// it; the caller checks ownership if it must.
    pub async fn verify_lease_token(
        &self,
        scope: &TenantScope,
        token: &str,
    ) -> Result<LeaseRow, LicensingError> {
        let claims = self.keys.verify(token).map_err(|p| match p {
            TokenProblem::Invalid => LicensingError::LeaseTokenInvalid,
            TokenProblem::Expired => LicensingError::LeaseExpired,
        })?;
        if claims.tenant_id != scope.tenant() {
            return Err(LicensingError::LeaseNotFound);
        }
        let lease = store::get_lease(self.db.reader(), scope, &LeaseId::from(claims.jti))
            .await?
            .ok_or(LicensingError::LeaseNotFound)?;
        if !constant_time_eq(lease.token_hash.as_bytes(), hash_token(token).as_bytes()) {
            return Err(LicensingError::LeaseTokenInvalid);
        }
        self.live(scope, &lease, now_ms()).await?;
        Ok(lease)
    }

    // ---- tenant licenses (admin) ----

    async fn audit(
        &self,
        w: impl Write,
        scope: &TenantScope,
        actor: &UserId,
        action: &str,
        target: (&str, &str),
        data: Value,
    ) -> StoreResult<()> {
        store::insert_audit(
            w,
            scope,
            NewAudit {
                actor_id: actor,
                action,
                target_type: target.0,
                target_id: target.1,
                data: &data.to_string(),
                now: now_ms(),
            },
        )
        .await
    }

    async fn check_user(&self, scope: &TenantScope, user: &UserId) -> Result<(), LicensingError> {
        if self.accounts.user_exists(scope, user).await? {
            Ok(())
        } else {
            Err(LicensingError::UserNotFound)
        }
    }

    pub async fn list_licenses(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<LicenseView>, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        let now = now_ms();
        let page =
            store::list_licenses(self.db.reader(), self.db.backend(), &scope, params).await?;
        Ok(page.map(|r| LicenseView::of(&r, now)))
    }

    pub async fn get_license(
        &self,
        caller: &Identity,
        id: &LicenseId,
    ) -> Result<LicenseView, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        let row = store::get_license(self.db.reader(), &scope, id)
            .await?
            .ok_or(LicensingError::LicenseNotFound)?;
        Ok(LicenseView::of(&row, now_ms()))
    }

    pub async fn create_license(
        &self,
        caller: &Identity,
        input: CreateLicense,
    ) -> Result<LicenseView, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        check_expiry(input.expires_at_ms)?;
        if let Some(u) = &input.user_id {
            self.check_user(&scope, u).await?;
        }
        let metadata = input.metadata.map(|m| Value::Object(m).to_string());
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let row = store::insert_license(
            &mut tx,
            &scope,
            &LicenseId::generate(),
            LicenseFields {
                user_id: input.user_id.as_ref(),
                license_type: input.license_type.unwrap_or(LicenseType::Subscription),
                status: input.status.unwrap_or(LicenseStatus::Active),
                expires_at: input.expires_at_ms,
                metadata: metadata.as_deref(),
            },
            &caller.user_id,
            now,
        )
        .await?;
        let view = LicenseView::of(&row, now);
        self.audit(
            &mut tx,
            &scope,
            &caller.user_id,
            "license.created",
            ("license", row.id.as_str()),
            json!({ "after": view }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(license_id = %row.id, by = %caller.user_id, "tenant license created");
        Ok(view)
    }

    pub async fn update_license(
        &self,
        caller: &Identity,
        id: &LicenseId,
        patch: PatchLicense,
    ) -> Result<LicenseView, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        if let Some(e) = patch.expires_at_ms {
            check_expiry(e)?;
        }
        if let Some(Some(u)) = &patch.user_id {
            self.check_user(&scope, u).await?;
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let before = store::get_license(&mut tx, &scope, id)
            .await?
            .ok_or(LicensingError::LicenseNotFound)?;
        let user_id = match patch.user_id {
            Some(u) => u,
            None => before.user_id.clone(),
        };
        let metadata = match patch.metadata {
            Some(m) => Some(Value::Object(m).to_string()),
            None => before.metadata.clone(),
        };
        let row = store::update_license(
            &mut tx,
            &scope,
            id,
            LicenseFields {
                user_id: user_id.as_ref(),
                license_type: patch.license_type.unwrap_or(before.license_type),
                status: patch.status.unwrap_or(before.status),
                expires_at: patch.expires_at_ms.unwrap_or(before.expires_at),
                metadata: metadata.as_deref(),
            },
            &caller.user_id,
            now,
        )
        .await?
        .ok_or(LicensingError::LicenseNotFound)?;
        let view = LicenseView::of(&row, now);
        self.audit(
            &mut tx,
            &scope,
            &caller.user_id,
            "license.updated",
            ("license", row.id.as_str()),
            json!({ "before": LicenseView::of(&before, now), "after": view }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(license_id = %row.id, by = %caller.user_id, "tenant license updated");
        Ok(view)
    }

    pub async fn delete_license(
        &self,
        caller: &Identity,
        id: &LicenseId,
    ) -> Result<(), LicensingError> {
        let scope = caller.require(Role::Admin)?;
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let before = store::get_license(&mut tx, &scope, id)
            .await?
            .ok_or(LicensingError::LicenseNotFound)?;
        if !store::delete_license(&mut tx, &scope, id).await? {
            return Err(LicensingError::LicenseNotFound);
        }
        self.audit(
            &mut tx,
            &scope,
            &caller.user_id,
            "license.deleted",
            ("license", id.as_str()),
            json!({ "before": LicenseView::of(&before, now) }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(license_id = %id, by = %caller.user_id, "tenant license deleted");
        Ok(())
    }

    // ---- entitlements (admin) ----

    pub async fn get_entitlement(
        &self,
        caller: &Identity,
        user: &UserId,
    ) -> Result<EntitlementView, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        self.check_user(&scope, user).await?;
        let row = store::get_entitlement(self.db.reader(), &scope, user).await?;
        Ok(EntitlementView::of(user, row))
    }

    pub async fn put_entitlement(
        &self,
        caller: &Identity,
        user: &UserId,
        modules: Value,
    ) -> Result<EntitlementView, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        check_modules(&modules).map_err(LicensingError::Validation)?;
        self.check_user(&scope, user).await?;
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let before = store::get_entitlement(&mut tx, &scope, user).await?;
        let row = store::put_entitlement(
            &mut tx,
            &scope,
            user,
            &modules.to_string(),
            &caller.user_id,
            now,
        )
        .await?;
        let before_modules: Option<Value> =
            before.and_then(|b| serde_json::from_str(&b.modules).ok());
        self.audit(
            &mut tx,
            &scope,
            &caller.user_id,
            "entitlement.updated",
            ("entitlement", user.as_str()),
            json!({ "before": before_modules, "after": modules }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user, by = %caller.user_id, "entitlements updated");
        Ok(EntitlementView::of(user, Some(row)))
    }

    pub async fn list_audit(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<AuditView>, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        let page = store::list_audit(self.db.reader(), self.db.backend(), &scope, params).await?;
        Ok(page.map(AuditView::from))
    }

    // ---- leases ----

    /// The check chain of §2.9 for `user` running `module` on `vm_uuid`:
    /// VM registered → owned by the user → active → an active license →
    /// entitlements → the module. Returns the license.
    async fn check_chain(
        &self,
        scope: &TenantScope,
        user: &UserId,
        vm_uuid: &str,
        module: &str,
        now: i64,
    ) -> Result<LicenseRow, LicensingError> {
        let vm = self
            .vms
            .find(scope, vm_uuid)
            .await?
            .ok_or(LicensingError::VmNotRegistered)?;
        if vm.user_id != *user {
            return Err(LicensingError::VmOwnerMismatch);
        }
        if vm.status != VmStatus::Active {
            return Err(LicensingError::VmInactive);
        }
        let license = store::find_active(self.db.reader(), scope, Some(user), now)
            .await?
            .ok_or(LicensingError::LicenseInactive)?;
        let ent = store::get_entitlement(self.db.reader(), scope, user)
            .await?
            .ok_or(LicensingError::EntitlementRequired)?;
        let modules: Value = serde_json::from_str(&ent.modules).unwrap_or(Value::Null);
        if !allows(&modules, module) {
            return Err(LicensingError::ModuleNotAllowed);
        }
        Ok(license)
    }

    /// Refuse a lease that is revoked or past its expiry (marking it expired).
    async fn live(
        &self,
        scope: &TenantScope,
        lease: &LeaseRow,
        now: i64,
    ) -> Result<(), LicensingError> {
        match lease.status {
            LeaseStatus::Revoked => Err(LicensingError::LeaseInactive),
            LeaseStatus::Expired => Err(LicensingError::LeaseExpired),
            LeaseStatus::Active if lease.expires_at <= now => {
                store::mark_expired(self.db.writer(), scope, &lease.id, now).await?;
                Err(LicensingError::LeaseExpired)
            }
            LeaseStatus::Active => Ok(()),
        }
    }

    /// May `caller` act on this lease (its user, whoever leased it, admins)?
    fn owns(caller: &Identity, lease: &LeaseRow) -> Result<(), LicensingError> {
        if lease.user_id == caller.user_id
            || lease.created_by == caller.user_id
            || caller.has(Role::Admin)
        {
            Ok(())
        } else {
            Err(LicensingError::LeaseOwnerMismatch)
        }
    }

    /// Issue a lease after the full check chain (operator+; `user_id` for
    /// another user: admin).
    pub async fn lease(
        &self,
        caller: &Identity,
        input: LeaseInput,
    ) -> Result<IssuedLease, LicensingError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        let vm_uuid = normalize_vm_uuid(&input.vm_uuid);
        f.check(
            vm_uuid.is_some(),
            "vm_uuid",
            "must be 8-128 characters of A-Z a-z 0-9 : _ -",
        );
        for (field, v) in [
            ("agent_id", &input.agent_id),
            ("runner_id", &input.runner_id),
        ] {
            f.check(!v.is_empty(), field, "must be 1-200 characters");
            f.display_text(field, v, 200);
        }
        f.check(
            valid_module(&input.module),
            "module",
            "must be 1-200 characters of A-Z a-z 0-9 . _ : -",
        );
        if let Some(v) = &input.version {
            f.display_text("version", v, 100);
        }
        f.into_fields().map_err(LicensingError::Validation)?;
        let vm_uuid = vm_uuid.unwrap_or_default();
        let user = match input.user_id {
            Some(u) if u != caller.user_id => {
                if !caller.has(Role::Admin) {
                    return Err(LicensingError::UserOverrideForbidden);
                }
                self.check_user(&scope, &u).await?;
                u
            }
            _ => caller.user_id.clone(),
        };
        let now = now_ms();
        let license = self
            .check_chain(&scope, &user, &vm_uuid, &input.module, now)
            .await?;
        let ttl_ms = self.cfg.lease_ttl_s as i64 * 1000;
        let max_expires_at = now + self.cfg.lease_max_lifetime_s as i64 * 1000;
        let expires_at = (now + ttl_ms).min(max_expires_at);
        let id = LeaseId::generate();
        let claims = LeaseClaims {
            iss: ISSUER.into(),
            sub: input.runner_id.clone(),
            jti: id.to_string(),
            iat: now / 1000,
            exp: max_expires_at.div_euclid(1000),
            tenant_id: scope.tenant().to_string(),
            user_id: user.to_string(),
            vm_uuid: vm_uuid.clone(),
            agent_id: input.agent_id.clone(),
            module: input.module.clone(),
            version: input.version.clone(),
            license_id: license.id.to_string(),
        };
        let token = self.keys.sign(&claims);
        let mut tx = self.db.begin().await?;
        let row = store::insert_lease(
            &mut tx,
            &scope,
            NewLease {
                id: &id,
                token_hash: &hash_token(&token),
                user_id: &user,
                vm_uuid: &vm_uuid,
                module: &input.module,
                version: input.version.as_deref(),
                agent_id: &input.agent_id,
                runner_id: &input.runner_id,
                license_id: &license.id,
                created_by: &caller.user_id,
                now,
                expires_at,
                max_expires_at,
            },
        )
        .await?;
        self.audit(
            &mut tx,
            &scope,
            &caller.user_id,
            "lease.issued",
            ("lease", row.id.as_str()),
            json!({
                "user_id": row.user_id, "vm_uuid": row.vm_uuid, "module": row.module,
                "version": row.version, "agent_id": row.agent_id, "runner_id": row.runner_id,
                "license_id": row.license_id, "expires_at": row.expires_at,
                "max_expires_at": row.max_expires_at,
            }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(lease_id = %row.id, vm_uuid = %row.vm_uuid, module = %row.module.escape_debug(), "lease issued");
        Ok(IssuedLease {
            lease_id: row.id.to_string(),
            token,
            status: row.status,
            expires_at: row.expires_at,
            max_expires_at: row.max_expires_at,
            tenant_id: row.tenant_id.to_string(),
            user_id: row.user_id.to_string(),
            vm_uuid: row.vm_uuid,
            module: row.module,
            version: row.version,
            agent_id: row.agent_id,
            runner_id: row.runner_id,
            license_id: row.license_id.to_string(),
        })
    }

    /// Keep a lease alive: re-run the check chain (a paused VM, a revoked
    /// license or a withdrawn module ends it) and extend it by the TTL, at
    /// most to its maximum lifetime.
    pub async fn heartbeat(
        &self,
        caller: &Identity,
        id: &LeaseId,
    ) -> Result<HeartbeatAnswer, LicensingError> {
        let scope = caller.require(Role::Operator)?;
        let now = now_ms();
        let lease = store::get_lease(self.db.reader(), &scope, id)
            .await?
            .ok_or(LicensingError::LeaseNotFound)?;
        Self::owns(caller, &lease)?;
        self.live(&scope, &lease, now).await?;
        self.check_chain(&scope, &lease.user_id, &lease.vm_uuid, &lease.module, now)
            .await?;
        let expires_at = (now + self.cfg.lease_ttl_s as i64 * 1000).min(lease.max_expires_at);
        let row =
            match store::heartbeat_lease(self.db.writer(), &scope, id, expires_at, now).await? {
                Some(r) => r,
                None => {
                    // Revoked or expired between the read and the write.
                    let again = store::get_lease(self.db.reader(), &scope, id)
                        .await?
                        .ok_or(LicensingError::LeaseNotFound)?;
                    self.live(&scope, &again, now).await?;
                    return Err(LicensingError::LeaseExpired);
                }
            };
        Ok(HeartbeatAnswer {
            lease_id: row.id.to_string(),
            status: row.status,
            expires_at: row.expires_at,
            max_expires_at: row.max_expires_at,
            last_heartbeat_at: now,
        })
    }

    /// Revoke a lease (admin): heartbeats and token checks fail at once.
    pub async fn revoke(
        &self,
        caller: &Identity,
        id: &LeaseId,
        reason: Option<String>,
    ) -> Result<RevokeAnswer, LicensingError> {
        let scope = caller.require(Role::Admin)?;
        if let Some(r) = &reason {
            let mut f = FieldErrors::default();
            f.display_text("reason", r, 500);
            f.into_fields().map_err(LicensingError::Validation)?;
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let Some(row) =
            store::revoke_lease(&mut tx, &scope, id, &caller.user_id, reason.as_deref(), now)
                .await?
        else {
            drop(tx);
            return Err(
                match store::get_lease(self.db.reader(), &scope, id).await? {
                    Some(_) => LicensingError::LeaseInactive,
                    None => LicensingError::LeaseNotFound,
                },
            );
        };
        self.audit(
            &mut tx,
            &scope,
            &caller.user_id,
            "lease.revoked",
            ("lease", row.id.as_str()),
            json!({ "reason": reason, "user_id": row.user_id, "vm_uuid": row.vm_uuid, "module": row.module }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(lease_id = %row.id, by = %caller.user_id, "lease revoked");
        Ok(RevokeAnswer {
            lease_id: row.id.to_string(),
            status: row.status,
            revoked_at: now,
        })
    }

    /// Check a lease token on behalf of its holder: everything
    /// [`Self::verify_lease_token`] checks, plus that the caller may act on
    /// the lease.
    pub async fn verify(
        &self,
        caller: &Identity,
        token: &str,
    ) -> Result<LeaseView, LicensingError> {
        let scope = caller.require(Role::Viewer)?;
        if token.chars().count() > 8192 {
            return Err(LicensingError::Validation(FieldErrors::one(
                "lease_token",
                "must be at most 8192 characters",
            )));
        }
        let lease = self.verify_lease_token(&scope, token).await?;
        Self::owns(caller, &lease)?;
        Ok(LeaseView::from(&lease))
    }
}

fn check_expiry(e: Option<i64>) -> Result<(), LicensingError> {
    match e {
        Some(ms) if !(1..=MAX_TIMESTAMP_MS).contains(&ms) => Err(LicensingError::Validation(
            FieldErrors::one("expires_at_ms", "must be between 1 and 253402300799999"),
        )),
        _ => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_lists_and_maps() {
        assert!(allows(&json!(["a", "b"]), "b"));
        assert!(!allows(&json!(["a"]), "b"));
        assert!(allows(&json!(["*"]), "b"));
        assert!(allows(&json!({"b": true}), "b"));
        assert!(!allows(&json!({"b": false}), "b"));
        assert!(allows(&json!({"*": true, "b": false}), "b"));
        assert!(!allows(&json!({}), "b"));
        assert!(check_modules(&json!(["a", "*"])).is_ok());
        assert!(check_modules(&json!({"a": true})).is_ok());
        assert!(check_modules(&json!(["a b"])).is_err());
        assert!(check_modules(&json!({"a": 1})).is_err());
        assert!(check_modules(&json!("a")).is_err());
    }
}

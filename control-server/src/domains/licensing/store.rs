//! SQL of licensing: `tenant_licenses`, `tenant_entitlements`,
//! `execution_leases`, `license_audit`.

use sqlx::FromRow;

use crate::db::ids::{LeaseId, LicenseId, TenantId, UserId};
use crate::db::list::{self, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{new_id, Backend, Read, Reader, StoreResult, TenantScope, Write};

text_enum!(
    /// What a tenant license is: `perpetual`/`alltime` never expire, a
    /// `subscription` is active until `expires_at`.
    LicenseType, "license type" {
        Perpetual => "perpetual",
        Alltime => "alltime",
        Subscription => "subscription",
    }
);

text_enum!(
    /// A tenant license's stored status.
    LicenseStatus, "license status" {
        Active => "active",
        Expired => "expired",
        Revoked => "revoked",
    }
);

text_enum!(
    /// An execution lease's stored status (`active` past `expires_at` is
    /// expired too).
    LeaseStatus, "lease status" {
        Active => "active",
        Revoked => "revoked",
        Expired => "expired",
    }
);

// ---- tenant licenses ----

pub const LICENSE_COLUMNS: &str = "id, tenant_id, user_id, license_type, status, expires_at, \
    metadata, created_by, updated_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct LicenseRow {
    pub id: LicenseId,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    #[sqlx(try_from = "String")]
    pub license_type: LicenseType,
    #[sqlx(try_from = "String")]
    pub status: LicenseStatus,
    pub expires_at: Option<i64>,
    pub metadata: Option<String>,
    pub created_by: UserId,
    pub updated_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
}

impl LicenseRow {
    /// Does this license grant execution at `now`?
    pub fn is_active(&self, now: i64) -> bool {
        self.status == LicenseStatus::Active
            && match self.license_type {
                LicenseType::Perpetual | LicenseType::Alltime => true,
                LicenseType::Subscription => self.expires_at.is_some_and(|e| e > now),
            }
    }
}

/// The writable fields of a license.
pub struct LicenseFields<'a> {
    pub user_id: Option<&'a UserId>,
    pub license_type: LicenseType,
    pub status: LicenseStatus,
    pub expires_at: Option<i64>,
    pub metadata: Option<&'a str>,
}

pub async fn insert_license(
    mut w: impl Write,
    scope: &TenantScope,
    id: &LicenseId,
    f: LicenseFields<'_>,
    by: &UserId,
    now: i64,
) -> StoreResult<LicenseRow> {
    Ok(sqlx::query_as::<_, LicenseRow>(&format!(
        "INSERT INTO tenant_licenses (id, tenant_id, user_id, license_type, status, expires_at,
            metadata, created_by, updated_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $9) RETURNING {LICENSE_COLUMNS}"
    ))
    .bind(id.as_str())
    .bind(scope.tenant())
    .bind(f.user_id.map(UserId::as_str))
    .bind(f.license_type.as_str())
    .bind(f.status.as_str())
    .bind(f.expires_at)
    .bind(f.metadata)
    .bind(by.as_str())
    .bind(now)
    .fetch_one(w.exec())
    .await?)
}

pub async fn update_license(
    mut w: impl Write,
    scope: &TenantScope,
    id: &LicenseId,
    f: LicenseFields<'_>,
    by: &UserId,
    now: i64,
) -> StoreResult<Option<LicenseRow>> {
    Ok(sqlx::query_as::<_, LicenseRow>(&format!(
        "UPDATE tenant_licenses SET user_id = $1, license_type = $2, status = $3, expires_at = $4,
            metadata = $5, updated_by = $6, updated_at = $7
         WHERE tenant_id = $8 AND id = $9 RETURNING {LICENSE_COLUMNS}"
    ))
    .bind(f.user_id.map(UserId::as_str))
    .bind(f.license_type.as_str())
    .bind(f.status.as_str())
    .bind(f.expires_at)
    .bind(f.metadata)
    .bind(by.as_str())
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

pub async fn get_license(
    mut r: impl Read,
    scope: &TenantScope,
    id: &LicenseId,
) -> StoreResult<Option<LicenseRow>> {
    Ok(sqlx::query_as::<_, LicenseRow>(&format!(
        "SELECT {LICENSE_COLUMNS} FROM tenant_licenses WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn delete_license(
    mut w: impl Write,
    scope: &TenantScope,
    id: &LicenseId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM tenant_licenses WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant())
            .bind(id.as_str())
            .execute(w.exec())
            .await?
            .rows_affected()
            == 1,
    )
}

/// The license that grants execution at `now`: tenant-wide or the user's
/// (`user`; `None`: any user's), active, perpetual/alltime or an unexpired
/// subscription. The user's own license wins over a tenant-wide one.
pub async fn find_active(
    mut r: impl Read,
    scope: &TenantScope,
    user: Option<&UserId>,
    now: i64,
) -> StoreResult<Option<LicenseRow>> {
    let user_cond = if user.is_some() {
        " AND (user_id IS NULL OR user_id = $3)"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM tenant_licenses
         WHERE tenant_id = $1 AND status = 'active'{user_cond}
           AND (license_type IN ('perpetual', 'alltime') OR (expires_at IS NOT NULL AND expires_at > $2))
         ORDER BY (user_id IS NULL), created_at, id LIMIT 1"
    );
    let mut q = sqlx::query_as::<_, LicenseRow>(&sql)
        .bind(scope.tenant())
        .bind(now);
    if let Some(u) = user {
        q = q.bind(u.as_str());
    }
    Ok(q.fetch_optional(r.exec()).await?)
}

pub static LICENSE_LIST: ListSpec = ListSpec {
    table: "tenant_licenses",
    select: LICENSE_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("expires_at", "expires_at", list::Kind::Timestamp)
            .nullable()
            .sortable()
            .filterable(),
        list::Column::new(
            "type",
            "license_type",
            list::Kind::Enum(&["perpetual", "alltime", "subscription"]),
        )
        .sortable()
        .filterable(),
        list::Column::new(
            "status",
            "status",
            list::Kind::Enum(&["active", "expired", "revoked"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("user_id", "user_id", list::Kind::Text)
            .nullable()
            .filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_licenses(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<LicenseRow>> {
    list::fetch(reader, backend, &LICENSE_LIST, scope, &[], params).await
}

// ---- entitlements ----

#[derive(Debug, Clone, FromRow)]
pub struct EntitlementRow {
    pub user_id: UserId,
    /// JSON: an array of module names or an object {module: bool}.
    pub modules: String,
    pub updated_by: UserId,
    pub updated_at: i64,
}

pub async fn get_entitlement(
    mut r: impl Read,
    scope: &TenantScope,
    user: &UserId,
) -> StoreResult<Option<EntitlementRow>> {
    Ok(sqlx::query_as::<_, EntitlementRow>(
        "SELECT user_id, modules, updated_by, updated_at FROM tenant_entitlements
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(scope.tenant())
    .bind(user.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn put_entitlement(
    mut w: impl Write,
    scope: &TenantScope,
    user: &UserId,
    modules: &str,
    by: &UserId,
    now: i64,
) -> StoreResult<EntitlementRow> {
    Ok(sqlx::query_as::<_, EntitlementRow>(
        "INSERT INTO tenant_entitlements (tenant_id, user_id, modules, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET modules = $3, updated_by = $4, updated_at = $5
         RETURNING user_id, modules, updated_by, updated_at",
    )
    .bind(scope.tenant())
    .bind(user.as_str())
    .bind(modules)
    .bind(by.as_str())
    .bind(now)
    .fetch_one(w.exec())
    .await?)
}

// ---- execution leases ----

pub const LEASE_COLUMNS: &str = "id, tenant_id, token_hash, status, user_id, vm_uuid, module, \
    version, agent_id, runner_id, license_id, created_by, created_at, updated_at, expires_at, \
    max_expires_at, last_heartbeat_at, revoked_at, revoked_by, revoke_reason";

#[derive(Debug, Clone, FromRow)]
pub struct LeaseRow {
    pub id: LeaseId,
    pub tenant_id: TenantId,
    pub token_hash: String,
    #[sqlx(try_from = "String")]
    pub status: LeaseStatus,
    pub user_id: UserId,
    pub vm_uuid: String,
    pub module: String,
    pub version: Option<String>,
    pub agent_id: String,
    pub runner_id: String,
    pub license_id: LicenseId,
    pub created_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub max_expires_at: i64,
    pub last_heartbeat_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
}

pub struct NewLease<'a> {
    pub id: &'a LeaseId,
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub vm_uuid: &'a str,
    pub module: &'a str,
    pub version: Option<&'a str>,
    pub agent_id: &'a str,
    pub runner_id: &'a str,
    pub license_id: &'a LicenseId,
    pub created_by: &'a UserId,
    pub now: i64,
    pub expires_at: i64,
    pub max_expires_at: i64,
}

pub async fn insert_lease(
    mut w: impl Write,
    scope: &TenantScope,
    l: NewLease<'_>,
) -> StoreResult<LeaseRow> {
    Ok(sqlx::query_as::<_, LeaseRow>(&format!(
        "INSERT INTO execution_leases (id, tenant_id, token_hash, status, user_id, vm_uuid, module,
            version, agent_id, runner_id, license_id, created_by, created_at, updated_at,
            expires_at, max_expires_at)
         VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)
         RETURNING {LEASE_COLUMNS}"
    ))
    .bind(l.id.as_str())
    .bind(scope.tenant())
    .bind(l.token_hash)
    .bind(l.user_id.as_str())
    .bind(l.vm_uuid)
    .bind(l.module)
    .bind(l.version)
    .bind(l.agent_id)
    .bind(l.runner_id)
    .bind(l.license_id.as_str())
    .bind(l.created_by.as_str())
    .bind(l.now)
    .bind(l.expires_at)
    .bind(l.max_expires_at)
    .fetch_one(w.exec())
    .await?)
}

pub async fn get_lease(
    mut r: impl Read,
    scope: &TenantScope,
    id: &LeaseId,
) -> StoreResult<Option<LeaseRow>> {
    Ok(sqlx::query_as::<_, LeaseRow>(&format!(
        "SELECT {LEASE_COLUMNS} FROM execution_leases WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// Extend a live lease to `expires_at`. `None` when it is no longer active
/// and unexpired (revoked or expired meanwhile).
pub async fn heartbeat_lease(
    mut w: impl Write,
    scope: &TenantScope,
    id: &LeaseId,
    expires_at: i64,
    now: i64,
) -> StoreResult<Option<LeaseRow>> {
    Ok(sqlx::query_as::<_, LeaseRow>(&format!(
        "UPDATE execution_leases SET expires_at = $1, last_heartbeat_at = $2, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 AND status = 'active' AND expires_at > $2
         RETURNING {LEASE_COLUMNS}"
    ))
    .bind(expires_at)
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Record that an active lease ran out.
pub async fn mark_expired(
    mut w: impl Write,
    scope: &TenantScope,
    id: &LeaseId,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE execution_leases SET status = 'expired', updated_at = $1
         WHERE tenant_id = $2 AND id = $3 AND status = 'active' AND expires_at <= $1",
    )
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .execute(w.exec())
    .await?;
    Ok(())
}

/// Revoke a lease that is not revoked yet. `None`: unknown or already revoked.
pub async fn revoke_lease(
    mut w: impl Write,
    scope: &TenantScope,
    id: &LeaseId,
    by: &UserId,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<Option<LeaseRow>> {
    Ok(sqlx::query_as::<_, LeaseRow>(&format!(
        "UPDATE execution_leases SET status = 'revoked', revoked_at = $1, revoked_by = $2,
            revoke_reason = $3, updated_at = $1
         WHERE tenant_id = $4 AND id = $5 AND status <> 'revoked' RETURNING {LEASE_COLUMNS}"
    ))
    .bind(now)
    .bind(by.as_str())
    .bind(reason)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

// ---- audit ----

pub const AUDIT_COLUMNS: &str =
    "id, tenant_id, actor_id, action, target_type, target_id, data, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub actor_id: UserId,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub data: String,
    pub created_at: i64,
}

pub struct NewAudit<'a> {
    pub actor_id: &'a UserId,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub data: &'a str,
    pub now: i64,
}

pub async fn insert_audit(
    mut w: impl Write,
    scope: &TenantScope,
    a: NewAudit<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO license_audit (id, tenant_id, actor_id, action, target_type, target_id, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(scope.tenant())
    .bind(a.actor_id.as_str())
    .bind(a.action)
    .bind(a.target_type)
    .bind(a.target_id)
    .bind(a.data)
    .bind(a.now)
    .execute(w.exec())
    .await?;
    Ok(())
}

/// Audit actions (the `action` column).
pub const AUDIT_ACTIONS: &[&str] = &[
    "license.created",
    "license.updated",
    "license.deleted",
    "entitlement.updated",
    "lease.issued",
    "lease.revoked",
];

pub static AUDIT_LIST: ListSpec = ListSpec {
    table: "license_audit",
    select: AUDIT_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("action", "action", list::Kind::Enum(AUDIT_ACTIONS))
            .sortable()
            .filterable(),
        list::Column::new(
            "target_type",
            "target_type",
            list::Kind::Enum(&["license", "entitlement", "lease"]),
        )
        .filterable(),
        list::Column::new("target_id", "target_id", list::Kind::Text)
            .filterable()
            .searchable(),
        list::Column::new("actor_id", "actor_id", list::Kind::Text).filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_audit(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<AuditRow>> {
    list::fetch(reader, backend, &AUDIT_LIST, scope, &[], params).await
}

//! SQL of the VM registry: `vms`, keyed by `(tenant_id, vm_uuid)`.

use sqlx::FromRow;

use crate::db::ids::{TenantId, UserId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreResult, TenantScope, Write};

text_enum!(
    /// A registered VM's status: only `active` VMs may lease a license.
    VmStatus, "VM status" {
        Active => "active",
        Paused => "paused",
        Revoked => "revoked",
    }
);

pub const COLUMNS: &str = "tenant_id, vm_uuid, user_id, vm_name, project_id, status, metadata, \
    created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct VmRow {
    pub tenant_id: TenantId,
    pub vm_uuid: String,
    pub user_id: UserId,
    pub vm_name: Option<String>,
    pub project_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: VmStatus,
    pub metadata: Option<String>,
    pub created_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    vm_uuid: &str,
) -> StoreResult<Option<VmRow>> {
    Ok(sqlx::query_as::<_, VmRow>(&format!(
        "SELECT {COLUMNS} FROM vms WHERE tenant_id = $1 AND vm_uuid = $2"
    ))
    .bind(scope.tenant())
    .bind(vm_uuid)
    .fetch_optional(r.exec())
    .await?)
}

/// A registration: `None` fields keep what is stored (a new VM: empty,
/// status `active`).
pub struct Upsert<'a> {
    pub vm_uuid: &'a str,
    pub user_id: &'a UserId,
    pub vm_name: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub status: Option<VmStatus>,
    pub metadata: Option<&'a str>,
    pub by: &'a UserId,
    pub now: i64,
}

/// Insert or update on `(tenant_id, vm_uuid)`; `created_at`/`created_by`
/// of an existing VM are kept.
pub async fn upsert(mut w: impl Write, scope: &TenantScope, u: Upsert<'_>) -> StoreResult<VmRow> {
    Ok(sqlx::query_as::<_, VmRow>(&format!(
        "INSERT INTO vms (tenant_id, vm_uuid, user_id, vm_name, project_id, status, metadata,
            created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, COALESCE($6, 'active'), $7, $8, $9, $9)
         ON CONFLICT (tenant_id, vm_uuid) DO UPDATE SET
            user_id = $3,
            vm_name = COALESCE($4, vms.vm_name),
            project_id = COALESCE($5, vms.project_id),
            status = COALESCE($6, vms.status),
            metadata = COALESCE($7, vms.metadata),
            updated_at = $9
         RETURNING {COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(u.vm_uuid)
    .bind(u.user_id.as_str())
    .bind(u.vm_name)
    .bind(u.project_id)
    .bind(u.status.map(VmStatus::as_str))
    .bind(u.metadata)
    .bind(u.by.as_str())
    .bind(u.now)
    .fetch_one(w.exec())
    .await?)
}

pub async fn set_status(
    mut w: impl Write,
    scope: &TenantScope,
    vm_uuid: &str,
    status: VmStatus,
    now: i64,
) -> StoreResult<Option<VmRow>> {
    Ok(sqlx::query_as::<_, VmRow>(&format!(
        "UPDATE vms SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND vm_uuid = $4
         RETURNING {COLUMNS}"
    ))
    .bind(status.as_str())
    .bind(now)
    .bind(scope.tenant())
    .bind(vm_uuid)
    .fetch_optional(w.exec())
    .await?)
}

/// The VMs of a tenant as the list kit pages them (newest first).
pub static VM_LIST: ListSpec = ListSpec {
    table: "vms",
    select: COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("vm_uuid", "vm_uuid", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("vm_name", "vm_name", list::Kind::Text)
            .nullable()
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("project_id", "project_id", list::Kind::Text)
            .nullable()
            .sortable()
            .filterable(),
        list::Column::new(
            "status",
            "status",
            list::Kind::Enum(&["active", "paused", "revoked"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("user_id", "user_id", list::Kind::Text).filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "vm_uuid",
};

/// One page of VMs; `owner` limits to one user's VMs.
pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    owner: Option<&UserId>,
    params: &ListParams,
) -> StoreResult<Page<VmRow>> {
    let fixed: Vec<Fixed> = owner
        .map(|o| Fixed::eq("user_id", o.as_str()))
        .into_iter()
        .collect();
    list::fetch(reader, backend, &VM_LIST, scope, &fixed, params).await
}

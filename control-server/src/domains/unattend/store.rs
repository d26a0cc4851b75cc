//! SQL of the unattend domain: `unattend_profiles`.

use sqlx::FromRow;

use crate::db::ids::{TenantId, UnattendProfileId, UserId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

pub const COLUMNS: &str =
    "id, tenant_id, owner_user_id, name, is_default, config, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct ProfileRow {
    pub id: UnattendProfileId,
    pub tenant_id: TenantId,
    pub owner_user_id: UserId,
    pub name: String,
    pub is_default: i64,
    pub config: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Profiles of a tenant as the list kit pages them (newest first).
pub static PROFILE_LIST: ListSpec = ListSpec {
    table: "unattend_profiles",
    select: COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("name", "name", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("is_default", "is_default", list::Kind::Integer)
            .sortable()
            .filterable(),
        list::Column::new("owner_user_id", "owner_user_id", list::Kind::Text).filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    owner: Option<&UserId>,
    params: &ListParams,
) -> StoreResult<Page<ProfileRow>> {
    let fixed: Vec<Fixed> = owner
        .map(|o| Fixed::eq("owner_user_id", o.as_str()))
        .into_iter()
        .collect();
    list::fetch(reader, backend, &PROFILE_LIST, scope, &fixed, params).await
}

pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    id: &UnattendProfileId,
) -> StoreResult<Option<ProfileRow>> {
    Ok(sqlx::query_as::<_, ProfileRow>(&format!(
        "SELECT {COLUMNS} FROM unattend_profiles WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

const NAME_TAKEN: &str = "a profile with this name already exists for this owner";

pub struct NewProfile<'a> {
    pub id: &'a UnattendProfileId,
    pub owner: &'a UserId,
    pub name: &'a str,
    pub is_default: bool,
    pub config: &'a str,
    pub now: i64,
}

pub async fn insert(
    mut w: impl Write,
    scope: &TenantScope,
    p: NewProfile<'_>,
) -> StoreResult<ProfileRow> {
    sqlx::query_as::<_, ProfileRow>(&format!(
        "INSERT INTO unattend_profiles (id, tenant_id, owner_user_id, name, is_default, config, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    ))
    .bind(p.id.as_str())
    .bind(scope.tenant())
    .bind(p.owner.as_str())
    .bind(p.name)
    .bind(i64::from(p.is_default))
    .bind(p.config)
    .bind(p.now)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, NAME_TAKEN))
}

pub struct Change<'a> {
    pub name: &'a str,
    pub is_default: bool,
    pub config: &'a str,
    pub now: i64,
}

pub async fn update(
    mut w: impl Write,
    scope: &TenantScope,
    id: &UnattendProfileId,
    c: Change<'_>,
) -> StoreResult<ProfileRow> {
    sqlx::query_as::<_, ProfileRow>(&format!(
        "UPDATE unattend_profiles SET name = $1, is_default = $2, config = $3, updated_at = $4
         WHERE tenant_id = $5 AND id = $6 RETURNING {COLUMNS}"
    ))
    .bind(c.name)
    .bind(i64::from(c.is_default))
    .bind(c.config)
    .bind(c.now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, NAME_TAKEN))?
    .ok_or(StoreError::NotFound("unattend profile"))
}

/// Clear the owner's default flag (on every profile but `except`).
pub async fn clear_default(
    mut w: impl Write,
    scope: &TenantScope,
    owner: &UserId,
    except: Option<&UnattendProfileId>,
    now: i64,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE unattend_profiles SET is_default = 0, updated_at = $1
         WHERE tenant_id = $2 AND owner_user_id = $3 AND is_default = 1 AND id <> $4",
    )
    .bind(now)
    .bind(scope.tenant())
    .bind(owner.as_str())
    .bind(except.map(UnattendProfileId::as_str).unwrap_or(""))
    .execute(w.exec())
    .await?
    .rows_affected())
}

pub async fn delete(
    mut w: impl Write,
    scope: &TenantScope,
    id: &UnattendProfileId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM unattend_profiles WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant())
            .bind(id.as_str())
            .execute(w.exec())
            .await?
            .rows_affected()
            == 1,
    )
}

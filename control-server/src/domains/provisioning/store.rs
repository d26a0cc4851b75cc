//! SQL of the provisioning domain: `playbooks`, `provisioning_tokens`,
//! `provisioning_progress`.

use sqlx::FromRow;

use crate::db::ids::{AgentId, PlaybookId, ProvisioningTokenId, TenantId, UserId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

text_enum!(
    /// A provisioning token's lifecycle: `active` until the VM reports
    /// `completed` (`used`), its TTL passes (`expired`, set by the sweeper)
    /// or someone revokes or re-issues it (`revoked`).
    TokenStatus, "provisioning token status" {
        Active => "active",
        Used => "used",
        Expired => "expired",
        Revoked => "revoked",
    }
);

text_enum!(
    /// The guest's operating system.
    GuestOs, "guest os" {
        Windows => "windows",
        Linux => "linux",
    }
);

text_enum!(
    /// A step's state as the guest reports it.
    StepStatus, "step status" {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
    }
);

text_enum!(
    /// The steps a guest reports, in their usual order. `completed` is the
    /// last one: status `completed` ends provisioning successfully,
    /// `failed` unsuccessfully.
    Step, "provisioning step" {
        NetworkConfigured => "network_configured",
        WindowsInstalled => "windows_installed",
        CloudInitDone => "cloud_init_done",
        DownloaderReady => "downloader_ready",
        AppDownloaded => "app_downloaded",
        PlaybookRunning => "playbook_running",
        Completed => "completed",
    }
);

// ---------------------------------------------------------------- playbooks

pub const PLAYBOOK_COLUMNS: &str =
    "id, tenant_id, owner_user_id, name, is_default, content, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct PlaybookRow {
    pub id: PlaybookId,
    pub tenant_id: TenantId,
    pub owner_user_id: UserId,
    pub name: String,
    pub is_default: i64,
    pub content: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewPlaybook<'a> {
    pub id: &'a PlaybookId,
    pub owner: &'a UserId,
    pub name: &'a str,
    pub is_default: bool,
    pub content: &'a str,
    pub now: i64,
}

const DUPLICATE_NAME: &str = "a playbook with this name already exists for its owner";

pub async fn insert_playbook(
    mut w: impl Write,
    scope: &TenantScope,
    p: NewPlaybook<'_>,
) -> StoreResult<PlaybookRow> {
    sqlx::query_as::<_, PlaybookRow>(&format!(
        "INSERT INTO playbooks (id, tenant_id, owner_user_id, name, is_default, content, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {PLAYBOOK_COLUMNS}"
    ))
    .bind(p.id.as_str())
    .bind(scope.tenant())
    .bind(p.owner.as_str())
    .bind(p.name)
    .bind(i64::from(p.is_default))
    .bind(p.content)
    .bind(p.now)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, DUPLICATE_NAME))
}

pub async fn get_playbook(
    mut r: impl Read,
    scope: &TenantScope,
    id: &PlaybookId,
) -> StoreResult<Option<PlaybookRow>> {
    Ok(sqlx::query_as::<_, PlaybookRow>(&format!(
        "SELECT {PLAYBOOK_COLUMNS} FROM playbooks WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn update_playbook(
    mut w: impl Write,
    scope: &TenantScope,
    id: &PlaybookId,
    name: &str,
    is_default: bool,
    content: &str,
    now: i64,
) -> StoreResult<Option<PlaybookRow>> {
    sqlx::query_as::<_, PlaybookRow>(&format!(
        "UPDATE playbooks SET name = $1, is_default = $2, content = $3, updated_at = $4
         WHERE tenant_id = $5 AND id = $6 RETURNING {PLAYBOOK_COLUMNS}"
    ))
    .bind(name)
    .bind(i64::from(is_default))
    .bind(content)
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, DUPLICATE_NAME))
}

/// Clear the default flag on the owner's other playbooks.
pub async fn clear_default(
    mut w: impl Write,
    scope: &TenantScope,
    owner: &UserId,
    except: &PlaybookId,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE playbooks SET is_default = 0
         WHERE tenant_id = $1 AND owner_user_id = $2 AND id <> $3 AND is_default <> 0",
    )
    .bind(scope.tenant())
    .bind(owner.as_str())
    .bind(except.as_str())
    .execute(w.exec())
    .await?;
    Ok(())
}

pub async fn delete_playbook(
    mut w: impl Write,
    scope: &TenantScope,
    id: &PlaybookId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM playbooks WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant())
            .bind(id.as_str())
            .execute(w.exec())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Playbooks as the list kit pages them (newest first).
pub static PLAYBOOK_LIST: ListSpec = ListSpec {
    table: "playbooks",
    select: PLAYBOOK_COLUMNS,
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
        list::Column::new("owner_user_id", "owner_user_id", list::Kind::Text).filterable(),
        list::Column::new("is_default", "is_default", list::Kind::Integer).filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_playbooks(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    owner: Option<&UserId>,
    params: &ListParams,
) -> StoreResult<Page<PlaybookRow>> {
    let fixed: Vec<Fixed> = owner
        .map(|o| Fixed::eq("owner_user_id", o.as_str()))
        .into_iter()
        .collect();
    list::fetch(reader, backend, &PLAYBOOK_LIST, scope, &fixed, params).await
}

// ---------------------------------------------------------------- tokens

pub const TOKEN_COLUMNS: &str = "id, tenant_id, vm_uuid, issued_by, token_hint, status, os, \
    profile_id, playbook_id, agent_id, vmid, node, iso_name, iso_storage, issued_at, expires_at, \
    used_at, expired_at, revoked_at, revoked_by, revoke_reason, detach_requested_at, \
    detach_command_id, detach_error";

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: ProvisioningTokenId,
    pub tenant_id: TenantId,
    pub vm_uuid: String,
    pub issued_by: UserId,
    pub token_hint: String,
    #[sqlx(try_from = "String")]
    pub status: TokenStatus,
    #[sqlx(try_from = "String")]
    pub os: GuestOs,
    pub profile_id: Option<String>,
    pub playbook_id: Option<PlaybookId>,
    pub agent_id: Option<AgentId>,
    pub vmid: Option<i64>,
    pub node: Option<String>,
    pub iso_name: Option<String>,
    pub iso_storage: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    pub detach_requested_at: Option<i64>,
    pub detach_command_id: Option<String>,
    pub detach_error: Option<String>,
}

pub struct NewToken<'a> {
    pub id: &'a ProvisioningTokenId,
    pub vm_uuid: &'a str,
    pub issued_by: &'a UserId,
    pub token_hash: &'a str,
    pub token_hint: &'a str,
    pub os: GuestOs,
    pub profile_id: Option<&'a str>,
    pub playbook_id: Option<&'a PlaybookId>,
    pub agent_id: Option<&'a AgentId>,
    pub vmid: Option<i64>,
    pub node: Option<&'a str>,
    pub iso_name: Option<&'a str>,
    pub iso_storage: Option<&'a str>,
    pub expires_at: i64,
    pub now: i64,
}

pub async fn insert_token(
    mut w: impl Write,
    scope: &TenantScope,
    t: NewToken<'_>,
) -> StoreResult<TokenRow> {
    sqlx::query_as::<_, TokenRow>(&format!(
        "INSERT INTO provisioning_tokens (id, tenant_id, vm_uuid, issued_by, token_hash, token_hint,
            status, os, profile_id, playbook_id, agent_id, vmid, node, iso_name, iso_storage,
            issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(t.id.as_str())
    .bind(scope.tenant())
    .bind(t.vm_uuid)
    .bind(t.issued_by.as_str())
    .bind(t.token_hash)
    .bind(t.token_hint)
    .bind(t.os.as_str())
    .bind(t.profile_id)
    .bind(t.playbook_id.map(PlaybookId::as_str))
    .bind(t.agent_id.map(AgentId::as_str))
    .bind(t.vmid)
    .bind(t.node)
    .bind(t.iso_name)
    .bind(t.iso_storage)
    .bind(t.now)
    .bind(t.expires_at)
    .fetch_one(w.exec())
    .await
    .map_err(|e| {
        StoreError::unique_or(
            e,
            "another provisioning token for this VM was issued at the same moment; retry",
        )
    })
}

/// The active token of a VM, if any.
pub async fn active_for_vm(
    mut r: impl Read,
    scope: &TenantScope,
    vm_uuid: &str,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM provisioning_tokens
         WHERE tenant_id = $1 AND vm_uuid = $2 AND status = 'active'"
    ))
    .bind(scope.tenant())
    .bind(vm_uuid)
    .fetch_optional(r.exec())
    .await?)
}

/// The newest token of a VM (any status): whose progress the VM shows.
pub async fn latest_for_vm(
    mut r: impl Read,
    scope: &TenantScope,
    vm_uuid: &str,
    issued_by: Option<&UserId>,
) -> StoreResult<Option<TokenRow>> {
    let mut sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM provisioning_tokens WHERE tenant_id = $1 AND vm_uuid = $2"
    );
    if issued_by.is_some() {
        sql.push_str(" AND issued_by = $3");
    }
    sql.push_str(" ORDER BY issued_at DESC, id DESC LIMIT 1");
    let mut q = sqlx::query_as::<_, TokenRow>(&sql)
        .bind(scope.tenant())
        .bind(vm_uuid);
    if let Some(u) = issued_by {
        q = q.bind(u.as_str());
    }
    Ok(q.fetch_optional(r.exec()).await?)
}

/// A token by the hash of its secret (the secret is the credential, so no
/// tenant scope: the row says whose it is).
pub async fn by_hash(mut r: impl Read, token_hash: &str) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM provisioning_tokens WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(r.exec())
    .await?)
}

pub async fn get_token(
    mut r: impl Read,
    id: &ProvisioningTokenId,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM provisioning_tokens WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// `active → revoked`; `None` when the token is no longer active.
pub async fn revoke_token(
    mut w: impl Write,
    id: &ProvisioningTokenId,
    by: &UserId,
    reason: &str,
    now: i64,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "UPDATE provisioning_tokens SET status = 'revoked', revoked_at = $1, revoked_by = $2, revoke_reason = $3
         WHERE id = $4 AND status = 'active' RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(now)
    .bind(by.as_str())
    .bind(reason)
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// `active → used`; `None` when the token is no longer active.
pub async fn mark_used(
    mut w: impl Write,
    id: &ProvisioningTokenId,
    now: i64,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "UPDATE provisioning_tokens SET status = 'used', used_at = $1
         WHERE id = $2 AND status = 'active' RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(now)
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// `active → expired` for every token past its expiry.
pub async fn expire_due(mut w: impl Write, now: i64) -> StoreResult<Vec<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "UPDATE provisioning_tokens SET status = 'expired', expired_at = $1
         WHERE status = 'active' AND expires_at <= $1 RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(now)
    .fetch_all(w.exec())
    .await?)
}

/// Claim the one auto-detach of a token: `true` for the first caller only.
pub async fn claim_detach(
    mut w: impl Write,
    id: &ProvisioningTokenId,
    now: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE provisioning_tokens SET detach_requested_at = $1
         WHERE id = $2 AND detach_requested_at IS NULL",
    )
    .bind(now)
    .bind(id.as_str())
    .execute(w.exec())
    .await?
    .rows_affected()
        == 1)
}

pub async fn set_detach_outcome(
    mut w: impl Write,
    id: &ProvisioningTokenId,
    command_id: Option<&str>,
    error: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE provisioning_tokens SET detach_command_id = $1, detach_error = $2 WHERE id = $3",
    )
    .bind(command_id)
    .bind(error)
    .bind(id.as_str())
    .execute(w.exec())
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- progress

pub const PROGRESS_COLUMNS: &str =
    "token_id, step, status, details, first_reported_at, reported_at, report_count";

#[derive(Debug, Clone, FromRow)]
pub struct ProgressRow {
    pub token_id: ProvisioningTokenId,
    #[sqlx(try_from = "String")]
    pub step: Step,
    #[sqlx(try_from = "String")]
    pub status: StepStatus,
    pub details: Option<String>,
    pub first_reported_at: i64,
    pub reported_at: i64,
    pub report_count: i64,
}

pub async fn get_step(
    mut r: impl Read,
    token_id: &ProvisioningTokenId,
    step: Step,
) -> StoreResult<Option<ProgressRow>> {
    Ok(sqlx::query_as::<_, ProgressRow>(&format!(
        "SELECT {PROGRESS_COLUMNS} FROM provisioning_progress WHERE token_id = $1 AND step = $2"
    ))
    .bind(token_id.as_str())
    .bind(step.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn insert_step(
    mut w: impl Write,
    token: &TokenRow,
    step: Step,
    status: StepStatus,
    details: Option<&str>,
    now: i64,
) -> StoreResult<ProgressRow> {
    Ok(sqlx::query_as::<_, ProgressRow>(&format!(
        "INSERT INTO provisioning_progress (token_id, tenant_id, vm_uuid, step, status, details,
            first_reported_at, reported_at, report_count)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) RETURNING {PROGRESS_COLUMNS}"
    ))
    .bind(token.id.as_str())
    .bind(token.tenant_id.as_str())
    .bind(&token.vm_uuid)
    .bind(step.as_str())
    .bind(status.as_str())
    .bind(details)
    .bind(now)
    .fetch_one(w.exec())
    .await?)
}

/// A repeated report of a step: count it, and move the status forward
/// (`status`/`details` are `None` to keep the stored ones).
pub async fn update_step(
    mut w: impl Write,
    token_id: &ProvisioningTokenId,
    step: Step,
    status: Option<StepStatus>,
    details: Option<&str>,
    now: i64,
) -> StoreResult<ProgressRow> {
    Ok(sqlx::query_as::<_, ProgressRow>(&format!(
        "UPDATE provisioning_progress SET status = COALESCE($1, status), details = COALESCE($2, details),
            reported_at = $3, report_count = report_count + 1
         WHERE token_id = $4 AND step = $5 RETURNING {PROGRESS_COLUMNS}"
    ))
    .bind(status.map(StepStatus::as_str))
    .bind(details)
    .bind(now)
    .bind(token_id.as_str())
    .bind(step.as_str())
    .fetch_one(w.exec())
    .await?)
}

pub async fn steps(
    mut r: impl Read,
    token_id: &ProvisioningTokenId,
) -> StoreResult<Vec<ProgressRow>> {
    Ok(sqlx::query_as::<_, ProgressRow>(&format!(
        "SELECT {PROGRESS_COLUMNS} FROM provisioning_progress WHERE token_id = $1
         ORDER BY first_reported_at, step"
    ))
    .bind(token_id.as_str())
    .fetch_all(r.exec())
    .await?)
}

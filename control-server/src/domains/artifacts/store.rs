//! SQL of artifacts: `artifact_releases`, `artifact_assignments`,
//! `artifact_download_audit`.

use sqlx::FromRow;

use crate::db::ids::{ArtifactAssignmentId, ArtifactAuditId, ArtifactReleaseId, TenantId, UserId};
use crate::db::list::{self, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

text_enum!(
    /// A release's status: only `active` releases are handed out.
    ReleaseStatus, "release status" {
        Draft => "draft",
        Active => "active",
        Disabled => "disabled",
        Archived => "archived",
    }
);

text_enum!(
    /// Whether a release's object is in the store (`ready`) or awaits its
    /// upload through the server (`pending`).
    ContentState, "content state" {
        Pending => "pending",
        Ready => "ready",
    }
);

text_enum!(
    /// The outcome of a resolve-download attempt.
    AuditResult, "audit result" {
        Allowed => "allowed",
        Denied => "denied",
        ServerError => "error",
    }
);

text_enum!(
    /// What an audit row records (`download_url_issued` is allowed by the
    /// schema, as in the original, and never written).
    AuditEvent, "audit event" {
        ResolveSuccess => "resolve_success",
        ResolveDenied => "resolve_denied",
        DownloadUrlIssued => "download_url_issued",
    }
);

// ---- releases ----

pub const RELEASE_COLUMNS: &str = "id, tenant_id, module, platform, channel, version, object_key, \
    sha256, size_bytes, status, content, created_by, updated_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct ReleaseRow {
    pub id: ArtifactReleaseId,
    pub tenant_id: TenantId,
    pub module: String,
    pub platform: String,
    pub channel: String,
    pub version: String,
    pub object_key: String,
    pub sha256: String,
    pub size_bytes: i64,
    #[sqlx(try_from = "String")]
    pub status: ReleaseStatus,
    #[sqlx(try_from = "String")]
    pub content: ContentState,
    pub created_by: UserId,
    pub updated_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewRelease<'a> {
    pub id: &'a ArtifactReleaseId,
    pub module: &'a str,
    pub platform: &'a str,
    pub channel: &'a str,
    pub version: &'a str,
    pub object_key: &'a str,
    pub sha256: &'a str,
    pub size_bytes: i64,
    pub status: ReleaseStatus,
    pub content: ContentState,
    pub by: &'a UserId,
    pub now: i64,
}

pub async fn insert_release(
    mut w: impl Write,
    scope: &TenantScope,
    r: NewRelease<'_>,
) -> StoreResult<ReleaseRow> {
    sqlx::query_as::<_, ReleaseRow>(&format!(
        "INSERT INTO artifact_releases (id, tenant_id, module, platform, channel, version,
            object_key, sha256, size_bytes, status, content, created_by, updated_by,
            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13)
         RETURNING {RELEASE_COLUMNS}"
    ))
    .bind(r.id.as_str())
    .bind(scope.tenant())
    .bind(r.module)
    .bind(r.platform)
    .bind(r.channel)
    .bind(r.version)
    .bind(r.object_key)
    .bind(r.sha256)
    .bind(r.size_bytes)
    .bind(r.status.as_str())
    .bind(r.content.as_str())
    .bind(r.by.as_str())
    .bind(r.now)
    .fetch_one(w.exec())
    .await
    .map_err(|e| {
        StoreError::unique_or(
            e,
            "a release with this module, platform, channel and version (or this object_key) exists",
        )
    })
}

pub async fn get_release(
    mut r: impl Read,
    scope: &TenantScope,
    id: &ArtifactReleaseId,
) -> StoreResult<Option<ReleaseRow>> {
    Ok(sqlx::query_as::<_, ReleaseRow>(&format!(
        "SELECT {RELEASE_COLUMNS} FROM artifact_releases WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn set_status(
    mut w: impl Write,
    scope: &TenantScope,
    id: &ArtifactReleaseId,
    status: ReleaseStatus,
    by: &UserId,
    now: i64,
) -> StoreResult<Option<ReleaseRow>> {
    Ok(sqlx::query_as::<_, ReleaseRow>(&format!(
        "UPDATE artifact_releases SET status = $1, updated_by = $2, updated_at = $3
         WHERE tenant_id = $4 AND id = $5 RETURNING {RELEASE_COLUMNS}"
    ))
    .bind(status.as_str())
    .bind(by.as_str())
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// `pending` → `ready` (no row: not pending any more, or absent).
pub async fn mark_ready(
    mut w: impl Write,
    scope: &TenantScope,
    id: &ArtifactReleaseId,
    by: &UserId,
    now: i64,
) -> StoreResult<Option<ReleaseRow>> {
    Ok(sqlx::query_as::<_, ReleaseRow>(&format!(
        "UPDATE artifact_releases SET content = 'ready', updated_by = $1, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 AND content = 'pending' RETURNING {RELEASE_COLUMNS}"
    ))
    .bind(by.as_str())
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

pub const RELEASE_STATUSES: &[&str] = &["draft", "active", "disabled", "archived"];

pub static RELEASE_LIST: ListSpec = ListSpec {
    table: "artifact_releases",
    select: RELEASE_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("module", "module", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("platform", "platform", list::Kind::Text)
            .sortable()
            .filterable(),
        list::Column::new("channel", "channel", list::Kind::Text)
            .sortable()
            .filterable(),
        list::Column::new("version", "version", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("status", "status", list::Kind::Enum(RELEASE_STATUSES))
            .sortable()
            .filterable(),
        list::Column::new(
            "content",
            "content",
            list::Kind::Enum(&["pending", "ready"]),
        )
        .filterable(),
        list::Column::new("size_bytes", "size_bytes", list::Kind::Integer)
            .sortable()
            .filterable(),
        list::Column::new("object_key", "object_key", list::Kind::Text)
            .filterable()
            .searchable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_releases(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<ReleaseRow>> {
    list::fetch(reader, backend, &RELEASE_LIST, scope, &[], params).await
}

// ---- assignments ----

pub const ASSIGNMENT_COLUMNS: &str = "id, tenant_id, module, platform, channel, user_id, \
    release_id, created_by, updated_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct AssignmentRow {
    pub id: ArtifactAssignmentId,
    pub tenant_id: TenantId,
    pub module: String,
    pub platform: String,
    pub channel: String,
    /// `None`: the tenant's default.
    pub user_id: Option<UserId>,
    pub release_id: ArtifactReleaseId,
    pub created_by: UserId,
    pub updated_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an assignment is for: a user's own, or (`user: None`) the
/// tenant's default.
#[derive(Debug, Clone, Copy)]
pub struct AssignmentScope<'a> {
    pub user: Option<&'a UserId>,
    pub module: &'a str,
    pub platform: &'a str,
    pub channel: &'a str,
}

pub async fn get_assignment(
    mut r: impl Read,
    scope: &TenantScope,
    s: AssignmentScope<'_>,
) -> StoreResult<Option<AssignmentRow>> {
    let user_cond = if s.user.is_some() {
        "user_id = $5"
    } else {
        "user_id IS NULL"
    };
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM artifact_assignments
         WHERE tenant_id = $1 AND module = $2 AND platform = $3 AND channel = $4 AND {user_cond}"
    );
    let mut q = sqlx::query_as::<_, AssignmentRow>(&sql)
        .bind(scope.tenant())
        .bind(s.module)
        .bind(s.platform)
        .bind(s.channel);
    if let Some(u) = s.user {
        q = q.bind(u.as_str());
    }
    Ok(q.fetch_optional(r.exec()).await?)
}

/// Remove the scope's assignment (the first half of a replacement).
pub async fn delete_assignment(
    mut w: impl Write,
    scope: &TenantScope,
    s: AssignmentScope<'_>,
) -> StoreResult<()> {
    let user_cond = if s.user.is_some() {
        "user_id = $5"
    } else {
        "user_id IS NULL"
    };
    let sql = format!(
        "DELETE FROM artifact_assignments
         WHERE tenant_id = $1 AND module = $2 AND platform = $3 AND channel = $4 AND {user_cond}"
    );
    let mut q = sqlx::query(&sql)
        .bind(scope.tenant())
        .bind(s.module)
        .bind(s.platform)
        .bind(s.channel);
    if let Some(u) = s.user {
        q = q.bind(u.as_str());
    }
    q.execute(w.exec()).await?;
    Ok(())
}

pub async fn insert_assignment(
    mut w: impl Write,
    scope: &TenantScope,
    s: AssignmentScope<'_>,
    release: &ArtifactReleaseId,
    by: &UserId,
    created_at: i64,
    now: i64,
) -> StoreResult<AssignmentRow> {
    sqlx::query_as::<_, AssignmentRow>(&format!(
        "INSERT INTO artifact_assignments (id, tenant_id, module, platform, channel, user_id,
            release_id, created_by, updated_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10) RETURNING {ASSIGNMENT_COLUMNS}"
    ))
    .bind(ArtifactAssignmentId::generate().as_str())
    .bind(scope.tenant())
    .bind(s.module)
    .bind(s.platform)
    .bind(s.channel)
    .bind(s.user.map(UserId::as_str))
    .bind(release.as_str())
    .bind(by.as_str())
    .bind(created_at)
    .bind(now)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "the scope was assigned concurrently; retry"))
}

// ---- download audit ----

pub const AUDIT_COLUMNS: &str = "id, tenant_id, actor_id, lease_id, lease_jti, user_id, vm_uuid, \
    module, platform, channel, release_id, event_type, result, reason, error_code, request_ip, \
    url_expires_at, metadata, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub id: ArtifactAuditId,
    pub tenant_id: TenantId,
    pub actor_id: UserId,
    pub lease_id: Option<String>,
    pub lease_jti: Option<String>,
    pub user_id: Option<UserId>,
    pub vm_uuid: String,
    pub module: String,
    pub platform: String,
    pub channel: String,
    pub release_id: Option<ArtifactReleaseId>,
    #[sqlx(try_from = "String")]
    pub event_type: AuditEvent,
    #[sqlx(try_from = "String")]
    pub result: AuditResult,
    pub reason: Option<String>,
    pub error_code: Option<String>,
    pub request_ip: String,
    pub url_expires_at: Option<i64>,
    pub metadata: String,
    pub created_at: i64,
}

pub struct NewAudit<'a> {
    pub actor_id: &'a UserId,
    pub lease_id: Option<&'a str>,
    pub user_id: Option<&'a UserId>,
    pub vm_uuid: &'a str,
    pub module: &'a str,
    pub platform: &'a str,
    pub channel: &'a str,
    pub release_id: Option<&'a ArtifactReleaseId>,
    pub event_type: AuditEvent,
    pub result: AuditResult,
    pub reason: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub request_ip: &'a str,
    pub url_expires_at: Option<i64>,
    pub metadata: &'a str,
    pub now: i64,
}

pub async fn insert_audit(
    mut w: impl Write,
    scope: &TenantScope,
    a: NewAudit<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO artifact_download_audit (id, tenant_id, actor_id, lease_id, lease_jti,
            user_id, vm_uuid, module, platform, channel, release_id, event_type, result, reason,
            error_code, request_ip, url_expires_at, metadata, created_at)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(ArtifactAuditId::generate().as_str())
    .bind(scope.tenant())
    .bind(a.actor_id.as_str())
    .bind(a.lease_id)
    .bind(a.user_id.map(UserId::as_str))
    .bind(a.vm_uuid)
    .bind(a.module)
    .bind(a.platform)
    .bind(a.channel)
    .bind(a.release_id.map(ArtifactReleaseId::as_str))
    .bind(a.event_type.as_str())
    .bind(a.result.as_str())
    .bind(a.reason)
    .bind(a.error_code)
    .bind(a.request_ip)
    .bind(a.url_expires_at)
    .bind(a.metadata)
    .bind(a.now)
    .execute(w.exec())
    .await?;
    Ok(())
}

pub static AUDIT_LIST: ListSpec = ListSpec {
    table: "artifact_download_audit",
    select: AUDIT_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new(
            "result",
            "result",
            list::Kind::Enum(&["allowed", "denied", "error"]),
        )
        .sortable()
        .filterable(),
        list::Column::new(
            "event_type",
            "event_type",
            list::Kind::Enum(&["resolve_success", "resolve_denied", "download_url_issued"]),
        )
        .filterable(),
        list::Column::new("module", "module", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("vm_uuid", "vm_uuid", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("platform", "platform", list::Kind::Text).filterable(),
        list::Column::new("channel", "channel", list::Kind::Text).filterable(),
        list::Column::new("user_id", "user_id", list::Kind::Text)
            .nullable()
            .filterable(),
        list::Column::new("actor_id", "actor_id", list::Kind::Text).filterable(),
        list::Column::new("lease_id", "lease_id", list::Kind::Text)
            .nullable()
            .filterable(),
        list::Column::new("release_id", "release_id", list::Kind::Text)
            .nullable()
            .filterable(),
        list::Column::new("error_code", "error_code", list::Kind::Text)
            .nullable()
            .filterable(),
        list::Column::new("request_ip", "request_ip", list::Kind::Text).filterable(),
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

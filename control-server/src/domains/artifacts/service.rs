//! Artifact rules: releases (registered objects verified, or uploads
//! verified while they stream), status changes, assignments replaced in
//! one transaction, and the resolve-download chain of inventory §2.10 with
//! an audit row for every outcome.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::store::{
    self, AssignmentRow, AssignmentScope, AuditEvent, AuditResult, AuditRow, ContentState,
    NewAudit, NewRelease, ReleaseRow, ReleaseStatus,
};
use super::ArtifactsError;
use crate::auth::{Identity, Role};
use crate::db::ids::{ArtifactReleaseId, UserId};
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, TenantScope};
use crate::domains::accounts::AccountsService;
use crate::domains::licensing::service::valid_module;
use crate::domains::licensing::{LicensingError, LicensingService};
use crate::domains::vms::normalize_vm_uuid;
use crate::objects::{BaseUrl, Expected, ObjectKey, Objects};
use crate::validate::FieldErrors;

/// A platform or channel as sent (stored lower-cased).
pub const SCOPE_PATTERN: &str = "^[A-Za-z0-9._-]{1,50}$";
/// A release version.
pub const VERSION_PATTERN: &str = "^[A-Za-z0-9._+~:-]{1,100}$";
/// A SHA-256 as sent (stored lower-cased).
pub const SHA256_PATTERN: &str = "^[A-Fa-f0-9]{64}$";
/// Longest lease token accepted (as `/license/verify`).
pub const MAX_LEASE_TOKEN: usize = 8192;

/// `platform`/`channel`: 1..=50 of `[A-Za-z0-9._-]`, lower-cased.
pub fn normalize_scope(raw: &str) -> Option<String> {
    ((1..=50).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    .then(|| raw.to_ascii_lowercase())
}

fn valid_version(v: &str) -> bool {
    (1..=100).contains(&v.len())
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'~' | b':' | b'-')
        })
}

fn normalize_sha256(raw: &str) -> Option<String> {
    (raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| raw.to_ascii_lowercase())
}

/// Where a tenant's artifacts live in the object store.
pub fn tenant_prefix(scope: &TenantScope) -> String {
    format!("artifacts/{}/", scope.tenant())
}

/// The reason column: the code as a slug (`[^a-z0-9:_-]` → `-`, at most
/// 120 characters), as the original wrote it.
pub fn reason_slug(code: &str) -> String {
    code.to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(120)
        .collect()
}

/// The lease id and user of a token the licensing check found genuine
/// (signed by this server) but refused for its state (expired, revoked):
/// for the audit row, and only when the token is of the caller's tenant
/// (another tenant's lease id is not written into this tenant's audit).
fn refused_lease_claims(token: &str, scope: &TenantScope) -> Option<(String, UserId)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    if claims["tenant_id"].as_str()? != scope.tenant() {
        return None;
    }
    Some((
        claims["jti"].as_str()?.to_string(),
        UserId::from(claims["user_id"].as_str()?),
    ))
}

/// A requested value as the audit keeps it: at most 200 characters, no
/// control characters.
fn audit_text(raw: &str) -> String {
    raw.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

// ---- views ----

/// An artifact release.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReleaseView {
    pub id: String,
    pub tenant_id: String,
    pub module: String,
    /// Lower-cased.
    pub platform: String,
    /// Lower-cased.
    pub channel: String,
    pub version: String,
    pub object_key: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size_bytes: i64,
    #[schema(schema_with = super::routes::release_status_schema)]
    pub status: ReleaseStatus,
    /// `ready`: the object is in the store and matches; `pending`: waiting
    /// for `PUT /api/v1/artifacts/releases/{id}/content`.
    #[schema(schema_with = super::routes::content_state_schema)]
    pub content: ContentState,
    pub created_by: String,
    pub updated_by: String,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

impl From<ReleaseRow> for ReleaseView {
    fn from(r: ReleaseRow) -> Self {
        ReleaseView {
            id: r.id.into_string(),
            tenant_id: r.tenant_id.into_string(),
            module: r.module,
            platform: r.platform,
            channel: r.channel,
            version: r.version,
            object_key: r.object_key,
            sha256: r.sha256,
            size_bytes: r.size_bytes,
            status: r.status,
            content: r.content,
            created_by: r.created_by.into_string(),
            updated_by: r.updated_by.into_string(),
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        }
    }
}

/// Which release a user (or the tenant by default) gets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentView {
    pub id: String,
    pub tenant_id: String,
    pub module: String,
    pub platform: String,
    pub channel: String,
    /// `null`: the tenant's default.
    pub user_id: Option<String>,
    pub release_id: String,
    /// `true` when `user_id` is null.
    pub is_default: bool,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<AssignmentRow> for AssignmentView {
    fn from(r: AssignmentRow) -> Self {
        AssignmentView {
            id: r.id.into_string(),
            tenant_id: r.tenant_id.into_string(),
            module: r.module,
            platform: r.platform,
            channel: r.channel,
            is_default: r.user_id.is_none(),
            user_id: r.user_id.map(UserId::into_string),
            release_id: r.release_id.into_string(),
            created_by: r.created_by.into_string(),
            updated_by: r.updated_by.into_string(),
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        }
    }
}

/// A user's assignment, the tenant default, and which one applies.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentLookup {
    pub user_assignment: Option<AssignmentView>,
    pub default_assignment: Option<AssignmentView>,
    /// The user's own, else the default.
    pub effective_assignment: Option<AssignmentView>,
}

/// A download URL for the lease's assigned release.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResolvedDownload {
    /// GET it before `url_expires_at` (no bearer token).
    pub download_url: String,
    /// Epoch ms.
    pub url_expires_at: i64,
    pub release_id: String,
    pub version: String,
    /// Check the downloaded bytes against it.
    pub sha256: String,
    pub size_bytes: i64,
}

/// One resolve-download attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DownloadAuditView {
    pub id: String,
    pub tenant_id: String,
    /// The caller.
    pub actor_id: String,
    /// Once the lease token was verified.
    pub lease_id: Option<String>,
    pub lease_jti: Option<String>,
    /// The lease's user.
    pub user_id: Option<String>,
    /// As requested (lower-cased when valid).
    pub vm_uuid: String,
    pub module: String,
    pub platform: String,
    pub channel: String,
    /// Once the assignment was found.
    pub release_id: Option<String>,
    #[schema(schema_with = super::routes::audit_event_schema)]
    pub event_type: store::AuditEvent,
    #[schema(schema_with = super::routes::audit_result_schema)]
    pub result: AuditResult,
    /// The error code as a slug (`lease_expired`); `null` when allowed.
    pub reason: Option<String>,
    pub error_code: Option<String>,
    /// The client address, taken as rate limiting takes it.
    pub request_ip: String,
    /// Epoch ms (allowed only).
    pub url_expires_at: Option<i64>,
    /// `source` (`user`/`tenant-default`), `error_code`, `status`.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: String,
}

impl From<AuditRow> for DownloadAuditView {
    fn from(r: AuditRow) -> Self {
        DownloadAuditView {
            id: r.id.into_string(),
            tenant_id: r.tenant_id.into_string(),
            actor_id: r.actor_id.into_string(),
            lease_id: r.lease_id,
            lease_jti: r.lease_jti,
            user_id: r.user_id.map(UserId::into_string),
            vm_uuid: r.vm_uuid,
            module: r.module,
            platform: r.platform,
            channel: r.channel,
            release_id: r.release_id.map(ArtifactReleaseId::into_string),
            event_type: r.event_type,
            result: r.result,
            reason: r.reason,
            error_code: r.error_code,
            request_ip: r.request_ip,
            url_expires_at: r.url_expires_at,
            metadata: serde_json::from_str(&r.metadata).unwrap_or(Value::Null),
            created_at: ms_to_rfc3339(r.created_at),
        }
    }
}

// ---- inputs ----

pub struct CreateRelease {
    pub module: String,
    pub platform: String,
    pub channel: Option<String>,
    pub version: String,
    /// `Some`: register this object (verified); `None`: the content is
    /// uploaded later through the server.
    pub object_key: Option<String>,
    pub sha256: String,
    pub size_bytes: i64,
    pub status: Option<ReleaseStatus>,
}

pub struct AssignInput {
    pub user_id: Option<UserId>,
    pub module: String,
    pub platform: String,
    pub channel: Option<String>,
    pub release_id: ArtifactReleaseId,
}

pub struct ResolveInput {
    pub lease_token: String,
    pub vm_uuid: String,
    pub module: String,
    pub platform: String,
    pub channel: Option<String>,
}

/// What the chain learnt before it ended (for the audit row).
#[derive(Default)]
struct Trail {
    lease_id: Option<String>,
    user_id: Option<UserId>,
    release_id: Option<ArtifactReleaseId>,
    source: Option<&'static str>,
}

pub struct ArtifactsService {
    db: Db,
    objects: Arc<Objects>,
    licensing: Arc<LicensingService>,
    accounts: Arc<AccountsService>,
    max_upload_bytes: u64,
}

impl ArtifactsService {
    pub fn new(
        db: Db,
        objects: Arc<Objects>,
        licensing: Arc<LicensingService>,
        accounts: Arc<AccountsService>,
        max_upload_bytes: u64,
    ) -> ArtifactsService {
        ArtifactsService {
            db,
            objects,
            licensing,
            accounts,
            max_upload_bytes,
        }
    }

    async fn check_user(&self, scope: &TenantScope, user: &UserId) -> Result<(), ArtifactsError> {
        if self.accounts.user_exists(scope, user).await? {
            Ok(())
        } else {
            Err(ArtifactsError::UserNotFound)
        }
    }

    // ---- releases (admin) ----

    /// Create a release: with `object_key`, the object must already be in
    /// the store under the tenant's prefix with exactly this size and
    /// SHA-256; without, the release is a `draft` whose content is
    /// uploaded with [`Self::upload_content`].
    pub async fn create_release(
        &self,
        caller: &Identity,
        input: CreateRelease,
    ) -> Result<ReleaseView, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        let mut f = FieldErrors::default();
        f.check(
            valid_module(&input.module),
            "module",
            "must be 1-200 characters of A-Z a-z 0-9 . _ : -",
        );
        let platform = normalize_scope(&input.platform);
        f.check(
            platform.is_some(),
            "platform",
            "must be 1-50 characters of A-Z a-z 0-9 . _ -",
        );
        let channel = normalize_scope(input.channel.as_deref().unwrap_or("stable"));
        f.check(
            channel.is_some(),
            "channel",
            "must be 1-50 characters of A-Z a-z 0-9 . _ -",
        );
        f.check(
            valid_version(&input.version),
            "version",
            "must be 1-100 characters of A-Z a-z 0-9 . _ + ~ : -",
        );
        let sha256 = normalize_sha256(&input.sha256);
        f.check(
            sha256.is_some(),
            "sha256",
            "must be 64 hexadecimal characters",
        );
        f.check(input.size_bytes > 0, "size_bytes", "must be at least 1");
        let id = ArtifactReleaseId::generate();
        let prefix = tenant_prefix(&scope);
        let (key, content, status) = match &input.object_key {
            Some(raw) => {
                let key = ObjectKey::parse(raw);
                if key.is_none() {
                    f.add("object_key", format!("must be {}", ObjectKey::RULE));
                } else if !raw.starts_with(&prefix) {
                    f.add("object_key", format!("must start with `{prefix}`"));
                }
                (
                    key,
                    ContentState::Ready,
                    input.status.unwrap_or(ReleaseStatus::Active),
                )
            }
            None => {
                if input.size_bytes as u64 > self.max_upload_bytes {
                    f.add(
                        "size_bytes",
                        format!(
                            "uploads through the server are at most {} bytes (artifact_max_bytes)",
                            self.max_upload_bytes
                        ),
                    );
                }
                let status = input.status.unwrap_or(ReleaseStatus::Draft);
                f.check(
                    status == ReleaseStatus::Draft,
                    "status",
                    "a release whose content is uploaded later starts as draft; activate it after the upload",
                );
                (
                    ObjectKey::parse(&format!("{prefix}releases/{id}")),
                    ContentState::Pending,
                    status,
                )
            }
        };
        f.into_fields().map_err(ArtifactsError::Validation)?;
        let (Some(key), Some(platform), Some(channel), Some(sha256)) =
            (key, platform, channel, sha256)
        else {
            return Err(ArtifactsError::Validation(FieldErrors::one(
                "body",
                "invalid release",
            )));
        };
        if content == ContentState::Ready {
            self.verify_object(&key, input.size_bytes, &sha256).await?;
        }
        let row = store::insert_release(
            self.db.writer(),
            &scope,
            NewRelease {
                id: &id,
                module: &input.module,
                platform: &platform,
                channel: &channel,
                version: &input.version,
                object_key: key.as_str(),
                sha256: &sha256,
                size_bytes: input.size_bytes,
                status,
                content,
                by: &caller.user_id,
                now: now_ms(),
            },
        )
        .await?;
        tracing::info!(release_id = %row.id, module = %row.module, version = %row.version,
            content = %row.content, by = %caller.user_id, "artifact release created");
        Ok(row.into())
    }

    /// The object exists with this size and SHA-256 (read in full).
    async fn verify_object(
        &self,
        key: &ObjectKey,
        size: i64,
        sha256: &str,
    ) -> Result<(), ArtifactsError> {
        let stored = self
            .objects
            .size(key)
            .await
            .map_err(ArtifactsError::from_object)?;
        if stored != size as u64 {
            return Err(ArtifactsError::ContentMismatch(format!(
                "the object has {stored} bytes, size_bytes says {size}"
            )));
        }
        let digest = self
            .objects
            .digest(key)
            .await
            .map_err(ArtifactsError::from_object)?;
        if digest.size != size as u64 || digest.sha256 != sha256 {
            return Err(ArtifactsError::ContentMismatch(format!(
                "the object's SHA-256 is {}",
                digest.sha256
            )));
        }
        Ok(())
    }

    pub async fn get_release(
        &self,
        caller: &Identity,
        id: &ArtifactReleaseId,
    ) -> Result<ReleaseView, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        Ok(store::get_release(self.db.reader(), &scope, id)
            .await?
            .ok_or(ArtifactsError::ReleaseNotFound)?
            .into())
    }

    pub async fn list_releases(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<ReleaseView>, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        let page =
            store::list_releases(self.db.reader(), self.db.backend(), &scope, params).await?;
        Ok(page.map(ReleaseView::from))
    }

    /// Change a release's status; only a release whose content is stored
    /// can become active.
    pub async fn set_status(
        &self,
        caller: &Identity,
        id: &ArtifactReleaseId,
        status: ReleaseStatus,
    ) -> Result<ReleaseView, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        let mut tx = self.db.begin().await?;
        let row = store::get_release(&mut tx, &scope, id)
            .await?
            .ok_or(ArtifactsError::ReleaseNotFound)?;
        if row.content != ContentState::Ready && status != ReleaseStatus::Draft {
            return Err(ArtifactsError::ContentMissing);
        }
        let row = store::set_status(&mut tx, &scope, id, status, &caller.user_id, now_ms())
            .await?
            .ok_or(ArtifactsError::ReleaseNotFound)?;
        tx.commit().await?;
        tracing::info!(release_id = %row.id, status = %row.status, by = %caller.user_id,
            "artifact release status changed");
        Ok(row.into())
    }

    /// Upload a pending release's content: streamed to the store with its
    /// SHA-256 computed on the way, refused (nothing stored) when longer
    /// than `size_bytes` or not matching `sha256`.
    pub async fn upload_content<S, E>(
        &self,
        caller: &Identity,
        id: &ArtifactReleaseId,
        body: S,
    ) -> Result<ReleaseView, ArtifactsError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let scope = caller.require(Role::Admin)?;
        let row = store::get_release(self.db.reader(), &scope, id)
            .await?
            .ok_or(ArtifactsError::ReleaseNotFound)?;
        if row.content == ContentState::Ready {
            return Err(ArtifactsError::ContentExists);
        }
        let key = ObjectKey::parse(&row.object_key).ok_or_else(|| {
            ArtifactsError::Store(crate::db::StoreError::Corrupt(format!(
                "release {} has an invalid object key",
                row.id
            )))
        })?;
        let written = self
            .objects
            .write(
                &key,
                body,
                row.size_bytes as u64,
                Some(Expected {
                    size: row.size_bytes as u64,
                    sha256: &row.sha256,
                }),
            )
            .await
            .map_err(ArtifactsError::from_object)?;
        let row = store::mark_ready(self.db.writer(), &scope, id, &caller.user_id, now_ms())
            .await?
            .ok_or(ArtifactsError::ContentExists)?;
        tracing::info!(release_id = %row.id, size = written.size, by = %caller.user_id,
            "artifact release content uploaded");
        Ok(row.into())
    }

    // ---- assignments (admin) ----

    fn check_scope(
        module: &str,
        platform: &str,
        channel: Option<&str>,
    ) -> Result<(String, String), ArtifactsError> {
        let mut f = FieldErrors::default();
        f.check(
            valid_module(module),
            "module",
            "must be 1-200 characters of A-Z a-z 0-9 . _ : -",
        );
        let platform = normalize_scope(platform);
        f.check(
            platform.is_some(),
            "platform",
            "must be 1-50 characters of A-Z a-z 0-9 . _ -",
        );
        let channel = normalize_scope(channel.unwrap_or("stable"));
        f.check(
            channel.is_some(),
            "channel",
            "must be 1-50 characters of A-Z a-z 0-9 . _ -",
        );
        f.into_fields().map_err(ArtifactsError::Validation)?;
        Ok((platform.unwrap_or_default(), channel.unwrap_or_default()))
    }

    /// Assign a release to a user (or, without `user_id`, as the tenant's
    /// default): the scope's previous assignment is replaced in the same
    /// transaction.
    pub async fn assign(
        &self,
        caller: &Identity,
        input: AssignInput,
    ) -> Result<AssignmentView, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        let (platform, channel) =
            Self::check_scope(&input.module, &input.platform, input.channel.as_deref())?;
        if let Some(u) = &input.user_id {
            self.check_user(&scope, u).await?;
        }
        let now = now_ms();
        let s = AssignmentScope {
            user: input.user_id.as_ref(),
            module: &input.module,
            platform: &platform,
            channel: &channel,
        };
        let mut tx = self.db.begin().await?;
        let release = store::get_release(&mut tx, &scope, &input.release_id)
            .await?
            .ok_or(ArtifactsError::ReleaseNotFound)?;
        if release.module != input.module
            || release.platform != platform
            || release.channel != channel
        {
            return Err(ArtifactsError::ScopeMismatch);
        }
        let before = store::get_assignment(&mut tx, &scope, s).await?;
        store::delete_assignment(&mut tx, &scope, s).await?;
        let row = store::insert_assignment(
            &mut tx,
            &scope,
            s,
            &release.id,
            &caller.user_id,
            before.as_ref().map_or(now, |b| b.created_at),
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(release_id = %row.release_id, module = %row.module,
            user_id = ?row.user_id.as_ref().map(UserId::as_str), by = %caller.user_id,
            "artifact release assigned");
        Ok(row.into())
    }

    /// A user's assignment, the tenant default and the effective one.
    pub async fn lookup(
        &self,
        caller: &Identity,
        user: &UserId,
        module: &str,
        platform: Option<&str>,
        channel: Option<&str>,
    ) -> Result<AssignmentLookup, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        let (platform, channel) =
            Self::check_scope(module, platform.unwrap_or("windows"), channel)?;
        self.check_user(&scope, user).await?;
        let at = |user| AssignmentScope {
            user,
            module,
            platform: &platform,
            channel: &channel,
        };
        let mine = store::get_assignment(self.db.reader(), &scope, at(Some(user))).await?;
        let default = store::get_assignment(self.db.reader(), &scope, at(None)).await?;
        let effective = mine.clone().or_else(|| default.clone());
        Ok(AssignmentLookup {
            user_assignment: mine.map(AssignmentView::from),
            default_assignment: default.map(AssignmentView::from),
            effective_assignment: effective.map(AssignmentView::from),
        })
    }

    // ---- resolve-download ----

    /// The chain of §2.10 for a runner holding a lease; every outcome
    /// (allowed, denied, error) is audited in the caller's tenant. When the
    /// audit row cannot be written, no URL is given out
    /// (`ARTIFACT_AUDIT_WRITE_FAILED`).
    pub async fn resolve_download(
        &self,
        caller: &Identity,
        request_ip: &str,
        base: &BaseUrl,
        input: ResolveInput,
    ) -> Result<ResolvedDownload, ArtifactsError> {
        let scope = caller.scope();
        let mut trail = Trail::default();
        let outcome = self.resolve_chain(caller, base, &input, &mut trail).await;
        let vm_uuid =
            normalize_vm_uuid(&input.vm_uuid).unwrap_or_else(|| audit_text(&input.vm_uuid));
        let platform =
            normalize_scope(&input.platform).unwrap_or_else(|| audit_text(&input.platform));
        let channel_raw = input.channel.as_deref().unwrap_or("stable");
        let channel = normalize_scope(channel_raw).unwrap_or_else(|| audit_text(channel_raw));
        let (event, result, code, status, url_expires_at) = match &outcome {
            Ok(r) => (
                AuditEvent::ResolveSuccess,
                AuditResult::Allowed,
                None,
                200,
                Some(r.url_expires_at),
            ),
            Err(e) => {
                let (status, code) = e.status_code();
                let result = if status.is_server_error() {
                    AuditResult::ServerError
                } else {
                    AuditResult::Denied
                };
                (
                    AuditEvent::ResolveDenied,
                    result,
                    Some(code),
                    status.as_u16(),
                    None,
                )
            }
        };
        let mut metadata = json!({ "status": status });
        if let Some(source) = trail.source {
            metadata["source"] = json!(source);
        }
        if let Some(code) = code {
            metadata["error_code"] = json!(code);
        }
        let reason = code.map(reason_slug);
        let written = store::insert_audit(
            self.db.writer(),
            &scope,
            NewAudit {
                actor_id: &caller.user_id,
                lease_id: trail.lease_id.as_deref(),
                user_id: trail.user_id.as_ref(),
                vm_uuid: &vm_uuid,
                module: &audit_text(&input.module),
                platform: &platform,
                channel: &channel,
                release_id: trail.release_id.as_ref(),
                event_type: event,
                result,
                reason: reason.as_deref(),
                error_code: code,
                request_ip,
                url_expires_at,
                metadata: &metadata.to_string(),
                now: now_ms(),
            },
        )
        .await;
        if let Err(e) = written {
            return Err(ArtifactsError::AuditWriteFailed(e));
        }
        match &outcome {
            Ok(r) => tracing::info!(release_id = %r.release_id, lease_id = ?trail.lease_id,
                request_ip, "artifact download resolved"),
            Err(e) => tracing::info!(code = e.status_code().1, lease_id = ?trail.lease_id,
                request_ip, "artifact download refused"),
        }
        outcome
    }

    async fn resolve_chain(
        &self,
        caller: &Identity,
        base: &BaseUrl,
        input: &ResolveInput,
        trail: &mut Trail,
    ) -> Result<ResolvedDownload, ArtifactsError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        f.check(
            !input.lease_token.is_empty() && input.lease_token.len() <= MAX_LEASE_TOKEN,
            "lease_token",
            "must be 1-8192 characters",
        );
        let vm_uuid = normalize_vm_uuid(&input.vm_uuid);
        f.check(
            vm_uuid.is_some(),
            "vm_uuid",
            "must be 8-128 characters of A-Z a-z 0-9 : _ -",
        );
        f.check(
            valid_module(&input.module),
            "module",
            "must be 1-200 characters of A-Z a-z 0-9 . _ : -",
        );
        let platform = normalize_scope(&input.platform);
        f.check(
            platform.is_some(),
            "platform",
            "must be 1-50 characters of A-Z a-z 0-9 . _ -",
        );
        let channel = normalize_scope(input.channel.as_deref().unwrap_or("stable"));
        f.check(
            channel.is_some(),
            "channel",
            "must be 1-50 characters of A-Z a-z 0-9 . _ -",
        );
        f.into_fields().map_err(ArtifactsError::Validation)?;
        let (vm_uuid, platform, channel) = (
            vm_uuid.unwrap_or_default(),
            platform.unwrap_or_default(),
            channel.unwrap_or_default(),
        );
        // 1-2. The lease: signature, expiry, row by jti in this tenant,
        // stored hash, status.
        let verified = self
            .licensing
            .verify_lease_token(&scope, &input.lease_token)
            .await;
        if let Err(LicensingError::LeaseExpired | LicensingError::LeaseInactive) = &verified {
            if let Some((id, user)) = refused_lease_claims(&input.lease_token, &scope) {
                trail.lease_id = Some(id);
                trail.user_id = Some(user);
            }
        }
        let lease = verified.map_err(|e| match e {
            LicensingError::LeaseTokenInvalid => ArtifactsError::LeaseTokenInvalid,
            LicensingError::LeaseExpired => ArtifactsError::LeaseExpired,
            LicensingError::LeaseNotFound => ArtifactsError::LeaseNotFound,
            LicensingError::LeaseInactive => ArtifactsError::LeaseInactive,
            LicensingError::Store(s) => ArtifactsError::Store(s),
            LicensingError::Auth(a) => ArtifactsError::Auth(a),
            other => ArtifactsError::Store(crate::db::StoreError::Corrupt(format!(
                "unexpected lease check outcome: {other}"
            ))),
        })?;
        trail.lease_id = Some(lease.id.to_string());
        trail.user_id = Some(lease.user_id.clone());
        if !(lease.user_id == caller.user_id
            || lease.created_by == caller.user_id
            || caller.has(Role::Admin))
        {
            return Err(ArtifactsError::LeaseOwnerMismatch);
        }
        // 3. The lease is for this VM and module.
        if lease.vm_uuid != vm_uuid {
            return Err(ArtifactsError::VmUuidMismatch);
        }
        if lease.module != input.module {
            return Err(ArtifactsError::ModuleMismatch);
        }
        // 4. The lease user's assignment, else the tenant default; the
        // release must be active.
        let at = |user| AssignmentScope {
            user,
            module: &input.module,
            platform: &platform,
            channel: &channel,
        };
        let (assignment, source) = match store::get_assignment(
            self.db.reader(),
            &scope,
            at(Some(&lease.user_id)),
        )
        .await?
        {
            Some(a) => (a, "user"),
            None => (
                store::get_assignment(self.db.reader(), &scope, at(None))
                    .await?
                    .ok_or(ArtifactsError::AssignmentNotFound)?,
                "tenant-default",
            ),
        };
        trail.source = Some(source);
        trail.release_id = Some(assignment.release_id.clone());
        let release = store::get_release(self.db.reader(), &scope, &assignment.release_id)
            .await?
            .ok_or(ArtifactsError::ReleaseNotFound)?;
        if release.status != ReleaseStatus::Active {
            return Err(ArtifactsError::ReleaseNotActive);
        }
        // 5. The object is there (and still the release's size), then a
        // short-lived URL.
        let key = ObjectKey::parse(&release.object_key).ok_or_else(|| {
            ArtifactsError::Store(crate::db::StoreError::Corrupt(format!(
                "release {} has an invalid object key",
                release.id
            )))
        })?;
        let size = self.objects.size(&key).await.map_err(|e| match e {
            crate::objects::ObjectError::NotFound => ArtifactsError::ObjectNotFound,
            other => ArtifactsError::HeadFailed(other.to_string()),
        })?;
        if size != release.size_bytes as u64 {
            return Err(ArtifactsError::ContentMismatch(format!(
                "the stored object has {size} bytes, the release {}",
                release.size_bytes
            )));
        }
        let url = self
            .objects
            .download_url(&key, base, None)
            .await
            .map_err(ArtifactsError::from_object)?;
        Ok(ResolvedDownload {
            download_url: url.url,
            url_expires_at: url.expires_at_ms,
            release_id: release.id.into_string(),
            version: release.version,
            sha256: release.sha256,
            size_bytes: release.size_bytes,
        })
    }

    pub async fn list_audit(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<DownloadAuditView>, ArtifactsError> {
        let scope = caller.require(Role::Admin)?;
        let page = store::list_audit(self.db.reader(), self.db.backend(), &scope, params).await?;
        Ok(page.map(DownloadAuditView::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_scopes() {
        assert_eq!(reason_slug("LEASE_EXPIRED"), "lease_expired");
        assert_eq!(reason_slug("A B/c"), "a-b-c");
        assert_eq!(reason_slug(&"X".repeat(300)).len(), 120);
        assert_eq!(normalize_scope("Windows").as_deref(), Some("windows"));
        assert!(normalize_scope("").is_none());
        assert!(normalize_scope("a b").is_none());
        assert!(normalize_scope(&"a".repeat(51)).is_none());
        assert!(valid_version("1.2.3+build~rc:1"));
        assert!(!valid_version("1 2"));
        assert_eq!(
            normalize_sha256(&"AB".repeat(32)).as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert!(normalize_sha256("abc").is_none());
        assert_eq!(audit_text("a\u{0}b"), "a?b");
    }
}

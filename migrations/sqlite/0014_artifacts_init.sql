-- Artifacts (inventory §2.10 and §3.2, issue #13): releases of a module
-- for a platform and channel, each one object in the object store; which
-- release a user (or the tenant by default) gets; and the audit of every
-- resolve-download attempt. Timestamps are epoch milliseconds.

-- `content`: `ready` once the object is in the store with this size and
-- SHA-256 (registered, or uploaded through the server), `pending` while a
-- release created without `object_key` waits for its upload. Only a ready
-- release can be active.
CREATE TABLE artifact_releases (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    module     TEXT NOT NULL,
    platform   TEXT NOT NULL,
    channel    TEXT NOT NULL DEFAULT 'stable',
    version    TEXT NOT NULL,
    object_key TEXT NOT NULL,
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
    size_bytes BIGINT NOT NULL CHECK (size_bytes > 0),
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'disabled', 'archived')),
    content    TEXT NOT NULL CHECK (content IN ('pending', 'ready')),
    created_by TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (content = 'ready' OR status = 'draft')
);
CREATE UNIQUE INDEX artifact_releases_version_idx ON artifact_releases(tenant_id, module, platform, channel, version);
CREATE UNIQUE INDEX artifact_releases_object_idx ON artifact_releases(tenant_id, object_key);
CREATE INDEX artifact_releases_scope_idx ON artifact_releases(tenant_id, module, platform, channel, status);
CREATE INDEX artifact_releases_created_idx ON artifact_releases(tenant_id, created_at);

-- One assignment per scope: a user's own (user_id set) or the tenant's
-- default (user_id NULL). Assigning again replaces the scope's row.
CREATE TABLE artifact_assignments (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    module     TEXT NOT NULL,
    platform   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    user_id    TEXT,
    release_id TEXT NOT NULL REFERENCES artifact_releases(id) ON DELETE RESTRICT,
    created_by TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX artifact_assignments_user_idx ON artifact_assignments(tenant_id, user_id, module, platform, channel)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX artifact_assignments_default_idx ON artifact_assignments(tenant_id, module, platform, channel)
    WHERE user_id IS NULL;
CREATE INDEX artifact_assignments_release_idx ON artifact_assignments(release_id);

-- Every resolve-download attempt that reached the service: allowed,
-- denied or error, with the lease (once verified), what was asked, the
-- release (once found), the client address and the error code.
CREATE TABLE artifact_download_audit (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    actor_id       TEXT NOT NULL,
    lease_id       TEXT,
    lease_jti      TEXT,
    user_id        TEXT,
    vm_uuid        TEXT NOT NULL,
    module         TEXT NOT NULL,
    platform       TEXT NOT NULL,
    channel        TEXT NOT NULL,
    release_id     TEXT REFERENCES artifact_releases(id) ON DELETE SET NULL,
    event_type     TEXT NOT NULL CHECK (event_type IN ('resolve_success', 'resolve_denied', 'download_url_issued')),
    result         TEXT NOT NULL CHECK (result IN ('allowed', 'denied', 'error')),
    reason         TEXT,
    error_code     TEXT,
    request_ip     TEXT NOT NULL,
    url_expires_at BIGINT,
    metadata       TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX artifact_download_audit_created_idx ON artifact_download_audit(tenant_id, created_at);
CREATE INDEX artifact_download_audit_module_idx ON artifact_download_audit(tenant_id, module, created_at);
CREATE INDEX artifact_download_audit_user_idx ON artifact_download_audit(tenant_id, user_id, created_at);
CREATE INDEX artifact_download_audit_lease_idx ON artifact_download_audit(tenant_id, lease_id, created_at);
CREATE INDEX artifact_download_audit_vm_idx ON artifact_download_audit(tenant_id, vm_uuid, created_at);

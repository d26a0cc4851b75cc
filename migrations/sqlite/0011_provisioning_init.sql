-- Provisioning: playbooks, per-VM provisioning tokens (stored hashed) and
-- the setup progress the guests report.

CREATE TABLE playbooks (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    owner_user_id TEXT NOT NULL,
    name          TEXT NOT NULL,
    is_default    BIGINT NOT NULL DEFAULT 0,
    content       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, owner_user_id, name)
);
CREATE INDEX playbooks_owner_idx ON playbooks(tenant_id, owner_user_id, created_at);

CREATE TABLE provisioning_tokens (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    vm_uuid             TEXT NOT NULL,
    issued_by           TEXT NOT NULL,
    token_hash          TEXT NOT NULL UNIQUE,
    token_hint          TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'used', 'expired', 'revoked')),
    os                  TEXT NOT NULL CHECK (os IN ('windows', 'linux')),
    profile_id          TEXT,
    playbook_id         TEXT,
    agent_id            TEXT,
    vmid                BIGINT,
    node                TEXT,
    iso_name            TEXT,
    iso_storage         TEXT,
    issued_at           BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    used_at             BIGINT,
    expired_at          BIGINT,
    revoked_at          BIGINT,
    revoked_by          TEXT,
    revoke_reason       TEXT,
    detach_requested_at BIGINT,
    detach_command_id   TEXT,
    detach_error        TEXT
);
-- One live token per VM; used, expired and revoked ones stay for history
-- (so an old token answers TOKEN_REVOKED rather than TOKEN_INVALID).
CREATE UNIQUE INDEX provisioning_tokens_active_vm_idx ON provisioning_tokens(tenant_id, vm_uuid)
    WHERE status = 'active';
CREATE INDEX provisioning_tokens_vm_idx ON provisioning_tokens(tenant_id, vm_uuid, issued_at);
CREATE INDEX provisioning_tokens_expiry_idx ON provisioning_tokens(status, expires_at);

CREATE TABLE provisioning_progress (
    token_id          TEXT NOT NULL REFERENCES provisioning_tokens(id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL,
    vm_uuid           TEXT NOT NULL,
    step              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    details           TEXT,
    first_reported_at BIGINT NOT NULL,
    reported_at       BIGINT NOT NULL,
    report_count      BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (token_id, step)
);
CREATE INDEX provisioning_progress_vm_idx ON provisioning_progress(tenant_id, vm_uuid);

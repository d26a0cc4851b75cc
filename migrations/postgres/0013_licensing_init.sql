-- Licensing (inventory §2.9 and §3.3, issue #13): tenant licenses,
-- per-user module entitlements, execution leases and the audit trail of
-- every administrative change. Timestamps are epoch milliseconds.

CREATE TABLE tenant_licenses (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    user_id      TEXT,
    license_type TEXT NOT NULL DEFAULT 'subscription' CHECK (license_type IN ('perpetual', 'alltime', 'subscription')),
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired', 'revoked')),
    expires_at   BIGINT CHECK (expires_at IS NULL OR expires_at > 0),
    metadata     TEXT,
    created_by   TEXT NOT NULL,
    updated_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tenant_licenses_status_idx ON tenant_licenses(tenant_id, status, expires_at);
CREATE INDEX tenant_licenses_user_idx ON tenant_licenses(tenant_id, user_id);
CREATE INDEX tenant_licenses_created_idx ON tenant_licenses(tenant_id, created_at);

-- `modules`: a JSON array of module names, or an object {module: bool}
-- where the key `*` allows every module.
CREATE TABLE tenant_entitlements (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    user_id    TEXT NOT NULL,
    modules    TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- A lease is a heartbeat-kept session: `expires_at` moves forward by the
-- TTL on each heartbeat, never past `max_expires_at`. The signed token is
-- stored only as its SHA-256 (`token_hash`); the token's `jti` is `id`.
CREATE TABLE execution_leases (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    token_hash       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'expired')),
    user_id          TEXT NOT NULL,
    vm_uuid          TEXT NOT NULL,
    module           TEXT NOT NULL,
    version          TEXT,
    agent_id         TEXT NOT NULL,
    runner_id        TEXT NOT NULL,
    license_id       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL CHECK (expires_at > 0),
    max_expires_at   BIGINT NOT NULL,
    last_heartbeat_at BIGINT,
    revoked_at       BIGINT,
    revoked_by       TEXT,
    revoke_reason    TEXT
);
CREATE UNIQUE INDEX execution_leases_token_idx ON execution_leases(token_hash);
CREATE INDEX execution_leases_status_idx ON execution_leases(tenant_id, status, expires_at);
CREATE INDEX execution_leases_vm_idx ON execution_leases(tenant_id, vm_uuid, created_at);

-- Who changed which license, entitlement or lease, and how (append-only).
CREATE TABLE license_audit (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX license_audit_created_idx ON license_audit(tenant_id, created_at);
CREATE INDEX license_audit_target_idx ON license_audit(tenant_id, target_type, target_id);

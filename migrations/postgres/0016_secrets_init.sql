-- Secrets vault (inventory §2.12 and §3.4, issue #13). The server keeps
-- ciphertext only and never returns it (nor the nonce or associated data)
-- to users. `kind` says who can open it:
--   client: encrypted by the client with its own key (the original's vault);
--   server: sealed by the server with its data key (crypto.rs, `key_id` is
--           the data key id) — the server can open it;
--   agent:  sealed to one agent's X25519 public key (the secret envelope of
--           botmox-protocol; `key_id` is the agent key id) — only that agent
--           can open it.
-- `aad` is base64url of the associated data the ciphertext is bound to
-- (client secrets: the `aad_meta` the client declared). Ids are unique per
-- tenant (clients may choose them). Timestamps are epoch milliseconds.

CREATE TABLE secrets (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    id               TEXT NOT NULL,
    label            TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('client', 'server', 'agent')),
    alg              TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    nonce            TEXT NOT NULL,
    ciphertext       TEXT NOT NULL,
    aad              TEXT NOT NULL,
    aad_meta         TEXT NOT NULL DEFAULT '{}',
    agent_id         TEXT,
    material_version BIGINT NOT NULL DEFAULT 1,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    rotated_at       BIGINT,
    PRIMARY KEY (tenant_id, id),
    CHECK ((kind = 'agent') = (agent_id IS NOT NULL))
);
CREATE INDEX secrets_created_idx ON secrets(tenant_id, created_at);
CREATE INDEX secrets_owner_idx ON secrets(tenant_id, created_by);

-- Where a secret is used: one secret per (scope, field). Only `agent`
-- bindings make the server act (deliver the secret to that agent).
CREATE TABLE secret_bindings (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    scope_type TEXT NOT NULL CHECK (scope_type IN ('bot', 'vm', 'vm_settings', 'agent', 'tenant')),
    scope_id   TEXT NOT NULL,
    secret_ref TEXT NOT NULL,
    field_name TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, scope_type, scope_id, field_name),
    FOREIGN KEY (tenant_id, secret_ref) REFERENCES secrets(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX secret_bindings_secret_idx ON secret_bindings(tenant_id, secret_ref);
CREATE INDEX secret_bindings_created_idx ON secret_bindings(tenant_id, created_at);

-- The agent's X25519 public key (base64url) and its key id; the private
-- half stays in the agent's OS keyring.
ALTER TABLE agents ADD COLUMN public_key TEXT;
ALTER TABLE agents ADD COLUMN public_key_id TEXT;
ALTER TABLE agents ADD COLUMN public_key_at BIGINT;

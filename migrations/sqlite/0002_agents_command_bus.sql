-- Agents, their tokens, commands (the command bus), command output, events.

CREATE TABLE agents (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    owner_user_id      TEXT,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    pairing_code_hash  TEXT UNIQUE,
    pairing_expires_at BIGINT,
    proxmox_hint       TEXT,
    machine_name       TEXT,
    version            TEXT,
    platform           TEXT,
    capabilities       TEXT NOT NULL DEFAULT '[]',
    metadata           TEXT,
    connection_state   TEXT NOT NULL DEFAULT 'pending',
    last_seen_at       BIGINT,
    paired_at          BIGINT,
    revoked_at         BIGINT,
    revoked_by         TEXT,
    revoke_reason      TEXT,
    created_by         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX agents_tenant_idx ON agents(tenant_id, created_at);
CREATE INDEX agents_state_idx ON agents(status, connection_state, last_seen_at);

CREATE TABLE agent_tokens (
    id         TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    token_hint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX agent_tokens_agent_idx ON agent_tokens(agent_id);

CREATE TABLE agent_commands (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    agent_id         TEXT NOT NULL REFERENCES agents(id),
    command_type     TEXT NOT NULL,
    payload          TEXT NOT NULL,
    payload_digest   TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'dispatched', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
    attempt_count    BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    result           TEXT,
    error_code       TEXT,
    error_message    TEXT,
    progress         TEXT,
    idempotency_key  TEXT,
    created_by       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    dispatched_at    BIGINT,
    started_at       BIGINT,
    finished_at      BIGINT,
    expires_at       BIGINT NOT NULL,
    lease_expires_at BIGINT
);
CREATE INDEX agent_commands_claim_idx ON agent_commands(agent_id, status, created_at);
CREATE INDEX agent_commands_lease_idx ON agent_commands(status, lease_expires_at);
CREATE INDEX agent_commands_tenant_idx ON agent_commands(tenant_id, created_at);
CREATE UNIQUE INDEX agent_commands_idempotency_idx ON agent_commands(tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE command_output (
    command_id TEXT NOT NULL REFERENCES agent_commands(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    stream     TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'log')),
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (command_id, seq)
);

CREATE TABLE events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id          TEXT NOT NULL,
    agent_id           TEXT,
    command_id         TEXT,
    agent_owner_id     TEXT,
    command_created_by TEXT,
    event_type         TEXT NOT NULL,
    data               TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX events_tenant_idx ON events(tenant_id, id);

-- Foundation: tenants, users, bearer tokens (sessions and API tokens).
-- Timestamps are Unix epoch milliseconds (BIGINT) on every backend.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    platform_role TEXT CHECK (platform_role IN ('infra')),
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    disabled_at   BIGINT,
    last_login_at BIGINT
);
CREATE INDEX users_tenant_idx ON users(tenant_id);

CREATE TABLE auth_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    name         TEXT,
    token_hash   TEXT NOT NULL UNIQUE,
    token_hint   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    created_ip   TEXT
);
CREATE INDEX auth_tokens_user_idx ON auth_tokens(user_id);
CREATE INDEX auth_tokens_tenant_idx ON auth_tokens(tenant_id);

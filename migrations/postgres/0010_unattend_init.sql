-- Unattend profiles (issue #12): a named, typed Windows answer-file
-- configuration per owner. `config` is the canonical JSON of
-- `UnattendConfig` (legacy shapes are migrated on read). At most one
-- default per owner (partial unique index; the service switches it in one
-- transaction).

CREATE TABLE unattend_profiles (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    owner_user_id TEXT NOT NULL,
    name          TEXT NOT NULL,
    is_default    BIGINT NOT NULL DEFAULT 0,
    config        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX unattend_profiles_name_idx ON unattend_profiles(tenant_id, owner_user_id, name);
CREATE UNIQUE INDEX unattend_profiles_default_idx ON unattend_profiles(tenant_id, owner_user_id)
    WHERE is_default = 1;
CREATE INDEX unattend_profiles_created_idx ON unattend_profiles(tenant_id, created_at);

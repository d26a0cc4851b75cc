-- The settings tree (issue #16): one JSON document per tenant and root key
-- (`alerts`, `theme`, `vmgenerator`, …). `GET /api/v1/settings` assembles
-- the tenant's rows; a write at any depth rewrites its root's row in one
-- transaction, after validating the whole root document.

CREATE TABLE settings_documents (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    root       TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (tenant_id, root)
);

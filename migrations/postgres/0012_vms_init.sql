-- VM registry (inventory §2.8, issue #13): the VMs of a tenant by their
-- SMBIOS/Proxmox UUID (lower-cased), each owned by one user. Registering
-- again upserts on (tenant_id, vm_uuid) and keeps created_at. Timestamps
-- are epoch milliseconds; metadata is a JSON object (text).

CREATE TABLE vms (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    vm_uuid    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    vm_name    TEXT,
    project_id TEXT,
    status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'revoked')),
    metadata   TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, vm_uuid)
);
CREATE INDEX vms_user_idx ON vms(tenant_id, user_id);
CREATE INDEX vms_created_idx ON vms(tenant_id, created_at);
CREATE INDEX vms_status_idx ON vms(tenant_id, status);

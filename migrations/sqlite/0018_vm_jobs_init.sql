-- VM creation jobs (issue #17): a job (spec, owner, status), its items
-- (one VM each, a persisted state machine), the job's artifacts (per-VM
-- provisioning ISOs with checksum) and a job column on the event timeline
-- (the SSE stream filters on it).

CREATE TABLE vm_jobs (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    created_by          TEXT NOT NULL,
    agent_id            TEXT NOT NULL,
    node                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    spec                TEXT NOT NULL,
    spec_digest         TEXT NOT NULL,
    idempotency_key     TEXT,
    api_endpoint        TEXT NOT NULL,
    server_cert_sha256  TEXT,
    item_count          BIGINT NOT NULL,
    plan_command_id     TEXT,
    plan_attempt        BIGINT NOT NULL DEFAULT 0,
    error_code          TEXT,
    error_message       TEXT,
    version             BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    cancelled_by        TEXT,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX vm_jobs_tenant_idx ON vm_jobs(tenant_id, created_at);
CREATE INDEX vm_jobs_status_idx ON vm_jobs(status);

CREATE TABLE vm_job_items (
    job_id              TEXT NOT NULL REFERENCES vm_jobs(id),
    idx                 BIGINT NOT NULL,
    tenant_id           TEXT NOT NULL,
    agent_id            TEXT NOT NULL,
    node                TEXT NOT NULL,
    name                TEXT NOT NULL,
    os                  TEXT NOT NULL CHECK (os IN ('windows', 'linux')),
    vmid                BIGINT,
    vm_uuid             TEXT NOT NULL,
    ip_address          TEXT,
    mac_address         TEXT,
    step                TEXT NOT NULL,
    phase               BIGINT NOT NULL DEFAULT 0,
    step_attempt        BIGINT NOT NULL DEFAULT 0,
    attempts            TEXT NOT NULL DEFAULT '{}',
    lock_retries        BIGINT NOT NULL DEFAULT 0,
    infra_retries       BIGINT NOT NULL DEFAULT 0,
    command_id          TEXT,
    command_type        TEXT,
    task_upid           TEXT,
    clone_existed       BIGINT NOT NULL DEFAULT 0,
    token_id            TEXT,
    iso_volid           TEXT,
    progress_step       TEXT,
    step_started_at     BIGINT,
    next_attempt_at     BIGINT,
    waiting_since       BIGINT,
    failed_step         TEXT,
    error_code          TEXT,
    error_message       TEXT,
    version             BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    finished_at         BIGINT,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX vm_job_items_active_idx ON vm_job_items(tenant_id, agent_id, node, step);
-- A VMID is held by at most one unfinished item per agent.
CREATE UNIQUE INDEX vm_job_items_vmid_idx ON vm_job_items(tenant_id, agent_id, vmid)
    WHERE vmid IS NOT NULL AND step NOT IN ('done', 'failed', 'cancelled');
-- Pool addresses are never handed out twice within a tenant.
CREATE UNIQUE INDEX vm_job_items_ip_idx ON vm_job_items(tenant_id, ip_address)
    WHERE ip_address IS NOT NULL;

CREATE TABLE vm_job_artifacts (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    job_id              TEXT NOT NULL REFERENCES vm_jobs(id),
    item_idx            BIGINT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('provision_iso')),
    volid               TEXT NOT NULL,
    sha256              TEXT NOT NULL,
    size                BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    deleted_at          BIGINT,
    cleanup_command_id  TEXT,
    cleanup_attempts    BIGINT NOT NULL DEFAULT 0,
    UNIQUE (job_id, item_idx, volid)
);
CREATE INDEX vm_job_artifacts_open_idx ON vm_job_artifacts(deleted_at, job_id);

ALTER TABLE events ADD COLUMN job_id TEXT;
CREATE INDEX events_job_idx ON events(tenant_id, job_id, id);

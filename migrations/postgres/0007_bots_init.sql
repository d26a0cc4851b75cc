-- Bots, their lifecycle log and the ban archive (issue #16).
-- Known fields are columns; unknown top-level fields of a bot are kept in
-- `extras` (JSON object text). Timestamps are epoch milliseconds.

CREATE TABLE bots (
    tenant_id                 TEXT NOT NULL REFERENCES tenants(id),
    id                        TEXT NOT NULL,
    name                      TEXT NOT NULL,
    project_id                TEXT NOT NULL CHECK (project_id IN ('wow_tbc', 'wow_midnight')),
    status                    TEXT NOT NULL CHECK (status IN ('offline', 'prepare', 'leveling', 'profession', 'farming', 'banned')),
    character_name            TEXT,
    character_level           BIGINT,
    character_class           TEXT,
    character_race            TEXT,
    character_server          TEXT,
    character_faction         TEXT,
    lifecycle_stage           TEXT,
    lifecycle_previous_status TEXT,
    stage_transitions         TEXT NOT NULL DEFAULT '[]',
    ban_details               TEXT,
    extras                    TEXT NOT NULL DEFAULT '{}',
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX bots_created_idx ON bots(tenant_id, created_at);
CREATE INDEX bots_updated_idx ON bots(tenant_id, updated_at);
CREATE INDEX bots_name_idx ON bots(tenant_id, name);
CREATE INDEX bots_status_idx ON bots(tenant_id, status);
CREATE INDEX bots_project_idx ON bots(tenant_id, project_id);
CREATE INDEX bots_level_idx ON bots(tenant_id, character_level);
CREATE INDEX bots_stage_idx ON bots(tenant_id, lifecycle_stage);

CREATE TABLE bot_lifecycle_log (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    bot_id     TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('status_change', 'ban', 'unban')),
    message    TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX bot_lifecycle_log_bot_idx ON bot_lifecycle_log(tenant_id, bot_id, created_at);

CREATE TABLE bot_archive (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    bot_id         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT 'banned',
    bot_name       TEXT NOT NULL,
    character_name TEXT,
    project_id     TEXT NOT NULL,
    archived_at    BIGINT NOT NULL,
    ban_details    TEXT NOT NULL,
    snapshot       TEXT NOT NULL
);
CREATE INDEX bot_archive_bot_idx ON bot_archive(tenant_id, bot_id);
CREATE INDEX bot_archive_time_idx ON bot_archive(tenant_id, archived_at);

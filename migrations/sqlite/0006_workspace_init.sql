-- Workspace: notes, calendar events, kanban tasks (issue #16). One table
-- per kind: typed fields as columns, anything else in `extras` (JSON
-- object). Timestamps epoch milliseconds, dates `YYYY-MM-DD` text,
-- booleans 0/1.

CREATE TABLE workspace_notes (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    title      TEXT,
    content    TEXT,
    blocks     TEXT,
    tags       TEXT,
    bot_id     TEXT,
    project_id TEXT CHECK (project_id IN ('wow_tbc', 'wow_midnight')),
    is_pinned  BIGINT,
    created_by TEXT,
    extras     TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workspace_notes_created_idx ON workspace_notes(tenant_id, created_at);
CREATE INDEX workspace_notes_updated_idx ON workspace_notes(tenant_id, updated_at);
CREATE INDEX workspace_notes_bot_idx ON workspace_notes(tenant_id, bot_id);
CREATE INDEX workspace_notes_pinned_idx ON workspace_notes(tenant_id, is_pinned);

CREATE TABLE workspace_calendar_events (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    title          TEXT,
    description    TEXT,
    event_date     TEXT,
    linked_note_id TEXT,
    extras         TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workspace_calendar_created_idx ON workspace_calendar_events(tenant_id, created_at);
CREATE INDEX workspace_calendar_date_idx ON workspace_calendar_events(tenant_id, event_date);
CREATE INDEX workspace_calendar_note_idx ON workspace_calendar_events(tenant_id, linked_note_id);

CREATE TABLE workspace_kanban_tasks (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    id          TEXT NOT NULL,
    title       TEXT,
    description TEXT,
    status      TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    due_date    TEXT,
    sort_order  BIGINT,
    extras      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workspace_kanban_created_idx ON workspace_kanban_tasks(tenant_id, created_at);
CREATE INDEX workspace_kanban_status_idx ON workspace_kanban_tasks(tenant_id, status, sort_order);
CREATE INDEX workspace_kanban_due_idx ON workspace_kanban_tasks(tenant_id, due_date);

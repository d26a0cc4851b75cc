//! SQL of the workspace domain: `workspace_notes`,
//! `workspace_calendar_events`, `workspace_kanban_tasks`. Each kind is
//! declared once (typed fields, list columns); the statements come from the
//! records kit.

use serde_json::{Map, Value};

use crate::db::list::{Column, Kind, ListParams, ListSpec, Order, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreResult, TenantScope, Write};
use crate::records::{self, DbRecord, Field, FieldType as T, KindSpec, Parsed};

text_enum!(
    /// The kinds under `/api/v1/workspace/{kind}`.
    WorkspaceKind, "workspace kind" {
        Notes => "notes",
        Calendar => "calendar",
        Kanban => "kanban",
    }
);

impl WorkspaceKind {
    pub fn spec(self) -> &'static KindSpec {
        match self {
            WorkspaceKind::Notes => &NOTES,
            WorkspaceKind::Calendar => &CALENDAR,
            WorkspaceKind::Kanban => &KANBAN,
        }
    }
}

pub const PROJECTS: &[&str] = &["wow_tbc", "wow_midnight"];
pub const TASK_STATUSES: &[&str] = &["todo", "in_progress", "done"];

static NOTE_FIELDS: &[Field] = &[
    Field::new("title", T::Text(500)),
    Field::new("content", T::LongText(200_000)),
    Field::new("blocks", T::Json),
    Field::new(
        "tags",
        T::StrList {
            items: 100,
            len: 100,
        },
    ),
    Field::new("bot_id", T::Text(128)),
    Field::new("project_id", T::Enum(PROJECTS)),
    Field::new("is_pinned", T::Bool),
    Field::new("created_by", T::Text(200)),
];

static NOTE_COLUMNS: &[Column] = &[
    Column::new("created_at", "created_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("updated_at", "updated_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("title", "title", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("content", "content", Kind::Text)
        .nullable()
        .searchable(),
    Column::new("bot_id", "bot_id", Kind::Text)
        .nullable()
        .filterable(),
    Column::new("project_id", "project_id", Kind::Enum(PROJECTS))
        .nullable()
        .filterable(),
    Column::new("is_pinned", "is_pinned", Kind::Integer)
        .nullable()
        .sortable()
        .filterable(),
];

pub static NOTE_LIST: ListSpec = ListSpec {
    table: "workspace_notes",
    select: "id, tenant_id, title, content, blocks, tags, bot_id, project_id, is_pinned, \
             created_by, extras, created_at, updated_at",
    columns: NOTE_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static NOTES: KindSpec = KindSpec {
    kind: "notes",
    schema: "WorkspaceNote",
    table: "workspace_notes",
    fields: NOTE_FIELDS,
    list_sqlite: &NOTE_LIST,
    list_postgres: &NOTE_LIST,
    secret_purpose: "workspace.notes",
};

static CALENDAR_FIELDS: &[Field] = &[
    Field::new("title", T::Text(500)),
    Field::new("description", T::LongText(10_000)),
    Field::new("date", T::Date).column("event_date"),
    Field::new("linked_note_id", T::Text(128)),
];

static CALENDAR_COLUMNS: &[Column] = &[
    Column::new("created_at", "created_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("updated_at", "updated_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("title", "title", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("description", "description", Kind::Text)
        .nullable()
        .searchable(),
    Column::new("date", "event_date", Kind::Text)
        .nullable()
        .sortable()
        .filterable(),
    Column::new("linked_note_id", "linked_note_id", Kind::Text)
        .nullable()
        .filterable(),
];

pub static CALENDAR_LIST: ListSpec = ListSpec {
    table: "workspace_calendar_events",
    select: "id, tenant_id, title, description, event_date, linked_note_id, extras, created_at, \
             updated_at",
    columns: CALENDAR_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static CALENDAR: KindSpec = KindSpec {
    kind: "calendar",
    schema: "WorkspaceCalendarEvent",
    table: "workspace_calendar_events",
    fields: CALENDAR_FIELDS,
    list_sqlite: &CALENDAR_LIST,
    list_postgres: &CALENDAR_LIST,
    secret_purpose: "workspace.calendar",
};

static KANBAN_FIELDS: &[Field] = &[
    Field::new("title", T::Text(500)),
    Field::new("description", T::LongText(10_000)),
    Field::new("status", T::Enum(TASK_STATUSES)).default("todo"),
    Field::new("due_date", T::Date),
    Field::new("order", T::Int(-1_000_000_000, 1_000_000_000)).column("sort_order"),
];

static KANBAN_COLUMNS: &[Column] = &[
    Column::new("created_at", "created_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("updated_at", "updated_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("title", "title", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("description", "description", Kind::Text)
        .nullable()
        .searchable(),
    Column::new("status", "status", Kind::Enum(TASK_STATUSES))
        .sortable()
        .filterable(),
    Column::new("due_date", "due_date", Kind::Text)
        .nullable()
        .sortable()
        .filterable(),
    Column::new("order", "sort_order", Kind::Integer)
        .nullable()
        .sortable()
        .filterable(),
];

pub static KANBAN_LIST: ListSpec = ListSpec {
    table: "workspace_kanban_tasks",
    select: "id, tenant_id, title, description, status, due_date, sort_order, extras, created_at, \
             updated_at",
    columns: KANBAN_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static KANBAN: KindSpec = KindSpec {
    kind: "kanban",
    schema: "WorkspaceKanbanTask",
    table: "workspace_kanban_tasks",
    fields: KANBAN_FIELDS,
    list_sqlite: &KANBAN_LIST,
    list_postgres: &KANBAN_LIST,
    secret_purpose: "workspace.kanban",
};

// ---- statements (the records kit, per kind) ----

pub async fn list(
    reader: &Reader,
    backend: Backend,
    kind: WorkspaceKind,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<DbRecord>> {
    records::list(reader, backend, kind.spec(), scope, params).await
}

pub async fn get(
    r: impl Read,
    backend: Backend,
    kind: WorkspaceKind,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<Option<DbRecord>> {
    records::get(r, backend, kind.spec(), scope, id).await
}

pub async fn insert(
    w: impl Write,
    kind: WorkspaceKind,
    scope: &TenantScope,
    id: &str,
    p: &Parsed,
    now: i64,
) -> StoreResult<()> {
    records::insert(w, kind.spec(), scope, id, p, None, now).await
}

/// Lock the row for a read-modify-write; `false` when it does not exist.
pub async fn lock(
    w: impl Write,
    kind: WorkspaceKind,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    records::lock(w, kind.spec(), scope, id).await
}

pub async fn update(
    w: impl Write,
    kind: WorkspaceKind,
    scope: &TenantScope,
    id: &str,
    p: &Parsed,
    extras: &Map<String, Value>,
    now: i64,
) -> StoreResult<bool> {
    records::update(w, kind.spec(), scope, id, p, extras, None, now).await
}

pub async fn delete(
    w: impl Write,
    kind: WorkspaceKind,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    records::delete(w, kind.spec(), scope, id).await
}

//! The kinds of the workspace domain — `workspace_notes`,
//! `workspace_calendar_events`, `workspace_kanban_tasks` — each declared
//! once: typed fields, how lists use them, the list's select. The
//! statements, the rules and the handlers come from the records kit
//! (`crate::records`, `super::super::records_kit`).

use crate::db::list::{Column, ListSpec};
use crate::records::{self, Field, FieldType as T, KindSpec, Listed as L};

pub const PROJECTS: &[&str] = &["wow_tbc", "wow_midnight"];
pub const TASK_STATUSES: &[&str] = &["todo", "in_progress", "done"];

/// Every kind's title: one line, sorted, filtered and searched.
const TITLE: Field = Field::new("title", T::Text(500)).list(L::ALL);
/// Calendar events' and kanban tasks' description: searched.
const DESCRIPTION: Field = Field::new("description", T::LongText(10_000)).list(L::SEARCH);

static NOTE_FIELDS: &[Field] = &[
    TITLE,
    Field::new("content", T::LongText(200_000)).list(L::SEARCH),
    Field::new("blocks", T::Json),
    Field::new(
        "tags",
        T::StrList {
            items: 100,
            len: 100,
        },
    ),
    Field::new("bot_id", T::Text(128)).list(L::FILTER),
    Field::new("project_id", T::Enum(PROJECTS)).list(L::FILTER),
    Field::new("is_pinned", T::Bool).list(L::SORT_FILTER),
    Field::new("created_by", T::Text(200)),
];

static NOTE_COLUMNS: [Column; 7] = records::list_columns(NOTE_FIELDS);

pub static NOTE_LIST: ListSpec = records::list_spec(
    "workspace_notes",
    "id, tenant_id, title, content, blocks, tags, bot_id, project_id, is_pinned, created_by, \
     extras, created_at, updated_at",
    &NOTE_COLUMNS,
);

pub static NOTES: KindSpec = KindSpec::new(
    "notes",
    "WorkspaceNote",
    "workspace_notes",
    NOTE_FIELDS,
    &NOTE_LIST,
);

static CALENDAR_FIELDS: &[Field] = &[
    TITLE,
    DESCRIPTION,
    Field::new("date", T::Date)
        .column("event_date")
        .list(L::SORT_FILTER),
    Field::new("linked_note_id", T::Text(128)).list(L::FILTER),
];

static CALENDAR_COLUMNS: [Column; 6] = records::list_columns(CALENDAR_FIELDS);

pub static CALENDAR_LIST: ListSpec = records::list_spec(
    "workspace_calendar_events",
    "id, tenant_id, title, description, event_date, linked_note_id, extras, created_at, \
     updated_at",
    &CALENDAR_COLUMNS,
);

pub static CALENDAR: KindSpec = KindSpec::new(
    "calendar",
    "WorkspaceCalendarEvent",
    "workspace_calendar_events",
    CALENDAR_FIELDS,
    &CALENDAR_LIST,
);

static KANBAN_FIELDS: &[Field] = &[
    TITLE,
    DESCRIPTION,
    Field::new("status", T::Enum(TASK_STATUSES))
        .default("todo")
        .list(L::SORT_FILTER),
    Field::new("due_date", T::Date).list(L::SORT_FILTER),
    Field::new("order", T::Int(-1_000_000_000, 1_000_000_000))
        .column("sort_order")
        .list(L::SORT_FILTER),
];

static KANBAN_COLUMNS: [Column; 7] = records::list_columns(KANBAN_FIELDS);

pub static KANBAN_LIST: ListSpec = records::list_spec(
    "workspace_kanban_tasks",
    "id, tenant_id, title, description, status, due_date, sort_order, extras, created_at, \
     updated_at",
    &KANBAN_COLUMNS,
);

pub static KANBAN: KindSpec = KindSpec::new(
    "kanban",
    "WorkspaceKanbanTask",
    "workspace_kanban_tasks",
    KANBAN_FIELDS,
    &KANBAN_LIST,
);

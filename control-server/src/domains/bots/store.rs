//! SQL of the bots domain: `bots`, `bot_lifecycle_log`, `bot_archive`.

use sqlx::FromRow;

use crate::db::ids::BotId;
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

text_enum!(
    /// A bot's status.
    BotStatus, "bot status" {
        Offline => "offline",
        Prepare => "prepare",
        Leveling => "leveling",
        Profession => "profession",
        Farming => "farming",
        Banned => "banned",
    }
);

text_enum!(
    /// A lifecycle stage (`lifecycle.current_stage`).
    Stage, "lifecycle stage" {
        Prepare => "prepare",
        Leveling => "leveling",
        Profession => "profession",
        Farming => "farming",
        Banned => "banned",
    }
);

text_enum!(
    /// The game project a bot plays.
    ProjectId, "project id" {
        WowTbc => "wow_tbc",
        WowMidnight => "wow_midnight",
    }
);

text_enum!(
    /// A character's faction.
    Faction, "faction" {
        Alliance => "alliance",
        Horde => "horde",
    }
);

text_enum!(
    /// How a ban was applied.
    BanMechanism, "ban mechanism" {
        BattlenetAccountClosure => "battlenet_account_closure",
        BattlenetAccountSuspension => "battlenet_account_suspension",
        GameSuspension => "game_suspension",
        HardwareBan => "hardware_ban",
        IpBan => "ip_ban",
        Other => "other",
    }
);

text_enum!(
    /// A lifecycle log entry's type.
    LogType, "lifecycle log type" {
        StatusChange => "status_change",
        Ban => "ban",
        Unban => "unban",
    }
);

pub const STATUS_NAMES: &[&str] = &[
    "offline",
    "prepare",
    "leveling",
    "profession",
    "farming",
    "banned",
];
pub const STAGE_NAMES: &[&str] = &["prepare", "leveling", "profession", "farming", "banned"];
pub const PROJECT_NAMES: &[&str] = &["wow_tbc", "wow_midnight"];

pub const COLUMNS: &str = "id, name, project_id, status, character_name, character_level, \
    character_class, character_race, character_server, character_faction, lifecycle_stage, \
    lifecycle_previous_status, stage_transitions, ban_details, extras, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct BotRow {
    pub id: BotId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub project_id: ProjectId,
    #[sqlx(try_from = "String")]
    pub status: BotStatus,
    pub character_name: Option<String>,
    pub character_level: Option<i64>,
    pub character_class: Option<String>,
    pub character_race: Option<String>,
    pub character_server: Option<String>,
    pub character_faction: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub lifecycle_previous_status: Option<String>,
    /// JSON array of `{from, to, at}` (epoch ms).
    pub stage_transitions: String,
    /// JSON object (see the service) or NULL.
    pub ban_details: Option<String>,
    /// JSON object of passthrough fields.
    pub extras: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Every stored column of a bot (insert and full update).
pub struct BotValues<'a> {
    pub id: &'a BotId,
    pub name: &'a str,
    pub project_id: ProjectId,
    pub status: BotStatus,
    pub character_name: Option<&'a str>,
    pub character_level: Option<i64>,
    pub character_class: Option<&'a str>,
    pub character_race: Option<&'a str>,
    pub character_server: Option<&'a str>,
    pub character_faction: Option<Faction>,
    pub lifecycle_stage: Option<&'a str>,
    pub lifecycle_previous_status: Option<&'a str>,
    pub stage_transitions: &'a str,
    pub ban_details: Option<&'a str>,
    pub extras: &'a str,
    pub created_at: i64,
    pub updated_at: i64,
}

impl<'a> BotValues<'a> {
    pub fn of(row: &'a BotRow) -> BotValues<'a> {
        BotValues {
            id: &row.id,
            name: &row.name,
            project_id: row.project_id,
            status: row.status,
            character_name: row.character_name.as_deref(),
            character_level: row.character_level,
            character_class: row.character_class.as_deref(),
            character_race: row.character_race.as_deref(),
            character_server: row.character_server.as_deref(),
            character_faction: row
                .character_faction
                .as_deref()
                .and_then(|f| f.parse().ok()),
            lifecycle_stage: row.lifecycle_stage.as_deref(),
            lifecycle_previous_status: row.lifecycle_previous_status.as_deref(),
            stage_transitions: &row.stage_transitions,
            ban_details: row.ban_details.as_deref(),
            extras: &row.extras,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub async fn insert(
    mut w: impl Write,
    scope: &TenantScope,
    v: &BotValues<'_>,
) -> StoreResult<BotRow> {
    sqlx::query_as::<_, BotRow>(&format!(
        "INSERT INTO bots (tenant_id, {COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         RETURNING {COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(v.id.as_str())
    .bind(v.name)
    .bind(v.project_id.as_str())
    .bind(v.status.as_str())
    .bind(v.character_name)
    .bind(v.character_level)
    .bind(v.character_class)
    .bind(v.character_race)
    .bind(v.character_server)
    .bind(v.character_faction.map(Faction::as_str))
    .bind(v.lifecycle_stage)
    .bind(v.lifecycle_previous_status)
    .bind(v.stage_transitions)
    .bind(v.ban_details)
    .bind(v.extras)
    .bind(v.created_at)
    .bind(v.updated_at)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "a bot with this id already exists"))
}

/// Overwrite every mutable column of an existing bot.
pub async fn update(
    mut w: impl Write,
    scope: &TenantScope,
    v: &BotValues<'_>,
) -> StoreResult<Option<BotRow>> {
    Ok(sqlx::query_as::<_, BotRow>(&format!(
        "UPDATE bots SET name = $3, project_id = $4, status = $5, character_name = $6,
            character_level = $7, character_class = $8, character_race = $9, character_server = $10,
            character_faction = $11, lifecycle_stage = $12, lifecycle_previous_status = $13,
            stage_transitions = $14, ban_details = $15, extras = $16, updated_at = $17
         WHERE tenant_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(v.id.as_str())
    .bind(v.name)
    .bind(v.project_id.as_str())
    .bind(v.status.as_str())
    .bind(v.character_name)
    .bind(v.character_level)
    .bind(v.character_class)
    .bind(v.character_race)
    .bind(v.character_server)
    .bind(v.character_faction.map(Faction::as_str))
    .bind(v.lifecycle_stage)
    .bind(v.lifecycle_previous_status)
    .bind(v.stage_transitions)
    .bind(v.ban_details)
    .bind(v.extras)
    .bind(v.updated_at)
    .fetch_optional(w.exec())
    .await?)
}

pub async fn get(mut r: impl Read, scope: &TenantScope, id: &BotId) -> StoreResult<Option<BotRow>> {
    Ok(sqlx::query_as::<_, BotRow>(&format!(
        "SELECT {COLUMNS} FROM bots WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// [`get`], locking the row until the transaction ends on PostgreSQL
/// (SQLite's single writer serialises transactions anyway).
pub async fn get_for_update(
    mut r: impl Read,
    backend: Backend,
    scope: &TenantScope,
    id: &BotId,
) -> StoreResult<Option<BotRow>> {
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    Ok(sqlx::query_as::<_, BotRow>(&format!(
        "SELECT {COLUMNS} FROM bots WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn delete(mut w: impl Write, scope: &TenantScope, id: &BotId) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM bots WHERE tenant_id = $1 AND id = $2")
        .bind(scope.tenant())
        .bind(id.as_str())
        .execute(w.exec())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Bots of a tenant (newest first).
pub static BOT_LIST: ListSpec = ListSpec {
    table: "bots",
    select: COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("name", "name", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("status", "status", list::Kind::Enum(STATUS_NAMES))
            .sortable()
            .filterable(),
        list::Column::new("project_id", "project_id", list::Kind::Enum(PROJECT_NAMES))
            .sortable()
            .filterable(),
        list::Column::new("character_name", "character_name", list::Kind::Text)
            .nullable()
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("character_level", "character_level", list::Kind::Integer)
            .nullable()
            .sortable()
            .filterable(),
        list::Column::new(
            "current_stage",
            "lifecycle_stage",
            list::Kind::Enum(STAGE_NAMES),
        )
        .nullable()
        .sortable()
        .filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<BotRow>> {
    list::fetch(reader, backend, &BOT_LIST, scope, &[], params).await
}

// ---- lifecycle log

pub const LOG_COLUMNS: &str = "id, bot_id, type, message, details, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct LogRow {
    pub id: String,
    pub bot_id: BotId,
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: LogType,
    pub message: String,
    pub details: String,
    pub created_at: i64,
}

pub struct NewLog<'a> {
    pub id: &'a str,
    pub bot_id: &'a BotId,
    pub kind: LogType,
    pub message: &'a str,
    pub details: &'a str,
    pub at: i64,
}

pub async fn insert_log(mut w: impl Write, scope: &TenantScope, l: &NewLog<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO bot_lifecycle_log (id, tenant_id, bot_id, type, message, details, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(l.id)
    .bind(scope.tenant())
    .bind(l.bot_id.as_str())
    .bind(l.kind.as_str())
    .bind(l.message)
    .bind(l.details)
    .bind(l.at)
    .execute(w.exec())
    .await?;
    Ok(())
}

/// One bot's lifecycle log (newest first).
pub static LOG_LIST: ListSpec = ListSpec {
    table: "bot_lifecycle_log",
    select: LOG_COLUMNS,
    columns: &[
        list::Column::new("timestamp", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new(
            "type",
            "type",
            list::Kind::Enum(&["status_change", "ban", "unban"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("message", "message", list::Kind::Text).searchable(),
    ],
    default_sort: "timestamp",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_log(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    bot: &BotId,
    params: &ListParams,
) -> StoreResult<Page<LogRow>> {
    let fixed = [Fixed::eq("bot_id", bot.as_str())];
    list::fetch(reader, backend, &LOG_LIST, scope, &fixed, params).await
}

// ---- archive

pub const ARCHIVE_COLUMNS: &str =
    "id, bot_id, reason, bot_name, character_name, project_id, archived_at, ban_details, snapshot";

#[derive(Debug, Clone, FromRow)]
pub struct ArchiveRow {
    pub id: String,
    pub bot_id: BotId,
    pub reason: String,
    pub bot_name: String,
    pub character_name: Option<String>,
    pub project_id: String,
    pub archived_at: i64,
    pub ban_details: String,
    pub snapshot: String,
}

pub struct NewArchive<'a> {
    pub id: &'a str,
    pub bot_id: &'a BotId,
    pub bot_name: &'a str,
    pub character_name: Option<&'a str>,
    pub project_id: ProjectId,
    pub at: i64,
    pub ban_details: &'a str,
    pub snapshot: &'a str,
}

pub async fn insert_archive(
    mut w: impl Write,
    scope: &TenantScope,
    a: &NewArchive<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO bot_archive (id, tenant_id, bot_id, reason, bot_name, character_name, project_id,
            archived_at, ban_details, snapshot)
         VALUES ($1, $2, $3, 'banned', $4, $5, $6, $7, $8, $9)",
    )
    .bind(a.id)
    .bind(scope.tenant())
    .bind(a.bot_id.as_str())
    .bind(a.bot_name)
    .bind(a.character_name)
    .bind(a.project_id.as_str())
    .bind(a.at)
    .bind(a.ban_details)
    .bind(a.snapshot)
    .execute(w.exec())
    .await?;
    Ok(())
}

/// The tenant's ban archive (newest first).
pub static ARCHIVE_LIST: ListSpec = ListSpec {
    table: "bot_archive",
    select: ARCHIVE_COLUMNS,
    columns: &[
        list::Column::new("archived_at", "archived_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("bot_id", "bot_id", list::Kind::Text)
            .sortable()
            .filterable(),
        list::Column::new("reason", "reason", list::Kind::Enum(&["banned"])).filterable(),
        list::Column::new("project_id", "project_id", list::Kind::Enum(PROJECT_NAMES))
            .sortable()
            .filterable(),
        list::Column::new("name", "bot_name", list::Kind::Text)
            .sortable()
            .searchable(),
        list::Column::new("character_name", "character_name", list::Kind::Text)
            .nullable()
            .sortable()
            .searchable(),
    ],
    default_sort: "archived_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_archive(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<ArchiveRow>> {
    list::fetch(reader, backend, &ARCHIVE_LIST, scope, &[], params).await
}

//! Bots: CRUD and the lifecycle of issue #16 / inventory §2.6.
//!
//! Lifecycle algorithm (identical to the original):
//! * stage of a status: `offline` → none, `prepare|leveling|profession|farming`
//!   → the same, `banned` → none;
//! * **transition** to `next` (never `banned`; same status → unchanged): push
//!   `{from: stage(current) ?? "create", to: stage(next) ?? "prepare"}`, then
//!   `status = next`, `current_stage = stage(next) ?? "prepare"`,
//!   `previous_status = current`; log `status_change`;
//! * **ban**: when `stage(current)` exists push `{from: it, to: it}`; then
//!   `status = banned`, `current_stage = banned`, `previous_status = current`,
//!   `ban_details = body + ban_timestamp` (`ban_date` `DD.MM.YYYY` read as
//!   midnight **UTC**; a date that does not exist, e.g. 31.02., falls back to
//!   now); archive snapshot + log `ban`;
//! * **unban** (only while banned: `ban_details` set and not yet unbanned):
//!   restore `previous_status` when it is one of offline/prepare/leveling/
//!   profession/farming, else `offline`; `current_stage = stage(restored) ??
//!   "prepare"`; `ban_details.unbanned_at = now`; log `unban`.
//!
//! Each lifecycle operation is one transaction: bot row, log, archive.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::store::{
    self, ArchiveRow, BanMechanism, BotRow, BotStatus, BotValues, Faction, LogRow, LogType,
    NewArchive, NewLog, ProjectId, Stage,
};
use super::BotError;
use crate::auth::{Identity, Role};
use crate::db::ids::BotId;
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, new_id, now_ms, Db, Read, TenantScope, Tx};
use crate::validate::FieldErrors;

/// Longest bot name.
pub const MAX_NAME: usize = 200;
/// Longest character name, class, race or server.
pub const MAX_CHARACTER_TEXT: usize = 100;
/// Longest ban reason.
pub const MAX_BAN_REASON: usize = 1000;
/// Largest passthrough `extras` (serialised JSON bytes).
pub const MAX_EXTRAS_BYTES: usize = 64 * 1024;
/// Client-chosen ids: `[A-Za-z0-9_-]{1,100}`.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,100}$";
/// Server-managed keys ignored when a client sends them.
const IGNORED_KEYS: &[&str] = &["created_at", "updated_at", "tenant_id", "ban_details"];

/// A client-supplied id is 1..100 of `[A-Za-z0-9_-]`.
pub fn valid_client_id(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value, `None`
/// (with `#[serde(default)]`) when the key is absent.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An optional whole number given as `5` or `5.0` (JSON Schema counts both
/// as the integer 5); fractions and out-of-range values are refused.
fn lenient_level<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Other(&n.to_string()),
                &"a whole number",
            )
        })
}

/// Deserialise a JSON body, naming the failing field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, FieldErrors> {
    serde_path_to_error::deserialize::<_, T>(body).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        FieldErrors::one(if path == "." { "body" } else { &path }, msg)
    })
}

// ---------------------------------------------------------------- inputs

/// A bot's character. Every field is optional; on update the whole object
/// is replaced.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterInput {
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_level")]
    #[schema(minimum = 1, maximum = 100)]
    pub level: Option<i64>,
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    pub class: Option<String>,
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    pub race: Option<String>,
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    pub server: Option<String>,
    pub faction: Option<Faction>,
}

/// The writable part of a bot's lifecycle (transitions, previous status and
/// ban details are kept by the lifecycle endpoints).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleInput {
    pub current_stage: Option<Stage>,
}

/// The body of create and update, as parsed (absent vs `null` kept apart).
#[derive(Debug, Deserialize)]
struct BotBody {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    project_id: Option<Option<ProjectId>>,
    #[serde(default, deserialize_with = "nullable")]
    status: Option<Option<BotStatus>>,
    #[serde(default, deserialize_with = "nullable")]
    character: Option<Option<CharacterInput>>,
    #[serde(default, deserialize_with = "nullable")]
    lifecycle: Option<Option<LifecycleInput>>,
    #[serde(flatten)]
    extras: Map<String, Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The next status (`banned` only through `/lifecycle/ban`).
    pub status: BotStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// `DD.MM.YYYY`, read as midnight UTC (a date that does not exist, e.g.
    /// `31.02.2026`, falls back to now, as the original did).
    #[schema(pattern = r"^(0[1-9]|[12][0-9]|3[01])\.(0[1-9]|1[0-2])\.[0-9]{4}$")]
    pub ban_date: String,
    #[schema(min_length = 1, max_length = 1000, pattern = r"^[^\u0000]*$")]
    pub ban_reason: String,
    pub ban_mechanism: BanMechanism,
    /// Accepted for compatibility and ignored (set by unban).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub unbanned_at: Option<Value>,
    /// Accepted for compatibility and ignored (computed from `ban_date`).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub ban_timestamp: Option<Value>,
}

// ---------------------------------------------------------------- views

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Character {
    pub name: Option<String>,
    pub level: Option<i64>,
    pub class: Option<String>,
    pub race: Option<String>,
    pub server: Option<String>,
    pub faction: Option<Faction>,
}

/// One recorded stage change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Transition {
    /// A stage, or `create` when the bot had none.
    pub from: String,
    pub to: String,
    /// RFC 3339.
    pub timestamp: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BanDetails {
    pub ban_date: String,
    pub ban_reason: String,
    pub ban_mechanism: BanMechanism,
    /// `ban_date` at midnight UTC (RFC 3339).
    pub ban_timestamp: String,
    /// Set by unban (RFC 3339).
    pub unbanned_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Lifecycle {
    pub current_stage: Option<Stage>,
    pub previous_status: Option<BotStatus>,
    pub stage_transitions: Vec<Transition>,
    pub ban_details: Option<BanDetails>,
}

/// A bot. Fields the server does not know (`farm`, `monitor`, …) are kept
/// and returned as sent (top level).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bot {
    pub id: BotId,
    pub name: String,
    pub project_id: ProjectId,
    pub status: BotStatus,
    pub character: Character,
    pub lifecycle: Lifecycle,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extras: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IsBanned {
    pub banned: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogEntry {
    pub id: String,
    pub bot_id: BotId,
    #[serde(rename = "type")]
    pub kind: LogType,
    pub message: String,
    /// `status_change`: `{from, to}`; `ban`: `{from, mechanism, ban_date}`;
    /// `unban`: `{restored_status}`.
    #[schema(value_type = Object)]
    pub details: Value,
    /// RFC 3339.
    pub timestamp: String,
}

/// What the bot was when it was banned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub project_id: ProjectId,
    pub character: SnapshotCharacter,
    /// `character.level`.
    pub final_level: Option<i64>,
    /// `farm.all_farmed_gold` (a passthrough field), when a number.
    pub total_farmed: Option<f64>,
    /// `farm.all_earned_gold`, when a number.
    pub total_earned_gold: Option<f64>,
    /// `monitor.total_runtime_hours`, when a number.
    pub total_runtime_hours: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotCharacter {
    pub name: Option<String>,
    pub level: Option<i64>,
    pub class: Option<String>,
    pub race: Option<String>,
    pub server: Option<String>,
    pub faction: Option<Faction>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArchiveEntry {
    pub id: String,
    pub bot_id: BotId,
    /// Always `banned`.
    pub reason: String,
    pub name: String,
    /// RFC 3339.
    pub archived_at: String,
    pub ban_details: BanDetails,
    pub snapshot: Snapshot,
}

// ---------------------------------------------------------------- stored JSON

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTransition {
    from: String,
    to: String,
    at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredBan {
    ban_date: String,
    ban_reason: String,
    ban_mechanism: BanMechanism,
    ban_timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unbanned_at: Option<i64>,
}

impl StoredBan {
    fn view(&self) -> BanDetails {
        BanDetails {
            ban_date: self.ban_date.clone(),
            ban_reason: self.ban_reason.clone(),
            ban_mechanism: self.ban_mechanism,
            ban_timestamp: ms_to_rfc3339(self.ban_timestamp),
            unbanned_at: self.unbanned_at.map(ms_to_rfc3339),
        }
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> BotError {
    BotError::Store(crate::db::StoreError::Corrupt(format!("{what}: {e}")))
}

fn transitions_of(row: &BotRow) -> Result<Vec<StoredTransition>, BotError> {
    serde_json::from_str(&row.stage_transitions).map_err(|e| corrupt("stage_transitions", e))
}

fn ban_of(row: &BotRow) -> Result<Option<StoredBan>, BotError> {
    row.ban_details
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("ban_details", e))
}

fn character_of(row: &BotRow) -> Character {
    Character {
        name: row.character_name.clone(),
        level: row.character_level,
        class: row.character_class.clone(),
        race: row.character_race.clone(),
        server: row.character_server.clone(),
        faction: row
            .character_faction
            .as_deref()
            .and_then(|f| f.parse().ok()),
    }
}

fn lifecycle_of(row: &BotRow) -> Result<Lifecycle, BotError> {
    Ok(Lifecycle {
        current_stage: row
            .lifecycle_stage
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt("lifecycle_stage", e))?,
        previous_status: row
            .lifecycle_previous_status
            .as_deref()
            .and_then(|s| s.parse().ok()),
        stage_transitions: transitions_of(row)?
            .into_iter()
            .map(|t| Transition {
                from: t.from,
                to: t.to,
                timestamp: ms_to_rfc3339(t.at),
            })
            .collect(),
        ban_details: ban_of(row)?.map(|b| b.view()),
    })
}

pub fn bot_view(row: &BotRow) -> Result<Bot, BotError> {
    let extras: Map<String, Value> =
        serde_json::from_str(&row.extras).map_err(|e| corrupt("extras", e))?;
    Ok(Bot {
        id: row.id.clone(),
        name: row.name.clone(),
        project_id: row.project_id,
        status: row.status,
        character: character_of(row),
        lifecycle: lifecycle_of(row)?,
        created_at: ms_to_rfc3339(row.created_at),
        updated_at: ms_to_rfc3339(row.updated_at),
        extras,
    })
}

fn log_view(row: LogRow) -> LogEntry {
    LogEntry {
        id: row.id,
        bot_id: row.bot_id,
        kind: row.kind,
        message: row.message,
        details: serde_json::from_str(&row.details).unwrap_or(Value::Null),
        timestamp: ms_to_rfc3339(row.created_at),
    }
}

fn archive_view(row: ArchiveRow) -> Result<ArchiveEntry, BotError> {
    let ban: StoredBan =
        serde_json::from_str(&row.ban_details).map_err(|e| corrupt("archive ban_details", e))?;
    let snapshot: Snapshot =
        serde_json::from_str(&row.snapshot).map_err(|e| corrupt("archive snapshot", e))?;
    Ok(ArchiveEntry {
        id: row.id,
        bot_id: row.bot_id,
        reason: row.reason,
        name: row.bot_name,
        archived_at: ms_to_rfc3339(row.archived_at),
        ban_details: ban.view(),
        snapshot,
    })
}

// ---------------------------------------------------------------- rules

/// The lifecycle stage of a status (`offline` and `banned` have none).
pub fn stage_of(status: BotStatus) -> Option<Stage> {
    match status {
        BotStatus::Offline | BotStatus::Banned => None,
        BotStatus::Prepare => Some(Stage::Prepare),
        BotStatus::Leveling => Some(Stage::Leveling),
        BotStatus::Profession => Some(Stage::Profession),
        BotStatus::Farming => Some(Stage::Farming),
    }
}

/// `DD.MM.YYYY` at midnight UTC in epoch ms; `None` when it is no date.
pub fn parse_ban_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[2] == b'.'
        && b[5] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let (d, m, y) = (
        s[0..2].parse().ok()?,
        s[3..5].parse().ok()?,
        s[6..10].parse().ok()?,
    );
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Matches [`BanRequest::ban_date`]'s pattern (day 01..31, month 01..12).
fn ban_date_shape_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[2] != b'.' || b[5] != b'.' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..2) && digits(3..5) && digits(6..10)) {
        return false;
    }
    let d: u32 = s[0..2].parse().unwrap_or(0);
    let m: u32 = s[3..5].parse().unwrap_or(0);
    (1..=31).contains(&d) && (1..=12).contains(&m)
}

fn check_text(f: &mut FieldErrors, field: &str, v: &Option<String>, max: usize) {
    if let Some(v) = v {
        f.display_text(field, v, max);
    }
}

fn check_character(f: &mut FieldErrors, c: &CharacterInput) {
    check_text(f, "character.name", &c.name, MAX_CHARACTER_TEXT);
    check_text(f, "character.class", &c.class, MAX_CHARACTER_TEXT);
    check_text(f, "character.race", &c.race, MAX_CHARACTER_TEXT);
    check_text(f, "character.server", &c.server, MAX_CHARACTER_TEXT);
    if let Some(l) = c.level {
        f.check(
            (1..=100).contains(&l),
            "character.level",
            "must be between 1 and 100",
        );
    }
}

fn set_character(v: &mut Owned, c: Option<CharacterInput>) {
    let c = c.unwrap_or(CharacterInput {
        name: None,
        level: None,
        class: None,
        race: None,
        server: None,
        faction: None,
    });
    v.character_name = c.name;
    v.character_level = c.level;
    v.character_class = c.class;
    v.character_race = c.race;
    v.character_server = c.server;
    v.character_faction = c.faction;
}

/// Owned column values, turned into [`BotValues`] for the store.
#[derive(Debug, Clone)]
struct Owned {
    id: BotId,
    name: String,
    project_id: ProjectId,
    status: BotStatus,
    character_name: Option<String>,
    character_level: Option<i64>,
    character_class: Option<String>,
    character_race: Option<String>,
    character_server: Option<String>,
    character_faction: Option<Faction>,
    lifecycle_stage: Option<String>,
    lifecycle_previous_status: Option<String>,
    stage_transitions: String,
    ban_details: Option<String>,
    extras: String,
    created_at: i64,
    updated_at: i64,
}

impl Owned {
    fn of(row: &BotRow) -> Owned {
        Owned {
            id: row.id.clone(),
            name: row.name.clone(),
            project_id: row.project_id,
            status: row.status,
            character_name: row.character_name.clone(),
            character_level: row.character_level,
            character_class: row.character_class.clone(),
            character_race: row.character_race.clone(),
            character_server: row.character_server.clone(),
            character_faction: row
                .character_faction
                .as_deref()
                .and_then(|f| f.parse().ok()),
            lifecycle_stage: row.lifecycle_stage.clone(),
            lifecycle_previous_status: row.lifecycle_previous_status.clone(),
            stage_transitions: row.stage_transitions.clone(),
            ban_details: row.ban_details.clone(),
            extras: row.extras.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
    fn values(&self) -> BotValues<'_> {
        BotValues {
            id: &self.id,
            name: &self.name,
            project_id: self.project_id,
            status: self.status,
            character_name: self.character_name.as_deref(),
            character_level: self.character_level,
            character_class: self.character_class.as_deref(),
            character_race: self.character_race.as_deref(),
            character_server: self.character_server.as_deref(),
            character_faction: self.character_faction,
            lifecycle_stage: self.lifecycle_stage.as_deref(),
            lifecycle_previous_status: self.lifecycle_previous_status.as_deref(),
            stage_transitions: &self.stage_transitions,
            ban_details: self.ban_details.as_deref(),
            extras: &self.extras,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn clean_extras(mut extras: Map<String, Value>, f: &mut FieldErrors) -> Map<String, Value> {
    for k in IGNORED_KEYS {
        extras.remove(*k);
    }
    if serde_json::to_vec(&extras).map(|v| v.len()).unwrap_or(0) > MAX_EXTRAS_BYTES {
        f.add(
            "body",
            format!("additional fields must be at most {MAX_EXTRAS_BYTES} bytes of JSON"),
        );
    }
    extras
}

fn number_at(extras: &Map<String, Value>, obj: &str, key: &str) -> Option<f64> {
    extras.get(obj)?.get(key)?.as_f64()
}

pub struct BotsService {
    db: Db,
}

impl BotsService {
    pub fn new(db: Db) -> BotsService {
        BotsService { db }
    }

    async fn load(
        &self,
        r: impl Read,
        scope: &TenantScope,
        id: &BotId,
    ) -> Result<BotRow, BotError> {
        // No stored id holds a NUL (PostgreSQL could not even bind it).
        if id.as_str().contains('\0') {
            return Err(BotError::NotFound);
        }
        store::get(r, scope, id).await?.ok_or(BotError::NotFound)
    }

    /// In a transaction: the bot, locked against concurrent lifecycle
    /// changes on PostgreSQL (SQLite's one writer serialises them anyway).
    async fn load_for_update(
        &self,
        tx: &mut Tx,
        scope: &TenantScope,
        id: &BotId,
    ) -> Result<BotRow, BotError> {
        if id.as_str().contains('\0') {
            return Err(BotError::NotFound);
        }
        store::get_for_update(&mut *tx, self.db.backend(), scope, id)
            .await?
            .ok_or(BotError::NotFound)
    }

    pub async fn list(&self, who: &Identity, p: &ListParams) -> Result<Page<Bot>, BotError> {
        let scope = who.require(Role::Viewer)?;
        let page = store::list(self.db.reader(), self.db.backend(), &scope, p).await?;
        let items = page
            .items
            .iter()
            .map(bot_view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            total: page.total,
            page: page.page,
            limit: page.limit,
            next_cursor: page.next_cursor,
        })
    }

    pub async fn get(&self, who: &Identity, id: &BotId) -> Result<Bot, BotError> {
        let scope = who.require(Role::Viewer)?;
        bot_view(&self.load(self.db.reader(), &scope, id).await?)
    }

    pub async fn create(&self, who: &Identity, body: &Value) -> Result<Bot, BotError> {
        let scope = who.require(Role::Operator)?;
        let b: BotBody = parse_body(body).map_err(BotError::InvalidBody)?;
        let mut f = FieldErrors::default();
        let id = match &b.id {
            None | Some(Value::Null) => BotId::generate(),
            Some(Value::String(id)) if id == "archive" => {
                f.add("id", "`archive` is reserved (GET /api/v1/bots/archive)");
                BotId::generate()
            }
            Some(Value::String(id)) if valid_client_id(id) => BotId::from(id.as_str()),
            Some(_) => {
                f.add(
                    "id",
                    "must be 1 to 100 characters of A-Z, a-z, 0-9, _ and -",
                );
                BotId::generate()
            }
        };
        let name = match b.name {
            Some(Some(n)) => {
                if n.is_empty() {
                    f.add("name", "must not be empty");
                }
                f.display_text("name", &n, MAX_NAME);
                n
            }
            _ => {
                f.add("name", "is required");
                String::new()
            }
        };
        let project_id = match b.project_id {
            Some(Some(p)) => Some(p),
            _ => {
                f.add("project_id", "is required (wow_tbc or wow_midnight)");
                None
            }
        };
        let status = match b.status {
            Some(Some(s)) => Some(s),
            _ => {
                f.add("status", "is required");
                None
            }
        };
        if let Some(Some(c)) = &b.character {
            check_character(&mut f, c);
        }
        let stage = match b.lifecycle {
            Some(Some(l)) => l.current_stage,
            Some(None) => {
                f.add("lifecycle", "must be an object");
                None
            }
            None => Some(Stage::Prepare),
        };
        let extras = clean_extras(b.extras, &mut f);
        f.into_fields().map_err(BotError::InvalidBody)?;
        let now = now_ms();
        let mut v = Owned {
            id,
            name,
            project_id: project_id.expect("checked"),
            status: status.expect("checked"),
            character_name: None,
            character_level: None,
            character_class: None,
            character_race: None,
            character_server: None,
            character_faction: None,
            lifecycle_stage: stage.map(|s| s.as_str().to_string()),
            lifecycle_previous_status: None,
            stage_transitions: "[]".into(),
            ban_details: None,
            extras: Value::Object(extras).to_string(),
            created_at: now,
            updated_at: now,
        };
        set_character(&mut v, b.character.flatten());
        let row = store::insert(self.db.writer(), &scope, &v.values()).await?;
        bot_view(&row)
    }

    /// Shallow merge: each given top-level field replaces the stored one
    /// (`character` as a whole; `null` clears a nullable field).
    pub async fn patch(&self, who: &Identity, id: &BotId, body: &Value) -> Result<Bot, BotError> {
        let scope = who.require(Role::Operator)?;
        if body.as_object().is_some_and(Map::is_empty) {
            return Err(BotError::InvalidBody(FieldErrors::one(
                "body",
                "must not be empty",
            )));
        }
        let b: BotBody = parse_body(body).map_err(BotError::InvalidBody)?;
        let mut f = FieldErrors::default();
        // `id` in a patch body is ignored (the path names the bot).
        match &b.name {
            Some(Some(n)) => {
                if n.is_empty() {
                    f.add("name", "must not be empty");
                }
                f.display_text("name", n, MAX_NAME);
            }
            Some(None) => f.add("name", "cannot be null"),
            None => {}
        }
        if matches!(b.project_id, Some(None)) {
            f.add("project_id", "cannot be null");
        }
        if matches!(b.status, Some(None)) {
            f.add("status", "cannot be null");
        }
        if let Some(Some(c)) = &b.character {
            check_character(&mut f, c);
        }
        if matches!(b.lifecycle, Some(None)) {
            f.add("lifecycle", "must be an object");
        }
        let extras = clean_extras(b.extras, &mut f);
        f.into_fields().map_err(BotError::InvalidBody)?;
        let mut tx = self.db.begin().await?;
        let row = self.load_for_update(&mut tx, &scope, id).await?;
        let mut v = Owned::of(&row);
        if let Some(Some(n)) = b.name {
            v.name = n;
        }
        if let Some(Some(p)) = b.project_id {
            v.project_id = p;
        }
        if let Some(Some(s)) = b.status {
            v.status = s;
        }
        if let Some(c) = b.character {
            set_character(&mut v, c);
        }
        if let Some(Some(l)) = b.lifecycle {
            v.lifecycle_stage = l.current_stage.map(|s| s.as_str().to_string());
        }
        if !extras.is_empty() {
            let mut stored: Map<String, Value> =
                serde_json::from_str(&row.extras).map_err(|e| corrupt("extras", e))?;
            stored.extend(extras);
            let text = Value::Object(stored).to_string();
            if text.len() > MAX_EXTRAS_BYTES {
                return Err(BotError::InvalidBody(FieldErrors::one(
                    "body",
                    format!("additional fields must be at most {MAX_EXTRAS_BYTES} bytes of JSON"),
                )));
            }
            v.extras = text;
        }
        v.updated_at = now_ms().max(row.updated_at);
        let row = store::update(&mut tx, &scope, &v.values())
            .await?
            .ok_or(BotError::NotFound)?;
        tx.commit().await?;
        bot_view(&row)
    }

    /// Delete a bot (its log and archive entries stay).
    pub async fn delete(&self, who: &Identity, id: &BotId) -> Result<(), BotError> {
        let scope = who.require(Role::Operator)?;
        if !id.as_str().contains('\0') && store::delete(self.db.writer(), &scope, id).await? {
            Ok(())
        } else {
            Err(BotError::NotFound)
        }
    }

    pub async fn lifecycle(&self, who: &Identity, id: &BotId) -> Result<Lifecycle, BotError> {
        let scope = who.require(Role::Viewer)?;
        lifecycle_of(&self.load(self.db.reader(), &scope, id).await?)
    }

    pub async fn transitions(
        &self,
        who: &Identity,
        id: &BotId,
    ) -> Result<Vec<Transition>, BotError> {
        Ok(self.lifecycle(who, id).await?.stage_transitions)
    }

    pub async fn is_banned(&self, who: &Identity, id: &BotId) -> Result<IsBanned, BotError> {
        let scope = who.require(Role::Viewer)?;
        let row = self.load(self.db.reader(), &scope, id).await?;
        Ok(IsBanned {
            banned: row.status == BotStatus::Banned
                || row.lifecycle_stage.as_deref() == Some("banned"),
        })
    }

    pub async fn transition(
        &self,
        who: &Identity,
        id: &BotId,
        body: &Value,
    ) -> Result<Bot, BotError> {
        let scope = who.require(Role::Operator)?;
        let req: TransitionRequest = parse_body(body).map_err(BotError::InvalidTransition)?;
        let next = req.status;
        if next == BotStatus::Banned {
            return Err(BotError::UseBanEndpoint);
        }
        let mut tx = self.db.begin().await?;
        let row = self.load_for_update(&mut tx, &scope, id).await?;
        let current = row.status;
        if current == next {
            return bot_view(&row);
        }
        let now = now_ms();
        let next_stage = stage_of(next).unwrap_or(Stage::Prepare);
        let mut transitions = transitions_of(&row)?;
        transitions.push(StoredTransition {
            from: stage_of(current)
                .map(|s| s.as_str())
                .unwrap_or("create")
                .to_string(),
            to: next_stage.as_str().to_string(),
            at: now,
        });
        let mut v = Owned::of(&row);
        v.status = next;
        v.lifecycle_stage = Some(next_stage.as_str().to_string());
        v.lifecycle_previous_status = Some(current.as_str().to_string());
        v.stage_transitions = serde_json::to_string(&transitions).unwrap_or_default();
        v.updated_at = now.max(row.updated_at);
        let updated = store::update(&mut tx, &scope, &v.values())
            .await?
            .ok_or(BotError::NotFound)?;
        let details = json!({"from": current, "to": next}).to_string();
        store::insert_log(
            &mut tx,
            &scope,
            &NewLog {
                id: &new_id(),
                bot_id: id,
                kind: LogType::StatusChange,
                message: &format!("Status changed from {current} to {next}"),
                details: &details,
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        bot_view(&updated)
    }

    pub async fn ban(&self, who: &Identity, id: &BotId, body: &Value) -> Result<Bot, BotError> {
        let scope = who.require(Role::Operator)?;
        let req: BanRequest = parse_body(body).map_err(BotError::InvalidBan)?;
        let mut f = FieldErrors::default();
        f.check(
            ban_date_shape_ok(&req.ban_date),
            "ban_date",
            "must be a date DD.MM.YYYY",
        );
        let reason_len = req.ban_reason.chars().count();
        f.check(
            (1..=MAX_BAN_REASON).contains(&reason_len),
            "ban_reason",
            "must be 1 to 1000 characters",
        );
        f.check(
            !req.ban_reason.contains('\0'),
            "ban_reason",
            "must not contain NUL characters",
        );
        f.into_fields().map_err(BotError::InvalidBan)?;
        let mut tx = self.db.begin().await?;
        let row = self.load_for_update(&mut tx, &scope, id).await?;
        let now = now_ms();
        let current = row.status;
        let mut transitions = transitions_of(&row)?;
        if let Some(prev) = stage_of(current) {
            transitions.push(StoredTransition {
                from: prev.as_str().to_string(),
                to: prev.as_str().to_string(),
                at: now,
            });
        }
        let ban = StoredBan {
            ban_timestamp: parse_ban_date(&req.ban_date).unwrap_or(now),
            ban_date: req.ban_date,
            ban_reason: req.ban_reason,
            ban_mechanism: req.ban_mechanism,
            unbanned_at: None,
        };
        let ban_text = serde_json::to_string(&ban).unwrap_or_default();
        let mut v = Owned::of(&row);
        v.status = BotStatus::Banned;
        v.lifecycle_stage = Some(Stage::Banned.as_str().to_string());
        v.lifecycle_previous_status = Some(current.as_str().to_string());
        v.stage_transitions = serde_json::to_string(&transitions).unwrap_or_default();
        v.ban_details = Some(ban_text.clone());
        v.updated_at = now.max(row.updated_at);
        let updated = store::update(&mut tx, &scope, &v.values())
            .await?
            .ok_or(BotError::NotFound)?;
        // The archive keeps the bot as it was before the ban.
        let extras: Map<String, Value> =
            serde_json::from_str(&row.extras).map_err(|e| corrupt("extras", e))?;
        let c = character_of(&row);
        let snapshot = Snapshot {
            project_id: row.project_id,
            final_level: c.level,
            character: SnapshotCharacter {
                name: c.name,
                level: c.level,
                class: c.class,
                race: c.race,
                server: c.server,
                faction: c.faction,
            },
            total_farmed: number_at(&extras, "farm", "all_farmed_gold"),
            total_earned_gold: number_at(&extras, "farm", "all_earned_gold"),
            total_runtime_hours: number_at(&extras, "monitor", "total_runtime_hours"),
        };
        let snapshot_text = serde_json::to_string(&snapshot).unwrap_or_default();
        store::insert_archive(
            &mut tx,
            &scope,
            &NewArchive {
                id: &new_id(),
                bot_id: id,
                bot_name: &row.name,
                character_name: row.character_name.as_deref(),
                project_id: row.project_id,
                at: now,
                ban_details: &ban_text,
                snapshot: &snapshot_text,
            },
        )
        .await?;
        let details = json!({
            "from": current,
            "mechanism": ban.ban_mechanism,
            "ban_date": ban.ban_date,
        })
        .to_string();
        store::insert_log(
            &mut tx,
            &scope,
            &NewLog {
                id: &new_id(),
                bot_id: id,
                kind: LogType::Ban,
                message: &format!("Bot banned: {}", ban.ban_reason),
                details: &details,
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        bot_view(&updated)
    }

    pub async fn unban(&self, who: &Identity, id: &BotId) -> Result<Bot, BotError> {
        let scope = who.require(Role::Operator)?;
        let mut tx = self.db.begin().await?;
        let row = self.load_for_update(&mut tx, &scope, id).await?;
        let mut ban = match ban_of(&row)? {
            Some(b) if b.unbanned_at.is_none() => b,
            _ => return Err(BotError::NotBanned),
        };
        let now = now_ms();
        let restored = match row
            .lifecycle_previous_status
            .as_deref()
            .map(str::to_ascii_lowercase)
            .and_then(|s| s.parse::<BotStatus>().ok())
        {
            Some(s) if s != BotStatus::Banned => s,
            _ => BotStatus::Offline,
        };
        ban.unbanned_at = Some(now);
        let mut v = Owned::of(&row);
        v.status = restored;
        v.lifecycle_stage = Some(
            stage_of(restored)
                .unwrap_or(Stage::Prepare)
                .as_str()
                .to_string(),
        );
        v.ban_details = Some(serde_json::to_string(&ban).unwrap_or_default());
        v.updated_at = now.max(row.updated_at);
        let updated = store::update(&mut tx, &scope, &v.values())
            .await?
            .ok_or(BotError::NotFound)?;
        let details = json!({"restored_status": restored}).to_string();
        store::insert_log(
            &mut tx,
            &scope,
            &NewLog {
                id: &new_id(),
                bot_id: id,
                kind: LogType::Unban,
                message: &format!("Bot unbanned and restored to {restored}"),
                details: &details,
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        bot_view(&updated)
    }

    /// One bot's lifecycle log (the bot must exist).
    pub async fn log(
        &self,
        who: &Identity,
        id: &BotId,
        p: &ListParams,
    ) -> Result<Page<LogEntry>, BotError> {
        let scope = who.require(Role::Viewer)?;
        self.load(self.db.reader(), &scope, id).await?;
        Ok(
            store::list_log(self.db.reader(), self.db.backend(), &scope, id, p)
                .await?
                .map(log_view),
        )
    }

    pub async fn archive(
        &self,
        who: &Identity,
        p: &ListParams,
    ) -> Result<Page<ArchiveEntry>, BotError> {
        let scope = who.require(Role::Viewer)?;
        let page = store::list_archive(self.db.reader(), self.db.backend(), &scope, p).await?;
        let items = page
            .items
            .into_iter()
            .map(archive_view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            total: page.total,
            page: page.page,
            limit: page.limit,
            next_cursor: page.next_cursor,
        })
    }
}

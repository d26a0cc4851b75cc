//! HTTP handlers and request documents of bots. Bodies are read as JSON and
//! validated by the service (field errors under the original's codes).

use axum::extract::{RawQuery, State};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::service::{
    ArchiveEntry, BanRequest, Bot, CharacterInput, IsBanned, Lifecycle, LifecycleInput, LogEntry,
    Transition,
};
use super::store::{BotStatus, ProjectId, ARCHIVE_LIST, BOT_LIST, LOG_LIST};
use super::BotError;
use crate::auth::Identity;
use crate::db::ids::BotId;
use crate::http::codes;
use crate::http::envelope::{created, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{list_query_doc, ApiJson, ApiPath};
use crate::state::AppState;

/// A new bot. Fields not listed here (`farm`, `monitor`, …) are kept as sent
/// (at most 64 KiB of JSON); `created_at`, `updated_at`, `tenant_id` and
/// `ban_details` are set by the server and ignored when sent.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BotCreate {
    /// Optional client-chosen id; absent or `null`: a UUIDv7. Unique in
    /// the tenant.
    #[schema(nullable, pattern = "^[A-Za-z0-9_-]{1,100}$")]
    id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    name: String,
    project_id: ProjectId,
    status: BotStatus,
    character: Option<CharacterInput>,
    /// Default `{current_stage: "prepare"}`.
    #[schema(nullable = false)]
    lifecycle: Option<LifecycleInput>,
}

/// A shallow merge: each given field replaces the stored one (`character`
/// as a whole; `null` clears it). Other fields are kept as sent; `id`,
/// `created_at`, `updated_at`, `tenant_id` and `ban_details` are ignored.
/// At least one field.
pub struct BotPatch;

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct BotPatchFields {
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    name: Option<String>,
    #[schema(nullable = false)]
    project_id: Option<ProjectId>,
    #[schema(nullable = false)]
    status: Option<BotStatus>,
    character: Option<CharacterInput>,
    #[schema(nullable = false)]
    lifecycle: Option<LifecycleInput>,
}

/// `BotPatchFields` with `minProperties: 1` (utoipa's own attribute for it
/// writes `maxProperties`).
impl utoipa::PartialSchema for BotPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::domains::bots::routes::at_least_one(BotPatchFields::schema())
    }
}

impl ToSchema for BotPatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        BotPatchFields::schemas(schemas);
    }
}

/// Require at least one property of an object schema.
pub fn at_least_one(
    s: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    match s {
        RefOr::T(Schema::Object(mut o)) => {
            o.min_properties = Some(1);
            o.max_properties = None;
            RefOr::T(Schema::Object(o))
        }
        other => other,
    }
}

/// The statuses a transition may go to (`banned` goes through `/lifecycle/ban`;
/// asking for it answers 400 `BOTS_TRANSITION_VALIDATION_FAILED`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TransitionStatus {
    Offline,
    Prepare,
    Leveling,
    Profession,
    Farming,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TransitionBody {
    status: TransitionStatus,
}

#[derive(serde::Serialize, ToSchema)]
pub struct BotDeleted {
    pub id: BotId,
    pub deleted: bool,
}

list_query_doc!(BotListQuery, BOT_LIST);
list_query_doc!(ArchiveListQuery, ARCHIVE_LIST);
list_query_doc!(LogListQuery, LOG_LIST);

fn list_err(f: crate::validate::FieldErrors) -> ApiError {
    BotError::InvalidListQuery(f).into()
}

/// The list query, refusing NUL characters in any parameter (PostgreSQL
/// cannot bind them; the list kit would pass them to the database).
fn list_query(raw: &Option<String>) -> Result<&str, ApiError> {
    let raw = raw.as_deref().unwrap_or("");
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if k.contains('\0') || v.contains('\0') {
            return Err(list_err(crate::validate::FieldErrors::one(
                &k.replace('\0', "\\0"),
                "must not contain NUL characters",
            )));
        }
    }
    Ok(raw)
}

/// Bots of the tenant, newest first. List kit: sort on created_at,
/// updated_at, name, status, project_id, character_name, character_level,
/// current_stage; filter on the same columns; `q` searches name and
/// character name. Errors: 400 `BOTS_INVALID_LIST_QUERY`.
#[utoipa::path(get, path = "/api/v1/bots", tag = "bots", security(("bearer" = [])),
    params(BotListQuery),
    responses((status = 200, body = Envelope<Vec<Bot>>),
              (status = 400, description = "BOTS_INVALID_LIST_QUERY", body = ErrorEnvelope)))]
pub async fn list_bots(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Bot>>, ApiError> {
    let (params, _) = BOT_LIST.parse(list_query(&q)?, &[]).map_err(list_err)?;
    Ok(paged(state.bots.list(&identity, &params).await?))
}

/// Create a bot (operator+).
#[utoipa::path(post, path = "/api/v1/bots", tag = "bots", security(("bearer" = [])),
    request_body = BotCreate,
    responses((status = 201, body = Envelope<Bot>),
              (status = 400, description = "BOTS_INVALID_MUTATION_BODY (`details.fields`), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 409, description = "CONFLICT: the id is taken", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_bot(
    State(state): State<AppState>,
    identity: Identity,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Bot>, ApiError> {
    let ApiJson(body) = body.map_err(|e| e.recode_validation(codes::BOTS_INVALID_MUTATION_BODY))?;
    Ok(created(state.bots.create(&identity, &body).await?))
}

/// The ban archive: one entry per ban with the bot's snapshot, newest first.
/// List kit: sort on archived_at, bot_id, project_id, name, character_name;
/// filter on archived_at, bot_id, reason, project_id; `q` searches the bot
/// and character names.
#[utoipa::path(get, path = "/api/v1/bots/archive", tag = "bots", security(("bearer" = [])),
    params(ArchiveListQuery),
    responses((status = 200, body = Envelope<Vec<ArchiveEntry>>),
              (status = 400, description = "BOTS_INVALID_LIST_QUERY", body = ErrorEnvelope)))]
pub async fn list_archive(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<ArchiveEntry>>, ApiError> {
    let (params, _) = ARCHIVE_LIST.parse(list_query(&q)?, &[]).map_err(list_err)?;
    Ok(paged(state.bots.archive(&identity, &params).await?))
}

/// One bot.
#[utoipa::path(get, path = "/api/v1/bots/{id}", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Bot>),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_bot(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
) -> Result<Reply<Bot>, ApiError> {
    Ok(ok(state.bots.get(&identity, &id).await?))
}

/// Update a bot (shallow merge; operator+).
#[utoipa::path(patch, path = "/api/v1/bots/{id}", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = BotPatch,
    responses((status = 200, body = Envelope<Bot>),
              (status = 400, description = "BOTS_INVALID_MUTATION_BODY (`details.fields`; also an empty object), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(bot = %id))]
pub async fn patch_bot(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Bot>, ApiError> {
    let ApiJson(body) = body.map_err(|e| e.recode_validation(codes::BOTS_INVALID_MUTATION_BODY))?;
    Ok(ok(state.bots.patch(&identity, &id, &body).await?))
}

/// Delete a bot (operator+); its lifecycle log and archive entries stay.
#[utoipa::path(delete, path = "/api/v1/bots/{id}", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<BotDeleted>),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(bot = %id))]
pub async fn delete_bot(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
) -> Result<Reply<BotDeleted>, ApiError> {
    state.bots.delete(&identity, &id).await?;
    Ok(ok(BotDeleted { id, deleted: true }))
}

/// The bot's lifecycle (every bot has one).
#[utoipa::path(get, path = "/api/v1/bots/{id}/lifecycle", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Lifecycle>),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_lifecycle(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
) -> Result<Reply<Lifecycle>, ApiError> {
    Ok(ok(state.bots.lifecycle(&identity, &id).await?))
}

/// The bot's stage transitions, oldest first (`[]` when none).
#[utoipa::path(get, path = "/api/v1/bots/{id}/lifecycle/transitions", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Vec<Transition>>),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_transitions(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
) -> Result<Reply<Vec<Transition>>, ApiError> {
    Ok(ok(state.bots.transitions(&identity, &id).await?))
}

/// `{banned}`: status `banned` or lifecycle stage `banned`.
#[utoipa::path(get, path = "/api/v1/bots/{id}/lifecycle/is-banned", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<IsBanned>),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_is_banned(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
) -> Result<Reply<IsBanned>, ApiError> {
    Ok(ok(state.bots.is_banned(&identity, &id).await?))
}

/// The bot's lifecycle log, newest first. List kit: sort on timestamp,
/// type; filter on timestamp, type; `q` searches the message.
#[utoipa::path(get, path = "/api/v1/bots/{id}/lifecycle/log", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path), LogListQuery),
    responses((status = 200, body = Envelope<Vec<LogEntry>>),
              (status = 400, description = "BOTS_INVALID_LIST_QUERY", body = ErrorEnvelope),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_log(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<LogEntry>>, ApiError> {
    let (params, _) = LOG_LIST.parse(list_query(&q)?, &[]).map_err(list_err)?;
    Ok(paged(state.bots.log(&identity, &id, &params).await?))
}

/// Move the bot to another status (operator+); the same status returns
/// the bot unchanged.
#[utoipa::path(post, path = "/api/v1/bots/{id}/lifecycle/transition", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = TransitionBody,
    responses((status = 200, body = Envelope<Bot>),
              (status = 400, description = "BOTS_TRANSITION_VALIDATION_FAILED (`banned`, or an invalid body)", body = ErrorEnvelope),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(bot = %id))]
pub async fn transition(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Bot>, ApiError> {
    let ApiJson(body) =
        body.map_err(|e| e.recode_validation(codes::BOTS_TRANSITION_VALIDATION_FAILED))?;
    Ok(ok(state.bots.transition(&identity, &id, &body).await?))
}

/// Ban the bot (operator+): archive snapshot and log entry.
#[utoipa::path(post, path = "/api/v1/bots/{id}/lifecycle/ban", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = BanRequest,
    responses((status = 200, body = Envelope<Bot>),
              (status = 400, description = "BOTS_INVALID_BAN_BODY (`details.fields`)", body = ErrorEnvelope),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(bot = %id))]
pub async fn ban(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Bot>, ApiError> {
    let ApiJson(body) = body.map_err(|e| e.recode_validation(codes::BOTS_INVALID_BAN_BODY))?;
    Ok(ok(state.bots.ban(&identity, &id, &body).await?))
}

/// Lift the ban (operator+): the status before the ban comes back.
#[utoipa::path(post, path = "/api/v1/bots/{id}/lifecycle/unban", tag = "bots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Bot>),
              (status = 404, description = "BOT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "BOTS_UNBAN_VALIDATION_FAILED: the bot is not banned", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(bot = %id))]
pub async fn unban(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<BotId>,
) -> Result<Reply<Bot>, ApiError> {
    Ok(ok(state.bots.unban(&identity, &id).await?))
}

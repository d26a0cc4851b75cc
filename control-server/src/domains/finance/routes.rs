//! HTTP handlers and request documents of finance.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::service::{parse_range, DailyStats, GoldPrice, Operation, MAX_DATE_MS};
use super::store::{Currency, FinanceProject, OperationType, OPERATION_LIST};
use super::FinanceError;
use crate::auth::Identity;
use crate::db::ids::FinanceOperationId;
use crate::http::codes;
use crate::http::envelope::{created, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{list_query_doc, ApiJson, ApiPath};
use crate::state::AppState;

/// A new operation. `created_at`/`updated_at`/`tenant_id` are set by the
/// server (sent values are ignored). Fields not listed here are kept and
/// returned as sent (the original's passthrough; at most 64 KiB of JSON).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct OperationCreate {
    /// Optional client-chosen id; absent or `null`: a UUIDv7. Unique in
    /// the tenant.
    #[schema(nullable, pattern = "^[A-Za-z0-9_-]{1,100}$")]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: OperationType,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    category: String,
    #[schema(minimum = -1e12, maximum = 1e12)]
    amount: f64,
    currency: Currency,
    #[schema(schema_with = date_required)]
    date: Value,
    #[schema(max_length = 1000, pattern = r"^[^\u0000]*$")]
    description: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    bot_id: Option<String>,
    project_id: Option<FinanceProject>,
    #[schema(minimum = -1e12, maximum = 1e12)]
    gold_amount: Option<f64>,
    #[schema(minimum = -1e12, maximum = 1e12)]
    gold_price_at_time: Option<f64>,
    #[schema(value_type = Value, required = false)]
    created_at: Option<Value>,
    #[schema(value_type = Value, required = false)]
    updated_at: Option<Value>,
}

/// A partial update (at least one field): each given field replaces the
/// stored one; `null` clears an optional field. Other fields are merged
/// shallowly into the kept ones (each replaces its own). `id`,
/// `created_at`, `updated_at` and `tenant_id` are ignored.
pub struct OperationPatch;

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct OperationPatchFields {
    /// Checked like on create, then ignored (the path names the operation).
    #[schema(nullable, pattern = "^[A-Za-z0-9_-]{1,100}$")]
    id: Option<String>,
    #[serde(rename = "type")]
    #[schema(nullable = false)]
    kind: Option<OperationType>,
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    category: Option<String>,
    #[schema(nullable = false, minimum = -1e12, maximum = 1e12)]
    amount: Option<f64>,
    #[schema(nullable = false)]
    currency: Option<Currency>,
    #[schema(schema_with = date_required)]
    date: Option<Value>,
    #[schema(max_length = 1000, pattern = r"^[^\u0000]*$", nullable)]
    description: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$",
        nullable
    )]
    bot_id: Option<String>,
    #[schema(nullable)]
    project_id: Option<FinanceProject>,
    #[schema(minimum = -1e12, maximum = 1e12, nullable)]
    gold_amount: Option<f64>,
    #[schema(minimum = -1e12, maximum = 1e12, nullable)]
    gold_price_at_time: Option<f64>,
    #[schema(value_type = Value, required = false)]
    created_at: Option<Value>,
    #[schema(value_type = Value, required = false)]
    updated_at: Option<Value>,
}

/// The day range of the statistics (UTC, both ends inclusive; either may
/// be left out).
impl utoipa::PartialSchema for OperationPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::domains::bots::routes::at_least_one(OperationPatchFields::schema())
    }
}

impl ToSchema for OperationPatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        OperationPatchFields::schemas(schemas);
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RangeQuery {
    /// First day, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<String>,
}

list_query_doc!(OperationListQuery, OPERATION_LIST);

/// `date`: epoch milliseconds `0..=253402300799999` (the original's form)
/// or an RFC 3339 timestamp (years 0000..9999).
fn date_schema(nullable: bool) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::KnownFormat;
    let mut b = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(MAX_DATE_MS)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(KnownFormat::DateTime),
        )));
    if nullable {
        b = b.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    utoipa::openapi::schema::Schema::OneOf(
        b.description(Some(
            "Epoch milliseconds (0..=253402300799999) or an RFC 3339 timestamp (years 0000..9999)",
        ))
        .build(),
    )
}

fn date_required() -> utoipa::openapi::schema::Schema {
    date_schema(false)
}

#[derive(serde::Serialize, ToSchema)]
pub struct FinanceOperationDeleted {
    pub id: FinanceOperationId,
    pub deleted: bool,
}

/// Operations of the tenant, latest `date` first. List kit: sort on date,
/// created_at, updated_at, type, category, currency, project_id; filter on
/// the same plus bot_id; `q` searches category and description.
#[utoipa::path(get, path = "/api/v1/finance/operations", tag = "finance", security(("bearer" = [])),
    params(OperationListQuery),
    responses((status = 200, body = Envelope<Vec<Operation>>),
              (status = 400, description = "FINANCE_INVALID_LIST_QUERY", body = ErrorEnvelope)))]
pub async fn list_operations(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Operation>>, ApiError> {
    let raw = q.as_deref().unwrap_or("");
    // PostgreSQL cannot bind NUL characters; the list kit would pass them on.
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if k.contains('\0') || v.contains('\0') {
            return Err(
                FinanceError::InvalidListQuery(crate::validate::FieldErrors::one(
                    &k.replace('\0', "\\0"),
                    "must not contain NUL characters",
                ))
                .into(),
            );
        }
    }
    let (params, _) = OPERATION_LIST
        .parse(raw, &[])
        .map_err(FinanceError::InvalidListQuery)?;
    Ok(paged(state.finance.list(&identity, &params).await?))
}

/// Record an operation (operator+).
#[utoipa::path(post, path = "/api/v1/finance/operations", tag = "finance", security(("bearer" = [])),
    request_body = OperationCreate,
    responses((status = 201, body = Envelope<Operation>),
              (status = 400, description = "FINANCE_INVALID_CREATE_BODY (`details.fields`), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 409, description = "CONFLICT: the id is taken", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_operation(
    State(state): State<AppState>,
    identity: Identity,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Operation>, ApiError> {
    let ApiJson(body) =
        body.map_err(|e| e.recode_validation(codes::FINANCE_INVALID_CREATE_BODY))?;
    Ok(created(state.finance.create(&identity, &body).await?))
}

/// One operation.
#[utoipa::path(get, path = "/api/v1/finance/operations/{id}", tag = "finance", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Operation>),
              (status = 404, description = "FINANCE_OPERATION_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_operation(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<FinanceOperationId>,
) -> Result<Reply<Operation>, ApiError> {
    Ok(ok(state.finance.get(&identity, &id).await?))
}

/// Update an operation (operator+).
#[utoipa::path(patch, path = "/api/v1/finance/operations/{id}", tag = "finance", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = OperationPatch,
    responses((status = 200, body = Envelope<Operation>),
              (status = 400, description = "FINANCE_INVALID_PATCH_BODY (`details.fields`; also an empty object), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 404, description = "FINANCE_OPERATION_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(operation = %id))]
pub async fn patch_operation(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<FinanceOperationId>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Operation>, ApiError> {
    let ApiJson(body) = body.map_err(|e| e.recode_validation(codes::FINANCE_INVALID_PATCH_BODY))?;
    Ok(ok(state.finance.patch(&identity, &id, &body).await?))
}

/// Delete an operation (operator+).
#[utoipa::path(delete, path = "/api/v1/finance/operations/{id}", tag = "finance", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<FinanceOperationDeleted>),
              (status = 404, description = "FINANCE_OPERATION_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(operation = %id))]
pub async fn delete_operation(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<FinanceOperationId>,
) -> Result<Reply<FinanceOperationDeleted>, ApiError> {
    state.finance.delete(&identity, &id).await?;
    Ok(ok(FinanceOperationDeleted { id, deleted: true }))
}

/// Per UTC day of the operations' `date`: expenses, revenue (every
/// operation that is not an expense), net profit, distinct bots and gold
/// farmed per project, keyed `YYYY-MM-DD`. Computed in SQL.
#[utoipa::path(get, path = "/api/v1/finance/daily-stats", tag = "finance", security(("bearer" = [])),
    params(RangeQuery),
    responses((status = 200, body = Envelope<BTreeMap<String, DailyStats>>),
              (status = 400, description = "FINANCE_INVALID_STATS_QUERY", body = ErrorEnvelope)))]
pub async fn daily_stats(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<BTreeMap<String, DailyStats>>, ApiError> {
    let (from, to) =
        parse_range(q.as_deref().unwrap_or("")).map_err(FinanceError::InvalidStatsQuery)?;
    Ok(ok(state.finance.daily_stats(&identity, from, to).await?))
}

/// Per UTC day: the mean gold price of `income` operations of category
/// `sale` with a positive `gold_price_at_time`, keyed `YYYY-MM-DD`.
#[utoipa::path(get, path = "/api/v1/finance/gold-price-history", tag = "finance", security(("bearer" = [])),
    params(RangeQuery),
    responses((status = 200, body = Envelope<BTreeMap<String, GoldPrice>>),
              (status = 400, description = "FINANCE_INVALID_STATS_QUERY", body = ErrorEnvelope)))]
pub async fn gold_price_history(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<BTreeMap<String, GoldPrice>>, ApiError> {
    let (from, to) =
        parse_range(q.as_deref().unwrap_or("")).map_err(FinanceError::InvalidStatsQuery)?;
    Ok(ok(state
        .finance
        .gold_price_history(&identity, from, to)
        .await?))
}

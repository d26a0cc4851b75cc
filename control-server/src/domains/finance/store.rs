//! SQL of the finance domain: `finance_operations` and the statistics
//! computed from it (UTC day buckets; `day` = floor(date_ms / 86400000),
//! written so that both backends floor negative dates the same way).

use sqlx::FromRow;

use crate::db::ids::FinanceOperationId;
use crate::db::list::{self, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

text_enum!(
    /// Money in or out.
    OperationType, "operation type" {
        Income => "income",
        Expense => "expense",
    }
);

text_enum!(
    /// The currency of `amount` (the values the original's database accepted).
    Currency, "currency" {
        Usd => "USD",
        Gold => "gold",
    }
);

text_enum!(
    /// The game project an operation belongs to.
    FinanceProject, "project id" {
        WowTbc => "wow_tbc",
        WowMidnight => "wow_midnight",
    }
);

pub const COLUMNS: &str = "id, type, category, description, amount, currency, date_ms, bot_id, \
    project_id, gold_amount, gold_price_at_time, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct OperationRow {
    pub id: FinanceOperationId,
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: OperationType,
    pub category: String,
    pub description: Option<String>,
    pub amount: f64,
    #[sqlx(try_from = "String")]
    pub currency: Currency,
    pub date_ms: i64,
    pub bot_id: Option<String>,
    pub project_id: Option<String>,
    pub gold_amount: Option<f64>,
    pub gold_price_at_time: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
}

type QueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>;

/// Bind an optional double. sqlx 0.8's `Any` driver sends a `None::<f64>`
/// to PostgreSQL as a FLOAT4 NULL (its Real/Double mapping is swapped),
/// which a DOUBLE PRECISION parameter refuses; `None::<f32>` arrives as
/// FLOAT8 there and as NULL on SQLite.
fn bind_f64<'q, O>(q: QueryAs<'q, O>, v: Option<f64>) -> QueryAs<'q, O> {
    match v {
        Some(x) => q.bind(x),
        None => q.bind(None::<f32>),
    }
}

pub async fn insert(
    mut w: impl Write,
    scope: &TenantScope,
    o: &OperationRow,
) -> StoreResult<OperationRow> {
    let sql = format!(
        "INSERT INTO finance_operations (tenant_id, {COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         RETURNING {COLUMNS}"
    );
    let q = sqlx::query_as::<_, OperationRow>(&sql)
        .bind(scope.tenant())
        .bind(o.id.as_str())
        .bind(o.kind.as_str())
        .bind(&o.category)
        .bind(o.description.as_deref())
        .bind(o.amount)
        .bind(o.currency.as_str())
        .bind(o.date_ms)
        .bind(o.bot_id.as_deref())
        .bind(o.project_id.as_deref());
    let q = bind_f64(q, o.gold_amount);
    let q = bind_f64(q, o.gold_price_at_time);
    q.bind(o.created_at)
        .bind(o.updated_at)
        .fetch_one(w.exec())
        .await
        .map_err(|e| StoreError::unique_or(e, "a finance operation with this id already exists"))
}

pub async fn update(
    mut w: impl Write,
    scope: &TenantScope,
    o: &OperationRow,
) -> StoreResult<Option<OperationRow>> {
    let sql = format!(
        "UPDATE finance_operations SET type = $3, category = $4, description = $5, amount = $6,
            currency = $7, date_ms = $8, bot_id = $9, project_id = $10, gold_amount = $11,
            gold_price_at_time = $12, updated_at = $13
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let q = sqlx::query_as::<_, OperationRow>(&sql)
        .bind(scope.tenant())
        .bind(o.id.as_str())
        .bind(o.kind.as_str())
        .bind(&o.category)
        .bind(o.description.as_deref())
        .bind(o.amount)
        .bind(o.currency.as_str())
        .bind(o.date_ms)
        .bind(o.bot_id.as_deref())
        .bind(o.project_id.as_deref());
    let q = bind_f64(q, o.gold_amount);
    let q = bind_f64(q, o.gold_price_at_time);
    Ok(q.bind(o.updated_at).fetch_optional(w.exec()).await?)
}

pub async fn get(
    mut r: impl Read,
    backend: Backend,
    scope: &TenantScope,
    id: &FinanceOperationId,
    lock: bool,
) -> StoreResult<Option<OperationRow>> {
    let lock = if lock && backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    Ok(sqlx::query_as::<_, OperationRow>(&format!(
        "SELECT {COLUMNS} FROM finance_operations WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn delete(
    mut w: impl Write,
    scope: &TenantScope,
    id: &FinanceOperationId,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM finance_operations WHERE tenant_id = $1 AND id = $2")
        .bind(scope.tenant())
        .bind(id.as_str())
        .execute(w.exec())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Operations of a tenant (latest `date` first).
pub static OPERATION_LIST: ListSpec = ListSpec {
    table: "finance_operations",
    select: COLUMNS,
    columns: &[
        list::Column::new("date", "date_ms", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("type", "type", list::Kind::Enum(&["income", "expense"]))
            .sortable()
            .filterable(),
        list::Column::new("category", "category", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("description", "description", list::Kind::Text)
            .nullable()
            .searchable(),
        list::Column::new("currency", "currency", list::Kind::Enum(&["USD", "gold"]))
            .sortable()
            .filterable(),
        list::Column::new(
            "project_id",
            "project_id",
            list::Kind::Enum(&["wow_tbc", "wow_midnight"]),
        )
        .nullable()
        .sortable()
        .filterable(),
        list::Column::new("bot_id", "bot_id", list::Kind::Text)
            .nullable()
            .filterable(),
    ],
    default_sort: "date",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<OperationRow>> {
    list::fetch(reader, backend, &OPERATION_LIST, scope, &[], params).await
}

/// The tenant's operations with `from <= date_ms < to`, each with its UTC
/// day number (floor division, also for dates before 1970).
const IN_RANGE: &str =
    "SELECT (date_ms - ((date_ms % 86400000) + 86400000) % 86400000) / 86400000 AS day,
        type, category, amount, bot_id, project_id, gold_amount, gold_price_at_time
     FROM finance_operations WHERE tenant_id = $1 AND date_ms >= $2 AND date_ms < $3";

#[derive(Debug, Clone, FromRow)]
pub struct DayTotals {
    pub day: i64,
    pub expenses: f64,
    pub revenue: f64,
    pub active_bots: i64,
}

/// Per UTC day: expenses, revenue (everything that is not an expense) and
/// the number of distinct bots.
pub async fn daily_totals(
    mut r: impl Read,
    scope: &TenantScope,
    from: i64,
    to: i64,
) -> StoreResult<Vec<DayTotals>> {
    Ok(sqlx::query_as::<_, DayTotals>(&format!(
        "SELECT day,
            SUM(CASE WHEN type = 'expense' THEN amount ELSE 0.0 END) AS expenses,
            SUM(CASE WHEN type = 'expense' THEN 0.0 ELSE amount END) AS revenue,
            COUNT(DISTINCT bot_id) AS active_bots
         FROM ({IN_RANGE}) AS ops GROUP BY day ORDER BY day"
    ))
    .bind(scope.tenant())
    .bind(from)
    .bind(to)
    .fetch_all(r.exec())
    .await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct DayFarmed {
    pub day: i64,
    /// Empty when the operations have no project.
    pub project: String,
    pub gold: f64,
}

/// Per UTC day and project: the sum of `gold_amount` over operations that
/// carry one.
pub async fn daily_farmed(
    mut r: impl Read,
    scope: &TenantScope,
    from: i64,
    to: i64,
) -> StoreResult<Vec<DayFarmed>> {
    Ok(sqlx::query_as::<_, DayFarmed>(&format!(
        "SELECT day, COALESCE(project_id, '') AS project, SUM(gold_amount) AS gold
         FROM ({IN_RANGE}) AS ops WHERE gold_amount IS NOT NULL
         GROUP BY day, COALESCE(project_id, '') ORDER BY day, project"
    ))
    .bind(scope.tenant())
    .bind(from)
    .bind(to)
    .fetch_all(r.exec())
    .await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct DayPrice {
    pub day: i64,
    pub price: f64,
}

/// Per UTC day: the mean `gold_price_at_time` of income operations of
/// category `sale` with a positive price.
pub async fn daily_gold_price(
    mut r: impl Read,
    scope: &TenantScope,
    from: i64,
    to: i64,
) -> StoreResult<Vec<DayPrice>> {
    Ok(sqlx::query_as::<_, DayPrice>(&format!(
        "SELECT day, AVG(gold_price_at_time) AS price
         FROM ({IN_RANGE}) AS ops
         WHERE type = 'income' AND category = 'sale' AND gold_price_at_time > 0
         GROUP BY day ORDER BY day"
    ))
    .bind(scope.tenant())
    .bind(from)
    .bind(to)
    .fetch_all(r.exec())
    .await?)
}

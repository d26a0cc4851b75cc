//! SQL of the finance domain: `finance_operations` and the statistics
//! computed from it (UTC day buckets: the stored `day` = floor(date_ms /
//! 86400000), computed here on every write, also for dates before 1970).

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

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
    project_id, gold_amount, gold_price_at_time, created_at, updated_at, extras";

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
    /// The passthrough fields: a JSON object.
    pub extras: String,
}

type QueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>;

/// Bind an optional double (see [`crate::db::NULL_DOUBLE`]).
fn bind_f64<'q, O>(q: QueryAs<'q, O>, v: Option<f64>) -> QueryAs<'q, O> {
    match v {
        Some(x) => q.bind(x),
        None => q.bind(crate::db::NULL_DOUBLE),
    }
}

pub async fn insert(
    mut w: impl Write,
    scope: &TenantScope,
    o: &OperationRow,
) -> StoreResult<OperationRow> {
    let sql = format!(
        "INSERT INTO finance_operations (tenant_id, {COLUMNS}, day)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
        .bind(&o.extras)
        .bind(day(o.date_ms))
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
            gold_price_at_time = $12, updated_at = $13, day = $14, extras = $15
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
    Ok(q.bind(o.updated_at)
        .bind(day(o.date_ms))
        .bind(&o.extras)
        .fetch_optional(w.exec())
        .await?)
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

const DAY_MS: i64 = 86_400_000;

/// The UTC day number of `date_ms` (floor division, also before 1970),
/// stored beside it in `day`: the statistics group on it, and the index
/// `finance_operations_day_idx` hands the rows over day by day (grouping
/// on an expression of `date_ms` made PostgreSQL sort every row of the
/// range first; see docs/benchmarks.md).
pub fn day(date_ms: i64) -> i64 {
    date_ms.div_euclid(DAY_MS)
}

/// The tenant's operations with `from <= date_ms < to` (`$1`..`$3`), with
/// the same range in days (`$4`, `$5`) for the day index.
const IN_RANGE: &str = "SELECT day, type, category, amount, bot_id, project_id, gold_amount,
        gold_price_at_time
     FROM finance_operations WHERE tenant_id = $1 AND date_ms >= $2 AND date_ms < $3
        AND day >= $4 AND day <= $5";

/// Bind `IN_RANGE`'s parameters.
fn in_range<'q, O>(q: QueryAs<'q, O>, scope: &TenantScope, from: i64, to: i64) -> QueryAs<'q, O> {
    q.bind(scope.tenant().to_string())
        .bind(from)
        .bind(to)
        .bind(day(from))
        .bind(day(to.saturating_sub(1)))
}

/// One UTC day of statistics.
#[derive(Debug, Clone)]
pub struct DayStats {
    pub day: i64,
    pub expenses: f64,
    pub revenue: f64,
    pub active_bots: i64,
    /// Gold farmed per project (`None`: operations without a project),
    /// only where an operation of that project carries a `gold_amount`.
    pub farmed: Vec<(Option<FinanceProject>, f64)>,
}

/// `farmed_<project>`, `farmed_` (no project): the result column of a
/// project's gold.
fn farmed_column(project: Option<FinanceProject>) -> String {
    format!("farmed_{}", project.map_or("", FinanceProject::as_str))
}

/// Every project, and none.
fn projects() -> impl Iterator<Item = Option<FinanceProject>> {
    std::iter::once(None).chain(FinanceProject::ALL.iter().copied().map(Some))
}

impl<'r> FromRow<'r, AnyRow> for DayStats {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let mut farmed = Vec::new();
        for p in projects() {
            if let Some(gold) = row.try_get::<Option<f64>, _>(farmed_column(p).as_str())? {
                farmed.push((p, gold));
            }
        }
        Ok(DayStats {
            day: row.try_get("day")?,
            expenses: row.try_get("expenses")?,
            revenue: row.try_get("revenue")?,
            active_bots: row.try_get("active_bots")?,
            farmed,
        })
    }
}

/// Per UTC day, in one pass over the range: expenses, revenue (everything
/// that is not an expense), the number of distinct bots, and per project
/// the sum of `gold_amount` over the operations that carry one.
pub async fn daily_stats(
    mut r: impl Read,
    scope: &TenantScope,
    from: i64,
    to: i64,
) -> StoreResult<Vec<DayStats>> {
    let farmed: Vec<String> = projects()
        .map(|p| {
            let when = match p {
                None => "project_id IS NULL".to_string(),
                Some(p) => format!("project_id = '{}'", p.as_str()),
            };
            format!(
                "SUM(CASE WHEN {when} THEN gold_amount END) AS {}",
                farmed_column(p)
            )
        })
        .collect();
    let sql = format!(
        "SELECT day,
            SUM(CASE WHEN type = 'expense' THEN amount ELSE 0.0 END) AS expenses,
            SUM(CASE WHEN type = 'expense' THEN 0.0 ELSE amount END) AS revenue,
            COUNT(DISTINCT bot_id) AS active_bots,
            {}
         FROM ({IN_RANGE}) AS ops GROUP BY day ORDER BY day",
        farmed.join(",\n            ")
    );
    Ok(in_range(sqlx::query_as(&sql), scope, from, to)
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
    let sql = format!(
        "SELECT day, AVG(gold_price_at_time) AS price
         FROM ({IN_RANGE}) AS ops
         WHERE type = 'income' AND category = 'sale' AND gold_price_at_time > 0
         GROUP BY day ORDER BY day"
    );
    Ok(in_range(sqlx::query_as(&sql), scope, from, to)
        .fetch_all(r.exec())
        .await?)
}

//! Finance operations and the statistics computed from them in SQL.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::store::{self, Currency, FinanceProject, OperationRow, OperationType};
use super::FinanceError;
use crate::auth::{Identity, Role};
use crate::db::ids::FinanceOperationId;
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db};
use crate::records;
use crate::validate::FieldErrors;

/// Largest |amount|, |gold_amount| and gold price accepted.
pub const MAX_AMOUNT: f64 = 1e12;
/// Latest accepted `date`: 9999-12-31T23:59:59.999Z.
pub const MAX_DATE_MS: i64 = 253_402_300_799_999;
/// Earliest accepted `date` (RFC 3339 form): 0000-01-01T00:00:00Z.
pub const MIN_DATE_MS: i64 = -62_167_219_200_000;
const DAY_MS: i64 = 86_400_000;

/// `date`: epoch milliseconds (0..) as in the original, or RFC 3339.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DateInput {
    Ms(serde_json::Number),
    Text(String),
}

fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Create and patch bodies as parsed (absent vs `null` kept apart). Keys
/// that are not typed fields pass through as `extras` (the original's
/// passthrough objects), as for resources, workspace and bots.
#[derive(Debug, Deserialize)]
struct OperationBody {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, rename = "type", deserialize_with = "nullable")]
    kind: Option<Option<OperationType>>,
    #[serde(default, deserialize_with = "nullable")]
    category: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    amount: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    currency: Option<Option<Currency>>,
    #[serde(default, deserialize_with = "nullable")]
    date: Option<Option<DateInput>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    bot_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    project_id: Option<Option<FinanceProject>>,
    #[serde(default, deserialize_with = "nullable")]
    gold_amount: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    gold_price_at_time: Option<Option<f64>>,
    /// Server-managed; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    created_at: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    updated_at: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    tenant_id: Option<Value>,
    /// Every other key, kept as sent.
    #[serde(flatten)]
    extras: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Operation {
    pub id: FinanceOperationId,
    #[serde(rename = "type")]
    pub kind: OperationType,
    pub category: String,
    pub description: Option<String>,
    pub amount: f64,
    pub currency: Currency,
    /// RFC 3339.
    pub date: String,
    pub bot_id: Option<String>,
    pub project_id: Option<FinanceProject>,
    pub gold_amount: Option<f64>,
    pub gold_price_at_time: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
    /// Fields the server does not know, kept and returned as sent (top
    /// level; at most 64 KiB of JSON).
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extras: Map<String, Value>,
}

/// One UTC day of `GET /finance/daily-stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailyStats {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub total_expenses: f64,
    /// Every operation that is not an expense.
    pub total_revenue: f64,
    pub net_profit: f64,
    /// Distinct `bot_id`s of the day's operations.
    pub active_bots: i64,
    /// Sum of `gold_amount` per project (`unassigned` without a project),
    /// over the day's operations that carry a gold amount.
    pub total_farmed: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoldPrice {
    /// Mean `gold_price_at_time` of the day's `income`/`sale` operations
    /// with a positive price.
    pub price: f64,
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn day_key(day: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// `from`/`to` (`YYYY-MM-DD`, UTC, both inclusive) as `[from_ms, to_ms)`.
pub fn parse_range(raw: &str) -> Result<(i64, i64), FieldErrors> {
    let mut f = FieldErrors::default();
    let (mut from, mut to) = (i64::MIN, i64::MAX);
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if !seen.insert(k.to_string()) {
            f.add(&k, "is given more than once");
            continue;
        }
        match k.as_ref() {
            "from" => match parse_day(&v) {
                Some(ms) => from = ms,
                None => f.add("from", "must be a date YYYY-MM-DD"),
            },
            "to" => match parse_day(&v) {
                Some(ms) => to = ms + DAY_MS,
                None => f.add("to", "must be a date YYYY-MM-DD"),
            },
            other => f.add(other, "unknown query parameter; use from and to"),
        }
    }
    f.into_fields()?;
    Ok((from, to))
}

fn parse_body(body: &Value) -> Result<OperationBody, FieldErrors> {
    serde_path_to_error::deserialize::<_, OperationBody>(body).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        FieldErrors::one(if path == "." { "body" } else { &path }, msg)
    })
}

fn valid_client_id(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn date_ms(f: &mut FieldErrors, d: &DateInput) -> Option<i64> {
    match d {
        DateInput::Ms(n) => match n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }) {
            Some(ms) if (0..=MAX_DATE_MS).contains(&ms) => Some(ms),
            _ => {
                f.add(
                    "date",
                    format!("epoch milliseconds must be whole numbers 0..{MAX_DATE_MS}"),
                );
                None
            }
        },
        DateInput::Text(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) if (MIN_DATE_MS..=MAX_DATE_MS).contains(&d.timestamp_millis()) => {
                Some(d.timestamp_millis())
            }
            _ => {
                f.add(
                    "date",
                    "must be epoch milliseconds or an RFC 3339 timestamp (years 0000..9999)",
                );
                None
            }
        },
    }
}

fn check_amount(f: &mut FieldErrors, field: &str, v: f64) {
    f.check(
        v.is_finite() && v.abs() <= MAX_AMOUNT,
        field,
        "must be a number between -1e12 and 1e12",
    );
}

fn no_nul(f: &mut FieldErrors, field: &str, v: &str, max: usize) {
    if v.chars().count() > max {
        f.add(field, format!("must be at most {max} characters"));
    } else if v.contains('\0') {
        f.add(field, "must not contain NUL characters");
    }
}

/// Check every given field; `row` receives the values. Given extras are
/// merged shallowly into the stored ones (each key replaces its own).
fn apply(b: OperationBody, row: &mut OperationRow, f: &mut FieldErrors, create: bool) {
    if !b.extras.is_empty() {
        let mut extras: Map<String, Value> = serde_json::from_str(&row.extras).unwrap_or_default();
        extras.extend(b.extras);
        records::check_extras(f, &extras);
        row.extras = Value::Object(extras).to_string();
    }
    let required = |f: &mut FieldErrors, field: &str| {
        f.add(
            field,
            if create {
                "is required"
            } else {
                "cannot be null"
            },
        )
    };
    match b.kind {
        Some(Some(k)) => row.kind = k,
        Some(None) => required(f, "type"),
        None if create => required(f, "type"),
        None => {}
    }
    match b.category {
        Some(Some(c)) => {
            if c.is_empty() {
                f.add("category", "must not be empty");
            }
            f.display_text("category", &c, 100);
            row.category = c;
        }
        Some(None) => required(f, "category"),
        None if create => required(f, "category"),
        None => {}
    }
    match b.amount {
        Some(Some(a)) => {
            check_amount(f, "amount", a);
            row.amount = a;
        }
        Some(None) => required(f, "amount"),
        None if create => required(f, "amount"),
        None => {}
    }
    match b.currency {
        Some(Some(c)) => row.currency = c,
        Some(None) => required(f, "currency"),
        None if create => required(f, "currency"),
        None => {}
    }
    match b.date {
        Some(Some(d)) => {
            if let Some(ms) = date_ms(f, &d) {
                row.date_ms = ms;
            }
        }
        Some(None) => required(f, "date"),
        None if create => required(f, "date"),
        None => {}
    }
    if let Some(d) = b.description {
        if let Some(d) = &d {
            no_nul(f, "description", d, 1000);
        }
        row.description = d;
    }
    if let Some(bot) = b.bot_id {
        if let Some(bot) = &bot {
            if bot.is_empty() {
                f.add("bot_id", "must not be empty (use null)");
            }
            f.display_text("bot_id", bot, 100);
        }
        row.bot_id = bot;
    }
    if let Some(p) = b.project_id {
        row.project_id = p.map(|p| p.as_str().to_string());
    }
    if let Some(g) = b.gold_amount {
        if let Some(g) = g {
            check_amount(f, "gold_amount", g);
        }
        row.gold_amount = g;
    }
    if let Some(g) = b.gold_price_at_time {
        if let Some(g) = g {
            check_amount(f, "gold_price_at_time", g);
        }
        row.gold_price_at_time = g;
    }
}

pub fn operation_view(r: OperationRow) -> Operation {
    Operation {
        id: r.id,
        kind: r.kind,
        category: r.category,
        description: r.description,
        amount: r.amount,
        currency: r.currency,
        date: ms_to_rfc3339(r.date_ms),
        bot_id: r.bot_id,
        project_id: r.project_id.as_deref().and_then(|p| p.parse().ok()),
        gold_amount: r.gold_amount,
        gold_price_at_time: r.gold_price_at_time,
        created_at: ms_to_rfc3339(r.created_at),
        updated_at: ms_to_rfc3339(r.updated_at),
        extras: serde_json::from_str(&r.extras).unwrap_or_default(),
    }
}

pub struct FinanceService {
    db: Db,
}

impl FinanceService {
    pub fn new(db: Db) -> FinanceService {
        FinanceService { db }
    }

    pub async fn list(
        &self,
        who: &Identity,
        p: &ListParams,
    ) -> Result<Page<Operation>, FinanceError> {
        let scope = who.require(Role::Viewer)?;
        Ok(store::list(self.db.reader(), self.db.backend(), &scope, p)
            .await?
            .map(operation_view))
    }

    pub async fn get(
        &self,
        who: &Identity,
        id: &FinanceOperationId,
    ) -> Result<Operation, FinanceError> {
        let scope = who.require(Role::Viewer)?;
        if id.as_str().contains('\0') {
            return Err(FinanceError::NotFound);
        }
        store::get(self.db.reader(), self.db.backend(), &scope, id, false)
            .await?
            .map(operation_view)
            .ok_or(FinanceError::NotFound)
    }

    pub async fn create(&self, who: &Identity, body: &Value) -> Result<Operation, FinanceError> {
        let scope = who.require(Role::Operator)?;
        let b = parse_body(body).map_err(FinanceError::InvalidCreate)?;
        let mut f = FieldErrors::default();
        let id = match &b.id {
            None | Some(Value::Null) => FinanceOperationId::generate(),
            Some(Value::String(id)) if valid_client_id(id) => FinanceOperationId::from(id.as_str()),
            Some(_) => {
                f.add(
                    "id",
                    "must be 1 to 100 characters of A-Z, a-z, 0-9, _ and -",
                );
                FinanceOperationId::generate()
            }
        };
        let now = now_ms();
        let mut row = OperationRow {
            id,
            kind: OperationType::Income,
            category: String::new(),
            description: None,
            amount: 0.0,
            currency: Currency::Usd,
            date_ms: 0,
            bot_id: None,
            project_id: None,
            gold_amount: None,
            gold_price_at_time: None,
            created_at: now,
            updated_at: now,
            extras: "{}".into(),
        };
        apply(b, &mut row, &mut f, true);
        f.into_fields().map_err(FinanceError::InvalidCreate)?;
        Ok(operation_view(
            store::insert(self.db.writer(), &scope, &row).await?,
        ))
    }

    pub async fn patch(
        &self,
        who: &Identity,
        id: &FinanceOperationId,
        body: &Value,
    ) -> Result<Operation, FinanceError> {
        let scope = who.require(Role::Operator)?;
        if body.as_object().is_some_and(Map::is_empty) {
            return Err(FinanceError::InvalidPatch(FieldErrors::one(
                "body",
                "Finance operation patch must not be empty",
            )));
        }
        let b = parse_body(body).map_err(FinanceError::InvalidPatch)?;
        if id.as_str().contains('\0') {
            return Err(FinanceError::NotFound);
        }
        let mut tx = self.db.begin().await?;
        let mut row = store::get(&mut tx, self.db.backend(), &scope, id, true)
            .await?
            .ok_or(FinanceError::NotFound)?;
        let mut f = FieldErrors::default();
        // `id` in a patch body is checked like on create, then ignored (the
        // path names the operation).
        match &b.id {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) if valid_client_id(id) => {}
            Some(_) => f.add(
                "id",
                "must be 1 to 100 characters of A-Z, a-z, 0-9, _ and -",
            ),
        }
        apply(b, &mut row, &mut f, false);
        f.into_fields().map_err(FinanceError::InvalidPatch)?;
        row.updated_at = now_ms().max(row.updated_at);
        let row = store::update(&mut tx, &scope, &row)
            .await?
            .ok_or(FinanceError::NotFound)?;
        tx.commit().await?;
        Ok(operation_view(row))
    }

    pub async fn delete(
        &self,
        who: &Identity,
        id: &FinanceOperationId,
    ) -> Result<(), FinanceError> {
        let scope = who.require(Role::Operator)?;
        if !id.as_str().contains('\0') && store::delete(self.db.writer(), &scope, id).await? {
            Ok(())
        } else {
            Err(FinanceError::NotFound)
        }
    }

    /// Per UTC day in `[from, to)`: totals, distinct bots, gold farmed.
    pub async fn daily_stats(
        &self,
        who: &Identity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, DailyStats>, FinanceError> {
        let scope = who.require(Role::Viewer)?;
        Ok(store::daily_stats(self.db.reader(), &scope, from, to)
            .await?
            .into_iter()
            .map(|d| {
                let stats = DailyStats {
                    date: day_key(d.day),
                    total_expenses: d.expenses,
                    total_revenue: d.revenue,
                    net_profit: d.revenue - d.expenses,
                    active_bots: d.active_bots,
                    total_farmed: d
                        .farmed
                        .into_iter()
                        .map(|(p, gold)| {
                            (p.map_or("unassigned", FinanceProject::as_str).into(), gold)
                        })
                        .collect(),
                };
                (stats.date.clone(), stats)
            })
            .collect())
    }

    pub async fn gold_price_history(
        &self,
        who: &Identity,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, GoldPrice>, FinanceError> {
        let scope = who.require(Role::Viewer)?;
        Ok(store::daily_gold_price(self.db.reader(), &scope, from, to)
            .await?
            .into_iter()
            .map(|p| (day_key(p.day), GoldPrice { price: p.price }))
            .collect())
    }
}

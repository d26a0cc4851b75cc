//! The list-query kit every collection endpoint uses.
//!
//! A domain declares a [`ListSpec`]: its table, the columns it selects and,
//! per column, whether lists may sort, filter or search on it. A request's
//! query string is parsed against the spec into [`ListParams`]
//! (`page`/`limit` or an opaque `cursor`, `sort`/`order`, `q`, typed filters)
//! with field errors for anything the spec does not allow, and
//! [`fetch`] runs it as **one** SQL statement with bound parameters:
//! tenant filter, the caller's visibility conditions, filters, search,
//! a stable order (the sort column, then the id) and the total (a `COUNT(*)`
//! subquery, or `COUNT(*) OVER ()` in the one pass a `q` search makes).
//! Nothing is loaded to be filtered in memory.
//!
//! Query syntax (all optional):
//! * `page` (1.., default 1) and `limit` (1..200, default 50), or `cursor`
//!   (the `next_cursor` of the previous answer; keyset pagination);
//! * `sort` (a sortable column) and `order` (`asc`/`desc`);
//! * `q`: case-insensitive (ASCII) substring search over the searchable
//!   columns;
//! * `<col>=v` equality, `<col>_in=a,b,c` membership, and for numbers and
//!   timestamps `<col>_gt`, `_gte`, `_lt`, `_lte` (timestamps as RFC 3339 or
//!   epoch milliseconds).
//!
//! NULLs sort last in both orders on both backends; text sorts byte-wise
//! (`COLLATE "C"` on PostgreSQL, SQLite's default).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::time::parse_timestamp_ms;
use super::{Backend, Reader, StoreResult, TenantScope};
use crate::validate::FieldErrors;

/// Largest page.
pub const MAX_LIMIT: u32 = 200;
pub const DEFAULT_LIMIT: u32 = 50;
/// Longest accepted `q`.
pub const MAX_SEARCH: usize = 200;
/// Most values in one `_in` filter.
pub const MAX_IN_VALUES: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    /// Epoch milliseconds in the database.
    Timestamp,
    /// Text restricted to these values.
    Enum(&'static [&'static str]),
}

/// One column a list may use.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The name in the API (query parameters).
    pub name: &'static str,
    /// The SQL column (must be in [`ListSpec::select`]).
    pub sql: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    pub sort: bool,
    pub filter: bool,
    pub search: bool,
}

impl Column {
    pub const fn new(name: &'static str, sql: &'static str, kind: Kind) -> Column {
        Column {
            name,
            sql,
            kind,
            nullable: false,
            sort: false,
            filter: false,
            search: false,
        }
    }
    pub const fn nullable(mut self) -> Column {
        self.nullable = true;
        self
    }
    pub const fn sortable(mut self) -> Column {
        self.sort = true;
        self
    }
    pub const fn filterable(mut self) -> Column {
        self.filter = true;
        self
    }
    pub const fn searchable(mut self) -> Column {
        self.search = true;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
}

/// What a domain's list looks like.
#[derive(Debug)]
pub struct ListSpec {
    pub table: &'static str,
    /// The select list (comma separated SQL columns).
    pub select: &'static str,
    pub columns: &'static [Column],
    /// The default sort column (API name) and order.
    pub default_sort: &'static str,
    pub default_order: Order,
    /// The unique text column that breaks ties (`id`).
    pub id_column: &'static str,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq | Op::In => "=",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub column: &'static Column,
    pub op: Op,
    pub values: Vec<Value>,
}

/// Where the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Page(u32),
    /// After this (sort value, id) in the list's order.
    After {
        value: Option<Value>,
        id: String,
    },
}

/// A parsed, validated list request.
#[derive(Debug, Clone)]
pub struct ListParams {
    pub start: Start,
    pub limit: u32,
    pub sort: &'static Column,
    pub order: Order,
    pub search: Option<String>,
    pub filters: Vec<Filter>,
}

/// An equality condition the domain adds (visibility: owner, agent, …).
#[derive(Debug, Clone)]
pub struct Fixed {
    pub sql: &'static str,
    pub value: Value,
}

impl Fixed {
    pub fn eq(sql: &'static str, value: impl Into<String>) -> Fixed {
        Fixed {
            sql,
            value: Value::Text(value.into()),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// `None` in cursor mode.
    pub page: Option<u32>,
    pub limit: u32,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            page: self.page,
            limit: self.limit,
            next_cursor: self.next_cursor,
        }
    }

    /// `{total, page, limit, count, next_cursor?}` for the envelope's `meta`.
    pub fn meta(&self) -> serde_json::Value {
        let mut m = serde_json::json!({
            "total": self.total,
            "page": self.page,
            "limit": self.limit,
            "count": self.items.len(),
        });
        if let Some(c) = &self.next_cursor {
            m["next_cursor"] = serde_json::Value::String(c.clone());
        } else {
            m["next_cursor"] = serde_json::Value::Null;
        }
        m
    }
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    /// Sort column (API name), so a cursor cannot be replayed on another sort.
    s: String,
    o: Order,
    v: Option<Value>,
    id: String,
}

impl ListSpec {
    fn column(&'static self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn names(&self, pick: impl Fn(&Column) -> bool) -> String {
        self.columns
            .iter()
            .filter(|c| pick(c))
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parse a raw query string. Keys in `extra` are the domain's own
    /// parameters and come back untouched; any other unknown key is an error.
    pub fn parse(
        &'static self,
        raw_query: &str,
        extra: &[&str],
    ) -> Result<(ListParams, BTreeMap<String, String>), FieldErrors> {
        let mut f = FieldErrors::default();
        let mut rest = BTreeMap::new();
        let mut page = None;
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        let mut sort = None;
        let mut order = None;
        let mut search = None;
        let mut filters = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
            let (key, value) = (key.into_owned(), value.into_owned());
            if !seen.insert(key.clone()) {
                f.add(&key, "is given more than once");
                continue;
            }
            match key.as_str() {
                "page" => match value.parse::<u32>() {
                    Ok(p) if (1..=1_000_000).contains(&p) => page = Some(p),
                    _ => f.add("page", "must be a whole number from 1 to 1000000"),
                },
                "limit" => match value.parse::<u32>() {
                    Ok(l) if (1..=MAX_LIMIT).contains(&l) => limit = l,
                    _ => f.add("limit", format!("must be between 1 and {MAX_LIMIT}")),
                },
                "cursor" => cursor = Some(value),
                "sort" => match self.column(&value).filter(|c| c.sort) {
                    Some(c) => sort = Some(c),
                    None => f.add(
                        "sort",
                        format!("must be one of: {}", self.names(|c| c.sort)),
                    ),
                },
                "order" => match value.as_str() {
                    "asc" => order = Some(Order::Asc),
                    "desc" => order = Some(Order::Desc),
                    _ => f.add("order", "must be asc or desc"),
                },
                "q" => {
                    if value.chars().any(char::is_control) {
                        f.add("q", "must not contain control characters");
                    } else if value.chars().count() > MAX_SEARCH {
                        f.add("q", format!("must be at most {MAX_SEARCH} characters"));
                    } else if !self.columns.iter().any(|c| c.search) {
                        f.add("q", "this list has no searchable columns");
                    } else if !value.is_empty() {
                        search = Some(value);
                    }
                }
                k if extra.contains(&k) => {
                    rest.insert(key, value);
                }
                k => match self.parse_filter(k, &value) {
                    Ok(filter) => filters.push(filter),
                    Err(msg) => f.add(k, msg),
                },
            }
        }
        let sort = sort.unwrap_or_else(|| {
            self.column(self.default_sort)
                .expect("default sort column is declared")
        });
        let order = order.unwrap_or(self.default_order);
        let start = match (cursor, page) {
            (Some(_), Some(_)) => {
                f.add("cursor", "cannot be combined with page");
                Start::Page(1)
            }
            (Some(c), None) => match decode_cursor(&c) {
                Some(b) if b.s == sort.name && b.o == order => Start::After {
                    value: b.v,
                    id: b.id,
                },
                _ => {
                    f.add(
                        "cursor",
                        "is not a cursor returned by this list with the same sort and order",
                    );
                    Start::Page(1)
                }
            },
            (None, p) => Start::Page(p.unwrap_or(1)),
        };
        if matches!(start, Start::After { .. }) && sort.nullable {
            f.add(
                "cursor",
                "cursors need a sort column without empty values; use page",
            );
        }
        f.into_fields()?;
        Ok((
            ListParams {
                start,
                limit,
                sort,
                order,
                search,
                filters,
            },
            rest,
        ))
    }

    fn parse_filter(&'static self, key: &str, value: &str) -> Result<Filter, String> {
        let (name, op) = [
            ("_in", Op::In),
            ("_gte", Op::Gte),
            ("_lte", Op::Lte),
            ("_gt", Op::Gt),
            ("_lt", Op::Lt),
        ]
        .into_iter()
        .find_map(|(suffix, op)| key.strip_suffix(suffix).map(|n| (n, op)))
        .filter(|(n, _)| self.column(n).is_some_and(|c| c.filter))
        .unwrap_or((key, Op::Eq));
        let Some(column) = self.column(name).filter(|c| c.filter) else {
            return Err(format!(
                "unknown query parameter; filters: {} (with _in, and _gt/_gte/_lt/_lte on numbers and dates)",
                self.names(|c| c.filter)
            ));
        };
        let ranged = matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte);
        if ranged && !matches!(column.kind, Kind::Integer | Kind::Timestamp) {
            return Err("range filters apply to numbers and dates only".into());
        }
        let raw: Vec<&str> = if op == Op::In {
            value.split(',').collect()
        } else {
            vec![value]
        };
        if raw.len() > MAX_IN_VALUES {
            return Err(format!("at most {MAX_IN_VALUES} values"));
        }
        let values = raw
            .into_iter()
            .map(|v| typed_value(column, v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter { column, op, values })
    }
}

fn typed_value(column: &Column, v: &str) -> Result<Value, String> {
    match column.kind {
        Kind::Text => {
            if v.chars().count() > 500 {
                Err("values must be at most 500 characters".into())
            } else if v.chars().any(char::is_control) {
                // PostgreSQL cannot even compare a text with NUL in it.
                Err("values must not contain control characters".into())
            } else {
                Ok(Value::Text(v.to_string()))
            }
        }
        Kind::Integer => v
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| "must be a whole number".to_string()),
        Kind::Timestamp => parse_timestamp_ms(v)
            .map(Value::Int)
            .ok_or_else(|| "must be an RFC 3339 timestamp or epoch milliseconds".to_string()),
        Kind::Enum(allowed) => {
            if allowed.contains(&v) {
                Ok(Value::Text(v.to_string()))
            } else {
                Err(format!("must be one of: {}", allowed.join(", ")))
            }
        }
    }
}

fn decode_cursor(c: &str) -> Option<CursorBody> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn encode_cursor(b: &CursorBody) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(b).unwrap_or_default())
}

/// SQL text plus its bound values, built with `$N` placeholders.
struct Sql {
    text: String,
    binds: Vec<Value>,
}

impl Sql {
    fn bind(&mut self, v: Value) -> String {
        self.binds.push(v);
        format!("${}", self.binds.len())
    }
}

fn collate(backend: Backend, kind: Kind) -> &'static str {
    match (backend, kind) {
        (Backend::Postgres, Kind::Text | Kind::Enum(_)) => " COLLATE \"C\"",
        _ => "",
    }
}

/// Build the one statement for a list request.
fn build(
    spec: &ListSpec,
    backend: Backend,
    scope: &TenantScope,
    fixed: &[Fixed],
    p: &ListParams,
) -> Sql {
    let mut sql = Sql {
        text: String::new(),
        binds: Vec::new(),
    };
    let mut conds = vec![format!(
        "tenant_id = {}",
        sql.bind(Value::Text(scope.tenant().to_string()))
    )];
    for fx in fixed {
        conds.push(format!("{} = {}", fx.sql, sql.bind(fx.value.clone())));
    }
    for f in &p.filters {
        if f.op == Op::In {
            let marks: Vec<String> = f.values.iter().map(|v| sql.bind(v.clone())).collect();
            conds.push(format!("{} IN ({})", f.column.sql, marks.join(", ")));
        } else {
            let mark = sql.bind(f.values[0].clone());
            conds.push(format!("{} {} {mark}", f.column.sql, f.op.sql()));
        }
    }
    if let Some(q) = &p.search {
        let pattern = format!("%{}%", escape_like(&q.to_ascii_lowercase()));
        let mark = sql.bind(Value::Text(pattern));
        let ors: Vec<String> = spec
            .columns
            .iter()
            .filter(|c| c.search)
            .map(|c| format!("LOWER({}) LIKE {mark} ESCAPE '\\'", c.sql))
            .collect();
        conds.push(format!("({})", ors.join(" OR ")));
    }
    let (s, id) = (p.sort, spec.id_column);
    let dir = p.order.sql();
    let coll = collate(backend, s.kind);
    let id_coll = collate(backend, Kind::Text);
    // Empty values last in both orders. Spelled so that an index on the
    // column serves the order: nothing to add for a column without empty
    // values, `NULLS LAST` (the same order as `(col IS NULL) ASC` first)
    // otherwise.
    let nulls = if s.nullable { " NULLS LAST" } else { "" };
    let order_by = format!(
        "ORDER BY {col}{coll} {dir}{nulls}, {id}{id_coll} {dir}",
        col = s.sql
    );
    let conds = conds.join(" AND ");
    let keyset = match &p.start {
        Start::Page(_) => None,
        Start::After {
            value,
            id: after_id,
        } => {
            let cmp = match p.order {
                Order::Asc => ">",
                Order::Desc => "<",
            };
            let idm = sql.bind(Value::Text(after_id.clone()));
            // Cursors exist only for sorts without empty values. The first
            // comparison is implied by the second; it lets an index on the
            // sort column start the range at the cursor.
            Some(match value {
                Some(v) => {
                    let vm = sql.bind(v.clone());
                    format!(
                        "{col}{coll} {cmp}= {vm}{coll} AND ({col}{coll} {cmp} {vm}{coll} OR ({col} = {vm} AND {id}{id_coll} {cmp} {idm}{id_coll}))",
                        col = s.sql
                    )
                }
                None => format!("{id}{id_coll} {cmp} {idm}{id_coll}"),
            })
        }
    };
    let limit = sql.bind(Value::Int(i64::from(p.limit)));
    let page = match p.start {
        Start::Page(page) => {
            let offset = sql.bind(Value::Int(i64::from(page - 1) * i64::from(p.limit)));
            format!("LIMIT {limit} OFFSET {offset}")
        }
        Start::After { .. } => format!("LIMIT {limit}"),
    };
    let (select, table) = (spec.select, spec.table);
    // The total. Without `q`, an uncorrelated subquery (evaluated once)
    // counts the matching rows, so the page itself stops after `limit` rows
    // read in index order. A `q` search reads every candidate row anyway
    // (no index serves a substring): then the rows are counted in that one
    // pass (`COUNT(*) OVER ()`).
    sql.text = match (p.search.is_some(), keyset) {
        (false, keyset) => format!(
            "SELECT {select}, (SELECT COUNT(*) FROM {table} WHERE {conds}) AS list_total \
             FROM {table} WHERE {conds}{} {order_by} {page}",
            keyset.map(|k| format!(" AND {k}")).unwrap_or_default()
        ),
        (true, None) => format!(
            "SELECT {select}, COUNT(*) OVER () AS list_total FROM {table} WHERE {conds} \
             {order_by} {page}"
        ),
        (true, Some(keyset)) => format!(
            "SELECT * FROM (SELECT {select}, COUNT(*) OVER () AS list_total FROM {table} \
             WHERE {conds}) AS listed WHERE {keyset} {order_by} {page}"
        ),
    };
    sql
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn read_value(row: &AnyRow, column: &Column) -> Option<Value> {
    match column.kind {
        Kind::Integer | Kind::Timestamp => row
            .try_get::<Option<i64>, _>(column.sql)
            .ok()
            .flatten()
            .map(Value::Int),
        Kind::Text | Kind::Enum(_) => row
            .try_get::<Option<String>, _>(column.sql)
            .ok()
            .flatten()
            .map(Value::Text),
    }
}

/// Run a list request: one statement, rows decoded as `T`.
pub async fn fetch<T>(
    reader: &Reader,
    backend: Backend,
    spec: &'static ListSpec,
    scope: &TenantScope,
    fixed: &[Fixed],
    p: &ListParams,
) -> StoreResult<Page<T>>
where
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let built = build(spec, backend, scope, fixed, p);
    let mut q = sqlx::query(&built.text);
    for v in built.binds {
        q = match v {
            Value::Int(i) => q.bind(i),
            Value::Text(t) => q.bind(t),
        };
    }
    let rows = q.fetch_all(&reader.0).await?;
    let total = match rows.first() {
        Some(r) => r.try_get::<i64, _>("list_total")?,
        None => 0,
    };
    let next_cursor = (rows.len() == p.limit as usize)
        .then(|| rows.last())
        .flatten()
        .and_then(|last| {
            if p.sort.nullable {
                return None;
            }
            Some(encode_cursor(&CursorBody {
                s: p.sort.name.to_string(),
                o: p.order,
                v: read_value(last, p.sort),
                id: last.try_get::<String, _>(spec.id_column).ok()?,
            }))
        });
    let items = rows
        .iter()
        .map(T::from_row)
        .collect::<Result<Vec<T>, _>>()?;
    // On a page past the end there is no row to carry the total.
    let total = if items.is_empty() && matches!(p.start, Start::Page(n) if n > 1) {
        count(reader, backend, spec, scope, fixed, p).await?
    } else {
        total
    };
    Ok(Page {
        items,
        total,
        page: match p.start {
            Start::Page(n) => Some(n),
            Start::After { .. } => None,
        },
        limit: p.limit,
        next_cursor: if p.sort.nullable { None } else { next_cursor },
    })
}

async fn count(
    reader: &Reader,
    backend: Backend,
    spec: &'static ListSpec,
    scope: &TenantScope,
    fixed: &[Fixed],
    p: &ListParams,
) -> StoreResult<i64> {
    let first = ListParams {
        start: Start::Page(1),
        limit: 1,
        ..p.clone()
    };
    let built = build(spec, backend, scope, fixed, &first);
    let mut q = sqlx::query(&built.text);
    for v in built.binds {
        q = match v {
            Value::Int(i) => q.bind(i),
            Value::Text(t) => q.bind(t),
        };
    }
    Ok(match q.fetch_optional(&reader.0).await? {
        Some(r) => r.try_get::<i64, _>("list_total")?,
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: ListSpec = ListSpec {
        table: "things",
        select: "id, tenant_id, name, size, created_at, state",
        columns: &[
            Column::new("name", "name", Kind::Text)
                .sortable()
                .filterable()
                .searchable(),
            Column::new("size", "size", Kind::Integer)
                .nullable()
                .sortable()
                .filterable(),
            Column::new("created_at", "created_at", Kind::Timestamp)
                .sortable()
                .filterable(),
            Column::new("state", "state", Kind::Enum(&["a", "b"])).filterable(),
        ],
        default_sort: "created_at",
        default_order: Order::Desc,
        id_column: "id",
    };

    #[test]
    fn parses_every_form() {
        let (p, rest) = SPEC
            .parse(
                "page=2&limit=10&sort=name&order=asc&q=x&state_in=a,b&size_gte=3&created_at_lt=2026-01-01T00:00:00Z&mine=1",
                &["mine"],
            )
            .unwrap();
        assert_eq!(p.start, Start::Page(2));
        assert_eq!(p.limit, 10);
        assert_eq!(p.sort.name, "name");
        assert_eq!(p.order, Order::Asc);
        assert_eq!(p.search.as_deref(), Some("x"));
        assert_eq!(p.filters.len(), 3);
        assert_eq!(rest.get("mine").map(String::as_str), Some("1"));
    }

    #[test]
    fn refuses_with_field_paths() {
        let e = SPEC
            .parse(
                "limit=0&sort=nope&order=up&state=c&size_gt=x&name_gt=a&bogus=1&page=1&page=2",
                &[],
            )
            .unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "limit", "sort", "order", "state", "size_gt", "name_gt", "bogus", "page",
        ] {
            assert!(fields.contains(&want), "{want} missing in {fields:?}");
        }
    }

    #[test]
    fn control_characters_are_refused_in_search_and_filters() {
        let e = SPEC.parse("q=a%00b&name=x%0Ay", &[]).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["q", "name"]);
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let (p, _) = SPEC
            .parse("name=x'%3B DROP TABLE t--&q=50%25_off", &[])
            .unwrap();
        let sql = build(&SPEC, Backend::Sqlite, &TenantScope::new("t"), &[], &p);
        assert!(!sql.text.contains("DROP"), "{}", sql.text);
        assert!(sql
            .binds
            .contains(&Value::Text("x'; DROP TABLE t--".into())));
        assert!(sql.binds.contains(&Value::Text("%50\\%\\_off%".into())));
    }

    #[test]
    fn cursor_round_trip_checks_sort() {
        let c = encode_cursor(&CursorBody {
            s: "created_at".into(),
            o: Order::Desc,
            v: Some(Value::Int(5)),
            id: "x".into(),
        });
        let (p, _) = SPEC.parse(&format!("cursor={c}"), &[]).unwrap();
        assert_eq!(
            p.start,
            Start::After {
                value: Some(Value::Int(5)),
                id: "x".into()
            }
        );
        assert!(SPEC.parse(&format!("cursor={c}&sort=name"), &[]).is_err());
        assert!(SPEC.parse(&format!("cursor={c}&page=2"), &[]).is_err());
        assert!(SPEC.parse("cursor=garbage", &[]).is_err());
    }
}

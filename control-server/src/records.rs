//! Typed records with passthrough extras: the kit the resources and
//! workspace domains share (one table per kind).
//!
//! A kind is declared once as a [`KindSpec`]: its table, its typed
//! [`Field`]s (each a real column, validated by type: text lengths, enums,
//! integer and number ranges, booleans, timestamps, `YYYY-MM-DD` dates,
//! string lists, JSON, a sealed secret) and its list specs. Everything else
//! a client sends is kept as is in the `extras` JSON column and returned
//! beside the typed fields (the original API stored whole JSON documents).
//! From the same declaration come the validation ([`parse`]), the SQL
//! ([`insert`], [`update`], [`get`], [`delete`], [`list`]), the API shape
//! ([`render`]) and the OpenAPI schemas ([`input_schema`],
//! [`output_schema`], [`list_parameters`]) — they cannot drift apart.

use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Column as _, FromRow, Row};

use crate::db::list::{self, Column, ListParams, ListSpec, Page};
use crate::db::{
    ms_to_rfc3339, Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write,
};
use crate::validate::FieldErrors;

/// Earliest / latest timestamp accepted as epoch milliseconds
/// (0001-01-01 … 9999-12-31 UTC).
pub const MIN_MS: i64 = -62_135_596_800_000;
pub const MAX_MS: i64 = 253_402_300_799_999;
/// Longest client-supplied id.
pub const MAX_ID: usize = 128;
/// Largest passthrough `extras` of a record (serialised JSON bytes), also
/// after a patch merged them (bots and finance keep the same limit).
pub const MAX_EXTRAS_BYTES: usize = 64 * 1024;
/// JSON Schema pattern of a one-line display string (see
/// [`FieldErrors::display_text`]).
pub const DISPLAY_PATTERN: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$";
/// JSON Schema pattern of multi-line text: no control characters but tab,
/// line feed and carriage return.
pub const LONG_TEXT_PATTERN: &str =
    "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";
/// JSON Schema pattern of a client-supplied id.
pub const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";
const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldType {
    /// One-line display text, at most this many characters.
    Text(usize),
    /// Multi-line text, at most this many characters.
    LongText(usize),
    Enum(&'static [&'static str]),
    /// Whole number in `min..=max`.
    Int(i64, i64),
    /// Number in `min..=max`.
    Float(f64, f64),
    /// Stored as 0/1.
    Bool,
    /// RFC 3339 or epoch ms in, RFC 3339 out, epoch ms stored.
    Timestamp,
    /// `YYYY-MM-DD` (a real calendar date).
    Date,
    /// Strings (one-line, at most `len` characters), at most `items`.
    StrList {
        items: usize,
        len: usize,
    },
    /// Any JSON object or array.
    Json,
    /// Write-only text of at most this many characters, sealed with the
    /// data key; reads show only `flag` (`has_password`).
    Secret {
        max: usize,
        flag: &'static str,
    },
}

/// How a kind's list may use a field (its column in the list kit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub sort: bool,
    pub filter: bool,
    pub search: bool,
}

impl Listed {
    /// Not a list column.
    pub const NO: Listed = Listed::new(false, false, false);
    /// Sort, filter and `q` search.
    pub const ALL: Listed = Listed::new(true, true, true);
    /// Sort and filter.
    pub const SORT_FILTER: Listed = Listed::new(true, true, false);
    /// Filter and `q` search.
    pub const FILTER_SEARCH: Listed = Listed::new(false, true, true);
    /// Filter only.
    pub const FILTER: Listed = Listed::new(false, true, false);
    /// `q` search only.
    pub const SEARCH: Listed = Listed::new(false, false, true);

    const fn new(sort: bool, filter: bool, search: bool) -> Listed {
        Listed {
            sort,
            filter,
            search,
        }
    }
}

/// One typed field: its API name, its column, its type, and how lists use
/// it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub column: &'static str,
    pub ty: FieldType,
    /// Enums with a default are never empty (null is refused).
    pub default: Option<&'static str>,
    pub list: Listed,
}

impl Field {
    pub const fn new(name: &'static str, ty: FieldType) -> Field {
        Field {
            name,
            column: name,
            ty,
            default: None,
            list: Listed::NO,
        }
    }
    pub const fn column(mut self, column: &'static str) -> Field {
        self.column = column;
        self
    }
    pub const fn default(mut self, value: &'static str) -> Field {
        self.default = Some(value);
        self
    }
    /// Lists sort, filter or search on this field (see [`list_columns`]).
    pub const fn list(mut self, how: Listed) -> Field {
        self.list = how;
        self
    }

    /// The field as a list column: named as in the API, typed after the
    /// field, nullable unless it has a default.
    const fn list_column(&self) -> Column {
        let kind = match self.ty {
            FieldType::Enum(values) => list::Kind::Enum(values),
            FieldType::Int(..) | FieldType::Bool => list::Kind::Integer,
            FieldType::Timestamp => list::Kind::Timestamp,
            FieldType::Float(..) => panic!("lists do not sort or filter on fractions"),
            FieldType::Secret { .. } => panic!("a secret is never a list column"),
            FieldType::Text(_)
            | FieldType::LongText(_)
            | FieldType::Date
            | FieldType::StrList { .. }
            | FieldType::Json => list::Kind::Text,
        };
        let mut c = Column::new(self.name, self.column, kind);
        if self.default.is_none() {
            c = c.nullable();
        }
        if self.list.sort {
            c = c.sortable();
        }
        if self.list.filter {
            c = c.filterable();
        }
        if self.list.search {
            c = c.searchable();
        }
        c
    }
}

/// A kind's list columns: `created_at`, `updated_at`, then every field
/// marked with [`Field::list`], in field order. `N` counts them all (a
/// wrong `N` fails the build).
pub const fn list_columns<const N: usize>(fields: &[Field]) -> [Column; N] {
    let mut out = [CREATED_AT; N];
    out[1] = UPDATED_AT;
    let mut n = 2;
    let mut i = 0;
    while i < fields.len() {
        let f = &fields[i];
        if f.list.sort || f.list.filter || f.list.search {
            assert!(n < N, "N is smaller than the number of list columns");
            out[n] = f.list_column();
            n += 1;
        }
        i += 1;
    }
    assert!(n == N, "N is larger than the number of list columns");
    out
}

/// One kind of record (one table).
#[derive(Debug)]
pub struct KindSpec {
    /// The kind in the path (`licenses`).
    pub kind: &'static str,
    /// Schema name stem in OpenAPI (`ResourceLicense`).
    pub schema: &'static str,
    pub table: &'static str,
    pub fields: &'static [Field],
    /// The list on SQLite and on PostgreSQL (they differ only where a
    /// column is computed with the database clock).
    pub list_sqlite: &'static ListSpec,
    pub list_postgres: &'static ListSpec,
    /// What the sealed secret is, for its associated data.
    pub secret_purpose: &'static str,
}

/// Keys a client may send that the server manages: accepted and ignored.
pub const SERVER_MANAGED: &[&str] = &["id", "created_at", "updated_at", "tenant_id"];

/// `created_at`, which every kind's list sorts and filters on.
pub const CREATED_AT: Column = Column::new("created_at", "created_at", list::Kind::Timestamp)
    .sortable()
    .filterable();
/// `updated_at`, which every kind's list sorts and filters on.
pub const UPDATED_AT: Column = Column::new("updated_at", "updated_at", list::Kind::Timestamp)
    .sortable()
    .filterable();

/// A kind's list: `select` from `table` (or a subquery), newest first,
/// ties broken by `id`.
pub const fn list_spec(
    table: &'static str,
    select: &'static str,
    columns: &'static [Column],
) -> ListSpec {
    ListSpec {
        table,
        select,
        columns,
        default_sort: "created_at",
        default_order: list::Order::Desc,
        id_column: "id",
    }
}

impl KindSpec {
    /// A kind whose list is the same on both backends and that holds no
    /// secret (see [`KindSpec::postgres_list`], [`KindSpec::secret_purpose`]).
    pub const fn new(
        kind: &'static str,
        schema: &'static str,
        table: &'static str,
        fields: &'static [Field],
        list: &'static ListSpec,
    ) -> KindSpec {
        KindSpec {
            kind,
            schema,
            table,
            fields,
            list_sqlite: list,
            list_postgres: list,
            secret_purpose: "",
        }
    }
    /// The list on PostgreSQL, where it differs from SQLite's.
    pub const fn postgres_list(mut self, list: &'static ListSpec) -> KindSpec {
        self.list_postgres = list;
        self
    }
    /// What the kind's sealed secret is (its AEAD associated data).
    pub const fn secret_purpose(mut self, purpose: &'static str) -> KindSpec {
        self.secret_purpose = purpose;
        self
    }
    pub fn list_spec(&self, backend: Backend) -> &'static ListSpec {
        match backend {
            Backend::Sqlite => self.list_sqlite,
            Backend::Postgres => self.list_postgres,
        }
    }
    fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    fn secret(&self) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| matches!(f.ty, FieldType::Secret { .. }))
    }
    fn ignored(&self, key: &str) -> bool {
        SERVER_MANAGED.contains(&key)
            || self
                .secret()
                .is_some_and(|f| matches!(f.ty, FieldType::Secret { flag, .. } if flag == key))
    }
}

/// A typed value bound to its column (typed even when NULL, so PostgreSQL
/// sees the column's type).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
}

/// A validated body.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The client's id (create only).
    pub id: Option<String>,
    pub cells: Vec<(&'static Field, Cell)>,
    /// The secret: `Some(Some(text))` set, `Some(None)` clear.
    pub secret: Option<Option<String>>,
    pub extras: Map<String, Value>,
}

/// Is `id` an id a client may choose (and that lookups accept)?
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

fn long_text(f: &mut FieldErrors, field: &str, v: &str, max: usize) {
    if v.chars().count() > max {
        f.add(field, format!("must be at most {max} characters"));
    } else if let Some(c) = v
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        f.add(
            field,
            format!(
                "must not contain control characters other than tab and line breaks (found U+{:04X})",
                c as u32
            ),
        );
    }
}

/// Parse a timestamp value: epoch ms (number) or RFC 3339 (string).
fn timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|ms| (MIN_MS..=MAX_MS).contains(ms)),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis()),
        _ => None,
    }
}

fn valid_date(s: &str) -> bool {
    s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// Validate one typed value; `None` (with an error added) when invalid.
fn cell(f: &mut FieldErrors, field: &Field, v: &Value) -> Option<Cell> {
    let name = field.name;
    if v.is_null() {
        if let (FieldType::Enum(values), Some(_)) = (field.ty, field.default) {
            f.add(name, format!("must be one of: {}", values.join(", ")));
            return None;
        }
        return Some(match field.ty {
            FieldType::Int(..) | FieldType::Bool | FieldType::Timestamp => Cell::Int(None),
            FieldType::Float(..) => Cell::Float(None),
            _ => Cell::Text(None),
        });
    }
    let before = f.0.len();
    let out = match field.ty {
        FieldType::Text(max) => match v.as_str() {
            Some(s) => {
                f.display_text(name, s, max);
                Some(Cell::Text(Some(s.to_string())))
            }
            None => {
                f.add(name, "must be a string");
                None
            }
        },
        FieldType::LongText(max) | FieldType::Secret { max, .. } => match v.as_str() {
            Some(s) => {
                if !matches!(field.ty, FieldType::Secret { .. }) {
                    long_text(f, name, s, max);
                } else if s.chars().count() > max {
                    f.add(name, format!("must be at most {max} characters"));
                }
                Some(Cell::Text(Some(s.to_string())))
            }
            None => {
                f.add(name, "must be a string");
                None
            }
        },
        FieldType::Enum(values) => match v.as_str().filter(|s| values.contains(s)) {
            Some(s) => Some(Cell::Text(Some(s.to_string()))),
            None => {
                f.add(name, format!("must be one of: {}", values.join(", ")));
                None
            }
        },
        FieldType::Int(min, max) => match v.as_i64().filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(Cell::Int(Some(n))),
            None => {
                f.add(name, format!("must be a whole number from {min} to {max}"));
                None
            }
        },
        FieldType::Float(min, max) => match v.as_f64().filter(|n| *n >= min && *n <= max) {
            Some(n) => Some(Cell::Float(Some(n))),
            None => {
                f.add(name, format!("must be a number from {min} to {max}"));
                None
            }
        },
        FieldType::Bool => match v.as_bool() {
            Some(b) => Some(Cell::Int(Some(i64::from(b)))),
            None => {
                f.add(name, "must be true or false");
                None
            }
        },
        FieldType::Timestamp => match timestamp(v) {
            Some(ms) => Some(Cell::Int(Some(ms))),
            None => {
                f.add(
                    name,
                    "must be an RFC 3339 timestamp or epoch milliseconds (years 1 to 9999)",
                );
                None
            }
        },
        FieldType::Date => match v.as_str().filter(|s| valid_date(s)) {
            Some(s) => Some(Cell::Text(Some(s.to_string()))),
            None => {
                f.add(name, "must be a date YYYY-MM-DD");
                None
            }
        },
        FieldType::StrList { items, len } => match v.as_array() {
            Some(a) if a.len() <= items => {
                for (i, x) in a.iter().enumerate() {
                    match x.as_str() {
                        Some(s) => f.display_text(&format!("{name}[{i}]"), s, len),
                        None => f.add(&format!("{name}[{i}]"), "must be a string"),
                    }
                }
                Some(Cell::Text(Some(v.to_string())))
            }
            _ => {
                f.add(name, format!("must be a list of at most {items} strings"));
                None
            }
        },
        FieldType::Json => {
            if v.is_object() || v.is_array() {
                Some(Cell::Text(Some(v.to_string())))
            } else {
                f.add(name, "must be a JSON object or array");
                None
            }
        }
    };
    (f.0.len() == before).then_some(out).flatten()
}

/// Validate a create (`creating`) or patch body against the kind: typed
/// fields by type, the rest kept as extras; server-managed keys are
/// ignored (the id is the client's choice on create only).
pub fn parse(spec: &KindSpec, body: &Value, creating: bool) -> Result<Parsed, FieldErrors> {
    let Some(obj) = body.as_object() else {
        return Err(FieldErrors::one("body", "must be a JSON object"));
    };
    if obj.is_empty() {
        return Err(FieldErrors::one("body", "must contain at least one field"));
    }
    let mut f = FieldErrors::default();
    let mut p = Parsed::default();
    for (key, v) in obj {
        if let Some(field) = spec.field(key) {
            let Some(c) = cell(&mut f, field, v) else {
                continue;
            };
            if matches!(field.ty, FieldType::Secret { .. }) {
                p.secret = Some(match c {
                    Cell::Text(t) => t,
                    _ => None,
                });
            } else {
                p.cells.push((field, c));
            }
        } else if key == "id" && creating {
            match v.as_str() {
                Some(id) if valid_id(id) => p.id = Some(id.to_string()),
                _ => f.add(
                    "id",
                    format!("must be 1-{MAX_ID} characters of A-Z a-z 0-9 . _ : - starting with a letter or digit"),
                ),
            }
        } else if spec.ignored(key) {
            continue;
        } else {
            p.extras.insert(key.clone(), v.clone());
        }
    }
    check_extras(&mut f, &p.extras);
    f.into_fields()?;
    Ok(p)
}

/// Passthrough fields are at most [`MAX_EXTRAS_BYTES`] of JSON (`body`
/// names them in `details.fields`).
pub fn check_extras(f: &mut FieldErrors, extras: &Map<String, Value>) {
    if extras_too_large(extras) {
        f.add(
            "body",
            format!("additional fields must be at most {MAX_EXTRAS_BYTES} bytes of JSON"),
        );
    }
}

/// Are these passthrough fields over [`MAX_EXTRAS_BYTES`]?
pub fn extras_too_large(extras: &Map<String, Value>) -> bool {
    serde_json::to_vec(extras).map_or(0, |v| v.len()) > MAX_EXTRAS_BYTES
}

/// A row as read: column name → value.
#[derive(Debug, Clone, Default)]
pub struct DbRecord(pub std::collections::BTreeMap<String, Cell>);

impl DbRecord {
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.0.get(column) {
            Some(Cell::Text(Some(s))) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, column: &str) -> Option<i64> {
        match self.0.get(column) {
            Some(Cell::Int(Some(n))) => Some(*n),
            Some(Cell::Float(Some(x))) => Some(*x as i64),
            _ => None,
        }
    }
    fn float(&self, column: &str) -> Option<f64> {
        match self.0.get(column) {
            Some(Cell::Float(Some(x))) => Some(*x),
            Some(Cell::Int(Some(n))) => Some(*n as f64),
            _ => None,
        }
    }
    pub fn id(&self) -> &str {
        self.text("id").unwrap_or_default()
    }
}

impl<'r> FromRow<'r, AnyRow> for DbRecord {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let mut out = std::collections::BTreeMap::new();
        for (i, c) in row.columns().iter().enumerate() {
            let v = if let Ok(n) = row.try_get::<Option<i64>, _>(i) {
                Cell::Int(n)
            } else if let Ok(x) = row.try_get::<Option<f64>, _>(i) {
                Cell::Float(x)
            } else {
                Cell::Text(row.try_get::<Option<String>, _>(i)?)
            };
            out.insert(c.name().to_string(), v);
        }
        Ok(DbRecord(out))
    }
}

/// The API view: extras, then every typed field (null when unset; the
/// secret only as its flag), then `id`, `created_at`, `updated_at`.
pub fn render(spec: &KindSpec, rec: &DbRecord) -> Value {
    let mut out = rec
        .text("extras")
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .unwrap_or_default();
    for field in spec.fields {
        let c = field.column;
        let v = match field.ty {
            FieldType::Secret { flag, .. } => {
                out.insert(flag.into(), Value::Bool(rec.int("has_secret") == Some(1)));
                continue;
            }
            FieldType::Text(_) | FieldType::LongText(_) | FieldType::Enum(_) | FieldType::Date => {
                rec.text(c).map(|s| Value::String(s.into()))
            }
            FieldType::Int(..) => rec.int(c).map(Value::from),
            FieldType::Float(..) => rec.float(c).map(Value::from),
            FieldType::Bool => rec.int(c).map(|n| Value::Bool(n != 0)),
            FieldType::Timestamp => rec.int(c).map(|ms| Value::String(ms_to_rfc3339(ms))),
            FieldType::StrList { .. } | FieldType::Json => {
                rec.text(c).and_then(|t| serde_json::from_str(t).ok())
            }
        };
        out.insert(field.name.into(), v.unwrap_or(Value::Null));
    }
    out.insert("id".into(), Value::String(rec.id().to_string()));
    for t in ["created_at", "updated_at"] {
        out.insert(
            t.into(),
            Value::String(ms_to_rfc3339(rec.int(t).unwrap_or_default())),
        );
    }
    Value::Object(out)
}

// ---------------------------------------------------------------- SQL

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    c: &Cell,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match c.clone() {
        Cell::Text(t) => q.bind(t),
        Cell::Int(n) => q.bind(n),
        Cell::Float(Some(x)) => q.bind(x),
        Cell::Float(None) => q.bind(crate::db::NULL_DOUBLE),
    }
}

/// The column of the sealed secret.
pub const SECRET_COLUMN: &str = "secret_sealed";

/// Insert a new record. A taken id is `StoreError::Conflict`.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    mut w: impl Write,
    spec: &KindSpec,
    scope: &TenantScope,
    id: &str,
    p: &Parsed,
    sealed: Option<String>,
    now: i64,
) -> StoreResult<()> {
    let mut cells: Vec<(&str, Cell)> = vec![
        ("id", Cell::Text(Some(id.into()))),
        ("tenant_id", Cell::Text(Some(scope.tenant().into()))),
    ];
    for field in spec.fields {
        if matches!(field.ty, FieldType::Secret { .. }) {
            continue;
        }
        let given = p.cells.iter().find(|(f, _)| f.name == field.name);
        let c = match (given, field.default) {
            (Some((_, c)), _) => c.clone(),
            (None, Some(d)) => Cell::Text(Some(d.into())),
            (None, None) => match field.ty {
                FieldType::Int(..) | FieldType::Bool | FieldType::Timestamp => Cell::Int(None),
                FieldType::Float(..) => Cell::Float(None),
                _ => Cell::Text(None),
            },
        };
        cells.push((field.column, c));
    }
    cells.push((
        "extras",
        Cell::Text(Some(Value::Object(p.extras.clone()).to_string())),
    ));
    if spec.secret().is_some() {
        cells.push((SECRET_COLUMN, Cell::Text(sealed)));
    }
    cells.push(("created_at", Cell::Int(Some(now))));
    cells.push(("updated_at", Cell::Int(Some(now))));
    let names: Vec<&str> = cells.iter().map(|(n, _)| *n).collect();
    let marks: Vec<String> = (1..=cells.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        spec.table,
        names.join(", "),
        marks.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for (_, c) in &cells {
        q = bind(q, c);
    }
    q.execute(w.exec())
        .await
        .map_err(|e| StoreError::unique_or(e, format!("a record with id `{id}` already exists")))?;
    Ok(())
}

/// Apply a patch: the given typed columns, the merged extras, the secret
/// when given (`Some(None)` clears it). `false` when the row is gone.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    mut w: impl Write,
    spec: &KindSpec,
    scope: &TenantScope,
    id: &str,
    p: &Parsed,
    extras: &Map<String, Value>,
    sealed: Option<Option<String>>,
    now: i64,
) -> StoreResult<bool> {
    let mut sets: Vec<(&str, Cell)> = p.cells.iter().map(|(f, c)| (f.column, c.clone())).collect();
    sets.push((
        "extras",
        Cell::Text(Some(Value::Object(extras.clone()).to_string())),
    ));
    if let Some(s) = sealed {
        sets.push((SECRET_COLUMN, Cell::Text(s)));
    }
    sets.push(("updated_at", Cell::Int(Some(now))));
    let assigns: Vec<String> = sets
        .iter()
        .enumerate()
        .map(|(i, (n, _))| format!("{n} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE tenant_id = ${} AND id = ${}",
        spec.table,
        assigns.join(", "),
        sets.len() + 1,
        sets.len() + 2
    );
    let mut q = sqlx::query(&sql);
    for (_, c) in &sets {
        q = bind(q, c);
    }
    Ok(q.bind(scope.tenant())
        .bind(id)
        .execute(w.exec())
        .await?
        .rows_affected()
        == 1)
}

/// One record as the list shows it.
pub async fn get(
    mut r: impl Read,
    backend: Backend,
    spec: &KindSpec,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<Option<DbRecord>> {
    let l = spec.list_spec(backend);
    let sql = format!(
        "SELECT {} FROM {} WHERE tenant_id = $1 AND id = $2",
        l.select, l.table
    );
    Ok(sqlx::query_as::<_, DbRecord>(&sql)
        .bind(scope.tenant())
        .bind(id)
        .fetch_optional(r.exec())
        .await?)
}

/// The sealed secret of a record: `None` when there is no such record,
/// `Some(None)` when it has none.
pub async fn sealed_secret(
    mut r: impl Read,
    spec: &KindSpec,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<Option<Option<String>>> {
    let sql = format!(
        "SELECT {SECRET_COLUMN} FROM {} WHERE tenant_id = $1 AND id = $2",
        spec.table
    );
    let row = sqlx::query(&sql)
        .bind(scope.tenant())
        .bind(id)
        .fetch_optional(r.exec())
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get::<Option<String>, _>(0)?),
        None => None,
    })
}

/// Take the row's write lock for a read-modify-write (PostgreSQL row
/// lock; SQLite's single writer already serializes); `false` when absent.
pub async fn lock(
    w: impl Write,
    spec: &KindSpec,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    let head = format!("UPDATE {} SET updated_at = updated_at", spec.table);
    one_row(w, &head, scope, id).await
}

/// Delete a record; `false` when there was none.
pub async fn delete(
    w: impl Write,
    spec: &KindSpec,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    one_row(w, &format!("DELETE FROM {}", spec.table), scope, id).await
}

/// Run `head` on the record `id` of the tenant; did it touch the row?
async fn one_row(
    mut w: impl Write,
    head: &str,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    let sql = format!("{head} WHERE tenant_id = $1 AND id = $2");
    Ok(sqlx::query(&sql)
        .bind(scope.tenant())
        .bind(id)
        .execute(w.exec())
        .await?
        .rows_affected()
        == 1)
}

/// One page of a kind's list (the list kit: one statement).
pub async fn list(
    reader: &Reader,
    backend: Backend,
    spec: &KindSpec,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<DbRecord>> {
    list::fetch(reader, backend, spec.list_spec(backend), scope, &[], params).await
}

/// Parse a list query for a kind. Values with NUL are refused up front
/// (PostgreSQL text cannot hold them).
pub fn parse_list_query(
    spec: &KindSpec,
    backend: Backend,
    raw: &str,
) -> Result<ListParams, FieldErrors> {
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if v.contains('\0') || k.contains('\0') {
            return Err(FieldErrors::one(&k, "must not contain NUL characters"));
        }
    }
    Ok(spec.list_spec(backend).parse(raw, &[])?.0)
}

// ---------------------------------------------------------------- OpenAPI

fn nullable(mut schema: Value) -> Value {
    if let Some(t) = schema.get("type").cloned() {
        schema["type"] = match t {
            Value::Array(mut types) => {
                types.push(json!("null"));
                Value::Array(types)
            }
            t => json!([t, "null"]),
        };
        if let Some(e) = schema.get_mut("enum").and_then(Value::as_array_mut) {
            e.push(Value::Null);
        }
        schema
    } else {
        json!({"oneOf": [schema, {"type": "null"}]})
    }
}

/// The JSON Schema of one typed field as input.
fn field_input_schema(field: &Field) -> Value {
    let s = match field.ty {
        FieldType::Text(max) => {
            json!({"type": "string", "maxLength": max, "pattern": DISPLAY_PATTERN})
        }
        FieldType::LongText(max) => {
            json!({"type": "string", "maxLength": max, "pattern": LONG_TEXT_PATTERN})
        }
        FieldType::Secret { max, .. } => json!({"type": "string", "maxLength": max,
            "description": "Write-only: stored encrypted, never returned in reads (see `has_password`)"}),
        FieldType::Enum(values) => json!({"type": "string", "enum": values}),
        FieldType::Int(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
        FieldType::Float(min, max) => json!({"type": "number", "minimum": min, "maximum": max}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Timestamp => json!({"oneOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "minimum": MIN_MS, "maximum": MAX_MS, "description": "epoch milliseconds"},
        ]}),
        FieldType::Date => json!({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
        FieldType::StrList { items, len } => json!({"type": "array", "maxItems": items,
            "items": {"type": "string", "maxLength": len, "pattern": DISPLAY_PATTERN}}),
        FieldType::Json => json!({"type": ["object", "array"]}),
    };
    if field.default.is_some() {
        s
    } else {
        nullable(s)
    }
}

/// The body of a create (`creating`: may carry the client's `id`) or of a
/// patch: the typed fields, anything else passes through; at least one key.
pub fn input_schema(spec: &KindSpec, creating: bool) -> Value {
    let mut props = Map::new();
    if creating {
        props.insert(
            "id".into(),
            json!({"type": "string", "pattern": ID_PATTERN, "description": "Client-chosen id (default: a new UUIDv7)"}),
        );
    }
    for f in spec.fields {
        props.insert(f.name.into(), field_input_schema(f));
    }
    json!({
        "type": "object",
        "description": "Typed fields are validated; any other key is kept as is and returned (at most 64 KiB of JSON for them all; `created_at`, `updated_at`, `tenant_id`, `id` on updates are ignored).",
        "properties": props,
        "additionalProperties": true,
        "minProperties": 1,
    })
}

/// The record as the API returns it.
pub fn output_schema(spec: &KindSpec) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "string"}));
    for f in spec.fields {
        let s = match f.ty {
            FieldType::Secret { flag, .. } => {
                props.insert(
                    flag.into(),
                    json!({"type": "boolean", "description": "A password is stored (read it with the admin-only password endpoint)"}),
                );
                continue;
            }
            FieldType::Timestamp => nullable(json!({"type": "string", "format": "date-time"})),
            FieldType::Text(_) | FieldType::LongText(_) | FieldType::Date => {
                nullable(json!({"type": "string"}))
            }
            _ => field_input_schema(f),
        };
        props.insert(f.name.into(), s);
    }
    for t in ["created_at", "updated_at"] {
        props.insert(t.into(), json!({"type": "string", "format": "date-time"}));
    }
    let mut required = vec!["id", "created_at", "updated_at"];
    required.extend(spec.fields.iter().map(|f| match f.ty {
        FieldType::Secret { flag, .. } => flag,
        _ => f.name,
    }));
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": true,
    })
}

/// The query parameters of a kind's list, exactly as the list kit checks
/// them (filters are described in the operation's text).
pub fn list_parameters(l: &ListSpec) -> Vec<Value> {
    let sorts: Vec<&str> = l
        .columns
        .iter()
        .filter(|c| c.sort)
        .map(|c| c.name)
        .collect();
    let q = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    vec![
        q(
            "page",
            json!({"type": "integer", "minimum": 1, "maximum": 1_000_000}),
            "Page number (default 1); not with `cursor`",
        ),
        q(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": list::MAX_LIMIT}),
            "Page size (default 50)",
        ),
        q(
            "sort",
            json!({"type": "string", "enum": sorts}),
            "Sort column",
        ),
        q(
            "order",
            json!({"type": "string", "enum": ["asc", "desc"]}),
            "Sort order",
        ),
        q(
            "q",
            json!({"type": "string", "maxLength": list::MAX_SEARCH, "pattern": "^[^\\u0000]*$"}),
            "Case-insensitive substring search over the searchable columns",
        ),
    ]
}

/// The columns of a list, for an operation's description.
pub fn list_description(l: &ListSpec) -> String {
    let names = |pick: fn(&list::Column) -> bool| {
        l.columns
            .iter()
            .filter(|c| pick(c))
            .map(|c| format!("`{}`", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "List kit (see docs/api.md, Lists): sort on {}; filter on {} (`<col>=v`, `<col>_in=a,b`, and `_gt/_gte/_lt/_lte` on numbers and dates); `q` searches {}. Default: newest first. `cursor` paging with `meta.next_cursor` when the sort column has no empty values.",
        names(|c| c.sort),
        names(|c| c.filter),
        names(|c| c.search),
    )
}

/// How a domain exposes its kinds, for [`openapi_document`].
pub struct ApiShape<'a> {
    /// `/api/v1/resources`
    pub base: &'a str,
    pub tag: &'a str,
    pub kinds: &'a [&'static KindSpec],
    /// PUT is an alias of PATCH.
    pub put: bool,
    pub not_found_code: &'a str,
    pub invalid_kind_code: &'a str,
    /// A create or update body fails validation (`details.fields`).
    pub invalid_body_code: &'a str,
    /// A list query parameter is refused (`details.fields`).
    pub invalid_list_query_code: &'a str,
}

fn error_ref(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}})
}

fn envelope(data: Value, meta: bool) -> Value {
    let mut props = json!({"success": {"type": "boolean"}, "data": data});
    let mut required = vec!["success", "data"];
    if meta {
        props["meta"] = json!({"type": "object", "required": ["total", "page", "limit", "count", "next_cursor"],
            "properties": {
                "total": {"type": "integer"}, "page": {"type": ["integer", "null"]},
                "limit": {"type": "integer"}, "count": {"type": "integer"},
                "next_cursor": {"type": ["string", "null"]}}});
        required.push("meta");
    }
    json!({"description": "OK", "content": {"application/json": {"schema":
        {"type": "object", "required": required, "properties": props}}}})
}

/// The OpenAPI paths and schemas of a domain's kinds, one literal path per
/// kind (so each states its own fields and sort columns exactly).
pub fn openapi_document(shape: &ApiShape<'_>, extra_paths: Map<String, Value>) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let security = json!([{"bearer": []}]);
    for spec in shape.kinds {
        let k = spec.kind;
        let s = spec.schema;
        let item_ref = json!({"$ref": format!("#/components/schemas/{s}")});
        schemas.insert(s.into(), output_schema(spec));
        schemas.insert(format!("{s}Create"), input_schema(spec, true));
        schemas.insert(format!("{s}Patch"), input_schema(spec, false));
        let other_kinds = format!(
            "Any other `{{kind}}` than {} answers 400 `{}`.",
            shape
                .kinds
                .iter()
                .map(|x| format!("`{}`", x.kind))
                .collect::<Vec<_>>()
                .join(", "),
            shape.invalid_kind_code
        );
        let l = spec.list_sqlite;
        let body = |schema: String| json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        let not_found = error_ref(&format!(
            "{}: no such {k} in the caller's tenant",
            shape.not_found_code
        ));
        let invalid_body = error_ref(&format!(
            "{}: the body is invalid (`details.fields` names each field; extras at most {MAX_EXTRAS_BYTES} bytes of JSON), MALFORMED_JSON; {}: unknown kind",
            shape.invalid_body_code, shape.invalid_kind_code
        ));
        paths.insert(
            format!("{}/{k}", shape.base),
            json!({
                "get": {
                    "tags": [shape.tag], "operationId": format!("list_{}_{k}", shape.tag),
                    "summary": format!("List {k} (viewer+)"),
                    "description": format!("{} {other_kinds}", list_description(l)),
                    "security": security, "parameters": list_parameters(l),
                    "responses": {
                        "200": envelope(json!({"type": "array", "items": item_ref}), true),
                        "400": error_ref(&format!("{}: a query parameter is refused (`details.fields` names it); {}: unknown kind", shape.invalid_list_query_code, shape.invalid_kind_code)),
                    }
                },
                "post": {
                    "tags": [shape.tag], "operationId": format!("create_{}_{k}", shape.tag),
                    "summary": format!("Create one of {k} (operator+)"),
                    "description": format!("Typed fields are validated (`details.fields` names each); other keys pass through. The id is the client's `id` or a new UUIDv7. {other_kinds}"),
                    "security": security, "requestBody": body(format!("{s}Create")),
                    "responses": {
                        "201": {"description": "Created", "content": envelope(item_ref.clone(), false)["content"].clone()},
                        "400": invalid_body.clone(),
                        "409": error_ref("CONFLICT: the client's `id` is taken in this tenant"),
                    }
                }
            }),
        );
        let id_param =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
        let patch = json!({
            "tags": [shape.tag], "operationId": format!("update_{}_{k}", shape.tag),
            "summary": format!("Update one of {k}: shallow merge (operator+)"),
            "description": format!("Given typed fields replace the stored ones (null clears), given extra keys replace or add theirs, everything else stays. {other_kinds}"),
            "security": security, "parameters": id_param, "requestBody": body(format!("{s}Patch")),
            "responses": {"200": envelope(item_ref.clone(), false), "400": invalid_body, "404": not_found}
        });
        let mut item = json!({
            "get": {
                "tags": [shape.tag], "operationId": format!("get_{}_{k}", shape.tag),
                "summary": format!("Read one of {k} (viewer+)"),
                "description": other_kinds,
                "security": security, "parameters": id_param,
                "responses": {"200": envelope(item_ref.clone(), false), "404": not_found}
            },
            "patch": patch,
            "delete": {
                "tags": [shape.tag], "operationId": format!("delete_{}_{k}", shape.tag),
                "summary": format!("Delete one of {k} (operator+)"),
                "description": other_kinds,
                "security": security, "parameters": id_param,
                "responses": {
                    "200": envelope(json!({"type": "object", "required": ["id", "deleted"],
                        "properties": {"id": {"type": "string"}, "deleted": {"type": "boolean", "enum": [true]}}}), false),
                    "404": not_found
                }
            }
        });
        if shape.put {
            let mut put = item["patch"].clone();
            put["operationId"] = json!(format!("put_{}_{k}", shape.tag));
            put["summary"] = json!(format!(
                "Update one of {k} (alias of PATCH, as the original API)"
            ));
            item["put"] = put;
        }
        paths.insert(format!("{}/{k}/{{id}}", shape.base), item);
    }
    paths.extend(extra_paths);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "", "version": ""},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// [`openapi_document`] as utoipa's type (for `OpenApiRouter::with_openapi`).
pub fn openapi(doc: Value) -> utoipa::openapi::OpenApi {
    serde_json::from_value(doc).expect("the records kit builds a valid OpenAPI document")
}

/// An error response documented by reference (for extra paths).
pub fn error_response(description: &str) -> Value {
    error_ref(description)
}

/// A success envelope around `data` (for extra paths).
pub fn ok_response(data: Value) -> Value {
    envelope(data, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    static F: &[Field] = &[
        Field::new("name", FieldType::Text(10)),
        Field::new("status", FieldType::Enum(&["a", "b"])).default("a"),
        Field::new("port", FieldType::Int(1, 65535)),
        Field::new("when", FieldType::Timestamp).column("when_at"),
        Field::new("day", FieldType::Date),
        Field::new("tags", FieldType::StrList { items: 2, len: 5 }),
        Field::new(
            "password",
            FieldType::Secret {
                max: 10,
                flag: "has_password",
            },
        ),
    ];
    static L: ListSpec = ListSpec {
        table: "t",
        select: "id",
        columns: &[],
        default_sort: "created_at",
        default_order: list::Order::Desc,
        id_column: "id",
    };
    static SPEC: KindSpec = KindSpec {
        kind: "things",
        schema: "Thing",
        table: "t",
        fields: F,
        list_sqlite: &L,
        list_postgres: &L,
        secret_purpose: "test",
    };

    #[test]
    fn parses_typed_fields_and_keeps_extras() {
        let p = parse(
            &SPEC,
            &json!({"id": "x-1", "name": "n", "port": 80, "when": "2026-01-01T00:00:00Z",
                    "day": "2026-02-28", "tags": ["a"], "password": "pw", "has_password": false,
                    "created_at": 5, "extra": {"deep": [1]}}),
            true,
        )
        .unwrap();
        assert_eq!(p.id.as_deref(), Some("x-1"));
        assert_eq!(p.cells.len(), 5);
        assert_eq!(p.secret, Some(Some("pw".into())));
        assert_eq!(p.extras.len(), 1);
        assert_eq!(p.extras["extra"], json!({"deep": [1]}));
    }

    #[test]
    fn refuses_each_rule_with_its_path() {
        let e = parse(
            &SPEC,
            &json!({"id": "-bad", "name": "a\u{0}", "status": null, "port": 0, "when": "yesterday",
                    "day": "2026-02-30", "tags": ["toolong"], "password": "x".repeat(11)}),
            true,
        )
        .unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "id", "name", "status", "port", "when", "day", "tags[0]", "password",
        ] {
            assert!(fields.contains(&want), "{want} missing: {fields:?}");
        }
        assert!(parse(&SPEC, &json!({}), true).is_err());
        assert!(parse(&SPEC, &json!([1]), true).is_err());
    }

    #[test]
    fn list_columns_follow_the_fields() {
        static FIELDS: &[Field] = &[
            Field::new("name", FieldType::Text(10)).list(Listed::ALL),
            Field::new("status", FieldType::Enum(&["a", "b"]))
                .default("a")
                .list(Listed::SORT_FILTER),
            Field::new("hidden", FieldType::Text(10)),
            Field::new("when", FieldType::Timestamp)
                .column("when_at")
                .list(Listed::FILTER),
            Field::new("on", FieldType::Bool).list(Listed::SEARCH),
        ];
        static COLUMNS: [Column; 6] = list_columns(FIELDS);
        let got: Vec<_> = COLUMNS
            .iter()
            .map(|c| {
                (
                    c.name, c.sql, c.kind, c.nullable, c.sort, c.filter, c.search,
                )
            })
            .collect();
        use list::Kind as K;
        assert_eq!(
            got,
            [
                (
                    "created_at",
                    "created_at",
                    K::Timestamp,
                    false,
                    true,
                    true,
                    false
                ),
                (
                    "updated_at",
                    "updated_at",
                    K::Timestamp,
                    false,
                    true,
                    true,
                    false
                ),
                ("name", "name", K::Text, true, true, true, true),
                (
                    "status",
                    "status",
                    K::Enum(&["a", "b"]),
                    false,
                    true,
                    true,
                    false
                ),
                ("when", "when_at", K::Timestamp, true, false, true, false),
                ("on", "on", K::Integer, true, false, false, true),
            ]
        );
    }

    #[test]
    fn ids() {
        for ok in [
            "a",
            "0190f0c2-aaaa-7bbb-8ccc-000000000000",
            "licenses-lx2k3-ab12cd",
            "a.b:c_d",
        ] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "a/b", "a b", &"x".repeat(129), "é"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}

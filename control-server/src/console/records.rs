//! Resources (licenses, proxies, subscriptions) and workspace (notes, calendar, kanban): generic list, detail and form per kind, the kanban board and the calendar month.
//!
//! Everything is driven by the kinds' declarations (`crate::records::KindSpec`):
//! the list columns are the kind's typed list fields, the filters its enum
//! (and yes/no) list columns, the forms one control per typed field. Pages
//! read through the domain's `RecordsService`; every change is a form that
//! `console.js` sends to `/api/v1/{resources|workspace}/{kind}[/{id}]`.
//!
//! * `/console/{family}/{kind}`: the list (list kit in the URL) and the
//!   create dialog; for `workspace/kanban` the board and for
//!   `workspace/calendar` the month (`?month=YYYY-MM`), with `?view=list`
//!   for their plain lists.
//! * `/console/{family}/{kind}/{id}`: properties, extras, edit and delete.
//!
//! A proxy's password is never read by a page: the pages show
//! `has_password`; admins get a link to the API's own
//! `GET /api/v1/resources/proxies/{id}/password`.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, NaiveDate};
use serde_json::Value;

use super::pages::{any_of, param, url, with_param, PageResult};
use super::views::{capitalize, pretty, when, Choice, Layout, Pager};
use super::{render, ConsoleError, ConsoleUser};
use crate::db::list::{ListParams, Page};
use crate::db::Backend;
use crate::domains::records_kit::routes::api_error;
use crate::domains::records_kit::{RecordError, RecordsDomain};
use crate::domains::resources::Resources;
use crate::domains::workspace::Workspace;
use crate::http::error::ApiError;
use crate::records::{self, Field, FieldType, KindSpec};
use crate::state::AppState;
use crate::validate::FieldErrors;

/// This area's console routes (merged by [`super::routes`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/resources/{kind}", get(resources_list))
        .route("/console/resources/{kind}/{id}", get(resources_item))
        .route("/console/workspace/{kind}", get(workspace_list))
        .route("/console/workspace/{kind}/{id}", get(workspace_item))
}

// ---------------------------------------------------------------- handlers

/// `GET /console/resources/{kind}`.
pub async fn resources_list(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> PageResult {
    list_page::<Resources>(&state, &user, &kind, &q.unwrap_or_default()).await
}

/// `GET /console/resources/{kind}/{id}`.
pub async fn resources_item(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path((kind, id)): Path<(String, String)>,
) -> PageResult {
    item_page::<Resources>(&state, &user, &kind, id).await
}

/// `GET /console/workspace/{kind}`: kanban is a board and calendar a month
/// unless `view=list`.
pub async fn workspace_list(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let as_list = param(&raw, "view") == "list";
    match kind.as_str() {
        "kanban" if !as_list => board_page(&state, &user).await,
        "calendar" if !as_list => month_page(&state, &user, &raw).await,
        _ => list_page::<Workspace>(&state, &user, &kind, &raw).await,
    }
}

/// `GET /console/workspace/{kind}/{id}`.
pub async fn workspace_item(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path((kind, id)): Path<(String, String)>,
) -> PageResult {
    item_page::<Workspace>(&state, &user, &kind, id).await
}

// ---------------------------------------------------------------- kinds

/// A records-kit error as the domain's API answers it.
fn rec_err<D: RecordsDomain>(e: RecordError) -> ConsoleError {
    ConsoleError(api_error::<D>(e))
}

/// The kind named in the path (unknown: the domain's `…_INVALID_KIND`).
fn kind_of<D: RecordsDomain>(kind: &str) -> Result<&'static KindSpec, ConsoleError> {
    D::api().kind(kind).map_err(rec_err::<D>)
}

/// `(Title, plural noun, singular noun)` of a kind.
fn nouns(kind: &str) -> (&'static str, &'static str, &'static str) {
    match kind {
        "licenses" => ("Licenses", "licenses", "license"),
        "proxies" => ("Proxies", "proxies", "proxy"),
        "subscriptions" => ("Subscriptions", "subscriptions", "subscription"),
        "notes" => ("Notes", "notes", "note"),
        "calendar" => ("Calendar", "events", "event"),
        "kanban" => ("Kanban", "tasks", "task"),
        _ => ("Records", "records", "record"),
    }
}

/// A field's label: `expires_at` → `Expires at`, `ip` → `IP`.
fn label(name: &str) -> String {
    match name {
        "ip" => "IP".into(),
        "isp" => "ISP".into(),
        "vpn" => "VPN".into(),
        "key" => "License key".into(),
        "date" => "Date".into(),
        "order" => "Order (position)".into(),
        n => capitalize(&n.replace('_', " ")),
    }
}

/// One link of the family's kinds.
pub struct Tab {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// What every page of a kind shows about it.
pub struct KindView {
    pub kind: &'static str,
    pub title: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    /// `a` / `an` before the singular.
    pub article: &'static str,
    /// `Resources` / `Workspace`.
    pub family: String,
    /// `/console/resources/proxies`.
    pub list_url: String,
    /// `/api/v1/resources/proxies`.
    pub api_url: String,
    /// The family's kinds, this one current.
    pub tabs: Vec<Tab>,
}

fn kind_view<D: RecordsDomain>(spec: &'static KindSpec) -> KindView {
    let shape = &D::api().shape;
    let console = format!("/console/{}", shape.tag);
    let (title, plural, singular) = nouns(spec.kind);
    KindView {
        kind: spec.kind,
        title,
        plural,
        singular,
        article: if singular.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        },
        family: capitalize(shape.tag),
        list_url: format!("{console}/{}", spec.kind),
        api_url: format!("{}/{}", shape.base, spec.kind),
        tabs: shape
            .kinds
            .iter()
            .map(|k| Tab {
                href: format!("{console}/{}", k.kind),
                label: nouns(k.kind).0,
                current: k.kind == spec.kind,
            })
            .collect(),
    }
}

fn layout<D: RecordsDomain>(user: &ConsoleUser, title: String) -> Layout {
    // `resources` / `workspace`: the nav keys of base.html
    let nav = match D::api().shape.tag {
        "resources" => "resources",
        "workspace" => "workspace",
        _ => "",
    };
    user.layout(nav, title)
}

/// The field that names a record in lists and titles.
fn name_field(spec: &KindSpec) -> Option<&'static Field> {
    ["title", "key", "account_email", "ip"]
        .iter()
        .find_map(|n| spec.fields.iter().find(|f| f.name == *n))
}

/// A record's display name: its name field, else its id.
fn display_name(spec: &KindSpec, v: &Value) -> String {
    name_field(spec)
        .and_then(|f| v.get(f.name))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(String::from)
        .unwrap_or_else(|| id_of(v))
}

fn id_of(v: &Value) -> String {
    v.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A typed value as text (`—` when unset).
fn show(field: &Field, v: Option<&Value>) -> String {
    let v = match v {
        None | Some(Value::Null) => return "—".into(),
        Some(v) => v,
    };
    match (field.ty, v) {
        (FieldType::Timestamp, Value::String(s)) => when(s),
        (FieldType::Bool, Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        (FieldType::Enum(_), Value::String(s)) => s.replace('_', " "),
        (FieldType::StrList { .. }, Value::Array(a)) => {
            if a.is_empty() {
                "—".into()
            } else {
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// The kind's secret field and its flag (`password`, `has_password`).
fn secret_of(spec: &KindSpec) -> Option<(&'static str, &'static str)> {
    spec.fields.iter().find_map(|f| match f.ty {
        FieldType::Secret { flag, .. } => Some((f.name, flag)),
        _ => None,
    })
}

/// The list kit's parameters from a page's query: empty values mean
/// "any", the page's own keys (`view`, `month`) are not the list's.
fn list_query<D: RecordsDomain>(
    spec: &'static KindSpec,
    backend: Backend,
    raw: &str,
) -> Result<ListParams, ConsoleError> {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, v)| !v.is_empty() && k != "view" && k != "month")
    {
        kept.append_pair(&k, &v);
    }
    records::parse_list_query(spec, backend, &kept.finish()).map_err(list_error::<D>)
}

fn list_error<D: RecordsDomain>(f: FieldErrors) -> ConsoleError {
    ConsoleError(ApiError::validation(f).recode_validation(D::api().shape.invalid_list_query_code))
}

async fn fetch<D: RecordsDomain>(
    state: &AppState,
    user: &ConsoleUser,
    spec: &'static KindSpec,
    params: &ListParams,
) -> Result<Page<Value>, ConsoleError> {
    D::service(state)
        .list(&user.identity, spec, params)
        .await
        .map_err(|e| {
            ConsoleError(
                api_error::<D>(e).recode_validation(D::api().shape.invalid_list_query_code),
            )
        })
}

// ---------------------------------------------------------------- forms

/// One form control, built from a typed field.
pub struct Control {
    pub id: String,
    pub name: &'static str,
    pub label: String,
    /// `input`, `textarea` or `select`.
    pub widget: &'static str,
    pub input_type: &'static str,
    /// console.js `data-type` (empty: sent as text when not empty).
    pub data_type: &'static str,
    pub value: String,
    pub options: Vec<Choice>,
    pub maxlength: usize,
    pub min: String,
    pub max: String,
    pub step: &'static str,
    pub placeholder: &'static str,
    pub autocomplete: &'static str,
    pub hint: String,
}

fn choice(value: &str, label: &str, selected: bool) -> Choice {
    Choice {
        value: value.into(),
        label: label.into(),
        selected,
    }
}

/// The controls of a create form (`current` None) or of an edit form.
fn controls(spec: &KindSpec, current: Option<&Value>, prefix: &str) -> Vec<Control> {
    spec.fields
        .iter()
        .map(|f| {
            control(
                f,
                current.map(|v| v.get(f.name).unwrap_or(&Value::Null)),
                prefix,
            )
        })
        .collect()
}

fn control(f: &'static Field, cur: Option<&Value>, prefix: &str) -> Control {
    let editing = cur.is_some();
    let cur = cur.unwrap_or(&Value::Null);
    let text = match cur {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut c = Control {
        id: format!("{prefix}{}", f.name),
        name: f.name,
        label: label(f.name),
        widget: "input",
        input_type: "text",
        data_type: "",
        value: String::new(),
        options: Vec::new(),
        maxlength: 0,
        min: String::new(),
        max: String::new(),
        step: "",
        placeholder: "",
        autocomplete: "",
        hint: String::new(),
    };
    match f.ty {
        FieldType::Text(max) => {
            c.maxlength = max;
            c.value = text;
        }
        FieldType::LongText(max) => {
            c.widget = "textarea";
            c.maxlength = max;
            c.value = text;
        }
        FieldType::Enum(values) => {
            c.widget = "select";
            let selected = if editing {
                text
            } else {
                f.default.unwrap_or_default().to_string()
            };
            if f.default.is_none() {
                c.options.push(choice("", "—", selected.is_empty()));
            }
            c.options.extend(
                values
                    .iter()
                    .map(|v| choice(v, &v.replace('_', " "), *v == selected)),
            );
        }
        FieldType::Int(min, max) => {
            c.input_type = "number";
            c.data_type = "int";
            c.min = min.to_string();
            c.max = max.to_string();
            c.step = "1";
            c.value = text;
        }
        FieldType::Float(min, max) => {
            c.input_type = "number";
            c.data_type = "number";
            c.min = min.to_string();
            c.max = max.to_string();
            c.step = "any";
            c.value = text;
        }
        FieldType::Bool => {
            c.widget = "select";
            c.data_type = "bool";
            let b = cur.as_bool();
            c.options = vec![
                choice("", "—", b.is_none()),
                choice("true", "yes", b == Some(true)),
                choice("false", "no", b == Some(false)),
            ];
        }
        FieldType::Timestamp => {
            if editing {
                // lossless: the stored instant as the API gives it
                c.value = text;
                c.placeholder = "2026-12-31T00:00:00Z";
                c.hint = "RFC 3339 date and time, e.g. 2026-12-31T00:00:00Z.".into();
            } else {
                c.input_type = "date";
                c.data_type = "date";
                c.hint = "Sent as midnight UTC of that day.".into();
            }
        }
        FieldType::Date => {
            // YYYY-MM-DD as text, which is what the API stores
            c.input_type = "date";
            c.value = text;
        }
        FieldType::StrList { .. } => {
            c.data_type = "json";
            c.value = if cur.is_null() {
                String::new()
            } else {
                cur.to_string()
            };
            c.placeholder = "[\"a\", \"b\"]";
            c.hint = "A JSON list of strings.".into();
        }
        FieldType::Json => {
            c.widget = "textarea";
            c.data_type = "json";
            c.value = if cur.is_null() {
                String::new()
            } else {
                pretty(cur)
            };
            c.hint = "A JSON object or array.".into();
        }
        FieldType::Secret { .. } => {
            c.input_type = "password";
            c.autocomplete = "new-password";
            if editing {
                c.label = format!("New {}", f.name);
                c.hint = format!(
                    "Leave empty to keep the current {}. It is stored encrypted and never shown here.",
                    f.name
                );
            } else {
                c.hint = "Stored encrypted; never shown again.".into();
            }
        }
    }
    c
}

// ---------------------------------------------------------------- list

pub struct CellView {
    pub text: String,
    /// The raw enum value (a badge's class), when a badge.
    pub badge: Option<String>,
    pub num: bool,
}

pub struct RowView {
    pub href: String,
    pub name: String,
    pub cells: Vec<CellView>,
}

/// A filter `<select>` of the list.
pub struct FilterView {
    pub id: String,
    pub name: &'static str,
    pub label: String,
    pub choices: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "console/record_list.html")]
pub struct ListPage {
    pub layout: Layout,
    pub k: KindView,
    pub name_header: String,
    pub headers: Vec<String>,
    pub rows: Vec<RowView>,
    pub pager: Pager,
    pub q: String,
    /// `Search title, content` (empty: the kind has no search).
    pub search_label: String,
    pub filters: Vec<FilterView>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    /// `list` for kinds with another default view (kanban, calendar).
    pub view: &'static str,
    /// The other view of the kind: (label, href).
    pub other_view: Option<(&'static str, String)>,
    /// The list URL of "show all" (keeps `view`).
    pub all_url: String,
    pub create: Vec<Control>,
}

/// The typed fields a list shows as columns: the kind's list fields but
/// long text and JSON, and not the name field (the first column).
fn list_fields(spec: &KindSpec) -> Vec<&'static Field> {
    let name = name_field(spec).map(|f| f.name);
    spec.fields
        .iter()
        .filter(|f| f.list.sort || f.list.filter || f.list.search)
        .filter(|f| !matches!(f.ty, FieldType::LongText(_) | FieldType::Json))
        .filter(|f| Some(f.name) != name)
        .collect()
}

fn row(spec: &KindSpec, k: &KindView, fields: &[&'static Field], v: &Value) -> RowView {
    let mut cells: Vec<CellView> = fields
        .iter()
        .map(|f| {
            let x = v.get(f.name);
            CellView {
                text: show(f, x),
                badge: match (f.ty, x) {
                    (FieldType::Enum(_), Some(Value::String(s))) => Some(s.clone()),
                    _ => None,
                },
                num: matches!(f.ty, FieldType::Int(..) | FieldType::Float(..)),
            }
        })
        .collect();
    if let Some((_, flag)) = secret_of(spec) {
        cells.push(CellView {
            text: if v.get(flag).and_then(Value::as_bool) == Some(true) {
                "yes"
            } else {
                "no"
            }
            .into(),
            badge: None,
            num: false,
        });
    }
    cells.push(CellView {
        text: v
            .get("updated_at")
            .and_then(Value::as_str)
            .map(when)
            .unwrap_or_default(),
        badge: None,
        num: false,
    });
    RowView {
        href: format!("{}/{}", k.list_url, seg(&id_of(v))),
        name: display_name(spec, v),
        cells,
    }
}

async fn list_page<D: RecordsDomain>(
    state: &AppState,
    user: &ConsoleUser,
    kind: &str,
    raw: &str,
) -> PageResult {
    let spec = kind_of::<D>(kind)?;
    let k = kind_view::<D>(spec);
    let backend = state.db.backend();
    let params = list_query::<D>(spec, backend, raw)?;
    let page = fetch::<D>(state, user, spec, &params).await?;
    let columns = spec.list_spec(backend).columns;
    let fields = list_fields(spec);

    let mut headers: Vec<String> = fields.iter().map(|f| label(f.name)).collect();
    if let Some((_, flag)) = secret_of(spec) {
        headers.push(label(flag));
    }
    headers.push("Updated".into());

    let mut filters = Vec::new();
    for f in spec.fields.iter().filter(|f| f.list.filter) {
        let current = param(raw, f.name);
        let choices = match f.ty {
            FieldType::Enum(values) => Choice::list(
                values,
                &current,
                &format!("Any {}", label(f.name).to_lowercase()),
            ),
            FieldType::Bool => vec![
                choice("", "Any", current.is_empty()),
                choice("1", "yes", current == "1"),
                choice("0", "no", current == "0"),
            ],
            _ => continue,
        };
        filters.push(FilterView {
            id: format!("f-{}", f.name),
            name: f.name,
            label: label(f.name),
            choices,
        });
    }
    let searched: Vec<String> = columns
        .iter()
        .filter(|c| c.search)
        .map(|c| label(c.name).to_lowercase())
        .collect();
    let sortable: Vec<&str> = columns.iter().filter(|c| c.sort).map(|c| c.name).collect();
    let mut filter_keys = vec!["q"];
    filter_keys.extend(filters.iter().map(|f| f.name));

    let (view, other_view, all_url) = match spec.kind {
        "kanban" => (
            "list",
            Some(("Board", k.list_url.clone())),
            format!("{}?view=list", k.list_url),
        ),
        "calendar" => (
            "list",
            Some(("Month", k.list_url.clone())),
            format!("{}?view=list", k.list_url),
        ),
        _ => ("", None, k.list_url.clone()),
    };
    let rows = page
        .items
        .iter()
        .map(|v| row(spec, &k, &fields, v))
        .collect();
    let list_url = k.list_url.clone();
    render(&ListPage {
        layout: layout::<D>(user, format!("{} · {}", k.title, k.family)),
        name_header: name_field(spec)
            .map(|f| label(f.name))
            .unwrap_or_else(|| "Id".into()),
        headers,
        rows,
        pager: Pager::new(&page, |p| {
            url(&list_url, &with_param(raw, "page", &p.to_string()))
        }),
        q: param(raw, "q"),
        search_label: if searched.is_empty() {
            String::new()
        } else {
            format!("Search {}", searched.join(", "))
        },
        filters,
        sorts: Choice::list(&sortable, &param(raw, "sort"), "Newest"),
        orders: Choice::list(&["asc", "desc"], &param(raw, "order"), "Default order"),
        filtered: any_of(raw, &filter_keys),
        view,
        other_view,
        all_url,
        create: controls(spec, None, "c-"),
        k,
    })
}

// ---------------------------------------------------------------- detail

pub struct PropView {
    pub name: String,
    pub value: String,
}

/// What the detail page says about the kind's secret.
pub struct SecretView {
    /// `password`
    pub name: &'static str,
    pub has: bool,
    /// The API read of the secret (admins: a link; others: a hint).
    pub api_url: String,
}

#[derive(Template)]
#[template(path = "console/record_item.html")]
pub struct ItemPage {
    pub layout: Layout,
    pub k: KindView,
    pub id: String,
    pub name: String,
    /// `(value, label)` of the record's status, when the kind has one.
    pub status: Option<(String, String)>,
    pub props: Vec<PropView>,
    pub extras: Option<String>,
    pub secret: Option<SecretView>,
    /// `/api/v1/{family}/{kind}/{id}`.
    pub api_item: String,
    pub edit: Vec<Control>,
}

async fn item_page<D: RecordsDomain>(
    state: &AppState,
    user: &ConsoleUser,
    kind: &str,
    id: String,
) -> PageResult {
    let spec = kind_of::<D>(kind)?;
    let k = kind_view::<D>(spec);
    let v = D::service(state)
        .get(&user.identity, spec, &D::Id::from(id))
        .await
        .map_err(rec_err::<D>)?;
    let id = id_of(&v);
    let mut props = vec![PropView {
        name: "Id".into(),
        value: id.clone(),
    }];
    let mut typed: Vec<&str> = vec!["id", "created_at", "updated_at"];
    let mut secret = None;
    for f in spec.fields {
        typed.push(f.name);
        if let FieldType::Secret { flag, .. } = f.ty {
            typed.push(flag);
            let has = v.get(flag).and_then(Value::as_bool) == Some(true);
            props.push(PropView {
                name: label(flag),
                value: if has { "yes" } else { "no" }.into(),
            });
            secret = Some(SecretView {
                name: f.name,
                has,
                api_url: format!("{}/{}/{}", k.api_url, seg(&id), f.name),
            });
            continue;
        }
        let value = match f.ty {
            FieldType::Json => v
                .get(f.name)
                .filter(|x| !x.is_null())
                .map(|x| x.to_string())
                .unwrap_or_else(|| "—".into()),
            _ => show(f, v.get(f.name)),
        };
        props.push(PropView {
            name: label(f.name),
            value,
        });
    }
    for (name, key) in [("Created", "created_at"), ("Updated", "updated_at")] {
        props.push(PropView {
            name: name.into(),
            value: v
                .get(key)
                .and_then(Value::as_str)
                .map(when)
                .unwrap_or_default(),
        });
    }
    let extras: serde_json::Map<String, Value> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(key, _)| !typed.contains(&key.as_str()))
                .map(|(key, x)| (key.clone(), x.clone()))
                .collect()
        })
        .unwrap_or_default();
    let status = spec
        .fields
        .iter()
        .find(|f| f.name == "status" && matches!(f.ty, FieldType::Enum(_)))
        .and_then(|f| v.get(f.name))
        .and_then(Value::as_str)
        .map(|s| (s.to_string(), s.replace('_', " ")));
    let name = display_name(spec, &v);
    render(&ItemPage {
        layout: layout::<D>(user, format!("{} {name}", capitalize(k.singular))),
        api_item: format!("{}/{}", k.api_url, seg(&id)),
        edit: controls(spec, Some(&v), "e-"),
        extras: (!extras.is_empty()).then(|| pretty(&Value::Object(extras))),
        status,
        props,
        secret,
        name,
        id,
        k,
    })
}

// ---------------------------------------------------------------- kanban

pub struct CardView {
    pub id: String,
    pub href: String,
    pub api: String,
    pub title: String,
    pub due: String,
    /// The other columns (where it can move).
    pub moves: Vec<Choice>,
}

pub struct ColumnView {
    pub status: &'static str,
    pub label: String,
    pub cards: Vec<CardView>,
    pub total: i64,
}

#[derive(Template)]
#[template(path = "console/record_board.html")]
pub struct BoardPage {
    pub layout: Layout,
    pub k: KindView,
    pub columns: Vec<ColumnView>,
    pub create: Vec<Control>,
}

/// Most cards a column shows (the rest: the list view).
const BOARD_CARDS: u32 = 100;

async fn board_page(state: &AppState, user: &ConsoleUser) -> PageResult {
    let spec = kind_of::<Workspace>("kanban")?;
    let k = kind_view::<Workspace>(spec);
    let backend = state.db.backend();
    let statuses: &[&str] = spec
        .fields
        .iter()
        .find_map(|f| match f.ty {
            FieldType::Enum(values) if f.name == "status" => Some(values),
            _ => None,
        })
        .unwrap_or(&[]);
    let mut columns = Vec::new();
    for status in statuses.iter().copied() {
        let query = format!("status={status}&sort=order&order=asc&limit={BOARD_CARDS}");
        let params = list_query::<Workspace>(spec, backend, &query)?;
        let page = fetch::<Workspace>(state, user, spec, &params).await?;
        let cards = page
            .items
            .iter()
            .map(|v| {
                let id = id_of(v);
                CardView {
                    href: format!("{}/{}", k.list_url, seg(&id)),
                    api: format!("{}/{}", k.api_url, seg(&id)),
                    title: display_name(spec, v),
                    due: v
                        .get("due_date")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    moves: statuses
                        .iter()
                        .filter(|s| **s != status)
                        .map(|s| choice(s, &s.replace('_', " "), false))
                        .collect(),
                    id,
                }
            })
            .collect();
        columns.push(ColumnView {
            status,
            label: capitalize(&status.replace('_', " ")),
            cards,
            total: page.total,
        });
    }
    render(&BoardPage {
        layout: layout::<Workspace>(user, "Kanban · Workspace".into()),
        create: controls(spec, None, "c-"),
        columns,
        k,
    })
}

// ---------------------------------------------------------------- calendar

pub struct EventLink {
    pub href: String,
    pub title: String,
}

pub struct DayView {
    /// `YYYY-MM-DD`
    pub date: String,
    pub n: u32,
    pub in_month: bool,
    pub today: bool,
    pub events: Vec<EventLink>,
}

pub struct WeekView {
    pub days: Vec<DayView>,
}

#[derive(Template)]
#[template(path = "console/record_calendar.html")]
pub struct CalendarPage {
    pub layout: Layout,
    pub k: KindView,
    /// `November 2026`
    pub month: String,
    pub weeks: Vec<WeekView>,
    pub prev: String,
    pub next: String,
    /// The current month's link, unless shown.
    pub this_month: Option<String>,
    pub count: usize,
    /// More events than the page loads (see the list view).
    pub truncated: bool,
    pub create: Vec<Control>,
}

/// Pages of events a month loads at most (× the list kit's largest page).
const MONTH_PAGES: u32 = 5;

fn month_start(raw_month: &str, today: NaiveDate) -> Result<NaiveDate, ConsoleError> {
    if raw_month.is_empty() {
        return Ok(today.with_day(1).unwrap_or(today));
    }
    let ok = raw_month.len() == 7 && raw_month.as_bytes()[4] == b'-';
    ok.then(|| NaiveDate::parse_from_str(&format!("{raw_month}-01"), "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            list_error::<Workspace>(FieldErrors::one("month", "must be a month YYYY-MM"))
        })
}

fn next_month(first: NaiveDate) -> NaiveDate {
    let (y, m) = if first.month() == 12 {
        (first.year() + 1, 1)
    } else {
        (first.year(), first.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(first)
}

async fn month_page(state: &AppState, user: &ConsoleUser, raw: &str) -> PageResult {
    let spec = kind_of::<Workspace>("calendar")?;
    let k = kind_view::<Workspace>(spec);
    let backend = state.db.backend();
    let today = chrono::Utc::now().date_naive();
    let first = month_start(&param(raw, "month"), today)?;
    let after = next_month(first);
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d < after).collect();
    let dates: Vec<String> = days
        .iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect();

    // The month's events, filtered in SQL (`date_in` = the month's days).
    let mut events: Vec<Value> = Vec::new();
    let mut total = 0;
    for p in 1..=MONTH_PAGES {
        let query = format!(
            "date_in={}&sort=date&order=asc&limit={}&page={p}",
            dates.join(","),
            crate::db::list::MAX_LIMIT
        );
        let params = list_query::<Workspace>(spec, backend, &query)?;
        let page = fetch::<Workspace>(state, user, spec, &params).await?;
        total = page.total;
        let n = page.items.len();
        events.extend(page.items);
        if n == 0 || events.len() as i64 >= total {
            break;
        }
    }

    let lead = first.weekday().num_days_from_monday() as usize;
    let mut cells: Vec<DayView> = (0..lead)
        .map(|_| DayView {
            date: String::new(),
            n: 0,
            in_month: false,
            today: false,
            events: Vec::new(),
        })
        .collect();
    for (d, date) in days.iter().zip(&dates) {
        cells.push(DayView {
            n: d.day(),
            in_month: true,
            today: *d == today,
            events: events
                .iter()
                .filter(|e| e.get("date").and_then(Value::as_str) == Some(date))
                .map(|e| EventLink {
                    href: format!("{}/{}", k.list_url, seg(&id_of(e))),
                    title: display_name(spec, e),
                })
                .collect(),
            date: date.clone(),
        });
    }
    while !cells.len().is_multiple_of(7) {
        cells.push(DayView {
            date: String::new(),
            n: 0,
            in_month: false,
            today: false,
            events: Vec::new(),
        });
    }
    let mut weeks = Vec::new();
    let mut it = cells.into_iter().peekable();
    while it.peek().is_some() {
        weeks.push(WeekView {
            days: it.by_ref().take(7).collect(),
        });
    }
    let prev = first.pred_opt().unwrap_or(first);
    let month_url = |d: NaiveDate| format!("{}?month={}", k.list_url, d.format("%Y-%m"));
    let month = first.format("%B %Y").to_string();
    render(&CalendarPage {
        layout: layout::<Workspace>(user, format!("Calendar {month} · Workspace")),
        prev: month_url(prev),
        next: month_url(after),
        this_month: (first != today.with_day(1).unwrap_or(today)).then(|| month_url(today)),
        count: events.len(),
        truncated: (events.len() as i64) < total,
        create: controls(spec, None, "c-"),
        month,
        weeks,
        k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(
            month_start("", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        assert_eq!(
            month_start("2026-02", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
        );
        assert!(month_start("2026-13", today).is_err());
        assert!(month_start("2026-1", today).is_err());
        assert_eq!(
            next_month(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
    }

    #[test]
    fn labels_and_segments() {
        assert_eq!(label("expires_at"), "Expires at");
        assert_eq!(label("ip"), "IP");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}

//! Users, API tokens (a new token is shown once), tenants (infra) and the settings the console uses.
//!
//! * `/console/users`: the tenant's users (admin; others get the API's
//!   refusal with the console's navigation), create and edit dialogs.
//! * `/console/api-tokens`: the caller's API tokens; a new token comes back
//!   from `POST /api/v1/auth/api-tokens` and is revealed once by the page's
//!   script, never rendered by the server.
//! * `/console/tenants`: every tenant (infra only; others get 403).
//! * `/console/settings`: one form per settings path, fields named by the
//!   JSON paths the settings validator reports.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::pages::{any_of, list_params, param, url, with_param};
use super::views::{when, Choice, Layout, Pager};
use super::{render, ConsoleError, ConsoleUser};
use crate::auth::{AuthError, IdentitySource, Role};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::domains::accounts::service::{TenantRow, TokenRow, UserRow, USER_LIST};
use crate::domains::accounts::AccountError;
use crate::domains::bots::store::PROJECT_NAMES;
use crate::domains::settings::service::MASK;
use crate::http::error::ApiError;
use crate::state::AppState;

/// This area's console routes (merged by [`super::routes`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/users", get(users))
        .route("/console/api-tokens", get(api_tokens))
        .route("/console/tenants", get(tenants))
        .route("/console/settings", get(settings))
}

fn when_ms(ms: Option<i64>) -> String {
    ms.map(|t| when(&ms_to_rfc3339(t)))
        .unwrap_or_else(|| "—".into())
}

/// Options of a `<select>` with `current` selected (no "any" entry).
fn choices(values: &[&str], current: &str) -> Vec<Choice> {
    values
        .iter()
        .map(|v| Choice {
            value: (*v).into(),
            label: v.replace('_', " "),
            selected: *v == current,
        })
        .collect()
}

// ------------------------------------------------------------------ users

pub struct UserItem {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub infra: bool,
    pub disabled: bool,
    pub created: String,
    pub last_login: String,
    pub me: bool,
    /// The caller may edit this user (not themselves; infra users only by infra).
    pub editable: bool,
    pub roles: Vec<Choice>,
}

impl UserItem {
    fn new(u: &UserRow, me: &str, caller_infra: bool) -> UserItem {
        let is_me = u.id.as_str() == me;
        UserItem {
            id: u.id.to_string(),
            email: u.email.clone(),
            role: u.role.as_str(),
            infra: u.is_infra(),
            disabled: u.disabled_at.is_some(),
            created: when_ms(Some(u.created_at)),
            last_login: when_ms(u.last_login_at),
            me: is_me,
            editable: !is_me && (caller_infra || !u.is_infra()),
            roles: choices(&["viewer", "operator", "admin"], u.role.as_str()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/admin_users.html")]
pub struct UsersPage {
    pub layout: Layout,
    /// `None`: the API refused the caller (message shown instead).
    pub refused: Option<String>,
    pub rows: Vec<UserItem>,
    pub pager: Option<Pager>,
    pub q: String,
    pub roles: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub new_roles: Vec<Choice>,
}

/// `GET /console/users`: admins only, as `GET /api/v1/users`; others get
/// the API's refusal (403) inside the console's layout.
pub async fn users(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> Result<Response, ConsoleError> {
    let raw = q.unwrap_or_default();
    let me = &user.identity;
    let params = list_params(&USER_LIST, &raw)?;
    let mut view = UsersPage {
        layout: user.layout("users", "Users"),
        refused: None,
        rows: Vec::new(),
        pager: None,
        q: param(&raw, "q"),
        roles: Choice::list(
            &["viewer", "operator", "admin"],
            &param(&raw, "role"),
            "Any role",
        ),
        sorts: Choice::list(
            &["email", "role", "created_at", "last_login_at"],
            &param(&raw, "sort"),
            "Email",
        ),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "role"]),
        new_roles: choices(&["viewer", "operator", "admin"], "viewer"),
    };
    match state.accounts.list_users(me, &params).await {
        Ok(page) => {
            view.rows = page
                .items
                .iter()
                .map(|u| UserItem::new(u, me.user_id.as_str(), me.infra))
                .collect();
            view.pager = Some(Pager::new(&page, |p| {
                url("/console/users", &with_param(&raw, "page", &p.to_string()))
            }));
            Ok(render(&view)?.into_response())
        }
        Err(e @ AccountError::Auth(AuthError::Forbidden(_))) => {
            view.refused = Some(ApiError::from(e).message);
            Ok((StatusCode::FORBIDDEN, render(&view)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ------------------------------------------------------------- API tokens

pub struct TokenItem {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    /// active, expired or revoked.
    pub status: &'static str,
}

impl TokenItem {
    fn new(t: &TokenRow, now: i64) -> TokenItem {
        TokenItem {
            id: t.id.to_string(),
            name: t.name.clone().unwrap_or_else(|| "(unnamed)".into()),
            hint: t.token_hint.clone(),
            created: when_ms(Some(t.created_at)),
            last_used: t
                .last_used_at
                .map(|x| when(&ms_to_rfc3339(x)))
                .unwrap_or_else(|| "never".into()),
            expires: t
                .expires_at
                .map(|x| when(&ms_to_rfc3339(x)))
                .unwrap_or_else(|| "never".into()),
            status: if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            },
        }
    }
}

#[derive(Template)]
#[template(path = "console/admin_tokens.html")]
pub struct TokensPage {
    pub layout: Layout,
    pub rows: Vec<TokenItem>,
    /// Operator or higher, local user: may create (and revoke) tokens.
    pub can_create: bool,
}

/// `GET /console/api-tokens`: the caller's API tokens (any role reads
/// them; operators and higher create and revoke, as the API allows).
pub async fn api_tokens(State(state): State<AppState>, user: ConsoleUser) -> PageResult {
    let me = &user.identity;
    let rows = state.accounts.list_api_tokens(me).await?;
    let now = now_ms();
    render(&TokensPage {
        layout: user.layout("tokens", "API tokens"),
        rows: rows.iter().map(|t| TokenItem::new(t, now)).collect(),
        can_create: me.has(Role::Operator) && me.source != IdentitySource::ExternalJwt,
    })
}

type PageResult = Result<axum::response::Html<String>, ConsoleError>;

// ---------------------------------------------------------------- tenants

pub struct TenantItem {
    pub id: String,
    pub name: String,
    pub created: String,
    pub disabled: bool,
    pub mine: bool,
}

impl TenantItem {
    fn new(t: &TenantRow, mine: &str) -> TenantItem {
        TenantItem {
            id: t.id.to_string(),
            name: t.name.clone(),
            created: when_ms(Some(t.created_at)),
            disabled: t.disabled_at.is_some(),
            mine: t.id.as_str() == mine,
        }
    }
}

#[derive(Template)]
#[template(path = "console/admin_tenants.html")]
pub struct TenantsPage {
    pub layout: Layout,
    pub rows: Vec<TenantItem>,
}

/// `GET /console/tenants`: infra only (others: the API's 403 as the error page).
pub async fn tenants(State(state): State<AppState>, user: ConsoleUser) -> PageResult {
    let rows = state.accounts.list_tenants(&user.identity).await?;
    let mine = user.identity.tenant_id.to_string();
    render(&TenantsPage {
        layout: user.layout("tenants", "Tenants"),
        rows: rows.iter().map(|t| TenantItem::new(t, &mine)).collect(),
    })
}

// --------------------------------------------------------------- settings

/// One control of a settings form; `name` is the JSON path the API reports
/// in `details.fields` for it.
pub struct Field {
    pub id: String,
    pub name: String,
    pub label: String,
    /// text, int, number, bool, select, json or secret.
    pub kind: &'static str,
    /// The current value as the control shows it.
    pub value: String,
    /// What a read-only view shows.
    pub display: String,
    pub options: Vec<Choice>,
    pub hint: String,
}

/// One settings path: a form for those who may write it, else a list.
pub struct Panel {
    pub id: String,
    pub title: String,
    pub api: String,
    pub method: &'static str,
    pub hint: String,
    pub fields: Vec<Field>,
    pub editable: bool,
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The value at a dotted path.
fn at_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

struct Form<'a> {
    prefix: String,
    doc: &'a Value,
    fields: Vec<Field>,
}

impl<'a> Form<'a> {
    fn new(prefix: impl Into<String>, doc: &'a Value) -> Self {
        Form {
            prefix: prefix.into(),
            doc,
            fields: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, label: &str, kind: &'static str, hint: &str) -> &mut Field {
        let value = text_of(at_path(self.doc, name));
        let display = if value.is_empty() {
            "not set".to_string()
        } else {
            value.clone()
        };
        self.fields.push(Field {
            id: format!("{}-{}", self.prefix, name.replace('.', "-")),
            name: name.into(),
            label: label.into(),
            kind,
            value,
            display,
            options: Vec::new(),
            hint: hint.into(),
        });
        self.fields.last_mut().expect("just pushed")
    }

    fn text(mut self, name: &str, label: &str, hint: &str) -> Self {
        self.push(name, label, "text", hint);
        self
    }

    fn int(mut self, name: &str, label: &str, hint: &str) -> Self {
        self.push(name, label, "int", hint);
        self
    }

    fn number(mut self, name: &str, label: &str, hint: &str) -> Self {
        self.push(name, label, "number", hint);
        self
    }

    /// A JSON value (arrays): shown pretty, sent parsed.
    fn json(mut self, name: &str, label: &str, hint: &str) -> Self {
        let pretty = at_path(self.doc, name)
            .filter(|v| !v.is_null())
            .map(super::views::pretty)
            .unwrap_or_default();
        let f = self.push(name, label, "json", hint);
        f.value = pretty;
        self
    }

    /// true / false, or "not set" (omitted from the body).
    fn bool(mut self, name: &str, label: &str) -> Self {
        let current = at_path(self.doc, name).and_then(Value::as_bool);
        let f = self.push(name, label, "bool", "");
        f.display = match current {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "not set".into(),
        };
        f.options = [("", "not set"), ("true", "yes"), ("false", "no")]
            .iter()
            .map(|(v, l)| Choice {
                value: (*v).into(),
                label: (*l).into(),
                selected: match current {
                    Some(b) => *v == if b { "true" } else { "false" },
                    None => v.is_empty(),
                },
            })
            .collect();
        self
    }

    /// One of `values`, or "not set".
    fn select(mut self, name: &str, label: &str, values: &[&str]) -> Self {
        let f = self.push(name, label, "select", "");
        let current = f.value.clone();
        f.options = std::iter::once("")
            .chain(values.iter().copied())
            .map(|v| Choice {
                value: v.into(),
                label: if v.is_empty() {
                    "not set".into()
                } else {
                    v.into()
                },
                selected: v == current,
            })
            .collect();
        self
    }

    /// A secret: never rendered into the page; empty keeps the stored one.
    fn secret(mut self, name: &str, label: &str) -> Self {
        let f = self.push(name, label, "secret", "");
        let set = !f.value.is_empty();
        // Non-admins read the API's mask; admins are not shown the value either.
        f.display = if set { MASK.into() } else { "not set".into() };
        f.hint = if set {
            "A value is stored (hidden). Leave empty to keep it.".into()
        } else {
            "Not set.".into()
        };
        f.value = String::new();
        self
    }

    fn panel(self, title: &str, api: &str, hint: &str, editable: bool) -> Panel {
        Panel {
            id: self.prefix,
            title: title.into(),
            api: api.into(),
            method: "PATCH",
            hint: hint.into(),
            fields: self.fields,
            editable,
        }
    }
}

/// Can `key` be a settings path segment?
fn path_safe(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Template)]
#[template(path = "console/admin_settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub general: Vec<Panel>,
    pub projects: Vec<Panel>,
    pub keys: Vec<Panel>,
    pub can_write: bool,
    pub can_write_keys: bool,
}

/// `GET /console/settings`: the settings paths the console uses, each a
/// form writing `PATCH /api/v1/settings/<path>` (operators and higher;
/// `api_keys` admins only, masked for others as the API reads them).
pub async fn settings(State(state): State<AppState>, user: ConsoleUser) -> PageResult {
    let me = &user.identity;
    let read = |path: &'static str| {
        let state = state.clone();
        async move { Ok::<Value, ConsoleError>(state.settings.read(me, path).await?.value) }
    };
    let alerts = read("alerts").await?;
    let proxy = read("proxy").await?;
    let storage = read("storage_policy").await?;
    let events = read("notifications/events").await?;
    let theme = read("theme").await?;
    let finance = read("finance").await?;
    let projects = read("projects").await?;
    let api_keys = read("api_keys").await?;
    let op = me.has(Role::Operator);
    let admin = me.has(Role::Admin);

    let general = vec![
        Form::new("alerts", &alerts)
            .int("warning_days", "Warning days before an expiry", "1 to 365.")
            .panel(
                "Alerts",
                "/api/v1/settings/alerts",
                "When licenses, proxies and subscriptions show as expiring.",
                op,
            ),
        Form::new("proxy", &proxy)
            .bool("auto_check_on_add", "Check a proxy when it is added")
            .int(
                "fraud_score_threshold",
                "Fraud score threshold",
                "0 to 100.",
            )
            .int("check_interval_hours", "Check interval (hours)", "0 to 168.")
            .panel("Proxies", "/api/v1/settings/proxy", "", op),
        Form::new("storage", &storage)
            .select("secrets", "Secrets", &["local-only"])
            .select("operational", "Operational data", &["local", "cloud"])
            .bool("sync.enabled", "Synchronisation enabled")
            .panel(
                "Storage policy",
                "/api/v1/settings/storage_policy",
                "Secrets never leave the client: only local-only is accepted.",
                op,
            ),
        Form::new("events", &events)
            .bool("bot_banned", "A bot is banned")
            .bool("bot_offline", "A bot goes offline")
            .bool("bot_online", "A bot comes online")
            .bool("level_up", "A bot levels up")
            .bool("profession_maxed", "A profession is maxed")
            .bool("low_fraud_score", "A proxy's fraud score is low")
            .bool("daily_report", "Daily report")
            .panel(
                "Notification events",
                "/api/v1/settings/notifications/events",
                "Which events send a notification.",
                op,
            ),
        Form::new("theme", &theme)
            .text(
                "active_preset_id",
                "Active preset id",
                "The id of one of the theme's presets.",
            )
            .bool("visual.enabled", "Background visual enabled")
            .select("visual.mode", "Background mode", &["none", "image"])
            .text("visual.backgroundAssetId", "Background asset id", "")
            .text(
                "visual.backgroundImageUrl",
                "Background image URL",
                "An http(s) URL, or empty.",
            )
            .select(
                "visual.backgroundPosition",
                "Background position",
                &["center", "top", "custom"],
            )
            .select(
                "visual.backgroundSize",
                "Background size",
                &["cover", "contain", "auto"],
            )
            .number("visual.overlayOpacity", "Overlay opacity", "0 to 1.")
            .text("visual.overlayColorLight", "Overlay colour (light)", "")
            .text("visual.overlayColorDark", "Overlay colour (dark)", "")
            .number("visual.blurPx", "Blur (px)", "0 to 24.")
            .number("visual.dimStrength", "Dim strength", "0 to 1.")
            .text("typography.fontPrimary", "Primary font", "")
            .text("typography.fontCondensed", "Condensed font", "")
            .text("typography.fontMono", "Monospace font", "")
            .int("shape.radiusNone", "Radius: none (px)", "0 to 24.")
            .int("shape.radiusSm", "Radius: small (px)", "0 to 24.")
            .int("shape.radiusMd", "Radius: medium (px)", "0 to 24.")
            .int("shape.radiusLg", "Radius: large (px)", "0 to 24.")
            .panel(
                "Theme",
                "/api/v1/settings/theme",
                "Each group (visual, typography, shape) is saved as a whole: an empty field removes its value. Palettes and presets are kept.",
                op,
            ),
        Form::new("chart", &finance)
            .json(
                "chart_config",
                "Series (JSON array)",
                r#"Each series: {"key", "name", "color", "type": "line"|"bar", "yAxisId", "visible", "unit"}, at most 200."#,
            )
            .panel(
                "Finance chart (finance/chart_config)",
                "/api/v1/settings/finance",
                "finance/chart_config is a JSON array: it is written as the chart_config member of finance.",
                op,
            ),
    ];

    let mut ids: Vec<String> = PROJECT_NAMES.iter().map(|s| s.to_string()).collect();
    if let Some(m) = projects.as_object() {
        for k in m.keys() {
            if !ids.contains(k) {
                ids.push(k.clone());
            }
        }
    }
    let empty = Value::Null;
    let project_panels = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let doc = projects.get(id).unwrap_or(&empty);
            let stored = !doc.is_null();
            Form::new(format!("project{i}"), doc)
                .text("name", "Name", "1 to 200 characters.")
                .text("game", "Game", "")
                .text("expansion", "Expansion", "")
                .int("max_level", "Maximum level", "1 to 200.")
                .text("currency", "Currency", "")
                .text("currency_symbol", "Currency symbol", "")
                .text("server_region", "Server region", "")
                .number(
                    "gold_price_usd",
                    "Gold price (USD per unit)",
                    "Greater than 0.",
                )
                .json(
                    "professions",
                    "Professions (JSON array of names)",
                    r#"For example ["mining", "herbalism"]."#,
                )
                .panel(
                    &format!("Project {id}"),
                    &format!("/api/v1/settings/projects/{id}"),
                    if stored { "" } else { "Not configured yet." },
                    op && path_safe(id),
                )
        })
        .collect();

    let keys = vec![
        Form::new("ipqs", api_keys.get("ipqs").unwrap_or(&empty))
            .secret("api_key", "IPQS API key")
            .bool("enabled", "IPQS checks enabled")
            .panel(
                "IPQualityScore",
                "/api/v1/settings/api_keys/ipqs",
                "",
                admin,
            ),
        Form::new("telegram", api_keys.get("telegram").unwrap_or(&empty))
            .secret("bot_token", "Telegram bot token")
            .text("chat_id", "Telegram chat id", "")
            .bool("enabled", "Telegram notifications enabled")
            .panel("Telegram", "/api/v1/settings/api_keys/telegram", "", admin),
    ];

    render(&SettingsPage {
        layout: user.layout("settings", "Settings"),
        general,
        projects: project_panels,
        keys,
        can_write: op,
        can_write_keys: admin,
    })
}

//! The typed documents of the settings tree: one serde struct per schema of
//! the original's `resolveSettingsMutationSchema`, also used for the
//! OpenAPI request bodies.
//!
//! Top-level documents are *passthrough* (unknown keys are kept, as in the
//! original's `.passthrough()` objects); nested option groups (`ipqs`,
//! `visual`, `hardware`, …) refuse unknown keys (`deny_unknown_fields`; the
//! original silently dropped them). Ranges and enums are the original's.
//! Numbers must be JSON numbers (the original also coerced numeric strings).
//! `vmgenerator` carries no credentials at all: any key that looks like a
//! password is refused anywhere in it (use agent targets or the vault).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::validate::FieldErrors;

/// Longest display string (names).
pub const NAME_MAX: usize = 200;

/// Checks serde cannot express (ranges, display strings).
pub trait Check {
    /// Is the document a JSON object? (serde would also read a struct
    /// from an array of its fields.)
    const OBJECT: bool = true;
    /// Structural checks before deserializing (see [`by_schema`]).
    fn shape(_v: &Value, _at: &str, _f: &mut FieldErrors) {}
    fn check(&self, _f: &mut FieldErrors, _at: &str) {}
}

/// `at.key`, or `at[i]` for an index (`key` = `[i]`): the field-path
/// format of the whole API (serde_path_to_error's).
fn join(at: &str, key: &str) -> String {
    if at.is_empty() || key.starts_with('[') {
        format!("{at}{key}")
    } else {
        format!("{at}.{key}")
    }
}

fn range_i(f: &mut FieldErrors, at: &str, key: &str, v: Option<i64>, lo: i64, hi: i64) {
    if let Some(v) = v {
        if v < lo || v > hi {
            f.add(&join(at, key), format!("must be between {lo} and {hi}"));
        }
    }
}

fn range_f(f: &mut FieldErrors, at: &str, key: &str, v: Option<f64>, lo: f64, hi: f64) {
    if let Some(v) = v {
        if !(lo..=hi).contains(&v) {
            f.add(&join(at, key), format!("must be between {lo} and {hi}"));
        }
    }
}

fn name(f: &mut FieldErrors, at: &str, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        if v.is_empty() {
            f.add(&join(at, key), "must not be empty");
        } else {
            f.display_text(&join(at, key), v, NAME_MAX);
        }
    }
}

fn non_empty(f: &mut FieldErrors, at: &str, key: &str, v: Option<&str>) {
    if v.is_some_and(str::is_empty) {
        f.add(&join(at, key), "must not be empty");
    }
}

fn non_empty_items(f: &mut FieldErrors, at: &str, key: &str, v: Option<&Vec<String>>) {
    for (i, s) in v.into_iter().flatten().enumerate() {
        if s.is_empty() {
            f.add(&join(at, &format!("{key}[{i}]")), "must not be empty");
        }
    }
}

fn map_check<T: Check>(f: &mut FieldErrors, at: &str, key: &str, v: Option<&BTreeMap<String, T>>) {
    for (k, e) in v.into_iter().flatten() {
        e.check(f, &join(at, &format!("{key}.{k}")));
    }
}

/// Deserialize `v` as `T` and run its checks; errors at `at` (dotted path).
pub fn typed<T: DeserializeOwned + Check>(v: &Value, at: &str, f: &mut FieldErrors) {
    if T::OBJECT && !v.is_object() {
        f.add(
            if at.is_empty() { "body" } else { at },
            "must be a JSON object",
        );
        return;
    }
    let before = f.0.len();
    T::shape(v, at, f);
    if f.0.len() > before {
        return;
    }
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => t.check(f, at),
        Err(e) => {
            let path = e.path().to_string();
            let key = if path == "." {
                at.to_string()
            } else {
                join(at, &path)
            };
            f.add(
                if key.is_empty() { "body" } else { &key },
                e.into_inner().to_string(),
            );
        }
    }
}

/// Client-owned epoch milliseconds, 0..=i64::MAX.
#[derive(Deserialize)]
#[serde(try_from = "i64")]
pub struct Ms(#[allow(dead_code)] i64);

impl TryFrom<i64> for Ms {
    type Error = &'static str;
    fn try_from(v: i64) -> Result<Ms, &'static str> {
        if v < 0 {
            Err("must be epoch milliseconds (>= 0)")
        } else {
            Ok(Ms(v))
        }
    }
}

/// Where the schema of `T` wants an object, is there one? serde would
/// read a struct from an array of its fields; the OpenAPI schema (and the
/// original) say object, so arrays there are refused first.
fn by_schema<T: ToSchema>(v: &Value, at: &str, f: &mut FieldErrors) {
    let schema = serde_json::to_value(T::schema()).unwrap_or_default();
    let mut parts = Vec::new();
    T::schemas(&mut parts);
    let mut defs = serde_json::Map::new();
    for (name, s) in parts {
        defs.insert(name, serde_json::to_value(s).unwrap_or_default());
    }
    if let Some(name) = Some(T::name()) {
        defs.entry(name.to_string())
            .or_insert_with(|| schema.clone());
    }
    walk(&schema, &defs, v, at, f, 0);
}

fn walk(
    schema: &Value,
    defs: &serde_json::Map<String, Value>,
    v: &Value,
    at: &str,
    f: &mut FieldErrors,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some(s) = r.rsplit('/').next().and_then(|n| defs.get(n)) {
            walk(s, defs, v, at, f, depth + 1);
        }
        return;
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            for alt in alts {
                if alt.get("type") != Some(&Value::from("null")) {
                    walk(alt, defs, v, at, f, depth + 1);
                }
            }
            return;
        }
    }
    let is_object_type = match schema.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    };
    match v {
        Value::Array(items) => {
            if is_object_type {
                f.add(
                    if at.is_empty() { "body" } else { at },
                    "must be a JSON object",
                );
            } else if let Some(item) = schema.get("items") {
                for (i, x) in items.iter().enumerate() {
                    walk(item, defs, x, &join(at, &format!("[{i}]")), f, depth + 1);
                }
            }
        }
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, x) in m {
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    walk(p, defs, x, &join(at, k), f, depth + 1);
                } else if let Some(a) = extra {
                    walk(a, defs, x, &join(at, k), f, depth + 1);
                }
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------ alerts

/// `alerts`
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsAlerts)]
pub struct Alerts {
    /// Days before an expiry to warn, 1..365.
    #[schema(minimum = 1, maximum = 365)]
    pub warning_days: Option<i64>,
    /// Epoch ms (client-owned).
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
    #[schema(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub updated_by: Option<String>,
}

impl Check for Alerts {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        range_i(f, at, "warning_days", self.warning_days, 1, 365);
        if let Some(b) = &self.updated_by {
            f.display_text(&join(at, "updated_by"), b, NAME_MAX);
        }
    }
}

// ---------------------------------------------------------------- api_keys

/// `api_keys` (secret-bearing: values are masked for non-admins; admin-only writes).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsApiKeys)]
pub struct ApiKeys {
    pub ipqs: Option<IpqsKeys>,
    pub telegram: Option<TelegramKeys>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsIpqsKeys)]
#[serde(deny_unknown_fields)]
pub struct IpqsKeys {
    pub api_key: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsTelegramKeys)]
#[serde(deny_unknown_fields)]
pub struct TelegramKeys {
    pub bot_token: Option<String>,
    pub chat_id: Option<String>,
    pub enabled: Option<bool>,
}

impl Check for ApiKeys {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
}

// ------------------------------------------------------------------- proxy

/// `proxy`
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsProxySettings)]
pub struct ProxySettings {
    pub auto_check_on_add: Option<bool>,
    #[schema(minimum = 0, maximum = 100)]
    pub fraud_score_threshold: Option<i64>,
    #[schema(minimum = 0, maximum = 168)]
    pub check_interval_hours: Option<i64>,
}

impl Check for ProxySettings {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        range_i(
            f,
            at,
            "fraud_score_threshold",
            self.fraud_score_threshold,
            0,
            100,
        );
        range_i(
            f,
            at,
            "check_interval_hours",
            self.check_interval_hours,
            0,
            168,
        );
    }
}

// ----------------------------------------------------------- notifications

/// `notifications/events`
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsNotificationEvents)]
pub struct NotificationEvents {
    pub bot_banned: Option<bool>,
    pub bot_offline: Option<bool>,
    pub bot_online: Option<bool>,
    pub level_up: Option<bool>,
    pub profession_maxed: Option<bool>,
    pub low_fraud_score: Option<bool>,
    pub daily_report: Option<bool>,
}

impl Check for NotificationEvents {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
}

// ---------------------------------------------------------- storage_policy

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsSecretsPolicy)]
#[serde(rename_all = "kebab-case")]
pub enum SecretsPolicy {
    LocalOnly,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsOperationalStorage)]
#[serde(rename_all = "lowercase")]
pub enum OperationalStorage {
    Local,
    Cloud,
}

/// `storage_policy`
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsStoragePolicy)]
pub struct StoragePolicy {
    /// Secrets never leave the client: only `local-only`.
    pub secrets: Option<SecretsPolicy>,
    pub operational: Option<OperationalStorage>,
    pub sync: Option<SyncPolicy>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
    #[schema(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub updated_by: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsSyncPolicy)]
#[serde(deny_unknown_fields)]
pub struct SyncPolicy {
    pub enabled: Option<bool>,
}

impl Check for StoragePolicy {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        if let Some(b) = &self.updated_by {
            f.display_text(&join(at, "updated_by"), b, NAME_MAX);
        }
    }
}

// ---------------------------------------------------------------- projects

/// One entry of `projects` (`projects/{id}`).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsProjectEntry)]
pub struct ProjectEntry {
    pub id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    pub game: Option<String>,
    pub expansion: Option<String>,
    #[schema(minimum = 1, maximum = 200)]
    pub max_level: Option<i64>,
    pub currency: Option<String>,
    pub currency_symbol: Option<String>,
    pub server_region: Option<String>,
    /// Non-empty names.
    pub professions: Option<Vec<String>>,
    /// Any JSON.
    #[serde(rename = "referenceData")]
    #[schema(value_type = Option<Value>)]
    pub reference_data: Option<Value>,
    /// USD per gold unit, > 0.
    #[schema(exclusive_minimum = 0)]
    pub gold_price_usd: Option<f64>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub created_at: Option<Ms>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

impl Check for ProjectEntry {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        non_empty(f, at, "id", self.id.as_deref());
        name(f, at, "name", self.name.as_deref());
        range_i(f, at, "max_level", self.max_level, 1, 200);
        non_empty_items(f, at, "professions", self.professions.as_ref());
        if self.gold_price_usd.is_some_and(|p| p <= 0.0) {
            f.add(&join(at, "gold_price_usd"), "must be greater than 0");
        }
    }
}

/// `projects`: project id → entry.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Projects(BTreeMap<String, ProjectEntry>);

impl Check for Projects {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        for (k, e) in v.as_object().into_iter().flatten() {
            ProjectEntry::shape(e, &join(at, k), f);
        }
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        for (k, e) in &self.0 {
            e.check(f, &join(at, k));
        }
    }
}

// ------------------------------------------------------------------- theme

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsThemePreset)]
pub struct ThemePreset {
    pub id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub palettes: Option<serde_json::Map<String, Value>>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub created_at: Option<Ms>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

impl Check for ThemePreset {
    fn check(&self, f: &mut FieldErrors, at: &str) {
        non_empty(f, at, "id", self.id.as_deref());
        name(f, at, "name", self.name.as_deref());
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVisualMode)]
#[serde(rename_all = "lowercase")]
pub enum VisualMode {
    None,
    Image,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsBackgroundPosition)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundPosition {
    Center,
    Top,
    Custom,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsBackgroundSize)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundSize {
    Cover,
    Contain,
    Auto,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsThemeVisual)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct ThemeVisual {
    pub enabled: Option<bool>,
    pub mode: Option<VisualMode>,
    #[schema(min_length = 1)]
    pub backgroundAssetId: Option<String>,
    /// An `http(s)://` URL, or empty.
    #[schema(max_length = 2048, pattern = "^(https?://[!-~]+)?$")]
    pub backgroundImageUrl: Option<String>,
    pub backgroundPosition: Option<BackgroundPosition>,
    pub backgroundSize: Option<BackgroundSize>,
    #[schema(minimum = 0, maximum = 1)]
    pub overlayOpacity: Option<f64>,
    pub overlayColorLight: Option<String>,
    pub overlayColorDark: Option<String>,
    #[schema(minimum = 0, maximum = 24)]
    pub blurPx: Option<f64>,
    #[schema(minimum = 0, maximum = 1)]
    pub dimStrength: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsThemeTypography)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct ThemeTypography {
    #[schema(min_length = 1)]
    pub fontPrimary: Option<String>,
    #[schema(min_length = 1)]
    pub fontCondensed: Option<String>,
    #[schema(min_length = 1)]
    pub fontMono: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsThemeShape)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct ThemeShape {
    #[schema(minimum = 0, maximum = 24)]
    pub radiusNone: Option<i64>,
    #[schema(minimum = 0, maximum = 24)]
    pub radiusSm: Option<i64>,
    #[schema(minimum = 0, maximum = 24)]
    pub radiusMd: Option<i64>,
    #[schema(minimum = 0, maximum = 24)]
    pub radiusLg: Option<i64>,
}

/// `theme`
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsTheme)]
pub struct Theme {
    #[schema(value_type = Option<Object>)]
    pub palettes: Option<serde_json::Map<String, Value>>,
    pub presets: Option<BTreeMap<String, ThemePreset>>,
    /// A preset id, or null.
    #[schema(min_length = 1)]
    pub active_preset_id: Option<String>,
    pub visual: Option<ThemeVisual>,
    pub typography: Option<ThemeTypography>,
    pub shape: Option<ThemeShape>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
    #[schema(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub updated_by: Option<String>,
}

impl Check for Theme {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        map_check(f, at, "presets", self.presets.as_ref());
        non_empty(f, at, "active_preset_id", self.active_preset_id.as_deref());
        if let Some(v) = &self.visual {
            let at = join(at, "visual");
            non_empty(f, &at, "backgroundAssetId", v.backgroundAssetId.as_deref());
            if let Some(u) = &v.backgroundImageUrl {
                let ok = u.is_empty()
                    || ((u.starts_with("https://") || u.starts_with("http://"))
                        && u.len() <= 2048
                        && u.len() > u.find("://").unwrap_or(0) + 3
                        && u.chars().all(|c| c.is_ascii_graphic()));
                f.check(
                    ok,
                    &join(&at, "backgroundImageUrl"),
                    "must be an http(s) URL or empty",
                );
            }
            range_f(f, &at, "overlayOpacity", v.overlayOpacity, 0.0, 1.0);
            range_f(f, &at, "blurPx", v.blurPx, 0.0, 24.0);
            range_f(f, &at, "dimStrength", v.dimStrength, 0.0, 1.0);
        }
        if let Some(t) = &self.typography {
            let at = join(at, "typography");
            non_empty(f, &at, "fontPrimary", t.fontPrimary.as_deref());
            non_empty(f, &at, "fontCondensed", t.fontCondensed.as_deref());
            non_empty(f, &at, "fontMono", t.fontMono.as_deref());
        }
        if let Some(s) = &self.shape {
            let at = join(at, "shape");
            range_i(f, &at, "radiusNone", s.radiusNone, 0, 24);
            range_i(f, &at, "radiusSm", s.radiusSm, 0, 24);
            range_i(f, &at, "radiusMd", s.radiusMd, 0, 24);
            range_i(f, &at, "radiusLg", s.radiusLg, 0, 24);
        }
        if let Some(b) = &self.updated_by {
            f.display_text(&join(at, "updated_by"), b, NAME_MAX);
        }
    }
}

// ----------------------------------------------------------------- finance

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsChartType)]
#[serde(rename_all = "lowercase")]
pub enum ChartType {
    Line,
    Bar,
}

/// One series of `finance/chart_config` (every field required).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsChartSeries)]
#[allow(non_snake_case)]
pub struct ChartSeries {
    #[schema(min_length = 1)]
    pub key: String,
    #[schema(min_length = 1)]
    pub name: String,
    #[schema(min_length = 1)]
    pub color: String,
    #[serde(rename = "type")]
    pub kind: ChartType,
    #[schema(min_length = 1)]
    pub yAxisId: String,
    pub visible: bool,
    #[schema(min_length = 1)]
    pub unit: String,
}

/// `finance/chart_config`: at most 200 series.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ChartConfig(Vec<ChartSeries>);

impl Check for ChartConfig {
    const OBJECT: bool = false;
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        for (i, e) in v.as_array().into_iter().flatten().enumerate() {
            by_schema::<ChartSeries>(e, &join(at, &format!("[{i}]")), f);
        }
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        if self.0.len() > 200 {
            f.add(
                if at.is_empty() { "body" } else { at },
                "at most 200 entries",
            );
        }
        for (i, s) in self.0.iter().enumerate() {
            let at = join(at, &format!("[{i}]"));
            for (k, v) in [
                ("key", &s.key),
                ("name", &s.name),
                ("color", &s.color),
                ("yAxisId", &s.yAxisId),
                ("unit", &s.unit),
            ] {
                non_empty(f, &at, k, Some(v));
            }
        }
    }
}

// ---------------------------------------------------------------------- ui

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[schema(as = SettingsBotStatus)]
#[serde(rename_all = "lowercase")]
pub enum BotStatus {
    Offline,
    Prepare,
    Leveling,
    Profession,
    Farming,
    Banned,
}

/// `ui/resource_tree`
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsResourceTree)]
#[allow(non_snake_case)]
pub struct ResourceTree {
    /// Non-empty keys.
    pub expandedKeys: Option<Vec<String>>,
    pub visibleStatuses: Option<Vec<BotStatus>>,
    pub showFilters: Option<bool>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

impl Check for ResourceTree {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        non_empty_items(f, at, "expandedKeys", self.expandedKeys.as_ref());
    }
}

// ---------------------------------------------------------------- schedule

/// `schedule/last_params` (also a template's `params`).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsScheduleParams)]
#[allow(non_snake_case)]
pub struct ScheduleParams {
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub startTime: Option<String>,
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub endTime: Option<String>,
    pub useSecondWindow: Option<bool>,
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub startTime2: Option<String>,
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub endTime2: Option<String>,
    #[schema(minimum = 30, maximum = 1380)]
    pub targetActiveMinutes: Option<i64>,
    #[schema(minimum = 15, maximum = 240)]
    pub minSessionMinutes: Option<i64>,
    #[schema(minimum = 5, maximum = 120)]
    pub minBreakMinutes: Option<i64>,
    #[schema(minimum = 0, maximum = 60)]
    pub randomOffsetMinutes: Option<i64>,
    pub profile: Option<String>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

fn hhmm(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit)
        && (b[0] - b'0') * 10 + (b[1] - b'0') < 24
        && b[3] < b'6'
}

impl Check for ScheduleParams {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        for (k, v) in [
            ("startTime", &self.startTime),
            ("endTime", &self.endTime),
            ("startTime2", &self.startTime2),
            ("endTime2", &self.endTime2),
        ] {
            if let Some(v) = v {
                f.check(hhmm(v), &join(at, k), "expected HH:MM (24 h)");
            }
        }
        range_i(
            f,
            at,
            "targetActiveMinutes",
            self.targetActiveMinutes,
            30,
            1380,
        );
        range_i(f, at, "minSessionMinutes", self.minSessionMinutes, 15, 240);
        range_i(f, at, "minBreakMinutes", self.minBreakMinutes, 5, 120);
        range_i(
            f,
            at,
            "randomOffsetMinutes",
            self.randomOffsetMinutes,
            0,
            60,
        );
    }
}

/// One entry of `schedule/templates` (`schedule/templates/{id}`).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsScheduleTemplate)]
pub struct ScheduleTemplate {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    pub params: Option<ScheduleParams>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub created_at: Option<Ms>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

impl Check for ScheduleTemplate {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        name(f, at, "name", self.name.as_deref());
        if let Some(p) = &self.params {
            p.check(f, &join(at, "params"));
        }
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
struct Templates<T>(BTreeMap<String, T>);

impl<T: Check> Check for Templates<T> {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        for (k, e) in v.as_object().into_iter().flatten() {
            T::shape(e, &join(at, k), f);
        }
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        for (k, e) in &self.0 {
            e.check(f, &join(at, k));
        }
    }
}

// ------------------------------------------------------------- vmgenerator

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmProxmox)]
#[serde(deny_unknown_fields)]
pub struct VmProxmox {
    #[schema(min_length = 1)]
    pub url: Option<String>,
    pub username: Option<String>,
    #[schema(min_length = 1)]
    pub node: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmSsh)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct VmSsh {
    pub host: Option<String>,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<i64>,
    pub username: Option<String>,
    pub privateKeyPath: Option<String>,
    pub useKeyAuth: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmChoice)]
#[serde(deny_unknown_fields)]
pub struct VmChoice {
    /// Non-empty names.
    pub options: Option<Vec<String>>,
    #[schema(min_length = 1)]
    pub default: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmTemplate)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct VmTemplate {
    #[schema(minimum = 1)]
    pub vmId: Option<i64>,
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmHardware)]
#[serde(deny_unknown_fields)]
pub struct VmHardware {
    #[schema(minimum = 1, maximum = 64)]
    pub cores: Option<i64>,
    #[schema(minimum = 1, maximum = 8)]
    pub sockets: Option<i64>,
    /// MiB.
    #[schema(minimum = 256, maximum = 262144)]
    pub memory: Option<i64>,
    #[schema(minimum = 0, maximum = 262144)]
    pub balloon: Option<i64>,
    #[schema(min_length = 1)]
    pub cpu: Option<String>,
    pub onboot: Option<bool>,
    pub agent: Option<bool>,
}

impl Check for VmHardware {
    fn check(&self, f: &mut FieldErrors, at: &str) {
        range_i(f, at, "cores", self.cores, 1, 64);
        range_i(f, at, "sockets", self.sockets, 1, 8);
        range_i(f, at, "memory", self.memory, 256, 262144);
        range_i(f, at, "balloon", self.balloon, 0, 262144);
        non_empty(f, at, "cpu", self.cpu.as_deref());
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmProjectHardwareEntry)]
#[serde(deny_unknown_fields)]
pub struct VmProjectHardwareEntry {
    #[schema(minimum = 1, maximum = 64)]
    pub cores: Option<i64>,
    #[schema(minimum = 256, maximum = 262144)]
    pub memory: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmProjectHardware)]
#[serde(deny_unknown_fields)]
pub struct VmProjectHardware {
    pub wow_tbc: Option<VmProjectHardwareEntry>,
    pub wow_midnight: Option<VmProjectHardwareEntry>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmHardwareApply)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct VmHardwareApply {
    pub applyCpu: Option<bool>,
    pub applyOnboot: Option<bool>,
    pub applyAgent: Option<bool>,
}

/// Service links. The original's `tinyFmPassword`/`syncThingPassword` are
/// gone: credentials belong in agent targets or the secrets vault.
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmServices)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct VmServices {
    pub proxmoxUrl: Option<String>,
    pub tinyFmUrl: Option<String>,
    pub syncThingUrl: Option<String>,
    pub proxmoxAutoLogin: Option<bool>,
    pub tinyFmAutoLogin: Option<bool>,
    pub tinyFmUsername: Option<String>,
    pub syncThingAutoLogin: Option<bool>,
    pub syncThingUsername: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmDeletePolicy)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct VmDeletePolicy {
    pub allowBanned: Option<bool>,
    pub allowPrepareNoResources: Option<bool>,
    pub allowOrphan: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmDeleteView)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct VmDeleteView {
    pub showAllowed: Option<bool>,
    pub showLocked: Option<bool>,
    pub showRunning: Option<bool>,
    pub showStopped: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmDeleteFilters)]
#[serde(deny_unknown_fields)]
pub struct VmDeleteFilters {
    pub policy: Option<VmDeletePolicy>,
    pub view: Option<VmDeleteView>,
}

/// One entry of `vmgenerator/profiles` (`vmgenerator/profiles/{id}`).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmProfile)]
pub struct VmProfile {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    pub hardware: Option<VmHardware>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub created_at: Option<Ms>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

impl Check for VmProfile {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        name(f, at, "name", self.name.as_deref());
        if let Some(h) = &self.hardware {
            h.check(f, &join(at, "hardware"));
        }
    }
}

/// `vmgenerator` — without any password field.
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsVmGenerator)]
#[allow(non_snake_case)]
pub struct VmGenerator {
    pub proxmox: Option<VmProxmox>,
    pub ssh: Option<VmSsh>,
    pub storage: Option<VmChoice>,
    pub format: Option<VmChoice>,
    pub template: Option<VmTemplate>,
    pub hardware: Option<VmHardware>,
    pub projectHardware: Option<VmProjectHardware>,
    pub hardwareApply: Option<VmHardwareApply>,
    pub services: Option<VmServices>,
    pub deleteVmFilters: Option<VmDeleteFilters>,
    #[schema(value_type = Option<Object>)]
    pub tinyFM: Option<serde_json::Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub syncThing: Option<serde_json::Map<String, Value>>,
    /// Profile id → profile (`vmgenerator/profiles`).
    pub profiles: Option<BTreeMap<String, VmProfile>>,
}

impl Check for VmGenerator {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        if let Some(p) = &self.proxmox {
            let at = join(at, "proxmox");
            non_empty(f, &at, "url", p.url.as_deref());
            non_empty(f, &at, "node", p.node.as_deref());
        }
        if let Some(s) = &self.ssh {
            range_i(f, &join(at, "ssh"), "port", s.port, 1, 65535);
        }
        for (k, c) in [("storage", &self.storage), ("format", &self.format)] {
            if let Some(c) = c {
                let at = join(at, k);
                non_empty_items(f, &at, "options", c.options.as_ref());
                non_empty(f, &at, "default", c.default.as_deref());
            }
        }
        if let Some(t) = &self.template {
            if t.vmId.is_some_and(|v| v < 1) {
                f.add(&join(at, "template.vmId"), "must be a positive integer");
            }
        }
        if let Some(h) = &self.hardware {
            h.check(f, &join(at, "hardware"));
        }
        if let Some(p) = &self.projectHardware {
            for (k, e) in [("wow_tbc", &p.wow_tbc), ("wow_midnight", &p.wow_midnight)] {
                if let Some(e) = e {
                    let at = join(at, &format!("projectHardware.{k}"));
                    range_i(f, &at, "cores", e.cores, 1, 64);
                    range_i(f, &at, "memory", e.memory, 256, 262144);
                }
            }
        }
        map_check(f, at, "profiles", self.profiles.as_ref());
    }
}

/// Every key under `vmgenerator` that names a credential.
pub fn credential_keys(v: &Value, at: &str, out: &mut FieldErrors) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let lower = k.to_ascii_lowercase();
                let here = join(at, k);
                if ["password", "passwd", "secret", "token", "privatekey"]
                    .iter()
                    .any(|w| lower.contains(w) && lower != "privatekeypath")
                {
                    out.add(
                        &here,
                        "credentials are not stored in settings; use agent targets or the secrets vault",
                    );
                } else {
                    credential_keys(v, &here, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                credential_keys(v, &join(at, &format!("[{i}]")), out);
            }
        }
        _ => {}
    }
}

// -------------------------------------------------------------- generators

#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsPasswordOptions)]
#[serde(deny_unknown_fields)]
pub struct PasswordOptions {
    #[schema(minimum = 6, maximum = 128)]
    pub length: Option<i64>,
    pub uppercase: Option<bool>,
    pub lowercase: Option<bool>,
    pub numbers: Option<bool>,
    pub symbols: Option<bool>,
}

/// `generators/account/lastSettings` (also a template's `settings`).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsAccountGeneratorSettings)]
#[allow(non_snake_case)]
pub struct AccountGeneratorSettings {
    pub passwordOptions: Option<PasswordOptions>,
    pub selectedDomain: Option<String>,
    pub customDomain: Option<String>,
    pub useCustomDomain: Option<bool>,
}

impl Check for AccountGeneratorSettings {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        if let Some(p) = &self.passwordOptions {
            range_i(f, &join(at, "passwordOptions"), "length", p.length, 6, 128);
        }
    }
}

/// One entry of `generators/account/templates` (`…/templates/{id}`).
#[derive(Deserialize, ToSchema)]
#[schema(as = SettingsAccountGeneratorTemplate)]
pub struct AccountGeneratorTemplate {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    pub settings: Option<AccountGeneratorSettings>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub created_at: Option<Ms>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub updated_at: Option<Ms>,
}

impl Check for AccountGeneratorTemplate {
    fn shape(v: &Value, at: &str, f: &mut FieldErrors) {
        by_schema::<Self>(v, at, f);
    }
    fn check(&self, f: &mut FieldErrors, at: &str) {
        name(f, at, "name", self.name.as_deref());
        if let Some(s) = &self.settings {
            s.check(f, &join(at, "settings"));
        }
    }
}

/// A non-empty id (`generators/account/defaultTemplateId`; null clears it).
#[derive(Deserialize)]
#[serde(transparent)]
struct NonEmptyId(String);

impl Check for NonEmptyId {
    const OBJECT: bool = false;
    fn check(&self, f: &mut FieldErrors, at: &str) {
        if self.0.is_empty() {
            f.add(if at.is_empty() { "body" } else { at }, "must not be empty");
        }
    }
}

/// A passthrough object (`{}` or any keys).
#[derive(Deserialize)]
struct AnyObject {}

impl Check for AnyObject {}

// -------------------------------------------------------------------- roots

/// The known roots of the tree; a path must start with one of them.
pub const ROOTS: &[&str] = &[
    "alerts",
    "api_keys",
    "finance",
    "generators",
    "notifications",
    "projects",
    "proxy",
    "schedule",
    "storage_policy",
    "theme",
    "ui",
    "vmgenerator",
];

/// Roots whose values are secrets (masked for non-admins; admin writes).
pub const SECRET_ROOTS: &[&str] = &["api_keys"];

fn child<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|v| !v.is_null())
}

/// May a write at `segments` carry a `null` body (deleting the value)? Not
/// at the paths the original gave an object schema, as there; yes for
/// `generators/account/defaultTemplateId` and every free-form path.
pub fn null_allowed(segments: &[String]) -> bool {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let typed = match s.as_slice() {
        ["alerts" | "api_keys" | "proxy" | "storage_policy" | "projects" | "theme", ..] => {
            s.len() == 1 || s[0] == "projects"
        }
        ["notifications", "events"]
        | ["finance", "chart_config"]
        | ["ui", "resource_tree"]
        | ["schedule", "last_params"]
        | ["vmgenerator"]
        | ["vmgenerator", "profiles", ..]
        | ["schedule", "templates", ..]
        | ["generators", "account", "lastSettings"]
        | ["generators", "account", "templates", ..] => true,
        _ => false,
    };
    !typed
}

/// Validate a whole root document; field paths are relative to the root.
pub fn validate_root(root: &str, doc: &Value) -> FieldErrors {
    let mut f = FieldErrors::default();
    if doc.is_null() {
        return f;
    }
    match root {
        "alerts" => typed::<Alerts>(doc, "", &mut f),
        "api_keys" => typed::<ApiKeys>(doc, "", &mut f),
        "proxy" => typed::<ProxySettings>(doc, "", &mut f),
        "storage_policy" => typed::<StoragePolicy>(doc, "", &mut f),
        "theme" => typed::<Theme>(doc, "", &mut f),
        "projects" => {
            typed::<Projects>(doc, "", &mut f);
        }
        "notifications" => {
            typed::<AnyObject>(doc, "", &mut f);
            if let Some(e) = child(doc, "events") {
                typed::<NotificationEvents>(e, "events", &mut f);
            }
        }
        "finance" => {
            typed::<AnyObject>(doc, "", &mut f);
            if let Some(c) = child(doc, "chart_config") {
                typed::<ChartConfig>(c, "chart_config", &mut f);
            }
        }
        "ui" => {
            typed::<AnyObject>(doc, "", &mut f);
            if let Some(t) = child(doc, "resource_tree") {
                typed::<ResourceTree>(t, "resource_tree", &mut f);
            }
        }
        "schedule" => {
            typed::<AnyObject>(doc, "", &mut f);
            if let Some(p) = child(doc, "last_params") {
                typed::<ScheduleParams>(p, "last_params", &mut f);
            }
            if let Some(t) = child(doc, "templates") {
                typed::<Templates<ScheduleTemplate>>(t, "templates", &mut f);
            }
        }
        "vmgenerator" => {
            typed::<VmGenerator>(doc, "", &mut f);
            credential_keys(doc, "", &mut f);
        }
        "generators" => {
            typed::<AnyObject>(doc, "", &mut f);
            if let Some(a) = child(doc, "account") {
                typed::<AnyObject>(a, "account", &mut f);
                if let Some(s) = child(a, "lastSettings") {
                    typed::<AccountGeneratorSettings>(s, "account.lastSettings", &mut f);
                }
                if let Some(d) = child(a, "defaultTemplateId") {
                    typed::<NonEmptyId>(d, "account.defaultTemplateId", &mut f);
                }
                if let Some(t) = child(a, "templates") {
                    typed::<Templates<AccountGeneratorTemplate>>(t, "account.templates", &mut f);
                }
            }
        }
        _ => f.add("body", "unknown settings root"),
    }
    f
}

//! SQL of the resources domain: `resources_licenses`, `resources_proxies`,
//! `resources_subscriptions`. Each kind is declared once (typed fields,
//! list columns); the statements come from the records kit.

use serde_json::{Map, Value};

use crate::db::list::{Column, Kind, ListParams, ListSpec, Order, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreResult, TenantScope, Write};
use crate::records::{self, DbRecord, Field, FieldType as T, KindSpec, Parsed};

text_enum!(
    /// The kinds under `/api/v1/resources/{kind}`.
    ResourceKind, "resource kind" {
        Licenses => "licenses",
        Proxies => "proxies",
        Subscriptions => "subscriptions",
    }
);

impl ResourceKind {
    pub fn spec(self) -> &'static KindSpec {
        match self {
            ResourceKind::Licenses => &LICENSES,
            ResourceKind::Proxies => &PROXIES,
            ResourceKind::Subscriptions => &SUBSCRIPTIONS,
        }
    }
}

pub const LICENSE_STATUSES: &[&str] = &["active", "expired", "revoked"];
pub const PROXY_TYPES: &[&str] = &["http", "socks5"];
pub const PROXY_STATUSES: &[&str] = &["active", "expired", "banned"];
pub const SUBSCRIPTION_TYPES: &[&str] = &["wow", "bot", "proxy", "vpn", "other"];
pub const SUBSCRIPTION_STATUSES: &[&str] = &["active", "cancelled", "expired", "expiring_soon"];
pub const PROJECTS: &[&str] = &["wow_tbc", "wow_midnight"];
/// A subscription expiring within this many days is `expiring_soon`.
pub const EXPIRING_SOON_DAYS: i64 = 7;

const STR_LIST: T = T::StrList {
    items: 500,
    len: 200,
};

static LICENSE_FIELDS: &[Field] = &[
    Field::new("key", T::Text(500)).column("license_key"),
    Field::new("type", T::Text(100)).column("license_type"),
    Field::new("status", T::Enum(LICENSE_STATUSES)).default("active"),
    Field::new("bot_ids", STR_LIST),
    Field::new("bot_names", STR_LIST),
    Field::new("expires_at", T::Timestamp),
];

static LICENSE_COLUMNS: &[Column] = &[
    Column::new("created_at", "created_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("updated_at", "updated_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("key", "license_key", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("type", "license_type", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("status", "status", Kind::Enum(LICENSE_STATUSES))
        .sortable()
        .filterable(),
    Column::new("expires_at", "expires_at", Kind::Timestamp)
        .nullable()
        .sortable()
        .filterable(),
];

pub static LICENSE_LIST: ListSpec = ListSpec {
    table: "resources_licenses",
    select: "id, tenant_id, license_key, license_type, status, bot_ids, bot_names, expires_at, \
             extras, created_at, updated_at",
    columns: LICENSE_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static LICENSES: KindSpec = KindSpec {
    kind: "licenses",
    schema: "ResourceLicense",
    table: "resources_licenses",
    fields: LICENSE_FIELDS,
    list_sqlite: &LICENSE_LIST,
    list_postgres: &LICENSE_LIST,
    secret_purpose: "resources.licenses",
};

static PROXY_FIELDS: &[Field] = &[
    Field::new("ip", T::Text(255)),
    Field::new("port", T::Int(1, 65535)),
    Field::new("login", T::Text(255)),
    Field::new(
        "password",
        T::Secret {
            max: 1000,
            flag: "has_password",
        },
    ),
    Field::new("provider", T::Text(200)),
    Field::new("country", T::Text(100)),
    Field::new("country_code", T::Text(10)),
    Field::new("type", T::Enum(PROXY_TYPES)).column("proxy_type"),
    Field::new("status", T::Enum(PROXY_STATUSES)).default("active"),
    Field::new("bot_id", T::Text(128)),
    Field::new("fraud_score", T::Int(0, 100)),
    Field::new("vpn", T::Bool),
    Field::new("proxy", T::Bool),
    Field::new("tor", T::Bool),
    Field::new("bot_status", T::Text(100)),
    Field::new("isp", T::Text(200)),
    Field::new("organization", T::Text(200)),
    Field::new("city", T::Text(200)),
    Field::new("region", T::Text(200)),
    Field::new("zip_code", T::Text(50)),
    Field::new("timezone", T::Text(100)),
    Field::new("latitude", T::Float(-90.0, 90.0)),
    Field::new("longitude", T::Float(-180.0, 180.0)),
    Field::new("expires_at", T::Timestamp),
    Field::new("last_checked", T::Timestamp),
];

static PROXY_COLUMNS: &[Column] = &[
    Column::new("created_at", "created_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("updated_at", "updated_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("ip", "ip", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("port", "port", Kind::Integer)
        .nullable()
        .sortable()
        .filterable(),
    Column::new("provider", "provider", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("country", "country", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("country_code", "country_code", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("city", "city", Kind::Text)
        .nullable()
        .filterable()
        .searchable(),
    Column::new("isp", "isp", Kind::Text)
        .nullable()
        .filterable()
        .searchable(),
    Column::new("type", "proxy_type", Kind::Enum(PROXY_TYPES))
        .nullable()
        .sortable()
        .filterable(),
    Column::new("status", "status", Kind::Enum(PROXY_STATUSES))
        .sortable()
        .filterable(),
    Column::new("bot_id", "bot_id", Kind::Text)
        .nullable()
        .filterable(),
    Column::new("fraud_score", "fraud_score", Kind::Integer)
        .nullable()
        .sortable()
        .filterable(),
    Column::new("expires_at", "expires_at", Kind::Timestamp)
        .nullable()
        .sortable()
        .filterable(),
    Column::new("last_checked", "last_checked", Kind::Timestamp)
        .nullable()
        .sortable()
        .filterable(),
];

pub static PROXY_LIST: ListSpec = ListSpec {
    table: "resources_proxies",
    select: "id, tenant_id, ip, port, login, provider, country, country_code, proxy_type, status, \
             bot_id, fraud_score, vpn, proxy, tor, bot_status, isp, organization, city, region, \
             zip_code, timezone, latitude, longitude, expires_at, last_checked, extras, \
             CAST(CASE WHEN secret_sealed IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_secret, \
             created_at, updated_at",
    columns: PROXY_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static PROXIES: KindSpec = KindSpec {
    kind: "proxies",
    schema: "ResourceProxy",
    table: "resources_proxies",
    fields: PROXY_FIELDS,
    list_sqlite: &PROXY_LIST,
    list_postgres: &PROXY_LIST,
    secret_purpose: "resources.proxies.password",
};

static SUBSCRIPTION_FIELDS: &[Field] = &[
    Field::new("type", T::Enum(SUBSCRIPTION_TYPES)).column("subscription_type"),
    Field::new("status", T::Enum(SUBSCRIPTION_STATUSES)).default("active"),
    Field::new("expires_at", T::Timestamp),
    Field::new("bot_id", T::Text(128)),
    Field::new("account_email", T::Text(320)),
    Field::new("auto_renew", T::Bool),
    Field::new("project_id", T::Enum(PROJECTS)),
    Field::new("notes", T::LongText(1000)),
];

static SUBSCRIPTION_COLUMNS: &[Column] = &[
    Column::new("created_at", "created_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("updated_at", "updated_at", Kind::Timestamp)
        .sortable()
        .filterable(),
    Column::new("type", "subscription_type", Kind::Enum(SUBSCRIPTION_TYPES))
        .nullable()
        .sortable()
        .filterable(),
    Column::new("status", "status", Kind::Enum(SUBSCRIPTION_STATUSES))
        .sortable()
        .filterable(),
    Column::new("expires_at", "expires_at", Kind::Timestamp)
        .nullable()
        .sortable()
        .filterable(),
    Column::new("bot_id", "bot_id", Kind::Text)
        .nullable()
        .filterable(),
    Column::new("account_email", "account_email", Kind::Text)
        .nullable()
        .sortable()
        .filterable()
        .searchable(),
    Column::new("project_id", "project_id", Kind::Enum(PROJECTS))
        .nullable()
        .filterable(),
    Column::new("notes", "notes", Kind::Text)
        .nullable()
        .searchable(),
];

/// The subscriptions as lists and reads see them: `status` is computed
/// from `expires_at` with the database clock (`cancelled` stays; else
/// `expired` once past, `expiring_soon` within [`EXPIRING_SOON_DAYS`],
/// `active` otherwise; without `expires_at` the stored status).
macro_rules! subscriptions_view {
    ($now:literal) => {
        concat!(
            "(SELECT tenant_id, id, subscription_type, ",
            "CASE WHEN status = 'cancelled' THEN 'cancelled' ",
            "WHEN expires_at IS NULL THEN status ",
            "WHEN expires_at <= ",
            $now,
            " THEN 'expired' ",
            "WHEN expires_at <= ",
            $now,
            " + 604800000 THEN 'expiring_soon' ",
            "ELSE 'active' END AS status, ",
            "expires_at, bot_id, account_email, auto_renew, project_id, notes, extras, ",
            "created_at, updated_at FROM resources_subscriptions) AS subscriptions"
        )
    };
}

const SUBSCRIPTION_SELECT: &str = "id, tenant_id, subscription_type, status, expires_at, bot_id, \
     account_email, auto_renew, project_id, notes, extras, created_at, updated_at";

pub static SUBSCRIPTION_LIST_SQLITE: ListSpec = ListSpec {
    table: subscriptions_view!("CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"),
    select: SUBSCRIPTION_SELECT,
    columns: SUBSCRIPTION_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static SUBSCRIPTION_LIST_POSTGRES: ListSpec = ListSpec {
    table: subscriptions_view!("CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000 AS BIGINT)"),
    select: SUBSCRIPTION_SELECT,
    columns: SUBSCRIPTION_COLUMNS,
    default_sort: "created_at",
    default_order: Order::Desc,
    id_column: "id",
};

pub static SUBSCRIPTIONS: KindSpec = KindSpec {
    kind: "subscriptions",
    schema: "ResourceSubscription",
    table: "resources_subscriptions",
    fields: SUBSCRIPTION_FIELDS,
    list_sqlite: &SUBSCRIPTION_LIST_SQLITE,
    list_postgres: &SUBSCRIPTION_LIST_POSTGRES,
    secret_purpose: "resources.subscriptions",
};

// ---- statements (the records kit, per kind) ----

pub async fn list(
    reader: &Reader,
    backend: Backend,
    kind: ResourceKind,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<DbRecord>> {
    records::list(reader, backend, kind.spec(), scope, params).await
}

pub async fn get(
    r: impl Read,
    backend: Backend,
    kind: ResourceKind,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<Option<DbRecord>> {
    records::get(r, backend, kind.spec(), scope, id).await
}

pub async fn insert(
    w: impl Write,
    kind: ResourceKind,
    scope: &TenantScope,
    id: &str,
    p: &Parsed,
    sealed: Option<String>,
    now: i64,
) -> StoreResult<()> {
    records::insert(w, kind.spec(), scope, id, p, sealed, now).await
}

/// Lock the row for a read-modify-write; `false` when it does not exist.
pub async fn lock(
    w: impl Write,
    kind: ResourceKind,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    records::lock(w, kind.spec(), scope, id).await
}

#[allow(clippy::too_many_arguments)]
pub async fn update(
    w: impl Write,
    kind: ResourceKind,
    scope: &TenantScope,
    id: &str,
    p: &Parsed,
    extras: &Map<String, Value>,
    sealed: Option<Option<String>>,
    now: i64,
) -> StoreResult<bool> {
    records::update(w, kind.spec(), scope, id, p, extras, sealed, now).await
}

pub async fn delete(
    w: impl Write,
    kind: ResourceKind,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<bool> {
    records::delete(w, kind.spec(), scope, id).await
}

pub async fn sealed_password(
    r: impl Read,
    scope: &TenantScope,
    id: &str,
) -> StoreResult<Option<Option<String>>> {
    records::sealed_secret(r, &PROXIES, scope, id).await
}

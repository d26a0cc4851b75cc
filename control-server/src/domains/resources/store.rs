//! The kinds of the resources domain — `resources_licenses`,
//! `resources_proxies`, `resources_subscriptions` — each declared once:
//! typed fields, how lists use them, the list's select. The statements, the
//! rules and the handlers come from the records kit (`crate::records`,
//! `super::super::records_kit`).

use crate::db::list::{Column, ListSpec};
use crate::records::{self, Field, FieldType as T, KindSpec, Listed as L};

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
    Field::new("key", T::Text(500))
        .column("license_key")
        .list(L::ALL),
    Field::new("type", T::Text(100))
        .column("license_type")
        .list(L::ALL),
    Field::new("status", T::Enum(LICENSE_STATUSES))
        .default("active")
        .list(L::SORT_FILTER),
    Field::new("bot_ids", STR_LIST),
    Field::new("bot_names", STR_LIST),
    Field::new("expires_at", T::Timestamp).list(L::SORT_FILTER),
];

static LICENSE_COLUMNS: [Column; 6] = records::list_columns(LICENSE_FIELDS);

pub static LICENSE_LIST: ListSpec = records::list_spec(
    "resources_licenses",
    "id, tenant_id, license_key, license_type, status, bot_ids, bot_names, expires_at, \
     extras, created_at, updated_at",
    &LICENSE_COLUMNS,
);

pub static LICENSES: KindSpec = KindSpec::new(
    "licenses",
    "ResourceLicense",
    "resources_licenses",
    LICENSE_FIELDS,
    &LICENSE_LIST,
);

static PROXY_FIELDS: &[Field] = &[
    Field::new("ip", T::Text(255)).list(L::ALL),
    Field::new("port", T::Int(1, 65535)).list(L::SORT_FILTER),
    Field::new("login", T::Text(255)),
    Field::new(
        "password",
        T::Secret {
            max: 1000,
            flag: "has_password",
        },
    ),
    Field::new("provider", T::Text(200)).list(L::ALL),
    Field::new("country", T::Text(100)).list(L::ALL),
    Field::new("country_code", T::Text(10)).list(L::ALL),
    Field::new("city", T::Text(200)).list(L::FILTER_SEARCH),
    Field::new("isp", T::Text(200)).list(L::FILTER_SEARCH),
    Field::new("type", T::Enum(PROXY_TYPES))
        .column("proxy_type")
        .list(L::SORT_FILTER),
    Field::new("status", T::Enum(PROXY_STATUSES))
        .default("active")
        .list(L::SORT_FILTER),
    Field::new("bot_id", T::Text(128)).list(L::FILTER),
    Field::new("fraud_score", T::Int(0, 100)).list(L::SORT_FILTER),
    Field::new("vpn", T::Bool),
    Field::new("proxy", T::Bool),
    Field::new("tor", T::Bool),
    Field::new("bot_status", T::Text(100)),
    Field::new("organization", T::Text(200)),
    Field::new("region", T::Text(200)),
    Field::new("zip_code", T::Text(50)),
    Field::new("timezone", T::Text(100)),
    Field::new("latitude", T::Float(-90.0, 90.0)),
    Field::new("longitude", T::Float(-180.0, 180.0)),
    Field::new("expires_at", T::Timestamp).list(L::SORT_FILTER),
    Field::new("last_checked", T::Timestamp).list(L::SORT_FILTER),
];

static PROXY_COLUMNS: [Column; 15] = records::list_columns(PROXY_FIELDS);

pub static PROXY_LIST: ListSpec = records::list_spec(
    "resources_proxies",
    "id, tenant_id, ip, port, login, provider, country, country_code, proxy_type, status, \
     bot_id, fraud_score, vpn, proxy, tor, bot_status, isp, organization, city, region, \
     zip_code, timezone, latitude, longitude, expires_at, last_checked, extras, \
     CAST(CASE WHEN secret_sealed IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_secret, \
     created_at, updated_at",
    &PROXY_COLUMNS,
);

pub static PROXIES: KindSpec = KindSpec::new(
    "proxies",
    "ResourceProxy",
    "resources_proxies",
    PROXY_FIELDS,
    &PROXY_LIST,
)
.secret_purpose("resources.proxies.password");

static SUBSCRIPTION_FIELDS: &[Field] = &[
    Field::new("type", T::Enum(SUBSCRIPTION_TYPES))
        .column("subscription_type")
        .list(L::SORT_FILTER),
    Field::new("status", T::Enum(SUBSCRIPTION_STATUSES))
        .default("active")
        .list(L::SORT_FILTER),
    Field::new("expires_at", T::Timestamp).list(L::SORT_FILTER),
    Field::new("bot_id", T::Text(128)).list(L::FILTER),
    Field::new("account_email", T::Text(320)).list(L::ALL),
    Field::new("auto_renew", T::Bool),
    Field::new("project_id", T::Enum(PROJECTS)).list(L::FILTER),
    Field::new("notes", T::LongText(1000)).list(L::SEARCH),
];

static SUBSCRIPTION_COLUMNS: [Column; 9] = records::list_columns(SUBSCRIPTION_FIELDS);

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

pub static SUBSCRIPTION_LIST_SQLITE: ListSpec = records::list_spec(
    subscriptions_view!("CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"),
    SUBSCRIPTION_SELECT,
    &SUBSCRIPTION_COLUMNS,
);

pub static SUBSCRIPTION_LIST_POSTGRES: ListSpec = records::list_spec(
    subscriptions_view!("CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000 AS BIGINT)"),
    SUBSCRIPTION_SELECT,
    &SUBSCRIPTION_COLUMNS,
);

pub static SUBSCRIPTIONS: KindSpec = KindSpec::new(
    "subscriptions",
    "ResourceSubscription",
    "resources_subscriptions",
    SUBSCRIPTION_FIELDS,
    &SUBSCRIPTION_LIST_SQLITE,
)
.postgres_list(&SUBSCRIPTION_LIST_POSTGRES);

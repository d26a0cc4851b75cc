//! Tenant licenses and entitlements, artifacts (releases, assignments,
//! audit), secrets metadata, the VM registry.
//!
//! Every page reads through the domain's service with the signed-in user's
//! identity, so the API's role rules apply as they are: licensing and
//! artifacts are admin-only (other roles get the API's refusal as the error
//! page), secrets and VMs show what the caller may see (own; admins: the
//! tenant's). Changes are `data-api` forms posting to the documented
//! `/api/v1` endpoints. A secret's material is never read, let alone shown:
//! the secrets pages use the metadata-only list and `meta`.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::pages::{any_of, list_params, options, param, url, with_param, PageResult};
use super::views::{capitalize, pretty, when, Choice, Layout, Pager, Prop};
use super::{render, ConsoleError, ConsoleUser};
use crate::auth::{Identity, Role};
use crate::db::ids::{ArtifactReleaseId, LicenseId, SecretId, UserId};
use crate::db::list::Page;
use crate::db::{ms_to_rfc3339, now_ms};
use crate::domains::artifacts::service::{AssignmentView, DownloadAuditView, ReleaseView};
use crate::domains::artifacts::store::{
    AUDIT_LIST as DOWNLOAD_AUDIT_LIST, RELEASE_LIST, RELEASE_STATUSES,
};
use crate::domains::finance::service::day_key;
use crate::domains::licensing::service::AuditView;
use crate::domains::licensing::store::{
    AUDIT_ACTIONS, AUDIT_LIST as LICENSE_AUDIT_LIST, LICENSE_LIST,
};
use crate::domains::licensing::{LicenseStatus, LicenseType, LicenseView};
use crate::domains::provisioning::service::ProgressView;
use crate::domains::provisioning::ProvisioningError;
use crate::domains::secrets::store::{BINDING_LIST, SECRET_LIST};
use crate::domains::secrets::{SecretBinding, SecretMeta};
use crate::domains::vms::service::VmView;
use crate::domains::vms::store::VM_LIST;
use crate::http::error::ApiError;
use crate::state::AppState;

/// This area's console routes (merged by [`super::routes`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/licenses", get(licenses))
        .route("/console/licenses/audit", get(license_audit))
        .route("/console/licenses/entitlements", get(entitlements_lookup))
        .route(
            "/console/licenses/entitlements/{user_id}",
            get(entitlements),
        )
        .route("/console/licenses/{id}", get(license))
        .route("/console/artifacts", get(artifacts))
        .route("/console/artifacts/releases/{id}", get(release))
        .route("/console/artifacts/assignments", get(assignments))
        .route("/console/artifacts/audit", get(artifact_audit))
        .route("/console/secrets", get(secrets))
        .route("/console/secrets/bindings", get(bindings))
        .route("/console/secrets/{id}", get(secret))
        .route("/console/vms", get(vms))
        .route("/console/vms/{uuid}", get(vm))
}

const DAY_MS: i64 = 86_400_000;

/// `—` for nothing.
fn or_dash(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "—".into(),
    }
}

/// Epoch ms as `2026-11-30 12:00:01 UTC`.
fn ms_when(ms: i64) -> String {
    when(&ms_to_rfc3339(ms))
}

/// `1.5 MiB`.
fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// "in 3 days", "today", "2 days ago": `delta_ms` from now, whole days
/// rounded away from now.
fn days_phrase(delta_ms: i64) -> String {
    let plural = |n: i64| if n == 1 { "" } else { "s" };
    if delta_ms > 0 {
        let d = (delta_ms + DAY_MS - 1) / DAY_MS;
        format!("in {d} day{}", plural(d))
    } else {
        let d = (-delta_ms) / DAY_MS;
        if d == 0 {
            "today".into()
        } else {
            format!("{d} day{} ago", plural(d))
        }
    }
}

/// Rows of a page and its pager, linked to `path` with the view's query.
fn pager<T>(page: &Page<T>, path: &str, raw: &str) -> Pager {
    Pager::new(page, |p| {
        url(path, &with_param(raw, "page", &p.to_string()))
    })
}

fn sorts(values: &[&str], raw: &str, default: &str) -> Vec<Choice> {
    Choice::list(values, &param(raw, "sort"), default)
}

fn orders(raw: &str) -> Vec<Choice> {
    Choice::list(&["asc", "desc"], &param(raw, "order"), "Default order")
}

// ---------------------------------------------------------------- licenses

/// The license types and statuses the forms offer.
const LICENSE_TYPES: &[&str] = &["subscription", "perpetual", "alltime"];
const LICENSE_STATUSES: &[&str] = &["active", "expired", "revoked"];

pub struct LicenseRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    /// Grants execution now.
    pub active: bool,
    pub expires: String,
    /// "in 3 days", "2 days ago", "never".
    pub expires_in: String,
    /// Empty: every user of the tenant.
    pub user_id: String,
    pub updated: String,
}

impl LicenseRow {
    fn new(l: &LicenseView, now: i64) -> LicenseRow {
        LicenseRow {
            id: l.id.clone(),
            kind: l.license_type.as_str().into(),
            status: l.status.as_str().into(),
            active: l.active,
            expires: l.expires_at.as_deref().map_or_else(|| "—".into(), when),
            expires_in: match l.expires_at_ms {
                _ if l.license_type != LicenseType::Subscription => "never".into(),
                Some(e) => days_phrase(e - now),
                None => "no expiry set".into(),
            },
            user_id: l.user_id.clone().unwrap_or_default(),
            updated: when(&l.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_licenses.html")]
pub struct LicensesPage {
    pub layout: Layout,
    pub rows: Vec<LicenseRow>,
    pub pager: Pager,
    pub types: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub user_id: String,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
    /// The create form's options and default expiry (30 days from
    /// today, `YYYY-MM-DD`).
    pub new_types: Vec<Choice>,
    pub new_statuses: Vec<Choice>,
    pub default_expiry: String,
}

/// `GET /console/licenses`: the tenant's licenses (admin; the API refuses
/// other roles), list kit filters in the URL, the create dialog.
pub async fn licenses(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&LICENSE_LIST, &raw)?;
    let page = state
        .licensing
        .list_licenses(&user.identity, &params)
        .await?;
    let now = now_ms();
    render(&LicensesPage {
        layout: user.layout("licenses", "Licenses"),
        rows: page.items.iter().map(|l| LicenseRow::new(l, now)).collect(),
        pager: pager(&page, "/console/licenses", &raw),
        types: Choice::list(LICENSE_TYPES, &param(&raw, "type"), "Any type"),
        statuses: Choice::list(LICENSE_STATUSES, &param(&raw, "status"), "Any status"),
        user_id: param(&raw, "user_id"),
        sorts: sorts(
            &["expires_at", "updated_at", "type", "status"],
            &raw,
            "Newest",
        ),
        orders: orders(&raw),
        filtered: any_of(&raw, &["type", "status", "user_id"]),
        url: url("/console/licenses", &raw),
        new_types: options(LICENSE_TYPES.iter().copied()),
        new_statuses: options(LICENSE_STATUSES.iter().copied()),
        default_expiry: day_key((now + 30 * DAY_MS).div_euclid(DAY_MS)),
    })
}

#[derive(Template)]
#[template(path = "console/delivery_license.html")]
pub struct LicensePage {
    pub layout: Layout,
    pub license: LicenseRow,
    pub props: Vec<Prop>,
    pub metadata: Option<String>,
    /// The edit form's current values.
    pub types: Vec<Choice>,
    pub statuses: Vec<Choice>,
    /// The current expiry as the edit form's hint says it.
    pub expires: String,
    pub revoked: bool,
}

/// `GET /console/licenses/{id}`: one license, edit / revoke / delete (admin).
pub async fn license(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let l = state
        .licensing
        .get_license(&user.identity, &LicenseId::from(id))
        .await?;
    let now = now_ms();
    let row = LicenseRow::new(&l, now);
    let props = vec![
        Prop {
            name: "Id",
            value: l.id.clone(),
        },
        Prop {
            name: "Type",
            value: row.kind.clone(),
        },
        Prop {
            name: "Status",
            value: row.status.clone(),
        },
        Prop {
            name: "Grants execution now",
            value: if l.active { "yes" } else { "no" }.into(),
        },
        Prop {
            name: "Expires",
            value: format!("{} ({})", row.expires, row.expires_in),
        },
        Prop {
            name: "Covers",
            value: l.user_id.as_ref().map_or_else(
                || "every user of the tenant".into(),
                |u| format!("user {u}"),
            ),
        },
        Prop {
            name: "Created",
            value: format!("{} by {}", when(&l.created_at), l.created_by),
        },
        Prop {
            name: "Updated",
            value: format!("{} by {}", when(&l.updated_at), l.updated_by),
        },
    ];
    render(&LicensePage {
        layout: user.layout("licenses", format!("License {}", l.id)),
        props,
        metadata: l.metadata.as_ref().map(pretty),
        types: Choice::list(LICENSE_TYPES, l.license_type.as_str(), "Keep")
            .into_iter()
            .skip(1)
            .collect(),
        statuses: Choice::list(LICENSE_STATUSES, l.status.as_str(), "Keep")
            .into_iter()
            .skip(1)
            .collect(),
        expires: l
            .expires_at_ms
            .map(ms_when)
            .unwrap_or_else(|| "none".into()),
        revoked: l.status == LicenseStatus::Revoked,
        license: row,
    })
}

#[derive(Template)]
#[template(path = "console/delivery_entitlements.html")]
pub struct EntitlementsPage {
    pub layout: Layout,
    pub user_id: String,
    /// Pretty JSON of the modules; `None`: never set.
    pub modules: Option<String>,
    /// Compact JSON for the form (`[]` when never set).
    pub modules_json: String,
    pub updated: String,
    pub licenses: Vec<LicenseRow>,
}

/// `GET /console/licenses/entitlements?user_id=…`: the lookup form's target.
pub async fn entitlements_lookup(_user: ConsoleUser, RawQuery(q): RawQuery) -> Response {
    let user_id = param(&q.unwrap_or_default(), "user_id");
    let user_id = user_id.trim();
    if user_id.is_empty() {
        return Redirect::to("/console/licenses").into_response();
    }
    let enc: String = form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
    Redirect::to(&format!("/console/licenses/entitlements/{enc}")).into_response()
}

/// `GET /console/licenses/entitlements/{user_id}`: a user's module
/// entitlements and licenses (admin); the PUT form replaces them.
pub async fn entitlements(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(user_id): Path<String>,
) -> PageResult {
    let me = &user.identity;
    let uid = UserId::from(user_id);
    let e = state.licensing.get_entitlement(me, &uid).await?;
    let q = list_params(
        &LICENSE_LIST,
        &format!("{}&limit=50", with_param("", "user_id", uid.as_str())),
    )?;
    let mine = state.licensing.list_licenses(me, &q).await?;
    let now = now_ms();
    render(&EntitlementsPage {
        layout: user.layout("licenses", format!("Entitlements of {}", e.user_id)),
        modules: e.modules.as_ref().map(pretty),
        modules_json: e
            .modules
            .as_ref()
            .map_or_else(|| "[]".into(), |m| m.to_string()),
        updated: match (&e.updated_at, &e.updated_by) {
            (Some(at), Some(by)) => format!("{} by {by}", when(at)),
            _ => "never".into(),
        },
        licenses: mine.items.iter().map(|l| LicenseRow::new(l, now)).collect(),
        user_id: e.user_id,
    })
}

pub struct LicenseAuditRow {
    pub when: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// Where the target's page is, if it has one.
    pub href: String,
    pub actor: String,
    pub data: String,
}

impl LicenseAuditRow {
    fn new(a: &AuditView) -> LicenseAuditRow {
        let href = match a.target_type.as_str() {
            "license" if a.action != "license.deleted" => {
                format!("/console/licenses/{}", a.target_id)
            }
            "entitlement" => format!("/console/licenses/entitlements/{}", a.target_id),
            _ => String::new(),
        };
        LicenseAuditRow {
            when: when(&a.created_at),
            action: a.action.clone(),
            target_type: a.target_type.clone(),
            target_id: a.target_id.clone(),
            href,
            actor: a.actor_id.clone(),
            data: pretty(&a.data),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_license_audit.html")]
pub struct LicenseAuditPage {
    pub layout: Layout,
    pub rows: Vec<LicenseAuditRow>,
    pub pager: Pager,
    pub q: String,
    pub actions: Vec<Choice>,
    pub targets: Vec<Choice>,
    pub actor_id: String,
    pub orders: Vec<Choice>,
    pub filtered: bool,
}

/// `GET /console/licenses/audit`: who changed which license, entitlement
/// or lease (admin), paged.
pub async fn license_audit(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&LICENSE_AUDIT_LIST, &raw)?;
    let page = state.licensing.list_audit(&user.identity, &params).await?;
    render(&LicenseAuditPage {
        layout: user.layout("licenses", "License audit"),
        rows: page.items.iter().map(LicenseAuditRow::new).collect(),
        pager: pager(&page, "/console/licenses/audit", &raw),
        q: param(&raw, "q"),
        actions: Choice::list(AUDIT_ACTIONS, &param(&raw, "action"), "Any action"),
        targets: Choice::list(
            &["license", "entitlement", "lease"],
            &param(&raw, "target_type"),
            "Any target",
        ),
        actor_id: param(&raw, "actor_id"),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Newest first"),
        filtered: any_of(&raw, &["q", "action", "target_type", "actor_id"]),
    })
}

// ---------------------------------------------------------------- alerts

/// How far ahead [`license_alerts`] looks for expiring subscriptions.
pub const LICENSE_ALERT_WINDOW_DAYS: i64 = 14;

/// One dashboard alert about a tenant license.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseAlert {
    /// A sentence: "Subscription license lic_… (every user) expires in 3 days (…)."
    pub text: String,
    /// The license's console page.
    pub href: String,
    /// `warn` (expiring soon) or `danger` (expired, revoked).
    pub level: &'static str,
    pub license_id: String,
}

fn covers(l: &LicenseView) -> String {
    l.user_id
        .as_ref()
        .map_or_else(|| "every user".into(), |u| format!("user {u}"))
}

/// The dashboard's license alerts for `identity`'s tenant:
///
/// * active subscriptions whose expiry is within
///   [`LICENSE_ALERT_WINDOW_DAYS`] days (`warn`), or already past while the
///   stored status still says active (`danger`), soonest first;
/// * licenses whose status is `expired` or `revoked` (`danger`), most
///   recently changed first.
///
/// At most 50 of each. Licenses are admin-only in the API, so for other
/// roles this is `Ok(vec![])` (no alerts, no error: the dashboard renders
/// for everyone). Perpetual and alltime licenses never expire.
pub async fn license_alerts(
    state: &AppState,
    identity: &Identity,
) -> Result<Vec<LicenseAlert>, ConsoleError> {
    if !identity.has(Role::Admin) {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let soon = list_params(
        &LICENSE_LIST,
        &format!(
            "status=active&type=subscription&expires_at_lte={}&sort=expires_at&order=asc&limit=50",
            now + LICENSE_ALERT_WINDOW_DAYS * DAY_MS
        ),
    )?;
    let ended = list_params(
        &LICENSE_LIST,
        "status_in=expired,revoked&sort=updated_at&order=desc&limit=50",
    )?;
    let mut alerts = Vec::new();
    for l in state.licensing.list_licenses(identity, &soon).await?.items {
        let Some(exp) = l.expires_at_ms else { continue };
        let (verb, level) = if exp > now {
            ("expires", "warn")
        } else {
            ("expired", "danger")
        };
        alerts.push(LicenseAlert {
            text: format!(
                "Subscription license {} ({}) {verb} {} ({}).",
                l.id,
                covers(&l),
                days_phrase(exp - now),
                ms_when(exp)
            ),
            href: format!("/console/licenses/{}", l.id),
            level,
            license_id: l.id,
        });
    }
    for l in state.licensing.list_licenses(identity, &ended).await?.items {
        alerts.push(LicenseAlert {
            text: format!(
                "{} license {} ({}) is {}.",
                capitalize(l.license_type.as_str()),
                l.id,
                covers(&l),
                l.status.as_str()
            ),
            href: format!("/console/licenses/{}", l.id),
            level: "danger",
            license_id: l.id,
        });
    }
    Ok(alerts)
}

// ---------------------------------------------------------------- artifacts

pub struct ReleaseRow {
    pub id: String,
    pub module: String,
    pub version: String,
    pub platform: String,
    pub channel: String,
    pub status: String,
    pub content: String,
    pub pending: bool,
    pub size: String,
    pub sha256: String,
    pub sha_short: String,
    pub created: String,
}

impl ReleaseRow {
    fn new(r: &ReleaseView) -> ReleaseRow {
        ReleaseRow {
            id: r.id.clone(),
            module: r.module.clone(),
            version: r.version.clone(),
            platform: r.platform.clone(),
            channel: r.channel.clone(),
            status: r.status.as_str().into(),
            content: r.content.as_str().into(),
            pending: r.content.as_str() == "pending",
            size: human_bytes(r.size_bytes),
            sha256: r.sha256.clone(),
            sha_short: r.sha256.chars().take(12).collect(),
            created: when(&r.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_artifacts.html")]
pub struct ArtifactsPage {
    pub layout: Layout,
    pub rows: Vec<ReleaseRow>,
    pub pager: Pager,
    pub q: String,
    pub statuses: Vec<Choice>,
    pub contents: Vec<Choice>,
    pub platform: String,
    pub channel: String,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

/// `GET /console/artifacts`: releases (admin), the create dialog.
pub async fn artifacts(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&RELEASE_LIST, &raw)?;
    let page = state
        .artifacts
        .list_releases(&user.identity, &params)
        .await?;
    render(&ArtifactsPage {
        layout: user.layout("artifacts", "Artifacts"),
        rows: page.items.iter().map(ReleaseRow::new).collect(),
        pager: pager(&page, "/console/artifacts", &raw),
        q: param(&raw, "q"),
        statuses: Choice::list(RELEASE_STATUSES, &param(&raw, "status"), "Any status"),
        contents: Choice::list(
            &["pending", "ready"],
            &param(&raw, "content"),
            "Any content",
        ),
        platform: param(&raw, "platform"),
        channel: param(&raw, "channel"),
        sorts: sorts(
            &[
                "module",
                "version",
                "platform",
                "channel",
                "status",
                "size_bytes",
                "updated_at",
            ],
            &raw,
            "Newest",
        ),
        orders: orders(&raw),
        filtered: any_of(&raw, &["q", "status", "content", "platform", "channel"]),
        url: url("/console/artifacts", &raw),
    })
}

#[derive(Template)]
#[template(path = "console/delivery_release.html")]
pub struct ReleasePage {
    pub layout: Layout,
    pub release: ReleaseRow,
    pub props: Vec<Prop>,
    /// Statuses the status form offers (not the current one; a release
    /// without content can only be a draft).
    pub targets: Vec<Choice>,
}

/// `GET /console/artifacts/releases/{id}`: one release, its status form,
/// the upload hint and the assign form (admin).
pub async fn release(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let r = state
        .artifacts
        .get_release(&user.identity, &ArtifactReleaseId::from(id))
        .await?;
    let row = ReleaseRow::new(&r);
    let props = vec![
        Prop {
            name: "Id",
            value: r.id.clone(),
        },
        Prop {
            name: "Module",
            value: r.module.clone(),
        },
        Prop {
            name: "Version",
            value: r.version.clone(),
        },
        Prop {
            name: "Platform / channel",
            value: format!("{} / {}", r.platform, r.channel),
        },
        Prop {
            name: "Size",
            value: format!("{} ({} bytes)", row.size, r.size_bytes),
        },
        Prop {
            name: "SHA-256",
            value: r.sha256.clone(),
        },
        Prop {
            name: "Object key",
            value: r.object_key.clone(),
        },
        Prop {
            name: "Created",
            value: format!("{} by {}", when(&r.created_at), r.created_by),
        },
        Prop {
            name: "Updated",
            value: format!("{} by {}", when(&r.updated_at), r.updated_by),
        },
    ];
    let current = r.status.as_str();
    let targets = options(
        RELEASE_STATUSES
            .iter()
            .copied()
            .filter(|s| *s != current && (!row.pending || *s == "draft")),
    );
    render(&ReleasePage {
        layout: user.layout("artifacts", format!("Release {} {}", r.module, r.version)),
        props,
        targets,
        release: row,
    })
}

pub struct AssignmentRow {
    pub which: &'static str,
    pub user: String,
    pub release_id: String,
    pub updated: String,
}

impl AssignmentRow {
    fn new(which: &'static str, a: &AssignmentView) -> AssignmentRow {
        AssignmentRow {
            which,
            user: a.user_id.clone().unwrap_or_else(|| "tenant default".into()),
            release_id: a.release_id.clone(),
            updated: format!("{} by {}", when(&a.updated_at), a.updated_by),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_assignments.html")]
pub struct AssignmentsPage {
    pub layout: Layout,
    pub user_id: String,
    pub module: String,
    pub platform: String,
    pub channel: String,
    /// Whether a lookup was asked for.
    pub asked: bool,
    pub rows: Vec<AssignmentRow>,
    /// The effective assignment's release, if any.
    pub effective: String,
    /// The API's refusal of the lookup (e.g. no such user).
    pub error: Option<String>,
}

/// `GET /console/artifacts/assignments`: which release a user gets (the
/// lookup of `GET /api/v1/artifacts/assign/{user_id}/{module}`) and the
/// assign form (admin).
pub async fn assignments(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let me = &user.identity;
    // The page itself is admin-only, as every assignment call is.
    me.require(Role::Admin)?;
    let user_id = param(&raw, "user_id");
    let module = param(&raw, "module");
    let platform = param(&raw, "platform");
    let channel = param(&raw, "channel");
    let asked = !user_id.is_empty() && !module.is_empty();
    let mut rows = Vec::new();
    let mut effective = String::new();
    let mut error = None;
    if asked {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match state
            .artifacts
            .lookup(
                me,
                &UserId::from(user_id.as_str()),
                &module,
                opt(&platform).as_deref(),
                opt(&channel).as_deref(),
            )
            .await
        {
            Ok(l) => {
                if let Some(a) = &l.user_assignment {
                    rows.push(AssignmentRow::new("user", a));
                }
                if let Some(a) = &l.default_assignment {
                    rows.push(AssignmentRow::new("default", a));
                }
                effective = l
                    .effective_assignment
                    .map(|a| a.release_id)
                    .unwrap_or_default();
            }
            Err(e) => {
                let e = ApiError::from(e);
                error = Some(format!("{}: {}", e.code, e.message));
            }
        }
    }
    render(&AssignmentsPage {
        layout: user.layout("artifacts", "Artifact assignments"),
        user_id,
        module,
        platform,
        channel,
        asked,
        rows,
        effective,
        error,
    })
}

pub struct DownloadRow {
    pub when: String,
    pub result: String,
    pub event: String,
    pub module: String,
    pub scope: String,
    pub vm_uuid: String,
    pub user: String,
    pub release_id: String,
    pub reason: String,
    pub ip: String,
}

impl DownloadRow {
    fn new(a: &DownloadAuditView) -> DownloadRow {
        DownloadRow {
            when: when(&a.created_at),
            result: a.result.as_str().into(),
            event: a.event_type.as_str().replace('_', " "),
            module: a.module.clone(),
            scope: format!("{} / {}", a.platform, a.channel),
            vm_uuid: a.vm_uuid.clone(),
            user: or_dash(a.user_id.as_deref()),
            release_id: a.release_id.clone().unwrap_or_default(),
            reason: or_dash(a.reason.as_deref().or(a.error_code.as_deref())),
            ip: a.request_ip.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_artifact_audit.html")]
pub struct ArtifactAuditPage {
    pub layout: Layout,
    pub rows: Vec<DownloadRow>,
    pub pager: Pager,
    pub q: String,
    pub results: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
}

/// `GET /console/artifacts/audit`: every resolve-download attempt (admin).
pub async fn artifact_audit(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&DOWNLOAD_AUDIT_LIST, &raw)?;
    let page = state.artifacts.list_audit(&user.identity, &params).await?;
    render(&ArtifactAuditPage {
        layout: user.layout("artifacts", "Download audit"),
        rows: page.items.iter().map(DownloadRow::new).collect(),
        pager: pager(&page, "/console/artifacts/audit", &raw),
        q: param(&raw, "q"),
        results: Choice::list(
            &["allowed", "denied", "error"],
            &param(&raw, "result"),
            "Any result",
        ),
        sorts: sorts(&["result", "module", "vm_uuid"], &raw, "Newest"),
        orders: orders(&raw),
        filtered: any_of(&raw, &["q", "result"]),
    })
}

// ---------------------------------------------------------------- secrets

/// The binding scopes the bind form offers (the API's enum).
const SCOPE_TYPES: &[&str] = &["bot", "vm", "vm_settings", "agent", "tenant"];

pub struct SecretRow {
    pub id: String,
    pub label: String,
    pub kind: String,
    pub alg: String,
    pub version: i64,
    pub created: String,
    pub rotated: String,
}

impl SecretRow {
    fn new(s: &SecretMeta) -> SecretRow {
        SecretRow {
            id: s.id.to_string(),
            label: or_dash(Some(&s.label)),
            kind: s.kind.as_str().into(),
            alg: s.alg.clone(),
            version: s.material_version,
            created: when(&s.created_at),
            rotated: s.rotated_at.as_deref().map_or_else(|| "never".into(), when),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_secrets.html")]
pub struct SecretsPage {
    pub layout: Layout,
    pub rows: Vec<SecretRow>,
    pub pager: Pager,
    pub q: String,
    pub kinds: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

/// `GET /console/secrets`: secrets' metadata the caller may see (own;
/// admins: the tenant's). Never the material.
pub async fn secrets(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&SECRET_LIST, &raw)?;
    let page = state.secrets.list(&user.identity, &params).await?;
    render(&SecretsPage {
        layout: user.layout("secrets", "Secrets"),
        rows: page.items.iter().map(SecretRow::new).collect(),
        pager: pager(&page, "/console/secrets", &raw),
        q: param(&raw, "q"),
        kinds: Choice::list(
            &["client", "server", "agent"],
            &param(&raw, "kind"),
            "Any kind",
        ),
        sorts: sorts(
            &[
                "label",
                "id",
                "kind",
                "material_version",
                "rotated_at",
                "updated_at",
            ],
            &raw,
            "Newest",
        ),
        orders: orders(&raw),
        filtered: any_of(&raw, &["q", "kind"]),
        url: url("/console/secrets", &raw),
    })
}

pub struct BindingRow {
    pub secret: String,
    pub scope_type: String,
    pub scope_id: String,
    pub field: String,
    pub updated: String,
}

impl BindingRow {
    fn new(b: &SecretBinding) -> BindingRow {
        BindingRow {
            secret: b.secret_ref.to_string(),
            scope_type: b.scope_type.as_str().replace('_', " "),
            scope_id: b.scope_id.clone(),
            field: or_dash(Some(&b.field_name)),
            updated: when(&b.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_secret.html")]
pub struct SecretPage {
    pub layout: Layout,
    pub secret: SecretRow,
    pub props: Vec<Prop>,
    pub aad_meta: String,
    pub bindings: Vec<BindingRow>,
    pub bindings_total: i64,
    pub scope_types: Vec<Choice>,
}

/// How many bindings a secret's page shows.
const SECRET_BINDING_ROWS: u32 = 50;

/// `GET /console/secrets/{id}`: metadata, bindings, rotate and bind forms
/// (operators: their own secrets; admins: any).
pub async fn secret(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let me = &user.identity;
    let s = state.secrets.meta(me, &SecretId::from(id)).await?;
    let q = list_params(
        &BINDING_LIST,
        &format!(
            "{}&limit={SECRET_BINDING_ROWS}",
            with_param("", "secret_ref", s.id.as_str())
        ),
    )?;
    let bindings = state.secrets.list_bindings(me, &q).await?;
    let props = vec![
        Prop {
            name: "Id",
            value: s.id.to_string(),
        },
        Prop {
            name: "Label",
            value: or_dash(Some(&s.label)),
        },
        Prop {
            name: "Kind",
            value: s.kind.as_str().into(),
        },
        Prop {
            name: "Algorithm",
            value: s.alg.clone(),
        },
        Prop {
            name: "Key id",
            value: s.key_id.clone(),
        },
        Prop {
            name: "Sealed to agent",
            value: or_dash(s.agent_id.as_deref()),
        },
        Prop {
            name: "Version",
            value: s.material_version.to_string(),
        },
        Prop {
            name: "Created",
            value: when(&s.created_at),
        },
        Prop {
            name: "Updated",
            value: when(&s.updated_at),
        },
        Prop {
            name: "Rotated",
            value: s.rotated_at.as_deref().map_or_else(|| "never".into(), when),
        },
    ];
    render(&SecretPage {
        layout: user.layout("secrets", format!("Secret {}", s.id)),
        secret: SecretRow::new(&s),
        props,
        aad_meta: pretty(&s.aad_meta),
        bindings: bindings.items.iter().map(BindingRow::new).collect(),
        bindings_total: bindings.total,
        scope_types: options(SCOPE_TYPES.iter().copied()),
    })
}

#[derive(Template)]
#[template(path = "console/delivery_bindings.html")]
pub struct BindingsPage {
    pub layout: Layout,
    pub rows: Vec<BindingRow>,
    pub pager: Pager,
    pub q: String,
    pub scope_types: Vec<Choice>,
    pub secret_ref: String,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
}

/// `GET /console/secrets/bindings`: where secrets are used (own; admins:
/// the tenant's).
pub async fn bindings(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&BINDING_LIST, &raw)?;
    let page = state.secrets.list_bindings(&user.identity, &params).await?;
    render(&BindingsPage {
        layout: user.layout("secrets", "Secret bindings"),
        rows: page.items.iter().map(BindingRow::new).collect(),
        pager: pager(&page, "/console/secrets/bindings", &raw),
        q: param(&raw, "q"),
        scope_types: Choice::list(SCOPE_TYPES, &param(&raw, "scope_type"), "Any scope"),
        secret_ref: param(&raw, "secret_ref"),
        sorts: sorts(
            &["scope_type", "scope_id", "field_name", "updated_at"],
            &raw,
            "Newest",
        ),
        orders: orders(&raw),
        filtered: any_of(&raw, &["q", "scope_type", "secret_ref"]),
    })
}

// ---------------------------------------------------------------- VMs

const VM_STATUSES: &[&str] = &["active", "paused", "revoked"];

pub struct VmRow {
    pub uuid: String,
    pub name: String,
    pub project: String,
    pub status: String,
    pub owner: String,
    pub updated: String,
}

impl VmRow {
    fn new(v: &VmView, me: &str) -> VmRow {
        VmRow {
            uuid: v.vm_uuid.clone(),
            name: or_dash(v.vm_name.as_deref()),
            project: or_dash(v.project_id.as_deref()).replace('_', " "),
            status: v.status.as_str().into(),
            owner: if v.user_id == me {
                "you".into()
            } else {
                v.user_id.clone()
            },
            updated: when(&v.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_vms.html")]
pub struct VmsPage {
    pub layout: Layout,
    pub rows: Vec<VmRow>,
    pub pager: Pager,
    pub q: String,
    pub statuses: Vec<Choice>,
    pub project_id: String,
    pub user_id: String,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

/// `GET /console/vms`: the VM registry (own; admins: the tenant's).
pub async fn vms(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&VM_LIST, &raw)?;
    let page = state.vms.list(&user.identity, &params).await?;
    let me = user.identity.user_id.to_string();
    render(&VmsPage {
        layout: user.layout("vms", "VMs"),
        rows: page.items.iter().map(|v| VmRow::new(v, &me)).collect(),
        pager: pager(&page, "/console/vms", &raw),
        q: param(&raw, "q"),
        statuses: Choice::list(VM_STATUSES, &param(&raw, "status"), "Any status"),
        project_id: param(&raw, "project_id"),
        user_id: param(&raw, "user_id"),
        sorts: sorts(
            &["vm_name", "vm_uuid", "project_id", "status", "updated_at"],
            &raw,
            "Newest",
        ),
        orders: orders(&raw),
        filtered: any_of(&raw, &["q", "status", "project_id", "user_id"]),
        url: url("/console/vms", &raw),
    })
}

#[derive(Template)]
#[template(path = "console/delivery_vm.html")]
pub struct VmPage {
    pub layout: Layout,
    pub vm: VmRow,
    pub props: Vec<Prop>,
    pub metadata: Option<String>,
    pub targets: Vec<Choice>,
    /// The guest's provisioning progress (its newest token), if it has one.
    pub progress: Option<ProgressPanel>,
}

/// A guest's provisioning as the VM page shows it.
pub struct ProgressPanel {
    /// `pending`, `running`, `completed` or `failed`.
    pub state: String,
    pub token: Vec<Prop>,
    pub steps: Vec<StepRow>,
    /// The auto-detach of the provisioning CD-ROM, when requested.
    pub detach: Option<String>,
    pub detach_command: Option<String>,
}

pub struct StepRow {
    pub step: &'static str,
    pub status: &'static str,
    pub reported: String,
    pub count: i64,
    pub details: String,
}

impl ProgressPanel {
    fn new(p: &ProgressView) -> ProgressPanel {
        let t = &p.token;
        let mut token = vec![
            Prop {
                name: "Token",
                value: format!("{} ({})", t.token_hint, t.status.as_str()),
            },
            Prop {
                name: "Issued",
                value: format!("{} by {}", when(&t.issued_at), t.issued_by),
            },
            Prop {
                name: "Expires",
                value: when(&t.expires_at),
            },
        ];
        if let Some(used) = &t.used_at {
            token.push(Prop {
                name: "Used",
                value: when(used),
            });
        }
        if let Some(revoked) = &t.revoked_at {
            token.push(Prop {
                name: "Revoked",
                value: format!(
                    "{} ({})",
                    when(revoked),
                    t.revoke_reason.as_deref().unwrap_or("no reason given")
                ),
            });
        }
        let detach = p.detach.as_ref().map(|d| {
            let status = d
                .command_status
                .clone()
                .or_else(|| d.dispatch_error.clone().map(|e| format!("not sent: {e}")))
                .unwrap_or_else(|| "requested".into());
            let error = match (&d.command_error_code, &d.command_error_message) {
                (Some(c), Some(m)) => format!(" ({c}: {m})"),
                (Some(one), None) | (None, Some(one)) => format!(" ({one})"),
                (None, None) => String::new(),
            };
            format!("{}, {status}{error}", when(&d.requested_at))
        });
        ProgressPanel {
            state: p.state.clone(),
            token,
            steps: p
                .steps
                .iter()
                .map(|s| StepRow {
                    step: s.step.as_str(),
                    status: s.status.as_str(),
                    reported: when(&s.reported_at),
                    count: s.report_count,
                    details: s
                        .details
                        .as_ref()
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            detach_command: p.detach.as_ref().and_then(|d| d.command_id.clone()),
            detach,
        }
    }
}

/// `GET /console/vms/{uuid}`: one VM; admins change its status.
pub async fn vm(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(uuid): Path<String>,
) -> PageResult {
    let v = state.vms.resolve(&user.identity, &uuid).await?;
    let props = vec![
        Prop {
            name: "UUID",
            value: v.vm_uuid.clone(),
        },
        Prop {
            name: "Name",
            value: or_dash(v.vm_name.as_deref()),
        },
        Prop {
            name: "Project",
            value: or_dash(v.project_id.as_deref()),
        },
        Prop {
            name: "Owner",
            value: v.user_id.clone(),
        },
        Prop {
            name: "Registered",
            value: format!("{} by {}", when(&v.created_at), v.created_by),
        },
        Prop {
            name: "Updated",
            value: when(&v.updated_at),
        },
    ];
    let current = v.status.as_str();
    // what the guest reported while it installed (no token yet: none)
    let progress = match state
        .provisioning
        .progress(&user.identity, &v.vm_uuid)
        .await
    {
        Ok(p) => Some(ProgressPanel::new(&p)),
        Err(ProvisioningError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    render(&VmPage {
        progress,
        layout: user.layout(
            "vms",
            format!("VM {}", v.vm_name.as_deref().unwrap_or(&v.vm_uuid)),
        ),
        props,
        metadata: v.metadata.as_ref().map(pretty),
        targets: options(VM_STATUSES.iter().copied().filter(|s| *s != current)),
        vm: VmRow::new(&v, user.identity.user_id.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases() {
        assert_eq!(days_phrase(3 * DAY_MS - 5), "in 3 days");
        assert_eq!(days_phrase(1), "in 1 day");
        assert_eq!(days_phrase(-5), "today");
        assert_eq!(days_phrase(-2 * DAY_MS - 5), "2 days ago");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(capitalize("revoked"), "Revoked");
    }
}

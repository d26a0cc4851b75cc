//! Unattend profiles (list, tabbed editor, XML preview) and playbooks (list, editor, validation).
//!
//! The profile editor is generated from one table of fields ([`profile_tabs`]):
//! each control's `name` is the JSON path of the configuration
//! (`config.computerName.customName`), so the API's validation errors land on
//! it, and its value is read from the profile's serialised configuration at
//! that path. Saving is a `data-api` form (POST or PUT of
//! `/api/v1/unattend-profiles`); "Preview XML" posts the form's current
//! `config` to `/api/v1/unattend-profiles/preview` (`data-preview` of
//! `console.js`); the playbook editor's "Validate" posts its `content` to
//! `/api/v1/playbooks/validate` (`data-validate`).

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::pages::{any_of, list_params, param, url, with_param, PageResult};
use super::views::{when, Choice, Layout, Pager};
use super::{render, ConsoleUser};
use crate::db::ids::{PlaybookId, UnattendProfileId};
use crate::domains::provisioning::playbook::PlaybookIssue;
use crate::domains::provisioning::service::Playbook;
use crate::domains::provisioning::store::PLAYBOOK_LIST;
use crate::domains::unattend::catalog;
use crate::domains::unattend::config::{EffectFlags, IconFlags, StartFolders, UnattendConfig};
use crate::domains::unattend::service::Profile;
use crate::domains::unattend::store::PROFILE_LIST;
use crate::state::AppState;

/// This area's console routes (merged by [`super::routes`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/unattend-profiles", get(profiles))
        .route("/console/unattend-profiles/new", get(new_profile))
        .route("/console/unattend-profiles/{id}", get(profile))
        .route("/console/playbooks", get(playbooks))
        .route("/console/playbooks/new", get(new_playbook))
        .route("/console/playbooks/{id}", get(playbook))
}

// ------------------------------------------------------------------ shared

/// `" disabled"` for a read-only page (viewers), else nothing.
fn disabled(read_only: bool) -> &'static str {
    if read_only {
        " disabled"
    } else {
        ""
    }
}

fn owner_text(owner: &str, me: &str) -> String {
    if owner == me {
        "you".into()
    } else {
        owner.into()
    }
}

/// The "Default" filter of both lists (the list kit's `is_default`).
fn default_filter(current: &str) -> Vec<Choice> {
    [("", "Any"), ("1", "Default only"), ("0", "Not default")]
        .into_iter()
        .map(|(value, label)| Choice {
            value: value.into(),
            label: label.into(),
            selected: value == current,
        })
        .collect()
}

// ------------------------------------------------------------------ profiles

pub struct ProfileRow {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub owner: String,
    pub computer: String,
    pub updated: String,
}

impl ProfileRow {
    fn new(p: &Profile, me: &str) -> ProfileRow {
        let c = &p.config.computer_name;
        let mode = serde_json::to_value(c.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        ProfileRow {
            id: p.id.to_string(),
            name: p.name.clone(),
            is_default: p.is_default,
            owner: owner_text(&p.owner_user_id, me),
            computer: match &c.custom_name {
                Some(n) if mode == "custom" => n.clone(),
                _ => mode,
            },
            updated: when(&p.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/profiles.html")]
pub struct ProfilesPage {
    pub layout: Layout,
    pub rows: Vec<ProfileRow>,
    pub pager: Pager,
    pub q: String,
    pub defaults: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

/// `GET /console/unattend-profiles`: the list kit's search, sort and paging in the URL.
pub async fn profiles(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&PROFILE_LIST, &raw)?;
    let page = state.unattend.list(&user.identity, &params).await?;
    let me = user.identity.user_id.to_string();
    render(&ProfilesPage {
        layout: user.layout("profiles", "Unattend profiles"),
        rows: page.items.iter().map(|p| ProfileRow::new(p, &me)).collect(),
        pager: Pager::new(&page, |p| {
            url(
                "/console/unattend-profiles",
                &with_param(&raw, "page", &p.to_string()),
            )
        }),
        q: param(&raw, "q"),
        defaults: default_filter(&param(&raw, "is_default")),
        sorts: Choice::list(
            &["name", "updated_at", "is_default"],
            &param(&raw, "sort"),
            "Newest",
        ),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "is_default"]),
        url: url("/console/unattend-profiles", &raw),
    })
}

/// How a field of the profile editor is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A text input.
    Text,
    /// A password input.
    Secret,
    /// A whole number (`data-type="int"`).
    Int,
    /// A `<select>` of strings.
    Select,
    /// A `<select>` of numbers (`data-type="int"`).
    IntSelect,
    /// A checkbox sent as `true`/`false` (`data-type="flag"`).
    Flag,
    /// Not set / on / off (`<select data-type="bool">`, empty = not set).
    TriState,
    /// One entry a line (`data-type="lines"`).
    Lines,
    /// Keyboard layouts `LLLL:KKKKKKKK`, one a line, sent as objects.
    Layouts,
}

/// One control of the profile editor.
pub struct Field {
    /// The JSON path (`config.user.nameMode`): the control's `name`.
    pub name: String,
    /// The element id (`f-config-user-nameMode`).
    pub id: String,
    pub label: String,
    pub hint: &'static str,
    kind: Kind,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Choice>,
}

impl Field {
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Text => "text",
            Kind::Secret => "secret",
            Kind::Int => "int",
            Kind::Select | Kind::IntSelect => "select",
            Kind::Flag => "flag",
            Kind::TriState => "tristate",
            Kind::Lines | Kind::Layouts => "lines",
        }
    }

    /// The `data-type` of the control (empty: plain text).
    pub fn data_type(&self) -> &'static str {
        match self.kind {
            Kind::Int | Kind::IntSelect => "int",
            Kind::Flag => "flag",
            Kind::TriState => "bool",
            Kind::Lines | Kind::Layouts => "lines",
            Kind::Text | Kind::Secret | Kind::Select => "",
        }
    }

    /// `data-keys` of a lines control whose lines are objects.
    pub fn keys(&self) -> &'static str {
        if self.kind == Kind::Layouts {
            "language,layout"
        } else {
            ""
        }
    }
}

/// A group of fields (a `<fieldset>` with its legend).
pub struct Group {
    pub legend: &'static str,
    pub fields: Vec<Field>,
}

/// One tab of the editor.
pub struct Tab {
    /// `user`, `computer`, …: the tab is `tab-<key>`, its panel `panel-<key>`.
    pub key: &'static str,
    pub label: &'static str,
    pub intro: &'static str,
    pub groups: Vec<Group>,
}

/// The `config` of a new profile: every default, random names.
fn default_config() -> UnattendConfig {
    let mut c: UnattendConfig = serde_json::from_value(serde_json::json!({
        "user": {"nameMode": "random"},
        "computerName": {"mode": "random"}
    }))
    .expect("the default configuration parses");
    c.normalize();
    c
}

/// `disableDefender` → `Disable defender`, `thisPC` → `This PC`.
fn humanize(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::new();
    for (i, &ch) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        let next_lower = chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
        if i == 0 {
            out.push(ch.to_ascii_uppercase());
        } else if ch.is_ascii_uppercase() {
            if prev_lower {
                out.push(' ');
            }
            out.push(if next_lower {
                ch.to_ascii_lowercase()
            } else {
                ch
            });
        } else {
            out.push(ch);
        }
    }
    out
}

/// Builds the fields from the configuration's JSON.
struct Fields<'a> {
    config: &'a Value,
}

impl Fields<'_> {
    fn at(&self, path: &str) -> Option<&Value> {
        self.config.pointer(&format!("/{}", path.replace('.', "/")))
    }

    fn field(&self, path: &str, label: impl Into<String>, kind: Kind, hint: &'static str) -> Field {
        let v = self.at(path);
        let value = match (kind, v) {
            (_, None | Some(Value::Null)) => String::new(),
            (Kind::Lines, Some(Value::Array(items))) => items
                .iter()
                .filter_map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            (Kind::Layouts, Some(Value::Array(items))) => items
                .iter()
                .map(|i| {
                    format!(
                        "{}:{}",
                        i["language"].as_str().unwrap_or(""),
                        i["layout"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            (_, Some(Value::String(s))) => s.clone(),
            (_, Some(other)) => other.to_string(),
        };
        Field {
            name: format!("config.{path}"),
            id: format!("f-config-{}", path.replace('.', "-")),
            label: label.into(),
            hint,
            kind,
            checked: v.and_then(Value::as_bool).unwrap_or(false),
            options: Vec::new(),
            value,
        }
    }

    fn text(&self, path: &str, label: &str, hint: &'static str) -> Field {
        self.field(path, label, Kind::Text, hint)
    }

    fn int(&self, path: &str, label: &str, hint: &'static str) -> Field {
        self.field(path, label, Kind::Int, hint)
    }

    fn flag(&self, path: &str, label: impl Into<String>) -> Field {
        self.field(path, label, Kind::Flag, "")
    }

    fn lines(&self, path: &str, label: &str, hint: &'static str) -> Field {
        self.field(path, label, Kind::Lines, hint)
    }

    /// A select of `(value, label)` pairs; the current value is selected.
    fn select<'v>(
        &self,
        path: &str,
        label: &str,
        kind: Kind,
        values: impl IntoIterator<Item = (&'v str, String)>,
        hint: &'static str,
    ) -> Field {
        let mut f = self.field(path, label, kind, hint);
        f.options = values
            .into_iter()
            .map(|(value, label)| Choice {
                selected: value == f.value,
                value: value.into(),
                label,
            })
            .collect();
        f
    }

    /// A select of enum values, shown with spaces for underscores.
    fn choice(&self, path: &str, label: &str, values: &[&str], hint: &'static str) -> Field {
        self.select(
            path,
            label,
            Kind::Select,
            values.iter().map(|v| (*v, v.replace('_', " "))),
            hint,
        )
    }

    fn tristate(&self, path: &str, label: impl Into<String>) -> Field {
        let mut f = self.field(path, label, Kind::TriState, "");
        f.options = [("", "Not set"), ("true", "On"), ("false", "Off")]
            .into_iter()
            .map(|(value, label)| Choice {
                selected: value == f.value,
                value: value.into(),
                label: label.into(),
            })
            .collect();
        f
    }
}

/// The visual-effect keys that alias another one: key → the canonical key.
fn alias_of(key: &str) -> Option<&'static str> {
    catalog::EFFECTS
        .iter()
        .find(|e| e.aliases.contains(&key))
        .map(|e| e.key)
}

const WINDOWS_SETTINGS: &[(&str, &str)] = &[
    ("disableDefender", "Turn off Defender real-time monitoring"),
    ("disableWindowsUpdate", "Turn off automatic Windows Update"),
    ("disableUac", "Turn off User Account Control"),
    ("disableSmartScreen", "Turn off SmartScreen for Explorer"),
    ("disableSystemRestore", "Turn off System Restore on C:"),
    ("enableLongPaths", "Allow paths longer than 260 characters"),
    (
        "allowPowerShellScripts",
        "Allow PowerShell scripts (execution policy Bypass)",
    ),
    (
        "disableWidgets",
        "Turn off taskbar widgets, news and interests",
    ),
    ("disableEdgeStartup", "Skip Edge's first-run experience"),
    (
        "preventDeviceEncryption",
        "Prevent automatic BitLocker device encryption",
    ),
    ("disableStickyKeys", "Turn off the Sticky Keys shortcut"),
    ("enableRemoteDesktop", "Allow Remote Desktop connections"),
];

const NAME_MODES: &[&str] = &["random", "fixed", "custom"];
const REMOVAL_MODES: &[&str] = &["fixed", "random", "fixed_random"];

/// The editor's tabs with the values of `config`.
pub fn profile_tabs(config: &UnattendConfig) -> Vec<Tab> {
    let json = serde_json::to_value(config).unwrap_or(Value::Null);
    let f = Fields { config: &json };
    let group = |legend, fields| Group { legend, fields };
    let mut geo: Vec<(&u32, &&str)> = catalog::geo_ids().iter().collect();
    geo.sort_by(|a, b| a.1.cmp(b.1));
    let geo_values: Vec<(String, String)> = geo
        .into_iter()
        .map(|(id, name)| (id.to_string(), format!("{name} ({id})")))
        .collect();
    vec![
        Tab {
            key: "user",
            label: "User",
            intro: "The local account Windows Setup creates and logs on automatically.",
            groups: vec![group(
                "Local account",
                vec![
                    f.choice(
                        "user.nameMode",
                        "User name",
                        NAME_MODES,
                        "random: <Adjective><Noun><10..98> from the VM's seed; fixed: User; custom: the name below.",
                    ),
                    f.text(
                        "user.customName",
                        "Custom user name",
                        "Required with custom; at most 20 characters, none of / \\ [ ] : ; | = , + * ? < > \" % @.",
                    ),
                    f.choice(
                        "user.customNameSuffix",
                        "Suffix of the custom name",
                        &["none", "random_digits", "sequential"],
                        "sequential: the VM's index in its batch + 1, two digits.",
                    ),
                    f.text("user.displayName", "Display name", "Defaults to the user name."),
                    f.field(
                        "user.password",
                        "Password",
                        Kind::Secret,
                        "Required while auto-logon is on; at most 127 characters.",
                    ),
                    f.flag(
                        "user.obscurePassword",
                        "Obscure the password in the answer file",
                    ),
                    f.choice(
                        "user.group",
                        "Local group",
                        &["Administrators", "Users"],
                        "",
                    ),
                    f.int(
                        "user.autoLogonCount",
                        "Automatic logons",
                        "0 turns auto-logon off; at most 9999999.",
                    ),
                ],
            )],
        },
        Tab {
            key: "computer",
            label: "Computer name",
            intro: "The computer name the answer file sets.",
            groups: vec![group(
                "Computer name",
                vec![
                    f.choice(
                        "computerName.mode",
                        "Computer name",
                        NAME_MODES,
                        "random: DESKTOP- and 7 letters or digits from the VM's seed; fixed: WIN-PC; custom: the name below.",
                    ),
                    f.text(
                        "computerName.customName",
                        "Custom computer name",
                        "Required with custom: at most 15 letters, digits or hyphens, not all digits, no hyphen first or last.",
                    ),
                ],
            )],
        },
        Tab {
            key: "locale",
            label: "Locale",
            intro: "Language, keyboard layouts, time zone and home location.",
            groups: vec![group(
                "Locale",
                vec![
                    f.text(
                        "locale.uiLanguage",
                        "UI, system and user locale",
                        "A language tag such as en-US.",
                    ),
                    f.field(
                        "locale.keyboardLayouts",
                        "Keyboard layouts",
                        Kind::Layouts,
                        "One LLLL:KKKKKKKK (hex) a line, e.g. 0409:00000409; the first is the default; at most 10. Empty: 0409:00000409.",
                    ),
                    f.select(
                        "locale.timeZone",
                        "Time zone",
                        Kind::Select,
                        catalog::time_zones().iter().map(|z| (*z, z.to_string())),
                        "",
                    ),
                    f.select(
                        "locale.geoLocation",
                        "Home location (GeoId)",
                        Kind::IntSelect,
                        geo_values.iter().map(|(v, l)| (v.as_str(), l.clone())),
                        "",
                    ),
                ],
            )],
        },
        Tab {
            key: "software",
            label: "Software removal",
            intro: "Provisioned Appx packages setup.ps1 removes (name fragments).",
            groups: vec![group(
                "Software removal",
                vec![
                    f.choice(
                        "softwareRemoval.mode",
                        "Mode",
                        REMOVAL_MODES,
                        "fixed: exactly the fixed list; random: a random subset of the pool; fixed random: the fixed list and a random subset of the rest of the pool.",
                    ),
                    f.lines(
                        "softwareRemoval.fixedPackages",
                        "Fixed packages",
                        "One package name fragment a line (letters, digits, ._~-), at most 200.",
                    ),
                    f.lines(
                        "softwareRemoval.randomPool",
                        "Random pool",
                        "One a line, at most 200.",
                    ),
                    f.lines(
                        "softwareRemoval.neverRemove",
                        "Never remove",
                        "One a line: removed from the result whatever the mode drew.",
                    ),
                    f.int(
                        "softwareRemoval.randomCount.min",
                        "Fewest drawn from the pool",
                        "Leave both empty for 5..15.",
                    ),
                    f.int(
                        "softwareRemoval.randomCount.max",
                        "Most drawn from the pool",
                        "",
                    ),
                ],
            )],
        },
        Tab {
            key: "capabilities",
            label: "Capability removal",
            intro: "Windows capabilities setup.ps1 removes (name fragments).",
            groups: vec![group(
                "Capability removal",
                vec![
                    f.choice(
                        "capabilityRemoval.mode",
                        "Mode",
                        REMOVAL_MODES,
                        "fixed: exactly the fixed list; random: a random subset of the pool; fixed random: both.",
                    ),
                    f.lines(
                        "capabilityRemoval.fixedCapabilities",
                        "Fixed capabilities",
                        "One capability name fragment a line, at most 200.",
                    ),
                    f.lines(
                        "capabilityRemoval.randomPool",
                        "Random pool",
                        "One a line, at most 200.",
                    ),
                    f.int(
                        "capabilityRemoval.randomCount.min",
                        "Fewest drawn from the pool",
                        "Leave both empty for 3..10.",
                    ),
                    f.int(
                        "capabilityRemoval.randomCount.max",
                        "Most drawn from the pool",
                        "",
                    ),
                ],
            )],
        },
        Tab {
            key: "settings",
            label: "Windows settings",
            intro: "System tweaks setup.ps1 applies.",
            groups: vec![group(
                "Windows settings",
                WINDOWS_SETTINGS
                    .iter()
                    .map(|(k, label)| f.flag(&format!("windowsSettings.{k}"), *label))
                    .collect(),
            )],
        },
        Tab {
            key: "visual",
            label: "Visual effects",
            intro: "Visual effects setup.ps1 writes to the registry.",
            groups: vec![
                group(
                    "Mode",
                    vec![f.choice(
                        "visualEffects.mode",
                        "Visual effects",
                        &[
                            "default",
                            "appearance",
                            "performance",
                            "custom",
                            "custom_randomize",
                        ],
                        "default: Windows' choice; appearance: all on; performance: all off; custom: the switches below, unset = off; custom randomize: unset = a seeded coin flip.",
                    )],
                ),
                group(
                    "Effects (custom modes)",
                    EffectFlags::KEYS
                        .iter()
                        .map(|k| {
                            let label = match alias_of(k) {
                                Some(of) => format!("{} (alias of {})", humanize(k), humanize(of)),
                                None => humanize(k),
                            };
                            f.tristate(&format!("visualEffects.effects.{k}"), label)
                        })
                        .collect(),
                ),
            ],
        },
        Tab {
            key: "icons",
            label: "Desktop icons",
            intro: "Desktop icons, Start-menu folders and the Edge shortcut.",
            groups: vec![
                group(
                    "Desktop icons",
                    std::iter::once(f.choice(
                        "desktopIcons.mode",
                        "Desktop icons",
                        &["default", "custom", "custom_randomize"],
                        "default: leave them; custom: the switches below, unset = hidden; custom randomize: unset = a seeded coin flip.",
                    ))
                    .chain(IconFlags::KEYS.iter().map(|k| {
                        f.tristate(&format!("desktopIcons.icons.{k}"), humanize(k))
                    }))
                    .collect(),
                ),
                group(
                    "Start-menu folders",
                    StartFolders::KEYS
                        .iter()
                        .map(|k| {
                            f.tristate(&format!("desktopIcons.startFolders.{k}"), humanize(k))
                        })
                        .collect(),
                ),
                group(
                    "Edge",
                    vec![f.flag(
                        "desktopIcons.deleteEdgeShortcut",
                        "Delete the Edge shortcut from the desktops",
                    )],
                ),
            ],
        },
        Tab {
            key: "script",
            label: "Custom script",
            intro: "The program started from C:\\WindowsSetup\\ after the first logon.",
            groups: vec![group(
                "Custom script",
                vec![
                    f.text(
                        "customScript.executable",
                        "Executable",
                        "A plain file name on the ISO ending in .ps1, .cmd, .bat or .exe (at most 64 characters).",
                    ),
                    f.int(
                        "customScript.delaySeconds",
                        "Delay before starting (seconds)",
                        "0 to 600.",
                    ),
                ],
            )],
        },
    ]
}

#[derive(Template)]
#[template(path = "console/profile.html")]
pub struct ProfilePage {
    pub layout: Layout,
    /// `None` while creating.
    pub id: Option<String>,
    pub name: String,
    pub is_default: bool,
    pub owner: String,
    pub updated: String,
    pub tabs: Vec<Tab>,
    /// Operator or higher: save and delete.
    pub can_edit: bool,
    /// `" disabled"` on every control for viewers.
    pub dis: &'static str,
}

/// Where an editor form saves: PUT to the stored item, or POST to the
/// collection while creating (`id` is `None`).
fn save_url(collection: &str, id: Option<&String>) -> String {
    match id {
        Some(id) => format!("{collection}/{id}"),
        None => collection.to_string(),
    }
}

fn save_method(id: Option<&String>) -> &'static str {
    if id.is_some() {
        "PUT"
    } else {
        "POST"
    }
}

impl ProfilePage {
    /// The form's target and method.
    pub fn api(&self) -> String {
        save_url("/api/v1/unattend-profiles", self.id.as_ref())
    }

    pub fn method(&self) -> &'static str {
        save_method(self.id.as_ref())
    }
}

/// `GET /console/unattend-profiles/new`: the editor with every default.
pub async fn new_profile(user: ConsoleUser) -> PageResult {
    let layout = user.layout("profiles", "New unattend profile");
    let can_edit = layout.can_operate;
    render(&ProfilePage {
        layout,
        id: None,
        name: String::new(),
        is_default: false,
        owner: "you".into(),
        updated: String::new(),
        tabs: profile_tabs(&default_config()),
        can_edit,
        dis: disabled(!can_edit),
    })
}

/// `GET /console/unattend-profiles/{id}`: the editor (read-only for viewers).
pub async fn profile(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let p = state
        .unattend
        .get(&user.identity, &UnattendProfileId::from(id))
        .await?;
    let layout = user.layout("profiles", format!("Profile {}", p.name));
    let can_edit = layout.can_operate;
    render(&ProfilePage {
        id: Some(p.id.to_string()),
        name: p.name.clone(),
        is_default: p.is_default,
        owner: owner_text(&p.owner_user_id, user.identity.user_id.as_str()),
        updated: when(&p.updated_at),
        tabs: profile_tabs(&p.config),
        can_edit,
        dis: disabled(!can_edit),
        layout,
    })
}

// ------------------------------------------------------------------ playbooks

pub struct PlaybookRow {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub owner: String,
    pub warnings: usize,
    pub updated: String,
}

impl PlaybookRow {
    fn new(p: &Playbook, me: &str) -> PlaybookRow {
        PlaybookRow {
            id: p.id.to_string(),
            name: p.name.clone(),
            is_default: p.is_default,
            owner: owner_text(p.owner_user_id.as_str(), me),
            warnings: p.warnings.len(),
            updated: when(&p.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/playbooks.html")]
pub struct PlaybooksPage {
    pub layout: Layout,
    pub rows: Vec<PlaybookRow>,
    pub pager: Pager,
    pub q: String,
    pub defaults: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub filtered: bool,
    pub url: String,
}

/// `GET /console/playbooks`.
pub async fn playbooks(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(q): RawQuery,
) -> PageResult {
    let raw = q.unwrap_or_default();
    let params = list_params(&PLAYBOOK_LIST, &raw)?;
    let page = state
        .provisioning
        .list_playbooks(&user.identity, &params)
        .await?;
    let me = user.identity.user_id.to_string();
    render(&PlaybooksPage {
        layout: user.layout("playbooks", "Playbooks"),
        rows: page
            .items
            .iter()
            .map(|p| PlaybookRow::new(p, &me))
            .collect(),
        pager: Pager::new(&page, |p| {
            url(
                "/console/playbooks",
                &with_param(&raw, "page", &p.to_string()),
            )
        }),
        q: param(&raw, "q"),
        defaults: default_filter(&param(&raw, "is_default")),
        sorts: Choice::list(&["name", "updated_at"], &param(&raw, "sort"), "Newest"),
        orders: Choice::list(&["asc", "desc"], &param(&raw, "order"), "Default order"),
        filtered: any_of(&raw, &["q", "is_default"]),
        url: url("/console/playbooks", &raw),
    })
}

/// A validation finding as the page lists it.
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl Issue {
    fn new(i: &PlaybookIssue) -> Issue {
        Issue {
            path: i.path.clone().unwrap_or_default(),
            message: i.message.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/playbook.html")]
pub struct PlaybookPage {
    pub layout: Layout,
    pub id: Option<String>,
    pub name: String,
    pub is_default: bool,
    pub content: String,
    pub owner: String,
    pub updated: String,
    /// The stored content's warnings (unknown roles).
    pub warnings: Vec<Issue>,
    pub can_edit: bool,
    pub dis: &'static str,
}

impl PlaybookPage {
    /// The form's target and method.
    pub fn api(&self) -> String {
        save_url("/api/v1/playbooks", self.id.as_ref())
    }

    pub fn method(&self) -> &'static str {
        save_method(self.id.as_ref())
    }
}

/// What a new playbook starts with.
const PLAYBOOK_TEMPLATE: &str =
    "name: my-playbook\nroles:\n  - role: base-system\n  - role: privacy-debloat\n";

/// `GET /console/playbooks/new`.
pub async fn new_playbook(user: ConsoleUser) -> PageResult {
    let layout = user.layout("playbooks", "New playbook");
    let can_edit = layout.can_operate;
    render(&PlaybookPage {
        layout,
        id: None,
        name: String::new(),
        is_default: false,
        content: PLAYBOOK_TEMPLATE.into(),
        owner: "you".into(),
        updated: String::new(),
        warnings: Vec::new(),
        can_edit,
        dis: disabled(!can_edit),
    })
}

/// `GET /console/playbooks/{id}`.
pub async fn playbook(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(id): Path<String>,
) -> PageResult {
    let p = state
        .provisioning
        .get_playbook(&user.identity, &PlaybookId::from(id))
        .await?;
    let layout = user.layout("playbooks", format!("Playbook {}", p.name));
    let can_edit = layout.can_operate;
    render(&PlaybookPage {
        id: Some(p.id.to_string()),
        name: p.name.clone(),
        is_default: p.is_default,
        content: p.content.clone(),
        owner: owner_text(p.owner_user_id.as_str(), user.identity.user_id.as_str()),
        updated: when(&p.updated_at),
        warnings: p.warnings.iter().map(Issue::new).collect(),
        can_edit,
        dis: disabled(!can_edit),
        layout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_a_config_path_with_its_value() {
        let mut c = default_config();
        c.computer_name.custom_name = Some("LAB-01".into());
        c.software_removal.fixed_packages = vec![
            crate::domains::unattend::config::PackageName("Xbox".into()),
            crate::domains::unattend::config::PackageName("Zune".into()),
        ];
        let tabs = profile_tabs(&c);
        assert_eq!(tabs.len(), 9);
        let all: Vec<&Field> = tabs
            .iter()
            .flat_map(|t| t.groups.iter().flat_map(|g| g.fields.iter()))
            .collect();
        let get = |n: &str| all.iter().find(|f| f.name == n).unwrap();
        assert_eq!(get("config.computerName.customName").value, "LAB-01");
        assert_eq!(
            get("config.softwareRemoval.fixedPackages").value,
            "Xbox\nZune"
        );
        assert_eq!(get("config.locale.geoLocation").value, "235");
        assert!(get("config.locale.geoLocation")
            .options
            .iter()
            .any(|o| o.selected && o.value == "235"));
        assert!(get("config.windowsSettings.disableDefender").checked);
        assert!(!get("config.windowsSettings.enableRemoteDesktop").checked);
        assert_eq!(get("config.visualEffects.effects.aeropeek").value, "");
        assert_eq!(get("config.customScript.delaySeconds").value, "20");
        assert_eq!(humanize("thisPC"), "This PC");
        assert_eq!(humanize("animateMinMax"), "Animate min max");
    }
}

//! The typed unattend profile configuration (inventory §5.1), its legacy
//! migrations and its validation rules.
//!
//! Every object refuses unknown fields (the error names the field path).
//! Legacy shapes are accepted and migrated by [`UnattendConfig::normalize`]
//! (on every write and every read of a stored profile):
//! * `locale.inputLocales: ["0409:00000409"]` → `keyboardLayouts`;
//! * removal mode `mixed` → `fixed_random`;
//! * visual-effects mode `balanced` → `default`, `random` → `custom_randomize`;
//! * `visualEffects.cursorShadow`/`fontSmoothing` → `visualEffects.effects`;
//! * `desktopIcons` without a `mode` → `custom`, with its old
//!   `recycleBin`/`thisPC` moved into `icons`;
//! * a missing `windowsSettings.enableRemoteDesktop` → `false`.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::catalog;
use crate::validate::{is_forbidden_in_display, FieldErrors};

/// Pattern of a computer name: 1–15 letters, digits or hyphens, not all
/// digits, no hyphen first or last (length is `maxLength`).
pub const COMPUTER_NAME_PATTERN: &str =
    "^(?:[0-9]*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?|[0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])$";
/// Pattern of a local user name: none of `/\[]:;|=,+*?<>"%@`, no control
/// characters, not ending with a dot, not empty.
pub const USER_NAME_PATTERN: &str =
    "^[^/\\\\\\[\\]:;|=,+*?<>\"%@\\x00-\\x1f\\x7f]*[^/\\\\\\[\\]:;|=,+*?<>\"%@\\x00-\\x1f\\x7f.]$";
/// Characters a user name must not contain.
pub const USER_NAME_FORBIDDEN: &str = "/\\[]:;|=,+*?<>\"%@";
/// An Appx package or capability name fragment.
pub const PACKAGE_PATTERN: &str = "^[A-Za-z0-9._~-]+$";
/// `customScript.executable`: a plain file name with a runnable extension.
pub const EXECUTABLE_PATTERN: &str =
    "^[A-Za-z0-9_][A-Za-z0-9_.-]*\\.(?:[Pp][Ss]1|[Cc][Mm][Dd]|[Bb][Aa][Tt]|[Ee][Xx][Ee])$";
pub const LANGUAGE_TAG_PATTERN: &str = "^[a-zA-Z]{2,3}(?:-[a-zA-Z0-9]{2,8}){0,3}$";

pub const MAX_PACKAGES: usize = 200;
pub const MAX_RANDOM_COUNT: u32 = 200;
pub const DEFAULT_PASSWORD_NOTE: &str = "";

fn yes() -> bool {
    true
}

/// How a name is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NameMode {
    /// Generated from the VM's seed (user: `<Adjective><Noun><10..98>`;
    /// computer: `DESKTOP-` + 7 of `[A-Z0-9]`).
    Random,
    /// `User` / `WIN-PC`.
    Fixed,
    /// `customName`.
    Custom,
}

/// What is appended to a custom user name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NameSuffix {
    #[default]
    None,
    /// 2–4 digits drawn from the VM's seed.
    RandomDigits,
    /// The VM's 1-based index in its batch, zero-padded to 2 digits.
    Sequential,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AccountGroup {
    #[default]
    Administrators,
    Users,
}

impl AccountGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountGroup::Administrators => "Administrators",
            AccountGroup::Users => "Users",
        }
    }
}

/// How a removal list is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemovalMode {
    /// Exactly the fixed list.
    #[default]
    Fixed,
    /// A uniformly random subset of the pool.
    Random,
    /// The fixed list plus a random subset of the rest of the pool
    /// (legacy name `mixed`).
    #[serde(alias = "mixed")]
    FixedRandom,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisualMode {
    /// Leave Windows' choice (legacy `balanced`).
    #[serde(alias = "balanced")]
    Default,
    /// Every effect on.
    Appearance,
    /// Every effect off.
    #[default]
    Performance,
    /// `effects[key]`, off when not set.
    Custom,
    /// `effects[key]`, a seeded coin flip when not set (legacy `random`).
    #[serde(alias = "random")]
    CustomRandomize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IconMode {
    /// Leave the desktop icons as Windows sets them.
    #[default]
    Default,
    /// `icons[key]`, hidden when not set.
    Custom,
    /// `icons[key]`, a seeded coin flip when not set.
    CustomRandomize,
}

/// The whole profile configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnattendConfig {
    /// The local account (name, password, group, auto-logon).
    pub user: UserConfig,
    /// The computer name (specialize `ComputerName`).
    pub computer_name: ComputerNameConfig,
    /// Languages, keyboard layouts, time zone and home location.
    #[serde(default)]
    pub locale: LocaleConfig,
    /// Provisioned Appx packages `setup.ps1` removes.
    #[serde(default)]
    pub software_removal: SoftwareRemoval,
    /// Windows capabilities `setup.ps1` removes.
    #[serde(default)]
    pub capability_removal: CapabilityRemoval,
    /// System tweaks `setup.ps1` applies (each on by default except remote desktop).
    #[serde(default)]
    pub windows_settings: WindowsSettings,
    /// Visual effects `setup.ps1` writes to the registry.
    #[serde(default)]
    pub visual_effects: VisualEffects,
    /// Desktop icons, Start-menu folders and the Edge shortcut.
    #[serde(default)]
    pub desktop_icons: DesktopIcons,
    /// The provisioning bootstrap started after the first logon.
    #[serde(default)]
    pub custom_script: CustomScript,
}

/// The local account Windows Setup creates (and logs on automatically).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserConfig {
    /// How the user name is chosen: `random` (`<Adjective><Noun><10..98>`
    /// from the VM's seed), `fixed` (`User`) or `custom` (`customName`).
    pub name_mode: NameMode,
    /// Required with `nameMode: custom`. At most 20 characters, none of
    /// `/\[]:;|=,+*?<>"%@`, not ending with a dot, not equal to the
    /// computer name (case-insensitive). A suffix is appended after the
    /// name is shortened so the result fits 20 characters.
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = "^[^/\\\\\\[\\]:;|=,+*?<>\"%@\\x00-\\x1f\\x7f]*[^/\\\\\\[\\]:;|=,+*?<>\"%@\\x00-\\x1f\\x7f.]$"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_name: Option<String>,
    /// Appended to `customName`: `none` (default), `random_digits` (2–4
    /// digits from the VM's seed) or `sequential` (the VM's batch index + 1,
    /// zero-padded to 2).
    #[serde(default)]
    pub custom_name_suffix: NameSuffix,
    /// At most 256 characters, no control characters; defaults to the user name.
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// At most 127 characters, no control characters. Required (non-empty)
    /// while auto-logon is on (`autoLogonCount` > 0).
    #[schema(max_length = 127, pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `true` (default): the password is written in Windows' encoding
    /// (base64 of UTF-16LE of password + `Password`, `PlainText=false`);
    /// `false`: as plain text (`PlainText=true`).
    #[serde(default = "yes")]
    pub obscure_password: bool,
    /// The local group of the account (`LocalAccount/Group`), default
    /// `Administrators`.
    #[serde(default)]
    pub group: AccountGroup,
    /// How many automatic logons (0 turns auto-logon off).
    #[schema(minimum = 0, maximum = 9_999_999)]
    #[serde(default = "default_logon_count")]
    pub auto_logon_count: u32,
}

fn default_logon_count() -> u32 {
    9_999_999
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputerNameConfig {
    /// How the computer name is chosen: `random` (`DESKTOP-` + 7 of
    /// `[A-Z0-9]` from the VM's seed), `fixed` (`WIN-PC`) or `custom`
    /// (`customName`).
    pub mode: NameMode,
    /// Required with `mode: custom`: at most 15 letters, digits or hyphens,
    /// not all digits, no hyphen first or last.
    #[schema(
        min_length = 1,
        max_length = 15,
        pattern = "^(?:[0-9]*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?|[0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])$"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_name: Option<String>,
}

/// A keyboard layout: `language:layout` as Windows writes it (`0409:00000409`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyboardLayout {
    /// 4 hex digits (LANGID), e.g. `0409`.
    #[schema(pattern = "^[0-9A-Fa-f]{4}$")]
    pub language: String,
    /// 8 hex digits (KLID), e.g. `00000409`.
    #[schema(pattern = "^[0-9A-Fa-f]{8}$")]
    pub layout: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocaleConfig {
    /// UI, system and user locale (a language tag such as `en-US`).
    #[schema(max_length = 35, pattern = "^[a-zA-Z]{2,3}(?:-[a-zA-Z0-9]{2,8}){0,3}$")]
    #[serde(default = "default_ui_language")]
    pub ui_language: String,
    /// Input locales in order (the first is the default); empty means `0409:00000409`.
    #[schema(max_items = 10)]
    #[serde(default)]
    pub keyboard_layouts: Vec<KeyboardLayout>,
    /// Legacy: `["0409:00000409"]`, migrated into `keyboardLayouts`.
    #[schema(deprecated, max_items = 10, inline)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_locales: Option<Vec<LegacyInputLocale>>,
    /// A Windows time-zone id (`Get-TimeZone -ListAvailable`).
    #[schema(schema_with = time_zone_schema)]
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// A GeoId (Microsoft's table of geographical locations); `Set-WinHomeLocation`.
    #[schema(schema_with = geo_id_schema)]
    #[serde(default = "default_geo")]
    pub geo_location: u32,
}

/// `LLLL:KKKKKKKK` (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{8}$")]
pub struct LegacyInputLocale(pub String);

fn default_ui_language() -> String {
    "en-US".into()
}
fn default_time_zone() -> String {
    "Turkey Standard Time".into()
}
fn default_geo() -> u32 {
    235
}

fn time_zone_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(catalog::time_zones().iter().copied()))
        .default(Some(serde_json::json!("Turkey Standard Time")))
        .description(Some("A Windows time-zone id"))
}

fn geo_id_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .enum_values(Some(catalog::geo_ids().keys().copied()))
        .default(Some(serde_json::json!(235)))
        .description(Some("A GeoId"))
}

impl Default for LocaleConfig {
    fn default() -> Self {
        LocaleConfig {
            ui_language: default_ui_language(),
            keyboard_layouts: vec![],
            input_locales: None,
            time_zone: default_time_zone(),
            geo_location: default_geo(),
        }
    }
}

/// `min`..=`max` items drawn from a pool (both clamped to the pool's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomCount {
    /// The fewest items drawn (0..200, at most `max`).
    #[schema(minimum = 0, maximum = 200)]
    pub min: u32,
    /// The most items drawn (0..200, at least `min`); the subset size is
    /// uniform in `[min, max]`, both clamped to the pool's size.
    #[schema(minimum = 0, maximum = 200)]
    pub max: u32,
}

/// Provisioned Appx packages to remove (name fragments, matched with `-like '*x*'`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SoftwareRemoval {
    /// `fixed`: exactly `fixedPackages`; `random`: a uniformly random subset
    /// of `randomPool`; `fixed_random` (legacy `mixed`): `fixedPackages`
    /// plus a random subset of the rest of `randomPool`.
    pub mode: RemovalMode,
    /// Packages removed in `fixed` and `fixed_random` mode (at most 200).
    #[schema(max_items = 200, inline)]
    #[serde(default)]
    pub fixed_packages: Vec<PackageName>,
    /// Packages the `random` and `fixed_random` modes draw from with the
    /// VM's seed (at most 200).
    #[schema(max_items = 200, inline)]
    #[serde(default)]
    pub random_pool: Vec<PackageName>,
    /// Removed from the result whatever the mode drew.
    #[schema(max_items = 200, inline)]
    #[serde(default)]
    pub never_remove: Vec<PackageName>,
    /// How many of `randomPool` are drawn; default 5..15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_count: Option<RandomCount>,
}

/// Windows capabilities to remove (name fragments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapabilityRemoval {
    /// `fixed`: exactly `fixedCapabilities`; `random`: a uniformly random
    /// subset of `randomPool`; `fixed_random` (legacy `mixed`):
    /// `fixedCapabilities` plus a random subset of the rest of `randomPool`.
    pub mode: RemovalMode,
    /// Capabilities removed in `fixed` and `fixed_random` mode (at most 200).
    #[schema(max_items = 200, inline)]
    #[serde(default)]
    pub fixed_capabilities: Vec<PackageName>,
    /// Capabilities the `random` and `fixed_random` modes draw from with
    /// the VM's seed (at most 200).
    #[schema(max_items = 200, inline)]
    #[serde(default)]
    pub random_pool: Vec<PackageName>,
    /// How many of `randomPool` are drawn; default 3..10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_count: Option<RandomCount>,
}

/// A package or capability name fragment: 1–100 of `[A-Za-z0-9._~-]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackageName(pub String);

impl utoipa::PartialSchema for PackageName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .min_length(Some(1))
            .max_length(Some(100))
            .pattern(Some(PACKAGE_PATTERN))
            .description(Some("A package or capability name fragment"))
            .into()
    }
}

impl ToSchema for PackageName {}

/// System tweaks, one `setup.ps1` block each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowsSettings {
    /// Default `true`: turn off Defender real-time monitoring
    /// (`Set-MpPreference`) and set the `DisableAntiSpyware` policy.
    #[serde(default = "yes")]
    pub disable_defender: bool,
    /// Default `true`: set the `WindowsUpdate\AU` policy `NoAutoUpdate=1`.
    #[serde(default = "yes")]
    pub disable_windows_update: bool,
    /// Default `true`: turn off User Account Control (`EnableLUA=0`).
    #[serde(default = "yes")]
    pub disable_uac: bool,
    /// Default `true`: turn off SmartScreen for Explorer
    /// (`SmartScreenEnabled=Off`).
    #[serde(default = "yes")]
    pub disable_smart_screen: bool,
    /// Default `true`: turn off System Restore on `C:`
    /// (`Disable-ComputerRestore`).
    #[serde(default = "yes")]
    pub disable_system_restore: bool,
    /// Default `true`: allow paths longer than 260 characters
    /// (`LongPathsEnabled=1`).
    #[serde(default = "yes")]
    pub enable_long_paths: bool,
    /// Default `true`: set the machine's PowerShell execution policy to
    /// `Bypass`.
    #[serde(default = "yes")]
    pub allow_power_shell_scripts: bool,
    /// Default `true`: turn off the taskbar widgets, news and interests
    /// (`AllowNewsAndInterests=0`).
    #[serde(default = "yes")]
    pub disable_widgets: bool,
    /// Default `true`: skip Edge's first-run experience
    /// (`HideFirstRunExperience=1`).
    #[serde(default = "yes")]
    pub disable_edge_startup: bool,
    /// Default `true`: stop automatic BitLocker device encryption
    /// (`PreventDeviceEncryption=1`).
    #[serde(default = "yes")]
    pub prevent_device_encryption: bool,
    /// Default `true`: turn off the Sticky Keys shortcut (five presses of
    /// Shift; `StickyKeys\Flags=506`).
    #[serde(default = "yes")]
    pub disable_sticky_keys: bool,
    /// Default `false` (also for legacy profiles without the field): allow
    /// Remote Desktop connections (`fDenyTSConnections=0`) and open the
    /// firewall's `Remote Desktop` rule group.
    #[serde(default)]
    pub enable_remote_desktop: bool,
}

impl Default for WindowsSettings {
    fn default() -> Self {
        WindowsSettings {
            disable_defender: true,
            disable_windows_update: true,
            disable_uac: true,
            disable_smart_screen: true,
            disable_system_restore: true,
            enable_long_paths: true,
            allow_power_shell_scripts: true,
            disable_widgets: true,
            disable_edge_startup: true,
            prevent_device_encryption: true,
            disable_sticky_keys: true,
            enable_remote_desktop: false,
        }
    }
}

/// A struct of optional switches, each with its wire name. `$key` is a
/// `tt`, not a `literal`: a `literal` fragment reaches the derives wrapped
/// in an invisible group, which serde reads but utoipa's reading of
/// `#[serde(rename = …)]` does not (the OpenAPI then showed the Rust field
/// names, `this_pc` for `thisPC`). `#[schema(rename)]` states it for utoipa
/// as well; `tests/it/openapi_doc.rs` compares the schemas with serde.
macro_rules! flags {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident => $key:tt),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fdoc])*
                #[schema(rename = $key)]
                #[serde(rename = $key, default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<bool>,
            )+
        }

        impl $name {
            pub const KEYS: &'static [&'static str] = &[$($key),+];
            pub fn get(&self, key: &str) -> Option<bool> {
                match key {
                    $($key => self.$field,)+
                    _ => None,
                }
            }
            pub fn set(&mut self, key: &str, v: Option<bool>) {
                match key {
                    $($key => self.$field = v,)+
                    _ => {}
                }
            }
        }
    };
}

flags!(
    /// Visual effects, `true` = on. Aliases (same registry value; the first
    /// key listed wins when set, else the first alias set):
    /// `animateMinMax` → `animateControls`, `peekDesktop` → `aeropeek`,
    /// `iconShadow` → `cursorShadow`, `fadeTooltips`/`fadeAfterClick`/
    /// `comboBoxSlide` → `fadeMenuItems`.
    EffectFlags {
        /// Animate windows when minimizing and maximizing
        /// (`WindowMetrics\MinAnimate`).
        animate_controls => "animateControls",
        /// Alias of `animateControls` (same registry value; `animateControls` wins).
        animate_min_max => "animateMinMax",
        /// Animations in the taskbar (`TaskbarAnimations`).
        animate_taskbar => "animateTaskbar",
        /// Peek at the desktop (`DWM\EnableAeroPeek`).
        aeropeek => "aeropeek",
        /// Alias of `aeropeek` (same registry value; `aeropeek` wins).
        peek_desktop => "peekDesktop",
        /// Smooth edges of screen fonts (`FontSmoothing` 2 / 0).
        font_smoothing => "fontSmoothing",
        /// Show window contents while dragging (`DragFullWindows`).
        drag_full_windows => "dragFullWindows",
        /// Smooth-scroll list boxes (`SmoothScroll`).
        list_box_smooth_scrolling => "listBoxSmoothScrolling",
        /// Drop shadows for icon labels on the desktop (`ListviewShadow`).
        cursor_shadow => "cursorShadow",
        /// Alias of `cursorShadow` (same registry value; `cursorShadow` wins).
        icon_shadow => "iconShadow",
        /// Show thumbnails instead of icons (`IconsOnly` 0 / 1).
        thumbnail_previews => "thumbnailPreviews",
        /// Show a translucent selection rectangle (`ListviewAlphaSelect`).
        translucent => "translucent",
        /// Save taskbar thumbnail previews (`DisableThumbnailCache` 0 / 1).
        save_thumbnails => "saveThumbnails",
        /// Show shadows under windows (`DWM\Composition`).
        window_shadow => "windowShadow",
        /// Fade or slide menus into view (`MenuShowDelay` 400 / 0).
        fade_menu_items => "fadeMenuItems",
        /// Alias of `fadeMenuItems` (same registry value; `fadeMenuItems`
        /// wins, then this, `fadeAfterClick`, `comboBoxSlide`).
        fade_tooltips => "fadeTooltips",
        /// Alias of `fadeMenuItems` (after `fadeMenuItems` and `fadeTooltips`).
        fade_after_click => "fadeAfterClick",
        /// Alias of `fadeMenuItems` (the last one consulted).
        combo_box_slide => "comboBoxSlide",
    }
);

flags!(
    /// Desktop icons, `true` = shown (in `custom` mode unset = hidden, in
    /// `custom_randomize` unset = a seeded coin flip; ignored in `default`).
    IconFlags {
        /// This PC (`HideDesktopIcons\NewStartPanel`, CLSID `{20D04FE0-…}`).
        this_pc => "thisPC",
        /// Recycle Bin (CLSID `{645FF040-…}`).
        recycle_bin => "recycleBin",
        /// The user's files folder (CLSID `{59031a47-…}`).
        user_files => "userFiles",
        /// Control Panel (CLSID `{5399E694-…}`).
        control_panel => "controlPanel",
        /// Network (CLSID `{F02C1A0D-…}`).
        network => "network",
    }
);

flags!(
    /// Start-menu folders, `true` = shown (only keys that are set are written).
    StartFolders {
        /// Documents next to the power button (`Start_ShowDocuments`).
        documents => "documents",
        /// Downloads (`Start_ShowDownloads`).
        downloads => "downloads",
        /// Music (`Start_ShowMusic`).
        music => "music",
        /// Pictures (`Start_ShowPictures`).
        pictures => "pictures",
        /// Videos (`Start_ShowVideos`).
        videos => "videos",
        /// The personal folder (`Start_ShowPersonalFolder`).
        personal_folder => "personalFolder",
        /// Settings (`Start_ShowSettings`).
        settings => "settings",
        /// File Explorer (`Start_ShowFileExplorer`).
        file_explorer => "fileExplorer",
        /// Network (`Start_ShowNetwork`).
        network => "network",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VisualEffects {
    /// `performance` (default): every effect off; `appearance`: every
    /// effect on; `default` (legacy `balanced`): Windows' choice, nothing
    /// written; `custom`: `effects`, unset = off; `custom_randomize`
    /// (legacy `random`): `effects`, unset = a seeded coin flip.
    #[serde(default)]
    pub mode: VisualMode,
    /// Per-effect switches for the `custom` modes.
    #[serde(default)]
    pub effects: EffectFlags,
    /// Legacy, migrated into `effects.cursorShadow`.
    #[schema(deprecated)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_shadow: Option<bool>,
    /// Legacy, migrated into `effects.fontSmoothing`.
    #[schema(deprecated)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub font_smoothing: Option<bool>,
}

impl Default for VisualEffects {
    fn default() -> Self {
        VisualEffects {
            mode: VisualMode::Performance,
            effects: EffectFlags::default(),
            cursor_shadow: None,
            font_smoothing: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesktopIcons {
    /// `default`: leave the icons; `custom`: `icons`, unset = hidden;
    /// `custom_randomize`: `icons`, unset = a seeded coin flip. A section
    /// without `mode` is the legacy shape and becomes `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<IconMode>,
    /// Per-icon switches for the `custom` modes.
    #[serde(default)]
    pub icons: IconFlags,
    /// Start-menu folders (in every mode; only the keys that are set).
    #[serde(default)]
    pub start_folders: StartFolders,
    /// Delete the Edge shortcut from the desktops (in every mode).
    #[serde(default = "yes")]
    pub delete_edge_shortcut: bool,
    /// Legacy, migrated into `icons.recycleBin`.
    #[schema(deprecated)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_bin: Option<bool>,
    /// Legacy, migrated into `icons.thisPC`.
    #[schema(rename = "thisPC", deprecated)]
    #[serde(rename = "thisPC", default, skip_serializing_if = "Option::is_none")]
    pub this_pc: Option<bool>,
}

impl Default for DesktopIcons {
    fn default() -> Self {
        DesktopIcons {
            mode: Some(IconMode::Default),
            icons: IconFlags::default(),
            start_folders: StartFolders::default(),
            delete_edge_shortcut: true,
            recycle_bin: None,
            this_pc: None,
        }
    }
}

impl DesktopIcons {
    pub fn mode(&self) -> IconMode {
        self.mode.unwrap_or(IconMode::Custom)
    }
}

/// The program started after the first logon (from `C:\WindowsSetup\`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomScript {
    /// A plain file name on the provisioning ISO ending in `.ps1`, `.cmd`,
    /// `.bat` or `.exe`; run with PowerShell `-File`, `cmd /k`, or directly.
    #[schema(
        min_length = 5,
        max_length = 64,
        pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]*\\.(?:[Pp][Ss]1|[Cc][Mm][Dd]|[Bb][Aa][Tt]|[Ee][Xx][Ee])$"
    )]
    #[serde(default = "default_executable")]
    pub executable: String,
    /// Seconds to wait before starting it (0..600).
    #[schema(minimum = 0, maximum = 600)]
    #[serde(default = "default_delay")]
    pub delay_seconds: u32,
}

fn default_executable() -> String {
    "START.ps1".into()
}
fn default_delay() -> u32 {
    20
}

impl Default for CustomScript {
    fn default() -> Self {
        CustomScript {
            executable: default_executable(),
            delay_seconds: default_delay(),
        }
    }
}

/// `locale.inputLocales` (legacy): at most 10 `LLLL:KKKKKKKK` (hex).
fn check_input_locales(f: &mut FieldErrors, prefix: &str, old: Option<&[LegacyInputLocale]>) {
    let Some(old) = old else { return };
    if old.len() > 10 {
        f.add(
            &format!("{prefix}locale.inputLocales"),
            "must have at most 10 entries",
        );
    }
    for (i, s) in old.iter().enumerate() {
        let ok =
            s.0.split_once(':')
                .is_some_and(|(a, b)| hex(a, 4) && hex(b, 8));
        if !ok {
            f.add(
                &format!("{prefix}locale.inputLocales[{i}]"),
                "must be a keyboard layout LLLL:KKKKKKKK (hex)",
            );
        }
    }
}

// ------------------------------------------------------------ migrations

impl UnattendConfig {
    /// Migrate legacy shapes into the current one (idempotent).
    pub fn normalize(&mut self) {
        if let Some(old) = self.locale.input_locales.take() {
            if self.locale.keyboard_layouts.is_empty() {
                self.locale.keyboard_layouts = old
                    .iter()
                    .filter_map(|s| s.0.split_once(':'))
                    .map(|(l, k)| KeyboardLayout {
                        language: l.to_string(),
                        layout: k.to_string(),
                    })
                    .collect();
            }
        }
        let v = &mut self.visual_effects;
        if let Some(c) = v.cursor_shadow.take() {
            v.effects.cursor_shadow.get_or_insert(c);
        }
        if let Some(f) = v.font_smoothing.take() {
            v.effects.font_smoothing.get_or_insert(f);
        }
        let d = &mut self.desktop_icons;
        if d.mode.is_none() {
            d.mode = Some(IconMode::Custom);
        }
        if let Some(r) = d.recycle_bin.take() {
            d.icons.recycle_bin.get_or_insert(r);
        }
        if let Some(t) = d.this_pc.take() {
            d.icons.this_pc.get_or_insert(t);
        }
    }

    /// Parse a stored (or legacy) document and migrate it.
    pub fn from_stored(text: &str) -> Result<UnattendConfig, serde_json::Error> {
        let mut c: UnattendConfig = serde_json::from_str(text)?;
        c.normalize();
        Ok(c)
    }

    /// Every rule, each error naming the field (under `prefix`) and the rule.
    /// The legacy shapes that [`UnattendConfig::normalize`] migrates away,
    /// checked before it does (so a bad legacy value is named, not dropped).
    pub fn validate_legacy(&self, prefix: &str) -> Result<(), FieldErrors> {
        let mut f = FieldErrors::default();
        check_input_locales(&mut f, prefix, self.locale.input_locales.as_deref());
        f.into_fields()
    }

    pub fn validate(&self, prefix: &str) -> Result<(), FieldErrors> {
        let mut f = FieldErrors::default();
        let p = |s: &str| format!("{prefix}{s}");
        let u = &self.user;
        match (&u.custom_name, u.name_mode) {
            (Some(n), _) => check_user_name(&mut f, &p("user.customName"), n),
            (None, NameMode::Custom) => {
                f.add(&p("user.customName"), "is required when nameMode is custom")
            }
            _ => {}
        }
        if let Some(d) = &u.display_name {
            f.display_text(&p("user.displayName"), d, 256);
        }
        match &u.password {
            Some(pw) if pw.chars().count() > 127 => {
                f.add(&p("user.password"), "must be at most 127 characters")
            }
            Some(pw) if pw.chars().any(is_forbidden_in_display) => {
                f.add(&p("user.password"), "must not contain control characters")
            }
            Some(pw) if pw.is_empty() && u.auto_logon_count > 0 => f.add(
                &p("user.password"),
                "is required while auto-logon is on (autoLogonCount > 0)",
            ),
            None if u.auto_logon_count > 0 => f.add(
                &p("user.password"),
                "is required while auto-logon is on (autoLogonCount > 0)",
            ),
            _ => {}
        }
        if u.auto_logon_count > 9_999_999 {
            f.add(&p("user.autoLogonCount"), "must be at most 9999999");
        }
        let c = &self.computer_name;
        match (&c.custom_name, c.mode) {
            (Some(n), _) => check_computer_name(&mut f, &p("computerName.customName"), n),
            (None, NameMode::Custom) => f.add(
                &p("computerName.customName"),
                "is required when mode is custom",
            ),
            _ => {}
        }
        if let (NameMode::Custom, NameMode::Custom, Some(un), Some(cn), NameSuffix::None) = (
            u.name_mode,
            c.mode,
            &u.custom_name,
            &c.custom_name,
            u.custom_name_suffix,
        ) {
            if un.eq_ignore_ascii_case(cn) || un.to_lowercase() == cn.to_lowercase() {
                f.add(
                    &p("user.customName"),
                    "must not equal the computer name (case-insensitive)",
                );
            }
        }
        let l = &self.locale;
        if l.ui_language.len() > 35 || !language_tag(&l.ui_language) {
            f.add(
                &p("locale.uiLanguage"),
                "must be a language tag such as en-US",
            );
        }
        if l.keyboard_layouts.len() > 10 {
            f.add(&p("locale.keyboardLayouts"), "must have at most 10 entries");
        }
        for (i, k) in l.keyboard_layouts.iter().enumerate() {
            if !hex(&k.language, 4) {
                f.add(
                    &p(&format!("locale.keyboardLayouts[{i}].language")),
                    "must be 4 hex digits (LLLL of LLLL:KKKKKKKK)",
                );
            }
            if !hex(&k.layout, 8) {
                f.add(
                    &p(&format!("locale.keyboardLayouts[{i}].layout")),
                    "must be 8 hex digits (KKKKKKKK of LLLL:KKKKKKKK)",
                );
            }
        }
        check_input_locales(&mut f, prefix, l.input_locales.as_deref());
        if !catalog::is_time_zone(&l.time_zone) {
            f.add(
                &p("locale.timeZone"),
                "must be a known Windows time-zone id (e.g. `UTC`, `W. Europe Standard Time`)",
            );
        }
        if !catalog::is_geo_id(l.geo_location) {
            f.add(&p("locale.geoLocation"), "must be a known GeoId (e.g. 244)");
        }
        let s = &self.software_removal;
        check_list(
            &mut f,
            &p("softwareRemoval.fixedPackages"),
            &s.fixed_packages,
        );
        check_list(&mut f, &p("softwareRemoval.randomPool"), &s.random_pool);
        check_list(&mut f, &p("softwareRemoval.neverRemove"), &s.never_remove);
        check_count(&mut f, &p("softwareRemoval.randomCount"), s.random_count);
        let c = &self.capability_removal;
        check_list(
            &mut f,
            &p("capabilityRemoval.fixedCapabilities"),
            &c.fixed_capabilities,
        );
        check_list(&mut f, &p("capabilityRemoval.randomPool"), &c.random_pool);
        check_count(&mut f, &p("capabilityRemoval.randomCount"), c.random_count);
        let cs = &self.custom_script;
        if !executable_ok(&cs.executable) {
            f.add(
                &p("customScript.executable"),
                "must be a plain file name (letters, digits, `_.-`, at most 64 characters) ending in .ps1, .cmd, .bat or .exe",
            );
        }
        if cs.delay_seconds > 600 {
            f.add(&p("customScript.delaySeconds"), "must be between 0 and 600");
        }
        f.into_fields()
    }
}

fn hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && rest.len() <= 3
        && rest
            .iter()
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub fn executable_ok(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let ext_ok = [".ps1", ".cmd", ".bat", ".exe"]
        .iter()
        .any(|e| lower.ends_with(e) && lower.len() > e.len());
    let first_ok = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    ext_ok
        && first_ok
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Computer-name rules (each its own message).
pub fn check_computer_name(f: &mut FieldErrors, field: &str, n: &str) {
    if n.is_empty() {
        f.add(field, "must not be empty");
    } else if n.chars().count() > 15 {
        f.add(field, "must be at most 15 characters");
    } else if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        f.add(field, "may contain only letters A-Z, digits and hyphens");
    } else if n.chars().all(|c| c.is_ascii_digit()) {
        f.add(field, "must not be all digits");
    } else if n.starts_with('-') || n.ends_with('-') {
        f.add(field, "must not start or end with a hyphen");
    }
}

/// User-name rules (each its own message).
pub fn check_user_name(f: &mut FieldErrors, field: &str, n: &str) {
    if n.is_empty() {
        f.add(field, "must not be empty");
    } else if n.chars().count() > 20 {
        f.add(field, "must be at most 20 characters");
    } else if let Some(c) = n.chars().find(|c| USER_NAME_FORBIDDEN.contains(*c)) {
        f.add(
            field,
            format!("must not contain any of / \\ [ ] : ; | = , + * ? < > \" % @ (found `{c}`)"),
        );
    } else if n.chars().any(|c| c.is_control() || c == '\u{7f}') {
        f.add(field, "must not contain control characters");
    } else if n.ends_with('.') {
        f.add(field, "must not end with a dot");
    }
}

fn check_list(f: &mut FieldErrors, field: &str, list: &[PackageName]) {
    if list.len() > MAX_PACKAGES {
        f.add(field, format!("must have at most {MAX_PACKAGES} entries"));
    }
    for (i, p) in list.iter().enumerate() {
        let ok = !p.0.is_empty()
            && p.0.len() <= 100
            && p.0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
        if !ok {
            f.add(
                &format!("{field}[{i}]"),
                "must be 1-100 characters of letters, digits and `._~-`",
            );
        }
    }
}

fn check_count(f: &mut FieldErrors, field: &str, c: Option<RandomCount>) {
    if let Some(c) = c {
        if c.min > MAX_RANDOM_COUNT {
            f.add(&format!("{field}.min"), "must be at most 200");
        }
        if c.max > MAX_RANDOM_COUNT {
            f.add(&format!("{field}.max"), "must be at most 200");
        }
        if c.min > c.max {
            f.add(&format!("{field}.min"), "must be at most max (min ≤ max)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "user": {"nameMode": "fixed", "password": "pw"},
            "computerName": {"mode": "fixed"}
        })
    }

    fn errors(v: serde_json::Value) -> Vec<(String, String)> {
        let c: UnattendConfig = serde_json::from_value(v).expect("parses");
        match c.validate("") {
            Ok(()) => vec![],
            Err(e) => e.0,
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c: UnattendConfig = serde_json::from_value(base()).unwrap();
        c.validate("").unwrap();
        assert_eq!(c.locale.time_zone, "Turkey Standard Time");
        assert_eq!(c.locale.geo_location, 235);
        assert_eq!(c.custom_script.executable, "START.ps1");
        assert_eq!(c.custom_script.delay_seconds, 20);
        assert!(c.windows_settings.disable_defender);
        assert!(!c.windows_settings.enable_remote_desktop);
        assert_eq!(c.visual_effects.mode, VisualMode::Performance);
        assert_eq!(c.desktop_icons.mode(), IconMode::Default);
    }

    #[test]
    fn legacy_shapes_are_migrated() {
        let mut v = base();
        v["locale"] = json!({"inputLocales": ["0407:00000407", "0409:00000409"]});
        v["softwareRemoval"] = json!({"mode": "mixed"});
        v["visualEffects"] =
            json!({"mode": "random", "cursorShadow": true, "fontSmoothing": false});
        v["desktopIcons"] = json!({"recycleBin": true, "thisPC": false});
        v["windowsSettings"] = json!({"disableUac": false});
        let c = UnattendConfig::from_stored(&v.to_string()).unwrap();
        c.validate("").unwrap();
        assert_eq!(c.locale.keyboard_layouts.len(), 2);
        assert_eq!(c.locale.keyboard_layouts[0].language, "0407");
        assert!(c.locale.input_locales.is_none());
        assert_eq!(c.software_removal.mode, RemovalMode::FixedRandom);
        assert_eq!(c.visual_effects.mode, VisualMode::CustomRandomize);
        assert_eq!(c.visual_effects.effects.cursor_shadow, Some(true));
        assert_eq!(c.visual_effects.effects.font_smoothing, Some(false));
        assert_eq!(c.desktop_icons.mode, Some(IconMode::Custom));
        assert_eq!(c.desktop_icons.icons.recycle_bin, Some(true));
        assert_eq!(c.desktop_icons.icons.this_pc, Some(false));
        assert!(c.desktop_icons.delete_edge_shortcut);
        assert!(!c.windows_settings.enable_remote_desktop);
        // The migrated form serialises without the legacy fields and is stable.
        let text = serde_json::to_string(&c).unwrap();
        for legacy in [
            "inputLocales",
            "\"cursorShadow\":true,\"font",
            "mixed",
            "\"random\"",
        ] {
            assert!(!text.contains(legacy), "{legacy} in {text}");
        }
        assert_eq!(UnattendConfig::from_stored(&text).unwrap(), c);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["visualEffects"].get("cursorShadow").is_none());
        assert!(v["desktopIcons"].get("recycleBin").is_none());
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let mut v = base();
        v["user"]["nickname"] = json!("x");
        let text = v.to_string();
        let de = &mut serde_json::Deserializer::from_str(&text);
        let err = serde_path_to_error::deserialize::<_, UnattendConfig>(de).unwrap_err();
        assert_eq!(err.path().to_string(), "user.nickname");
        assert!(err.to_string().contains("nickname"), "{err}");
        let mut v = base();
        v["visualEffects"] = json!({"effects": {"sparkle": true}});
        let text = v.to_string();
        let de = &mut serde_json::Deserializer::from_str(&text);
        let err = serde_path_to_error::deserialize::<_, UnattendConfig>(de).unwrap_err();
        assert_eq!(err.path().to_string(), "visualEffects.effects.sparkle");
    }

    #[test]
    fn each_rule_has_its_message() {
        let cases: Vec<(serde_json::Value, &str, &str)> = vec![
            (
                json!({"computerName": {"mode": "custom", "customName": "ABCDEFGHIJKLMNOP"}}),
                "computerName.customName",
                "at most 15",
            ),
            (
                json!({"computerName": {"mode": "custom", "customName": "12345"}}),
                "computerName.customName",
                "all digits",
            ),
            (
                json!({"computerName": {"mode": "custom", "customName": "PC_1"}}),
                "computerName.customName",
                "only letters",
            ),
            (
                json!({"computerName": {"mode": "custom", "customName": "-PC"}}),
                "computerName.customName",
                "hyphen",
            ),
            (
                json!({"computerName": {"mode": "custom"}}),
                "computerName.customName",
                "required",
            ),
            (
                json!({"user": {"nameMode": "custom", "customName": "abcdefghijklmnopqrstu", "password": "x"}}),
                "user.customName",
                "at most 20",
            ),
            (
                json!({"user": {"nameMode": "custom", "customName": "a@b", "password": "x"}}),
                "user.customName",
                "must not contain",
            ),
            (
                json!({"user": {"nameMode": "custom", "customName": "bob.", "password": "x"}}),
                "user.customName",
                "dot",
            ),
            (
                json!({"user": {"nameMode": "custom", "customName": "Lab1", "password": "x"}, "computerName": {"mode": "custom", "customName": "LAB1"}}),
                "user.customName",
                "computer name",
            ),
            (
                json!({"user": {"nameMode": "fixed", "displayName": "x".repeat(257), "password": "x"}}),
                "user.displayName",
                "256",
            ),
            (
                json!({"user": {"nameMode": "fixed", "password": "x".repeat(128)}}),
                "user.password",
                "127",
            ),
            (
                json!({"user": {"nameMode": "fixed"}}),
                "user.password",
                "auto-logon",
            ),
            (
                json!({"locale": {"timeZone": "Mars Standard Time"}}),
                "locale.timeZone",
                "time-zone id",
            ),
            (
                json!({"locale": {"keyboardLayouts": [{"language": "409", "layout": "00000409"}]}}),
                "locale.keyboardLayouts[0].language",
                "hex",
            ),
            (
                json!({"locale": {"geoLocation": 1}}),
                "locale.geoLocation",
                "GeoId",
            ),
            (
                json!({"softwareRemoval": {"mode": "random", "randomCount": {"min": 9, "max": 3}}}),
                "softwareRemoval.randomCount.min",
                "min ≤ max",
            ),
            (
                json!({"customScript": {"executable": "C:\\x.ps1"}}),
                "customScript.executable",
                "plain file name",
            ),
            (
                json!({"customScript": {"executable": "setup.sh"}}),
                "customScript.executable",
                ".ps1",
            ),
            (
                json!({"customScript": {"delaySeconds": 601}}),
                "customScript.delaySeconds",
                "600",
            ),
        ];
        for (patch, field, rule) in cases {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let errs = errors(v.clone());
            assert!(
                errs.iter().any(|(f, m)| f == field && m.contains(rule)),
                "{v}: expected {field} `{rule}`, got {errs:?}"
            );
        }
        let mut v = base();
        v["user"] = json!({"nameMode": "fixed", "autoLogonCount": 0});
        assert!(
            errors(v).is_empty(),
            "no password is fine without auto-logon"
        );
    }
}

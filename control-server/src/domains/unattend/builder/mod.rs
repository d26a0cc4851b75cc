//! The Windows answer-file builder: a profile configuration plus one VM's
//! context in, `autounattend.xml` bytes plus the resolved names and the
//! extra files for the ISO out. No HTTP, no database: the preview endpoint
//! and the ISO payload call this same function, so they get the same bytes
//! (bug (i) of the original, which had two builders).
//!
//! Layout: [`rng`] (seeded draws), [`names`](resolve) (user and computer
//! names, removal subsets, effects), [`script`] (`setup.ps1`), [`xml`] (the
//! writer), [`passes`] (which component may appear in which pass),
//! [`check`] (the structure every answer file must have, checked on each
//! file built and public for the tests). `unattend.xsd` describes the outer
//! structure the tests validate with `xmllint --schema`.
//!
//! The per-VM seed is [`vm_seed`]: derived from the VM's UUID, so it needs
//! no storage and is the same for every regeneration of the VM's ISO and
//! for a preview naming the VM.

pub mod check;
pub mod passes;
pub mod rng;
pub mod script;
pub mod xml;

#[cfg(test)]
mod tests;

use base64::Engine;

pub use self::check::{check_answer_file, UNATTEND_XSD};
use self::rng::{Purpose, Rng};
use super::catalog::{self, EFFECTS};
use super::config::{IconMode, NameMode, NameSuffix, RemovalMode, UnattendConfig, VisualMode};
use crate::validate::FieldErrors;

/// The VM's network plan (applied by START.ps1 from provision.json; the
/// answer file itself does not use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPlan {
    pub address: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<std::net::Ipv4Addr>,
    pub dns: Vec<std::net::Ipv4Addr>,
}

/// Everything about one VM the answer file depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmContext {
    pub vm_uuid: String,
    pub vmid: Option<u32>,
    /// 0-based position of the VM in its batch (the `sequential` suffix is
    /// this + 1, zero-padded to two digits).
    pub batch_index: u32,
    pub ip: Option<IpPlan>,
    /// The seed of the random names and subsets: the same seed gives the
    /// same answer file. For a VM it is [`vm_seed`] of its UUID (the ISO
    /// payload always; the preview unless the caller gives a seed).
    pub seed: u64,
}

/// The built answer file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerFile {
    /// `Autounattend.xml` (UTF-8).
    pub xml: Vec<u8>,
    pub computer_name: String,
    pub user_name: String,
    /// Further files for the ISO root, e.g. `("setup.ps1", bytes)`.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid profile: {0}")]
    Invalid(FieldErrors),
    #[error("the resolved user name `{user}` equals the computer name (case-insensitive)")]
    NameCollision { user: String },
    #[error("{context}: character U+{codepoint:04X} cannot be written in XML")]
    UnrepresentableCharacter { context: String, codepoint: u32 },
    /// The built file failed [`check_answer_file`]: a bug in the builder,
    /// never the caller's fault (answered as a 500, logged with the cause).
    #[error("the builder wrote an invalid answer file: {0}")]
    Malformed(String),
}

/// The seed of a VM's random choices, derived from its UUID (the first 8
/// bytes of SHA-256 of `botmox-unattend-seed:<uuid>`, lower-case hyphenated
/// form, masked to `0..=i64::MAX`, the range the preview endpoints and JSON
/// clients limited to signed 64-bit integers accept). Nothing is stored:
/// re-generating the ISO for the same VM, or previewing with its
/// `vm_uuid`, gives the same seed and so the same answer file.
pub fn vm_seed(vm_uuid: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let canonical = uuid::Uuid::parse_str(vm_uuid.trim())
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_else(|_| vm_uuid.to_string());
    let d = Sha256::digest(format!("botmox-unattend-seed:{canonical}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b) & (i64::MAX as u64)
}

/// The file name of the PowerShell work on the ISO.
pub const SETUP_SCRIPT: &str = "setup.ps1";
/// The answer-file namespace.
pub const NS: &str = "urn:schemas-microsoft-com:unattend";
const WCM: &str = "http://schemas.microsoft.com/WMIConfig/2002/State";

const ADJECTIVES: [&str; 16] = [
    "Quick", "Silent", "Brave", "Clever", "Sharp", "Bold", "Keen", "Swift", "Lucky", "Noble",
    "Calm", "Warm", "Cool", "Grand", "Prime", "Fair",
];
const NOUNS: [&str; 16] = [
    "Fox", "Hawk", "Wolf", "Bear", "Lynx", "Deer", "Sage", "Oak", "Elm", "Pine", "Star", "Moon",
    "Dawn", "Ash", "Jay", "Wren",
];
const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Values drawn or derived for one VM.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub computer_name: String,
    pub user_name: String,
    pub packages: Vec<String>,
    pub capabilities: Vec<String>,
    /// One value per entry of [`EFFECTS`] (`true` = on).
    pub effects: Vec<bool>,
    /// One value per entry of [`catalog::DESKTOP_ICONS`] (`true` = shown).
    pub icons: Vec<bool>,
}

/// Build the answer file for one VM. The file is checked with
/// [`check_answer_file`] before it is returned; a file that fails is a
/// builder bug and comes back as [`BuildError::Malformed`], never as bytes.
pub fn build_answer_file(
    config: &UnattendConfig,
    ctx: &VmContext,
) -> Result<AnswerFile, BuildError> {
    let mut config = config.clone();
    config.normalize();
    config.validate("").map_err(BuildError::Invalid)?;
    let r = resolve(&config, ctx);
    if r.user_name.to_lowercase() == r.computer_name.to_lowercase() {
        return Err(BuildError::NameCollision { user: r.user_name });
    }
    let setup = script::render(&config, &r);
    let xml = document(&config, &r)?;
    check_answer_file(&xml).map_err(BuildError::Malformed)?;
    let mut setup_bytes = vec![0xEF, 0xBB, 0xBF];
    setup_bytes.extend_from_slice(setup.as_bytes());
    Ok(AnswerFile {
        xml: xml.into_bytes(),
        computer_name: r.computer_name,
        user_name: r.user_name,
        extra_files: vec![(SETUP_SCRIPT.to_string(), setup_bytes)],
    })
}

/// Windows' password encoding for answer files: base64 of the UTF-16LE
/// bytes of the password followed by `suffix` (`Password` for account and
/// auto-logon passwords, `AdministratorPassword` for the built-in
/// administrator). Bug (a): the original encoded UTF-8.
pub fn encode_password(password: &str, suffix: &str) -> String {
    let bytes: Vec<u8> = password
        .encode_utf16()
        .chain(suffix.encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn dedupe(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.to_ascii_lowercase()))
        .collect()
}

fn removal(
    mode: RemovalMode,
    fixed: &[String],
    pool: &[String],
    (lo, hi): (u32, u32),
    rng: &mut Rng,
) -> Vec<String> {
    match mode {
        RemovalMode::Fixed => dedupe(fixed.iter().cloned()),
        RemovalMode::Random => rng.subset(&dedupe(pool.iter().cloned()), lo, hi),
        RemovalMode::FixedRandom => {
            let fixed = dedupe(fixed.iter().cloned());
            let rest: Vec<String> = dedupe(pool.iter().cloned())
                .into_iter()
                .filter(|p| !fixed.iter().any(|f| f.eq_ignore_ascii_case(p)))
                .collect();
            let extra = rng.subset(&rest, lo, hi);
            fixed.into_iter().chain(extra).collect()
        }
    }
}

/// Resolve names, subsets and switches from the seed and the context.
pub fn resolve(c: &UnattendConfig, ctx: &VmContext) -> Resolved {
    let computer_name = match c.computer_name.mode {
        NameMode::Random => {
            let mut rng = Rng::new(ctx.seed, Purpose::ComputerName);
            let tail: String = (0..7)
                .map(|_| NAME_CHARS[rng.below(NAME_CHARS.len() as u64) as usize] as char)
                .collect();
            format!("DESKTOP-{tail}")
        }
        NameMode::Fixed => "WIN-PC".to_string(),
        NameMode::Custom => c.computer_name.custom_name.clone().unwrap_or_default(),
    };
    let mut rng = Rng::new(ctx.seed, Purpose::UserName);
    let user_name = match c.user.name_mode {
        NameMode::Random => format!(
            "{}{}{}",
            ADJECTIVES[rng.below(16) as usize],
            NOUNS[rng.below(16) as usize],
            rng.between(10, 98)
        ),
        NameMode::Fixed => "User".to_string(),
        NameMode::Custom => {
            let base = c.user.custom_name.clone().unwrap_or_default();
            // Bug (d): `sequential` uses the VM's index in its batch.
            let suffix = match c.user.custom_name_suffix {
                NameSuffix::None => String::new(),
                NameSuffix::RandomDigits => {
                    let n = rng.between(2, 4);
                    (0..n)
                        .map(|_| char::from(b'0' + rng.below(10) as u8))
                        .collect()
                }
                NameSuffix::Sequential => format!("{:02}", u64::from(ctx.batch_index) + 1),
            };
            let room = 20usize.saturating_sub(suffix.chars().count());
            let base: String = base.chars().take(room).collect();
            format!("{base}{suffix}")
        }
    };
    let s = &c.software_removal;
    let names = |v: &[super::config::PackageName]| -> Vec<String> {
        v.iter().map(|p| p.0.clone()).collect()
    };
    let count = s.random_count.map(|r| (r.min, r.max)).unwrap_or((5, 15));
    let mut packages = removal(
        s.mode,
        &names(&s.fixed_packages),
        &names(&s.random_pool),
        count,
        &mut Rng::new(ctx.seed, Purpose::Software),
    );
    packages.retain(|p| !s.never_remove.iter().any(|n| n.0.eq_ignore_ascii_case(p)));
    let k = &c.capability_removal;
    let count = k.random_count.map(|r| (r.min, r.max)).unwrap_or((3, 10));
    let capabilities = removal(
        k.mode,
        &names(&k.fixed_capabilities),
        &names(&k.random_pool),
        count,
        &mut Rng::new(ctx.seed, Purpose::Capabilities),
    );
    // Bug (f): one value per registry value; the canonical key wins, then
    // the aliases in their documented order. One coin per value is drawn
    // whatever the mode, so the stream never shifts.
    let mut rng = Rng::new(ctx.seed, Purpose::VisualEffects);
    let v = &c.visual_effects;
    let effects = EFFECTS
        .iter()
        .map(|e| {
            let coin = rng.coin();
            let explicit = std::iter::once(&e.key)
                .chain(e.aliases)
                .find_map(|k| v.effects.get(k));
            match v.mode {
                VisualMode::Default | VisualMode::Appearance => true,
                VisualMode::Performance => false,
                VisualMode::Custom => explicit.unwrap_or(false),
                VisualMode::CustomRandomize => explicit.unwrap_or(coin),
            }
        })
        .collect();
    let mut rng = Rng::new(ctx.seed, Purpose::DesktopIcons);
    let d = &c.desktop_icons;
    let icons = catalog::DESKTOP_ICONS
        .iter()
        .map(|(key, _)| {
            let coin = rng.coin();
            match d.mode() {
                IconMode::Default => true,
                IconMode::Custom => d.icons.get(key).unwrap_or(false),
                IconMode::CustomRandomize => d.icons.get(key).unwrap_or(coin),
            }
        })
        .collect();
    Resolved {
        computer_name,
        user_name,
        packages,
        capabilities,
        effects,
        icons,
    }
}

fn component(w: &mut xml::Writer, name: &str) -> Result<(), BuildError> {
    w.open(
        "component",
        &[
            ("name", name),
            ("processorArchitecture", "amd64"),
            ("publicKeyToken", "31bf3856ad364e35"),
            ("language", "neutral"),
            ("versionScope", "nonSxS"),
        ],
    )
}

const ADD: &[(&str, &str)] = &[("wcm:action", "add")];

fn input_locale(c: &UnattendConfig) -> String {
    if c.locale.keyboard_layouts.is_empty() {
        "0409:00000409".to_string()
    } else {
        c.locale
            .keyboard_layouts
            .iter()
            .map(|k| {
                format!(
                    "{}:{}",
                    k.language.to_ascii_uppercase(),
                    k.layout.to_ascii_uppercase()
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

fn locale_elements(w: &mut xml::Writer, c: &UnattendConfig) -> Result<(), BuildError> {
    let lang = &c.locale.ui_language;
    w.text("InputLocale", &input_locale(c))?;
    w.text("SystemLocale", lang)?;
    w.text("UILanguage", lang)?;
    w.text("UserLocale", lang)
}

fn password(w: &mut xml::Writer, c: &UnattendConfig) -> Result<(), BuildError> {
    let pw = c.user.password.as_deref().unwrap_or("");
    w.open("Password", &[])?;
    if c.user.obscure_password {
        w.text("Value", &encode_password(pw, "Password"))?;
        w.text("PlainText", "false")?;
    } else {
        w.text("Value", pw)?;
        w.text("PlainText", "true")?;
    }
    w.close();
    Ok(())
}

/// The bootstrap command line for the custom executable (bug (c): the
/// interpreter follows the file's extension).
pub fn bootstrap_command(executable: &str, delay_seconds: u32) -> String {
    let path = format!(r"C:\WindowsSetup\{executable}");
    let lower = executable.to_ascii_lowercase();
    let run = if lower.ends_with(".ps1") {
        format!("powershell.exe -NoExit -NoProfile -ExecutionPolicy Bypass -WindowStyle Normal -File {path}")
    } else if lower.ends_with(".cmd") || lower.ends_with(".bat") {
        format!("cmd.exe /k {path}")
    } else {
        path
    };
    format!(r#"cmd.exe /c "timeout /t {delay_seconds} /nobreak >nul & start "BOTMOX_SETUP" {run}""#)
}

/// Copies `setup.ps1` from the CD (the drive that holds both it and the
/// answer file) to `C:\WindowsSetup\`.
pub const COPY_SETUP_COMMAND: &str = r#"cmd.exe /c "mkdir C:\WindowsSetup 2>nul & for %d in (D E F G H I J K L M N O P Q R S T U V W X Y Z) do @if exist %d:\setup.ps1 if exist %d:\Autounattend.xml copy /y %d:\setup.ps1 C:\WindowsSetup\setup.ps1""#;
pub const RUN_SETUP_COMMAND: &str =
    r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\WindowsSetup\setup.ps1";

fn document(c: &UnattendConfig, r: &Resolved) -> Result<String, BuildError> {
    let mut w = xml::Writer::new();
    w.open("unattend", &[("xmlns", NS), ("xmlns:wcm", WCM)])?;

    w.open("settings", &[("pass", "windowsPE")])?;
    component(&mut w, "Microsoft-Windows-International-Core-WinPE")?;
    w.open("SetupUILanguage", &[])?;
    w.text("UILanguage", &c.locale.ui_language)?;
    w.close();
    locale_elements(&mut w, c)?;
    w.close();
    component(&mut w, "Microsoft-Windows-Setup")?;
    w.open("DiskConfiguration", &[])?;
    w.open("Disk", ADD)?;
    w.text("DiskID", "0")?;
    w.text("WillWipeDisk", "true")?;
    w.open("CreatePartitions", &[])?;
    for (order, kind, size) in [
        ("1", "EFI", Some("512")),
        ("2", "MSR", Some("16")),
        ("3", "Primary", None),
    ] {
        w.open("CreatePartition", ADD)?;
        w.text("Order", order)?;
        w.text("Type", kind)?;
        match size {
            Some(s) => w.text("Size", s)?,
            None => w.text("Extend", "true")?,
        }
        w.close();
    }
    w.close();
    w.open("ModifyPartitions", &[])?;
    for (order, format, label, letter) in [
        ("1", Some("FAT32"), Some("System"), None),
        ("2", None, None, None),
        ("3", Some("NTFS"), Some("Windows"), Some("C")),
    ] {
        w.open("ModifyPartition", ADD)?;
        w.text("Order", order)?;
        w.text("PartitionID", order)?;
        if let Some(f) = format {
            w.text("Format", f)?;
        }
        if let Some(l) = label {
            w.text("Label", l)?;
        }
        if let Some(l) = letter {
            w.text("Letter", l)?;
        }
        w.close();
    }
    w.close();
    w.close();
    w.close();
    w.open("ImageInstall", &[])?;
    w.open("OSImage", &[])?;
    w.open("InstallTo", &[])?;
    w.text("DiskID", "0")?;
    w.text("PartitionID", "3")?;
    w.close();
    w.close();
    w.close();
    w.open("UserData", &[])?;
    w.open("ProductKey", &[])?;
    w.text("WillShowUI", "OnError")?;
    w.close();
    w.text("AcceptEula", "true")?;
    w.close();
    w.close();
    w.close();

    w.open("settings", &[("pass", "specialize")])?;
    component(&mut w, "Microsoft-Windows-Shell-Setup")?;
    w.text("ComputerName", &r.computer_name)?;
    w.text("TimeZone", &c.locale.time_zone)?;
    w.close();
    component(&mut w, "Microsoft-Windows-International-Core")?;
    locale_elements(&mut w, c)?;
    w.close();
    component(&mut w, "Microsoft-Windows-Deployment")?;
    w.open("RunSynchronous", &[])?;
    w.open("RunSynchronousCommand", ADD)?;
    w.text("Order", "1")?;
    w.text(
        "Path",
        r#"reg.exe add "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\OOBE" /v BypassNRO /t REG_DWORD /d 1 /f"#,
    )?;
    w.text("Description", "Allow setup without a network account")?;
    w.close();
    w.close();
    w.close();
    w.close();

    w.open("settings", &[("pass", "oobeSystem")])?;
    component(&mut w, "Microsoft-Windows-International-Core")?;
    locale_elements(&mut w, c)?;
    w.close();
    component(&mut w, "Microsoft-Windows-Shell-Setup")?;
    if c.user.auto_logon_count > 0 {
        w.open("AutoLogon", &[])?;
        password(&mut w, c)?;
        w.text("Enabled", "true")?;
        w.text("LogonCount", &c.user.auto_logon_count.to_string())?;
        w.text("Username", &r.user_name)?;
        w.close();
    }
    w.open("FirstLogonCommands", &[])?;
    let commands = [
        (
            COPY_SETUP_COMMAND.to_string(),
            "Copy setup.ps1 from the provisioning CD",
        ),
        (
            RUN_SETUP_COMMAND.to_string(),
            "Apply Windows settings, remove packages, copy the provisioning files",
        ),
        (
            bootstrap_command(&c.custom_script.executable, c.custom_script.delay_seconds),
            "Run the provisioning bootstrap",
        ),
    ];
    for (i, (line, what)) in commands.iter().enumerate() {
        w.open("SynchronousCommand", ADD)?;
        w.text("Order", &(i + 1).to_string())?;
        w.text("CommandLine", line)?;
        w.text("Description", what)?;
        w.text("RequiresUserInput", "false")?;
        w.close();
    }
    w.close();
    w.open("OOBE", &[])?;
    for k in [
        "HideEULAPage",
        "HideLocalAccountScreen",
        "HideOEMRegistrationScreen",
        "HideOnlineAccountScreens",
        "HideWirelessSetupInOOBE",
    ] {
        w.text(k, "true")?;
    }
    w.text("ProtectYourPC", "3")?;
    w.close();
    w.open("UserAccounts", &[])?;
    w.open("LocalAccounts", &[])?;
    w.open("LocalAccount", ADD)?;
    password(&mut w, c)?;
    w.text(
        "DisplayName",
        c.user.display_name.as_deref().unwrap_or(&r.user_name),
    )?;
    w.text("Group", c.user.group.as_str())?;
    w.text("Name", &r.user_name)?;
    w.close();
    w.close();
    w.close();
    w.close();
    w.close();

    w.close();
    Ok(w.finish())
}

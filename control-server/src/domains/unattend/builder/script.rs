//! `setup.ps1`: the PowerShell work of a profile, written as a file on the
//! ISO and run with `powershell -File` (bug (b): the original passed it
//! inline with `-Command "…"`, and its own `"` broke the quoting). Every
//! value that comes from the profile is a PowerShell single-quoted literal
//! (`'` doubled) and is also restricted by validation.

use super::Resolved;
use crate::domains::unattend::catalog::{self, EFFECTS};
use crate::domains::unattend::config::{IconMode, UnattendConfig, VisualMode};

/// A PowerShell single-quoted string literal.
pub fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct Script {
    lines: Vec<String>,
}

impl Script {
    fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }
    fn blank(&mut self) {
        self.lines.push(String::new());
    }
    /// A named step: its failure is logged, the next step still runs.
    fn step(&mut self, name: &str, body: &[String]) {
        self.line(format!("Step {} {{", ps_quote(name)));
        for b in body {
            self.line(format!("    {b}"));
        }
        self.line("}");
    }
    fn reg(path: &str, name: &str, kind: catalog::RegType, value: &str) -> String {
        format!(
            "Set-Reg {} {} {} {}",
            ps_quote(path),
            ps_quote(name),
            ps_quote(kind.as_str()),
            ps_quote(value)
        )
    }
}

const PRELUDE: &str = r#"# Bot-Mox setup.ps1, generated from an unattend profile for one VM.
# Runs once at the first logon (FirstLogonCommands), from C:\WindowsSetup\.
# Each step logs `ok` or `FAIL <reason>` to C:\WindowsSetup\setup.log.
$ErrorActionPreference = 'Stop'
$SetupDir = 'C:\WindowsSetup'
$Log = Join-Path $SetupDir 'setup.log'
New-Item -ItemType Directory -Force -Path $SetupDir | Out-Null

function Write-Log([string]$Message) {
    Add-Content -Path $Log -Value ('{0:o} {1}' -f (Get-Date), $Message)
}

function Step([string]$Name, [scriptblock]$Body) {
    try {
        & $Body
        Write-Log "ok   $Name"
    } catch {
        Write-Log "FAIL $Name`: $($_.Exception.Message)"
    }
}

function Set-Reg([string]$Path, [string]$Name, [string]$Type, [string]$Value) {
    & reg.exe add $Path /v $Name /t $Type /d $Value /f | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "reg add $Path /v $Name failed with exit code $LASTEXITCODE" }
}

Write-Log 'setup.ps1 started'
"#;

/// The whole script (CRLF line ends; the caller adds the UTF-8 BOM).
pub fn render(c: &UnattendConfig, r: &Resolved) -> String {
    let mut s = Script { lines: vec![] };
    for l in PRELUDE.lines() {
        s.line(l);
    }

    // Bug (c): copy START.ps1, provision.json (and the rest) from the CD,
    // found by its volume label or by the file.
    let mut files = vec!["provision.json", "START.ps1", "playbook.yml"];
    if !files
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&c.custom_script.executable))
    {
        files.push(&c.custom_script.executable);
    }
    let list = files
        .iter()
        .map(|f| ps_quote(f))
        .collect::<Vec<_>>()
        .join(", ");
    s.blank();
    s.line("# Copy the provisioning files from the CD (volume label PROVISION, else the drive holding provision.json).");
    s.step(
        "copy provisioning files",
        &[
            "$Source = Get-Volume -ErrorAction SilentlyContinue | Where-Object { $_.FileSystemLabel -eq 'PROVISION' -and $_.DriveLetter } | ForEach-Object { \"$($_.DriveLetter):\\\" } | Select-Object -First 1".into(),
            "if (-not $Source) { $Source = Get-PSDrive -PSProvider FileSystem | ForEach-Object { $_.Root } | Where-Object { Test-Path -LiteralPath (Join-Path $_ 'provision.json') } | Select-Object -First 1 }".into(),
            "if (-not $Source) { throw 'provisioning CD not found (no volume PROVISION and no provision.json at a drive root)' }".into(),
            format!("foreach ($File in @({list})) {{"),
            "    $Path = Join-Path $Source $File".into(),
            "    if (Test-Path -LiteralPath $Path) { Copy-Item -LiteralPath $Path -Destination $SetupDir -Force; Write-Log \"copied $File from $Source\" }".into(),
            "}".into(),
        ],
    );

    if !r.packages.is_empty() {
        s.blank();
        s.line("# softwareRemoval: provisioned Appx packages.");
        for p in &r.packages {
            let pat = ps_quote(&format!("*{p}*"));
            s.step(
                &format!("remove package {p}"),
                &[format!("Get-AppxProvisionedPackage -Online | Where-Object {{ $_.PackageName -like {pat} }} | Remove-AppxProvisionedPackage -Online | Out-Null")],
            );
        }
    }
    if !r.capabilities.is_empty() {
        s.blank();
        s.line("# capabilityRemoval: Windows capabilities.");
        for p in &r.capabilities {
            let pat = ps_quote(&format!("*{p}*"));
            s.step(
                &format!("remove capability {p}"),
                &[format!("Get-WindowsCapability -Online | Where-Object {{ $_.Name -like {pat} -and $_.State -eq 'Installed' }} | Remove-WindowsCapability -Online | Out-Null")],
            );
        }
    }

    use catalog::RegType::{Dword, Sz};
    let w = &c.windows_settings;
    let settings: Vec<(bool, &str, Vec<String>)> = vec![
        (w.disable_defender, "disableDefender", vec![
            "Set-MpPreference -DisableRealtimeMonitoring $true -ErrorAction SilentlyContinue".into(),
            Script::reg(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender", "DisableAntiSpyware", Dword, "1"),
        ]),
        (w.disable_windows_update, "disableWindowsUpdate", vec![
            Script::reg(r"HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU", "NoAutoUpdate", Dword, "1"),
        ]),
        (w.disable_uac, "disableUac", vec![
            Script::reg(r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System", "EnableLUA", Dword, "0"),
        ]),
        (w.disable_smart_screen, "disableSmartScreen", vec![
            Script::reg(r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer", "SmartScreenEnabled", Sz, "Off"),
        ]),
        (w.disable_system_restore, "disableSystemRestore", vec![
            "Disable-ComputerRestore -Drive 'C:\\'".into(),
        ]),
        (w.enable_long_paths, "enableLongPaths", vec![
            Script::reg(r"HKLM\SYSTEM\CurrentControlSet\Control\FileSystem", "LongPathsEnabled", Dword, "1"),
        ]),
        (w.allow_power_shell_scripts, "allowPowerShellScripts", vec![
            "Set-ExecutionPolicy Bypass -Scope LocalMachine -Force".into(),
        ]),
        (w.disable_widgets, "disableWidgets", vec![
            Script::reg(r"HKLM\SOFTWARE\Policies\Microsoft\Dsh", "AllowNewsAndInterests", Dword, "0"),
        ]),
        (w.disable_edge_startup, "disableEdgeStartup", vec![
            Script::reg(r"HKLM\SOFTWARE\Policies\Microsoft\Edge", "HideFirstRunExperience", Dword, "1"),
        ]),
        (w.prevent_device_encryption, "preventDeviceEncryption", vec![
            Script::reg(r"HKLM\SYSTEM\CurrentControlSet\Control\BitLocker", "PreventDeviceEncryption", Dword, "1"),
        ]),
        (w.disable_sticky_keys, "disableStickyKeys", vec![
            Script::reg(r"HKCU\Control Panel\Accessibility\StickyKeys", "Flags", Sz, "506"),
        ]),
        (w.enable_remote_desktop, "enableRemoteDesktop", vec![
            Script::reg(r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "fDenyTSConnections", Dword, "0"),
            "& netsh.exe advfirewall firewall set rule group='Remote Desktop' new enable=Yes | Out-Null".into(),
        ]),
    ];
    let on: Vec<_> = settings.into_iter().filter(|(b, _, _)| *b).collect();
    if !on.is_empty() {
        s.blank();
        s.line("# windowsSettings.");
        for (_, name, body) in on {
            s.step(name, &body);
        }
    }

    s.blank();
    s.line("# locale.geoLocation.");
    s.step(
        "geoLocation",
        &[format!(
            "Set-WinHomeLocation -GeoId {}",
            c.locale.geo_location
        )],
    );

    if c.visual_effects.mode != VisualMode::Default {
        s.blank();
        s.line(format!(
            "# visualEffects ({}): one value per registry value; aliased keys documented in docs/provisioning.md.",
            serde_json::to_value(c.visual_effects.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ));
        let mut body = vec![Script::reg(
            r"HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\VisualEffects",
            "VisualFXSetting",
            Dword,
            "3",
        )];
        for (e, on) in EFFECTS.iter().zip(&r.effects) {
            body.push(Script::reg(
                e.path,
                e.name,
                e.kind,
                if *on { e.on } else { e.off },
            ));
        }
        s.step("visualEffects", &body);
    }

    let d = &c.desktop_icons;
    let mut icons = vec![];
    if d.mode() != IconMode::Default {
        for ((_, clsid), shown) in catalog::DESKTOP_ICONS.iter().zip(&r.icons) {
            icons.push(Script::reg(
                r"HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\HideDesktopIcons\NewStartPanel",
                clsid,
                Dword,
                if *shown { "0" } else { "1" },
            ));
        }
    }
    for (key, value) in catalog::START_FOLDERS {
        if let Some(v) = d.start_folders.get(key) {
            icons.push(Script::reg(
                r"HKCU\Software\Microsoft\Windows\CurrentVersion\Start",
                value,
                Dword,
                if v { "1" } else { "0" },
            ));
        }
    }
    if !icons.is_empty() {
        s.blank();
        s.line("# desktopIcons: icons (custom modes) and start folders (keys that are set).");
        s.step("desktopIcons", &icons);
    }
    // Bug (e): the Edge shortcut is deleted in every icon mode.
    if d.delete_edge_shortcut {
        s.blank();
        s.line("# desktopIcons.deleteEdgeShortcut.");
        s.step(
            "deleteEdgeShortcut",
            &[
                "Remove-Item -LiteralPath (Join-Path $env:PUBLIC 'Desktop\\Microsoft Edge.lnk') -Force -ErrorAction SilentlyContinue".into(),
                "Remove-Item -LiteralPath (Join-Path $env:USERPROFILE 'Desktop\\Microsoft Edge.lnk') -Force -ErrorAction SilentlyContinue".into(),
            ],
        );
    }

    s.blank();
    s.line("Write-Log 'setup.ps1 finished'");
    let mut out = s.lines.join("\r\n");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_powershell_literals() {
        assert_eq!(ps_quote("a'b"), "'a''b'");
        assert_eq!(ps_quote("$env:x \"y\""), "'$env:x \"y\"'");
    }
}

# Bot-Mox setup.ps1, generated from an unattend profile for one VM.
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

# Copy the provisioning files from the CD (volume label PROVISION, else the drive holding provision.json).
Step 'copy provisioning files' {
    $Source = Get-Volume -ErrorAction SilentlyContinue | Where-Object { $_.FileSystemLabel -eq 'PROVISION' -and $_.DriveLetter } | ForEach-Object { "$($_.DriveLetter):\" } | Select-Object -First 1
    if (-not $Source) { $Source = Get-PSDrive -PSProvider FileSystem | ForEach-Object { $_.Root } | Where-Object { Test-Path -LiteralPath (Join-Path $_ 'provision.json') } | Select-Object -First 1 }
    if (-not $Source) { throw 'provisioning CD not found (no volume PROVISION and no provision.json at a drive root)' }
    foreach ($File in @('provision.json', 'START.ps1', 'playbook.yml')) {
        $Path = Join-Path $Source $File
        if (Test-Path -LiteralPath $Path) { Copy-Item -LiteralPath $Path -Destination $SetupDir -Force; Write-Log "copied $File from $Source" }
    }
}

# windowsSettings.
Step 'disableDefender' {
    Set-MpPreference -DisableRealtimeMonitoring $true -ErrorAction SilentlyContinue
    Set-Reg 'HKLM\SOFTWARE\Policies\Microsoft\Windows Defender' 'DisableAntiSpyware' 'REG_DWORD' '1'
}
Step 'disableWindowsUpdate' {
    Set-Reg 'HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU' 'NoAutoUpdate' 'REG_DWORD' '1'
}
Step 'disableUac' {
    Set-Reg 'HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System' 'EnableLUA' 'REG_DWORD' '0'
}
Step 'disableSmartScreen' {
    Set-Reg 'HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer' 'SmartScreenEnabled' 'REG_SZ' 'Off'
}
Step 'disableSystemRestore' {
    Disable-ComputerRestore -Drive 'C:\'
}
Step 'enableLongPaths' {
    Set-Reg 'HKLM\SYSTEM\CurrentControlSet\Control\FileSystem' 'LongPathsEnabled' 'REG_DWORD' '1'
}
Step 'allowPowerShellScripts' {
    Set-ExecutionPolicy Bypass -Scope LocalMachine -Force
}
Step 'disableWidgets' {
    Set-Reg 'HKLM\SOFTWARE\Policies\Microsoft\Dsh' 'AllowNewsAndInterests' 'REG_DWORD' '0'
}
Step 'disableEdgeStartup' {
    Set-Reg 'HKLM\SOFTWARE\Policies\Microsoft\Edge' 'HideFirstRunExperience' 'REG_DWORD' '1'
}
Step 'preventDeviceEncryption' {
    Set-Reg 'HKLM\SYSTEM\CurrentControlSet\Control\BitLocker' 'PreventDeviceEncryption' 'REG_DWORD' '1'
}
Step 'disableStickyKeys' {
    Set-Reg 'HKCU\Control Panel\Accessibility\StickyKeys' 'Flags' 'REG_SZ' '506'
}

# locale.geoLocation.
Step 'geoLocation' {
    Set-WinHomeLocation -GeoId 235
}

# visualEffects (performance): one value per registry value; aliased keys documented in docs/provisioning.md.
Step 'visualEffects' {
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\VisualEffects' 'VisualFXSetting' 'REG_DWORD' '3'
    Set-Reg 'HKCU\Control Panel\Desktop\WindowMetrics' 'MinAnimate' 'REG_SZ' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\Advanced' 'TaskbarAnimations' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\DWM' 'EnableAeroPeek' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Control Panel\Desktop' 'FontSmoothing' 'REG_SZ' '0'
    Set-Reg 'HKCU\Control Panel\Desktop' 'DragFullWindows' 'REG_SZ' '0'
    Set-Reg 'HKCU\Control Panel\Desktop' 'SmoothScroll' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\Advanced' 'ListviewShadow' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\Advanced' 'IconsOnly' 'REG_DWORD' '1'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\Advanced' 'ListviewAlphaSelect' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\Advanced' 'DisableThumbnailCache' 'REG_DWORD' '1'
    Set-Reg 'HKCU\Software\Microsoft\Windows\DWM' 'Composition' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Control Panel\Desktop' 'MenuShowDelay' 'REG_SZ' '0'
}

# desktopIcons.deleteEdgeShortcut.
Step 'deleteEdgeShortcut' {
    Remove-Item -LiteralPath (Join-Path $env:PUBLIC 'Desktop\Microsoft Edge.lnk') -Force -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath (Join-Path $env:USERPROFILE 'Desktop\Microsoft Edge.lnk') -Force -ErrorAction SilentlyContinue
}

Write-Log 'setup.ps1 finished'

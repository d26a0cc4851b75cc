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
    foreach ($File in @('provision.json', 'START.ps1', 'playbook.yml', 'bootstrap.cmd')) {
        $Path = Join-Path $Source $File
        if (Test-Path -LiteralPath $Path) { Copy-Item -LiteralPath $Path -Destination $SetupDir -Force; Write-Log "copied $File from $Source" }
    }
}

# softwareRemoval: provisioned Appx packages.
Step 'remove package Microsoft.BingNews' {
    Get-AppxProvisionedPackage -Online | Where-Object { $_.PackageName -like '*Microsoft.BingNews*' } | Remove-AppxProvisionedPackage -Online | Out-Null
}
Step 'remove package Microsoft.XboxApp' {
    Get-AppxProvisionedPackage -Online | Where-Object { $_.PackageName -like '*Microsoft.XboxApp*' } | Remove-AppxProvisionedPackage -Online | Out-Null
}

# capabilityRemoval: Windows capabilities.
Step 'remove capability App.StepsRecorder~~~~0.0.1.0' {
    Get-WindowsCapability -Online | Where-Object { $_.Name -like '*App.StepsRecorder~~~~0.0.1.0*' -and $_.State -eq 'Installed' } | Remove-WindowsCapability -Online | Out-Null
}

# windowsSettings.
Step 'disableWindowsUpdate' {
    Set-Reg 'HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU' 'NoAutoUpdate' 'REG_DWORD' '1'
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
Step 'enableRemoteDesktop' {
    Set-Reg 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server' 'fDenyTSConnections' 'REG_DWORD' '0'
    & netsh.exe advfirewall firewall set rule group='Remote Desktop' new enable=Yes | Out-Null
}

# locale.geoLocation.
Step 'geoLocation' {
    Set-WinHomeLocation -GeoId 94
}

# visualEffects (custom): one value per registry value; aliased keys documented in docs/provisioning.md.
Step 'visualEffects' {
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\VisualEffects' 'VisualFXSetting' 'REG_DWORD' '3'
    Set-Reg 'HKCU\Control Panel\Desktop\WindowMetrics' 'MinAnimate' 'REG_SZ' '1'
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
    Set-Reg 'HKCU\Control Panel\Desktop' 'MenuShowDelay' 'REG_SZ' '400'
}

# desktopIcons: icons (custom modes) and start folders (keys that are set).
Step 'desktopIcons' {
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\HideDesktopIcons\NewStartPanel' '{20D04FE0-3AEA-1069-A2D8-08002B30309D}' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\HideDesktopIcons\NewStartPanel' '{645FF040-5081-101B-9F08-00AA002F954E}' 'REG_DWORD' '0'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\HideDesktopIcons\NewStartPanel' '{59031a47-3f72-44a7-89c5-5595fe6b30ee}' 'REG_DWORD' '1'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\HideDesktopIcons\NewStartPanel' '{5399E694-6CE5-4D6C-8FCE-1D8870FDCBA0}' 'REG_DWORD' '1'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\HideDesktopIcons\NewStartPanel' '{F02C1A0D-BE21-4350-88B0-7367FC96EF3C}' 'REG_DWORD' '1'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Start' 'Start_ShowDownloads' 'REG_DWORD' '1'
    Set-Reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Start' 'Start_ShowMusic' 'REG_DWORD' '0'
}

# desktopIcons.deleteEdgeShortcut.
Step 'deleteEdgeShortcut' {
    Remove-Item -LiteralPath (Join-Path $env:PUBLIC 'Desktop\Microsoft Edge.lnk') -Force -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath (Join-Path $env:USERPROFILE 'Desktop\Microsoft Edge.lnk') -Force -ErrorAction SilentlyContinue
}

Write-Log 'setup.ps1 finished'

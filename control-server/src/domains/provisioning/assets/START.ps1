# Bot-Mox guest bootstrap (Windows). Shipped unchanged on every provisioning
# ISO: it holds no per-VM value. Everything it needs (token, IP plan, server
# URL, certificate pin) it reads from provision.json at run time, so nothing
# a user typed is ever part of this code.
#
# Steps reported to POST <api_endpoint>/api/v1/provisioning/report-progress:
#   network_configured, windows_installed, downloader_ready, app_downloaded,
#   playbook_running, then completed (status completed or failed).
# Every failure is logged to C:\WindowsSetup\bootstrap.log, reported as
# failed with its error text, and ends the script with exit code 1.
# Network calls are retried with exponential backoff (2 s .. 60 s).
#
# The functions ConvertTo-PrefixLength and Test-SmbiosUuid have Rust twins
# (control-server/src/domains/provisioning/guest.rs) tested on the same
# tables as the self-test below.

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$script:LogDir = 'C:\WindowsSetup'
$script:LogFile = Join-Path $script:LogDir 'bootstrap.log'
$script:Config = $null
$script:CurrentStep = 'bootstrap'
$script:Stopping = $false

function Write-Log {
    param([string]$Message)
    $line = '{0} {1}' -f (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ'), $Message
    try {
        if (-not (Test-Path -LiteralPath $script:LogDir)) {
            New-Item -ItemType Directory -Path $script:LogDir -Force | Out-Null
        }
        Add-Content -LiteralPath $script:LogFile -Value $line -Encoding UTF8
    } catch {
        # the console still gets it
    }
    Write-Host $line
}

# ---------------------------------------------------------------- pure logic

function ConvertTo-PrefixLength {
    # Prefix length of a dotted netmask; -1 when the ones are not contiguous.
    param([string]$Netmask)
    $octets = $Netmask.Split('.')
    if ($octets.Count -ne 4) { return -1 }
    [uint32]$value = 0
    foreach ($o in $octets) {
        $n = 0
        if (-not [int]::TryParse($o, [ref]$n) -or $n -lt 0 -or $n -gt 255) { return -1 }
        $value = [uint32]($value * 256 + $n)
    }
    $prefix = 0
    $seenZero = $false
    for ($bit = 31; $bit -ge 0; $bit--) {
        $set = ($value -band ([uint32][math]::Pow(2, $bit))) -ne 0
        if ($set) {
            if ($seenZero) { return -1 }
            $prefix++
        } else {
            $seenZero = $true
        }
    }
    return $prefix
}

function ConvertTo-CanonicalUuid {
    param([string]$Uuid)
    if ($null -eq $Uuid) { return $null }
    $hex = ($Uuid.Trim().Trim('{', '}') -replace '-', '').ToLowerInvariant()
    if ($hex -notmatch '^[0-9a-f]{32}$') { return $null }
    return '{0}-{1}-{2}-{3}-{4}' -f $hex.Substring(0, 8), $hex.Substring(8, 4), $hex.Substring(12, 4), $hex.Substring(16, 4), $hex.Substring(20, 12)
}

function Convert-MixedEndianUuid {
    # Byte-reverse the first three fields (4, 2, 2 bytes) of a canonical UUID.
    param([string]$Uuid)
    $c = ConvertTo-CanonicalUuid $Uuid
    if ($null -eq $c) { return $null }
    $parts = $c.Split('-')
    $out = @()
    for ($i = 0; $i -lt 3; $i++) {
        $p = $parts[$i]
        $bytes = @()
        for ($j = 0; $j -lt $p.Length; $j += 2) { $bytes += $p.Substring($j, 2) }
        [array]::Reverse($bytes)
        $out += ($bytes -join '')
    }
    return '{0}-{1}-{2}-{3}-{4}' -f $out[0], $out[1], $out[2], $parts[3], $parts[4]
}

function Test-SmbiosUuid {
    # Is the SMBIOS UUID Windows reports the one of this VM (smbios1 uuid)?
    # Equal as is, or equal with the first three fields byte-reversed.
    param([string]$Reported, [string]$VmUuid)
    $r = ConvertTo-CanonicalUuid $Reported
    $v = ConvertTo-CanonicalUuid $VmUuid
    if ($null -eq $r -or $null -eq $v) { return $false }
    if ($r -eq $v) { return $true }
    return ((Convert-MixedEndianUuid $r) -eq $v)
}

function Test-PureFunctions {
    # The same tables as the Rust twins' unit tests. A mismatch means this
    # PowerShell host computes differently: stop rather than misconfigure.
    $masks = @{
        '0.0.0.0' = 0; '128.0.0.0' = 1; '192.0.0.0' = 2; '224.0.0.0' = 3; '240.0.0.0' = 4
        '248.0.0.0' = 5; '252.0.0.0' = 6; '254.0.0.0' = 7; '255.0.0.0' = 8
        '255.128.0.0' = 9; '255.192.0.0' = 10; '255.224.0.0' = 11; '255.240.0.0' = 12
        '255.248.0.0' = 13; '255.252.0.0' = 14; '255.254.0.0' = 15; '255.255.0.0' = 16
        '255.255.128.0' = 17; '255.255.192.0' = 18; '255.255.224.0' = 19; '255.255.240.0' = 20
        '255.255.248.0' = 21; '255.255.252.0' = 22; '255.255.254.0' = 23; '255.255.255.0' = 24
        '255.255.255.128' = 25; '255.255.255.192' = 26; '255.255.255.224' = 27; '255.255.255.240' = 28
        '255.255.255.248' = 29; '255.255.255.252' = 30; '255.255.255.254' = 31; '255.255.255.255' = 32
    }
    foreach ($m in $masks.Keys) {
        $got = ConvertTo-PrefixLength $m
        if ($got -ne $masks[$m]) { throw "self-test: prefix length of $m is $got, expected $($masks[$m])" }
    }
    if ((ConvertTo-PrefixLength '255.0.255.0') -ne -1) { throw 'self-test: non-contiguous mask accepted' }
    $pairs = @(
        @('6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f', '2A1E9C6F-4D3B-5E4C-8F70-1A2B3C4D5E6F'),
        @('00112233-4455-6677-8899-aabbccddeeff', '33221100-5544-7766-8899-AABBCCDDEEFF')
    )
    foreach ($p in $pairs) {
        if (-not (Test-SmbiosUuid $p[1] $p[0])) { throw "self-test: UUID pair $($p[0]) / $($p[1]) not matched" }
        if (-not (Test-SmbiosUuid $p[0] $p[0])) { throw "self-test: UUID $($p[0]) not equal to itself" }
    }
}

# ---------------------------------------------------------------- server calls

function Set-CertificatePin {
    param([string]$Sha256)
    [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]::Tls12
    if ([string]::IsNullOrEmpty($Sha256)) { return }
    $script:PinnedSha256 = $Sha256.ToLowerInvariant()
    [System.Net.ServicePointManager]::ServerCertificateValidationCallback = {
        param($sender, $certificate, $chain, $errors)
        if ($null -eq $certificate) { return $false }
        $sha = [System.Security.Cryptography.SHA256]::Create()
        $hash = $sha.ComputeHash($certificate.GetRawCertData())
        $hex = -join ($hash | ForEach-Object { $_.ToString('x2') })
        return ($hex -eq $script:PinnedSha256)
    }
}

function Get-HttpStatus {
    param($ErrorRecord)
    try {
        $resp = $ErrorRecord.Exception.Response
        if ($null -ne $resp) { return [int]$resp.StatusCode }
    } catch { }
    return 0
}

function Invoke-WithRetry {
    # POST/GET with retries: network errors, 429 and 5xx are retried with
    # backoff 2 s, 4 s, ... 60 s (8 attempts); other 4xx are final.
    param([string]$Uri, [string]$Method = 'POST', $Body = $null, [hashtable]$Headers = @{}, [string]$OutFile = $null)
    $delay = 2
    for ($attempt = 1; $attempt -le 8; $attempt++) {
        try {
            $request = @{ Uri = $Uri; Method = $Method; Headers = $Headers; UseBasicParsing = $true; TimeoutSec = 60 }
            if ($null -ne $Body) {
                $request['ContentType'] = 'application/json'
                $request['Body'] = [System.Text.Encoding]::UTF8.GetBytes(($Body | ConvertTo-Json -Depth 8 -Compress))
            }
            if ($OutFile) {
                $request['OutFile'] = $OutFile
                return Invoke-WebRequest @request
            }
            return Invoke-RestMethod @request
        } catch {
            $status = Get-HttpStatus $_
            $final = ($status -ge 400 -and $status -lt 500 -and $status -ne 429)
            Write-Log ("{0} {1} failed (attempt {2}, HTTP {3}): {4}" -f $Method, $Uri, $attempt, $status, $_.Exception.Message)
            if ($final -or $attempt -eq 8) { throw }
            Start-Sleep -Seconds $delay
            $delay = [math]::Min($delay * 2, 60)
        }
    }
}

function Send-Progress {
    param([string]$Step, [string]$Status, [hashtable]$Details = @{})
    $script:CurrentStep = $Step
    Write-Log ("progress: {0} {1}" -f $Step, $Status)
    $body = @{ token = $script:Config.token; vm_uuid = $script:Config.vm_uuid; step = $Step; status = $Status; details = $Details }
    Invoke-WithRetry -Uri $script:Config.report_progress_url -Body $body | Out-Null
}

function Stop-Bootstrap {
    # The only way this script ends early: log, report, exit 1.
    param([string]$Message)
    if ($script:Stopping) { return }
    $script:Stopping = $true
    Write-Log ("FAILED at {0}: {1}" -f $script:CurrentStep, $Message)
    if ($null -ne $script:Config) {
        $failedStep = $script:CurrentStep
        try {
            if ($failedStep -ne 'completed') {
                Send-Progress -Step $failedStep -Status 'failed' -Details @{ error = $Message }
            }
            Send-Progress -Step 'completed' -Status 'failed' -Details @{ error = $Message; failed_step = $failedStep }
        } catch {
            Write-Log ("could not report the failure: {0}" -f $_.Exception.Message)
        }
    }
    exit 1
}

# ---------------------------------------------------------------- steps

function Find-ProvisionFile {
    # Next to this script (copied to C:\WindowsSetup by the answer file),
    # then C:\WindowsSetup, then the CD labelled PROVISION, then any drive root.
    $candidates = @()
    if ($PSScriptRoot) { $candidates += (Join-Path $PSScriptRoot 'provision.json') }
    $candidates += 'C:\WindowsSetup\provision.json'
    try {
        Get-Volume -ErrorAction Stop | Where-Object { $_.FileSystemLabel -eq 'PROVISION' -and $_.DriveLetter } | ForEach-Object {
            $candidates += ('{0}:\provision.json' -f $_.DriveLetter)
        }
    } catch { }
    Get-PSDrive -PSProvider FileSystem | ForEach-Object { $candidates += (Join-Path $_.Root 'provision.json') }
    foreach ($c in $candidates) {
        if (Test-Path -LiteralPath $c) { return $c }
    }
    return $null
}

function Set-StaticIp {
    param($Ip)
    $prefix = $Ip.prefix_length
    if ($null -eq $prefix) { $prefix = ConvertTo-PrefixLength $Ip.netmask }
    if ($prefix -lt 0 -or $prefix -gt 32) { throw "invalid netmask $($Ip.netmask)" }
    $adapter = Get-NetAdapter | Where-Object { $_.Status -eq 'Up' } | Sort-Object ifIndex | Select-Object -First 1
    if ($null -eq $adapter) { throw 'no network adapter is up' }
    Write-Log ("configuring {0}: {1}/{2} gateway {3}" -f $adapter.Name, $Ip.address, $prefix, $Ip.gateway)
    Get-NetIPAddress -InterfaceIndex $adapter.ifIndex -AddressFamily IPv4 -ErrorAction SilentlyContinue | Remove-NetIPAddress -Confirm:$false -ErrorAction SilentlyContinue
    Get-NetRoute -InterfaceIndex $adapter.ifIndex -AddressFamily IPv4 -ErrorAction SilentlyContinue | Where-Object { $_.DestinationPrefix -eq '0.0.0.0/0' } | Remove-NetRoute -Confirm:$false -ErrorAction SilentlyContinue
    $params = @{ InterfaceIndex = $adapter.ifIndex; IPAddress = $Ip.address; PrefixLength = [byte]$prefix; AddressFamily = 'IPv4' }
    if ($Ip.gateway) { $params['DefaultGateway'] = $Ip.gateway }
    New-NetIPAddress @params | Out-Null
    if ($Ip.dns -and @($Ip.dns).Count -gt 0) {
        Set-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -ServerAddresses @($Ip.dns)
    }
}

function Invoke-Main {
    Write-Log 'Bot-Mox bootstrap starting'
    Test-PureFunctions

    $path = Find-ProvisionFile
    if ($null -eq $path) { throw 'provision.json not found next to START.ps1, in C:\WindowsSetup or on any drive' }
    Write-Log "using $path"
    $script:Config = Get-Content -LiteralPath $path -Raw -Encoding UTF8 | ConvertFrom-Json
    if ($script:Config.version -ne 1) { throw "unsupported provision.json version $($script:Config.version)" }
    Set-CertificatePin $script:Config.server_cert_sha256

    # The network first: the reports need it.
    $script:CurrentStep = 'network_configured'
    if ($script:Config.ip.mode -eq 'static') { Set-StaticIp $script:Config.ip }
    Send-Progress -Step 'network_configured' -Status 'completed' -Details @{ mode = $script:Config.ip.mode }

    # Is this the VM the ISO was made for?
    $script:CurrentStep = 'windows_installed'
    $reported = (Get-CimInstance -ClassName Win32_ComputerSystemProduct).UUID
    if (-not (Test-SmbiosUuid $reported $script:Config.vm_uuid)) {
        throw ("SMBIOS UUID {0} does not match vm_uuid {1}: this ISO belongs to another VM" -f $reported, $script:Config.vm_uuid)
    }
    $validation = Invoke-WithRetry -Uri $script:Config.validate_token_url -Body @{ token = $script:Config.token; vm_uuid = $script:Config.vm_uuid }
    if (-not $validation.success) { throw 'the server refused the provisioning token' }
    Send-Progress -Step 'windows_installed' -Status 'completed' -Details @{ computer_name = $env:COMPUTERNAME }

    $downloads = $script:Config.downloads
    $bootstrapUrl = $null
    $appUrl = $null
    if ($null -ne $downloads) {
        if ($downloads.PSObject.Properties.Name -contains 'bootstrap_url') { $bootstrapUrl = $downloads.bootstrap_url }
        if ($downloads.PSObject.Properties.Name -contains 'app_url') { $appUrl = $downloads.app_url }
    }
    if ($bootstrapUrl) {
        Send-Progress -Step 'downloader_ready' -Status 'running'
        $downloader = Join-Path $script:LogDir 'downloader.exe'
        Invoke-WithRetry -Uri $bootstrapUrl -Method 'GET' -OutFile $downloader | Out-Null
        $p = Start-Process -FilePath $downloader -ArgumentList @('--config', $path) -Wait -PassThru
        if ($p.ExitCode -ne 0) { throw "downloader exited with $($p.ExitCode)" }
        Send-Progress -Step 'downloader_ready' -Status 'completed'
    }

    $playbook = $null
    if ($script:Config.PSObject.Properties.Name -contains 'playbook_file' -and $script:Config.playbook_file) {
        $source = Join-Path (Split-Path -Parent $path) $script:Config.playbook_file
        if (Test-Path -LiteralPath $source) {
            New-Item -ItemType Directory -Path 'C:\Winsible' -Force | Out-Null
            $playbook = 'C:\Winsible\playbook.yml'
            Copy-Item -LiteralPath $source -Destination $playbook -Force
        }
    }

    if ($appUrl) {
        $script:CurrentStep = 'app_downloaded'
        $app = Join-Path $script:LogDir 'app.exe'
        Invoke-WithRetry -Uri $appUrl -Method 'GET' -OutFile $app | Out-Null
        Send-Progress -Step 'app_downloaded' -Status 'completed'
        if ($null -ne $playbook) {
            Send-Progress -Step 'playbook_running' -Status 'running'
            $p = Start-Process -FilePath $app -ArgumentList @('--headless', '--config', $path, '--playbook', $playbook) -Wait -PassThru
            if ($p.ExitCode -ne 0) { throw "the playbook runner exited with $($p.ExitCode)" }
            Send-Progress -Step 'playbook_running' -Status 'completed'
        }
    }

    Send-Progress -Step 'completed' -Status 'completed'
    Write-Log 'Bootstrap complete'
}

try {
    Invoke-Main
} catch {
    Stop-Bootstrap $_.Exception.Message
}
exit 0

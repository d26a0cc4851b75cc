; Bot-Mox Agent for Windows: a per-machine NSIS installer (64-bit stub, so
; it also runs under a 64-bit-only Wine). Built on Linux with Debian's nsis
; by scripts/build-windows-installer.sh, which passes:
;   /DVERSION=x.y.z      the workspace version (Cargo.toml)
;   /DSRCDIR=dir         botmox-agent.exe, botmox-agent-tray.exe [, WebView2Loader.dll]
;   /DOUTFILE=path       the installer to write
;   /DICON=path          agent-tauri/icons/icon.ico
;   /DCOMPRESSOR=zlib    optional (default lzma)
;
; Installs into "Program Files\Bot-Mox Agent": the tray app, the headless
; agent, a Start-menu shortcut, tray autostart at login (HKLM Run), the
; botmox:// URL scheme (HKLM Software\Classes\botmox) and an Add/Remove
; Programs entry. Optional component (unselected; /SERVICE when silent):
; the Windows service BotMoxAgent, paired into C:\ProgramData\BotMox\Agent
; (file secret store; see docs/windows.md) with the link given on the
; service page or /PAIR=<bundle or link>, installed and started.
;
; Silent install:   setup.exe /S [/SERVICE [/PAIR=<bundle>]] [/D=C:\dir]
; Silent uninstall: uninstall.exe /S [/PURGE]
;   The uninstaller stops and deletes the service, removes the files,
;   shortcut and registry keys, and keeps the agent's config and secrets
;   unless /PURGE is given.
; Exit codes: 0 ok, 2 aborted (e.g. /SERVICE without a pairing for an
; unpaired machine, or a failed pair / service install).

Unicode true
Target amd64-unicode
ManifestDPIAware true
RequestExecutionLevel admin
!ifndef COMPRESSOR
  !define COMPRESSOR lzma
!endif
SetCompressor /SOLID ${COMPRESSOR}

!ifndef VERSION
  !error "pass /DVERSION=x.y.z"
!endif
!ifndef SRCDIR
  !error "pass /DSRCDIR=<dir with the Windows executables>"
!endif
!ifndef OUTFILE
  !define OUTFILE "botmox-agent-${VERSION}-x86_64-setup.exe"
!endif

!define PRODUCT "Bot-Mox Agent"
!define PUBLISHER "Bot-Mox"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\BotMoxAgent"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define RUN_VALUE "BotMoxAgentTray"
!define SCHEME_KEY "Software\Classes\botmox"
!define SERVICE "BotMoxAgent"

!include MUI2.nsh
!include LogicLib.nsh
!include FileFunc.nsh
!include nsDialogs.nsh
!include Sections.nsh

Name "${PRODUCT}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${PRODUCT}"
InstallDirRegKey HKLM "${UNINST_KEY}" "InstallLocation"
BrandingText "${PRODUCT} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIFileVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${PRODUCT}"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "FileDescription" "${PRODUCT} installer"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "AGPL-3.0-only"

!ifdef ICON
  !define MUI_ICON "${ICON}"
  !define MUI_UNICON "${ICON}"
!endif
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_COMPONENTS
Page custom ServicePage ServicePageLeave
!insertmacro MUI_PAGE_INSTFILES
!define MUI_FINISHPAGE_RUN "$INSTDIR\botmox-agent-tray.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${PRODUCT} now"
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Var PairInput     ; pairing link or bundle for the service (page or /PAIR=)
Var ServiceDir    ; C:\ProgramData\BotMox\Agent
Var PairField
Var ServiceWasRunning
Var Purge

; ------------------------------------------------------------------ helpers

; Stops the service if it exists and waits up to 30 s for STOPPED.
!macro STOP_SERVICE
  nsExec::ExecToStack '"$SYSDIR\sc.exe" query ${SERVICE}'
  Pop $0
  Pop $1
  ${If} $0 == 0
    nsExec::ExecToLog '"$SYSDIR\sc.exe" stop ${SERVICE}'
    Pop $0
    StrCpy $2 0
    ${Do}
      nsExec::ExecToStack '"$SYSDIR\sc.exe" query ${SERVICE}'
      Pop $0
      Pop $1
      ${StrLoc} $3 $1 "STOPPED" ">"
      ${If} $3 != ""
      ${OrIf} $0 != 0
        ${Break}
      ${EndIf}
      IntOp $2 $2 + 1
      ${If} $2 > 60
        ${Break}
      ${EndIf}
      Sleep 500
    ${Loop}
  ${EndIf}
!macroend

!include StrFunc.nsh
${StrLoc}

; ------------------------------------------------------------------ install

Section "${PRODUCT} (tray app and headless agent)" SecMain
  SectionIn RO
  SetShellVarContext all
  SetRegView 64

  ; an upgrade: stop a running service and tray before replacing files
  StrCpy $ServiceWasRunning 0
  nsExec::ExecToStack '"$SYSDIR\sc.exe" query ${SERVICE}'
  Pop $0
  Pop $1
  ${StrLoc} $3 $1 "RUNNING" ">"
  ${If} $0 == 0
  ${AndIf} $3 != ""
    StrCpy $ServiceWasRunning 1
  ${EndIf}
  !insertmacro STOP_SERVICE
  nsExec::Exec '"$SYSDIR\taskkill.exe" /F /IM botmox-agent-tray.exe'
  Pop $0

  SetOutPath "$INSTDIR"
  File "${SRCDIR}\botmox-agent.exe"
  File "${SRCDIR}\botmox-agent-tray.exe"
  !if /FileExists "${SRCDIR}\WebView2Loader.dll"
    File "${SRCDIR}\WebView2Loader.dll"
  !endif
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; Start menu
  CreateShortCut "$SMPROGRAMS\${PRODUCT}.lnk" "$INSTDIR\botmox-agent-tray.exe" "" "$INSTDIR\botmox-agent-tray.exe" 0

  ; tray at login, for every user
  WriteRegStr HKLM "${RUN_KEY}" "${RUN_VALUE}" '"$INSTDIR\botmox-agent-tray.exe" --autostart'

  ; botmox:// links open the tray's pairing view
  WriteRegStr HKLM "${SCHEME_KEY}" "" "URL:${PRODUCT} pairing link"
  WriteRegStr HKLM "${SCHEME_KEY}" "URL Protocol" ""
  WriteRegStr HKLM "${SCHEME_KEY}\DefaultIcon" "" '"$INSTDIR\botmox-agent-tray.exe",0'
  WriteRegStr HKLM "${SCHEME_KEY}\shell\open\command" "" '"$INSTDIR\botmox-agent-tray.exe" "%1"'

  ; Add/Remove Programs
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "${PRODUCT}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" '"$INSTDIR\botmox-agent-tray.exe",0'
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKLM "${UNINST_KEY}" "EstimatedSize" "$0"
SectionEnd

Section /o "Windows service (headless machines)" SecService
  SetShellVarContext all
  ${If} $PairInput != ""
    DetailPrint "Pairing the service's config dir $ServiceDir"
    nsExec::ExecToLog '"$INSTDIR\botmox-agent.exe" --config-dir "$ServiceDir" --secret-store file pair "$PairInput"'
    Pop $0
    ${If} $0 != 0
      DetailPrint "pairing failed ($0)"
      SetErrorLevel 2
      MessageBox MB_ICONSTOP|MB_OK "Pairing the service failed; see the details. The service was not installed." /SD IDOK
      Abort
    ${EndIf}
  ${EndIf}
  ; an existing registration (upgrade) is replaced: same name, new path
  nsExec::ExecToLog '"$INSTDIR\botmox-agent.exe" service uninstall'
  Pop $0
  nsExec::ExecToLog '"$INSTDIR\botmox-agent.exe" --config-dir "$ServiceDir" --secret-store file service install'
  Pop $0
  ${If} $0 != 0
    DetailPrint "service install failed ($0)"
    SetErrorLevel 2
    MessageBox MB_ICONSTOP|MB_OK "The service could not be installed (is this machine paired? give /PAIR=<link>)." /SD IDOK
    Abort
  ${EndIf}
  nsExec::ExecToLog '"$SYSDIR\sc.exe" start ${SERVICE}'
  Pop $0
  ${If} $0 != 0
    ; e.g. 1056 "already running": fine if it runs now
    Sleep 1000
    nsExec::ExecToStack '"$SYSDIR\sc.exe" query ${SERVICE}'
    Pop $0
    Pop $1
    ${StrLoc} $3 $1 "RUNNING" ">"
    ${StrLoc} $4 $1 "START_PENDING" ">"
    ${If} $3 == ""
    ${AndIf} $4 == ""
      DetailPrint "sc start failed: $1"
      SetErrorLevel 2
      Abort
    ${EndIf}
  ${EndIf}
SectionEnd

; an upgrade of a machine running the service (service not chosen again)
Section "-restart service" SecRestart
  ${If} $ServiceWasRunning == 1
  ${AndIfNot} ${SectionIsSelected} ${SecService}
    nsExec::ExecToLog '"$SYSDIR\sc.exe" start ${SERVICE}'
    Pop $0
  ${EndIf}
SectionEnd

; ------------------------------------------------------------------ pages

Function .onInit
  SetShellVarContext all
  SetRegView 64
  StrCpy $ServiceDir "$APPDATA\BotMox\Agent"
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/SERVICE" $R1
  ${IfNot} ${Errors}
    !insertmacro SelectSection ${SecService}
  ${EndIf}
  ClearErrors
  ${GetOptions} $R0 "/PAIR=" $R1
  ${IfNot} ${Errors}
    StrCpy $PairInput $R1
  ${EndIf}
FunctionEnd

Function ServicePage
  ${IfNot} ${SectionIsSelected} ${SecService}
    Abort
  ${EndIf}
  !insertmacro MUI_HEADER_TEXT "Windows service" "Pair the service with your Bot-Mox server"
  nsDialogs::Create 1018
  Pop $0
  ${NSD_CreateLabel} 0 0 100% 36u "The service runs the agent without anyone logged in. Paste the pairing link or bundle from the Bot-Mox console (Agents > Pair). Leave it empty only when $ServiceDir is already paired."
  Pop $0
  ${NSD_CreateText} 0 44u 100% 12u "$PairInput"
  Pop $PairField
  nsDialogs::Show
FunctionEnd

Function ServicePageLeave
  ${NSD_GetText} $PairField $PairInput
FunctionEnd

; ------------------------------------------------------------------ uninstall

Function un.onInit
  SetShellVarContext all
  SetRegView 64
  StrCpy $Purge 0
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/PURGE" $R1
  ${IfNot} ${Errors}
    StrCpy $Purge 1
  ${EndIf}
FunctionEnd

Section "Uninstall"
  SetShellVarContext all
  SetRegView 64
  ; stops the service (waits up to 30 s) and deletes it; fails harmlessly
  ; when there is none
  nsExec::ExecToLog '"$INSTDIR\botmox-agent.exe" service uninstall'
  Pop $0
  nsExec::Exec '"$SYSDIR\taskkill.exe" /F /IM botmox-agent-tray.exe'
  Pop $0

  Delete "$INSTDIR\botmox-agent.exe"
  Delete "$INSTDIR\botmox-agent-tray.exe"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\${PRODUCT}.lnk"

  DeleteRegValue HKLM "${RUN_KEY}" "${RUN_VALUE}"
  DeleteRegKey HKLM "${SCHEME_KEY}"
  DeleteRegKey HKLM "${UNINST_KEY}"

  ; the config and secrets stay (a reinstall keeps the pairing) unless
  ; /PURGE: the service's dir and the uninstalling user's dirs
  ${If} $Purge == 1
    RMDir /r "$APPDATA\BotMox\Agent"
    RMDir "$APPDATA\BotMox"
    SetShellVarContext current
    RMDir /r "$APPDATA\botmox-agent"
    RMDir /r "$LOCALAPPDATA\botmox-agent"
    SetShellVarContext all
  ${EndIf}
SectionEnd

#!/usr/bin/env bash
# Make this machine able to build the Windows agent and run it under Wine:
# the Wine suite (agent-core/tests/it/wine.rs) and the installer test.
# Idempotent: installs only what is missing; cargo rebuilds only what changed.
#
#   1. Debian packages: wine + wine64 (Wine 8, 64-bit only: no wine32/i386),
#      nsis (makensis, amd64 stubs), gcc-mingw-w64-x86-64 (the linker and
#      the test-only bcryptprimitives.dll stand-in).
#   2. rustup target x86_64-pc-windows-gnu.
#   3. cargo build --target x86_64-pc-windows-gnu of botmox-agent.exe and
#      botmox-agent-tray.exe (debug, like the rest of the test run; set
#      BOTMOX_WIN_PROFILE=release for release binaries).
#   4. the installer: scripts/build-windows-installer.sh (makensis).
#
# Output: $CARGO_TARGET_DIR/x86_64-pc-windows-gnu/<profile>/ (the tests look
# there, or in BOTMOX_WIN_BIN_DIR) and .../installer/*.exe. Prints the wall
# time of each step.
#
# Under CI=true nothing is skipped: a missing package, target or build is an
# error. Elsewhere too, in fact: this script has no "skip" path; the tests
# themselves only skip (with a message) when this script was never run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[wine-env] %s\n' "$*" >&2; }
die() { printf '[wine-env] ERROR: %s\n' "$*" >&2; exit 1; }

PROFILE="${BOTMOX_WIN_PROFILE:-debug}"
[[ $PROFILE == debug || $PROFILE == release ]] || die "BOTMOX_WIN_PROFILE must be debug or release"
TARGET=x86_64-pc-windows-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$CARGO_TARGET_DIR/$TARGET/$PROFILE"

t_start=$(date +%s)
# ------------------------------------------------------------ packages
declare -A NEED=(
  [wine]=wine
  [/usr/lib/wine/wine64]=wine64
  [wineserver]=wine
  [makensis]=nsis
  [x86_64-w64-mingw32-gcc]=gcc-mingw-w64-x86-64
)
have() {
  case "$1" in
    /*) [[ -e "$1" ]] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
missing=()
for key in "${!NEED[@]}"; do
  have "$key" || missing+=("${NEED[$key]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} — run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for key in "${!NEED[@]}"; do
  have "$key" || die "$key still missing after installing ${NEED[$key]}"
done
WINEDEBUG=-all wine --version >/dev/null 2>&1 || die "wine does not run"
t_pkgs=$(date +%s)

# ------------------------------------------------------------ rust target
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  log "rustup target add $TARGET"
  timeout 300 rustup target add "$TARGET" >/dev/null 2>&1 \
    || die "the rustup target $TARGET could not be installed (the Windows build and the Wine suite need it)"
fi

# ------------------------------------------------------------ build
cargo_args=(--locked --target "$TARGET")
[[ $PROFILE == release ]] && cargo_args+=(--release)
log "cargo build -p agent-core --bin botmox-agent ${cargo_args[*]}"
cargo build -p agent-core --bin botmox-agent "${cargo_args[@]}"
t_agent=$(date +%s)
log "cargo build -p agent-tauri --bin botmox-agent-tray ${cargo_args[*]}"
cargo build -p agent-tauri --bin botmox-agent-tray "${cargo_args[@]}"
t_tray=$(date +%s)
for exe in botmox-agent.exe botmox-agent-tray.exe; do
  [[ -f $OUT/$exe ]] || die "$OUT/$exe was not built"
done

# ------------------------------------------------------------ installer
BOTMOX_WIN_PROFILE=$PROFILE bash scripts/build-windows-installer.sh
t_inst=$(date +%s)

log "ready in $((t_inst - t_start)) s: packages $((t_pkgs - t_start)) s, botmox-agent.exe $((t_agent - t_pkgs)) s, botmox-agent-tray.exe $((t_tray - t_agent)) s, installer $((t_inst - t_tray)) s; binaries in $OUT"

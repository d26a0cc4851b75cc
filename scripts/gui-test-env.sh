#!/usr/bin/env bash
# Make this machine able to build the Tauri tray app (agent-tauri) and run its
# GUI tests (agent-tauri/tests/gui*.rs) and the deb package test
# (scripts/test-deb.sh). Idempotent: installs only what is missing.
#
# What it provides:
#   - Tauri v2 build dependencies (WebKitGTK 4.1, ayatana appindicator, ...)
#   - Xvfb (virtual X server the GUI test starts itself)
#   - WebKitWebDriver (Debian package webkit2gtk-driver): the WebDriver server
#     the GUI test talks to; the app binary is given to it as the "browser"
#   - dbus-daemon / dbus-x11 / at-spi2-core: private session bus for the tray
#   - imagemagick (`import -window root`, used by scripts/test-deb.sh and handy
#     for manual screenshots; the Rust test itself decodes PNGs in process)
#   - the Tauri CLI from npm (@tauri-apps/cli@2.12.5) in a fixed cache dir,
#     used by scripts/test-deb.sh to bundle the .deb
#
# Prints `export BOTMOX_TAURI_CLI=<path>` hints on stderr; scripts find the CLI
# at $BOTMOX_TAURI_CLI_DIR/node_modules/.bin/tauri.
set -euo pipefail

log() { printf '[gui-env] %s\n' "$*" >&2; }
die() { printf '[gui-env] ERROR: %s\n' "$*" >&2; exit 1; }

TAURI_CLI_VERSION="${BOTMOX_TAURI_CLI_VERSION:-2.12.5}"
TAURI_CLI_DIR="${BOTMOX_TAURI_CLI_DIR:-/var/tmp/botmox-tauri-cli}"

# Debian packages keyed by a command or a pkg-config module (pc:NAME) or a
# file path (/...) that proves the package is present.
declare -A NEED=(
  [pc:webkit2gtk-4.1]=libwebkit2gtk-4.1-dev
  [pc:ayatana-appindicator3-0.1]=libayatana-appindicator3-dev
  [pc:librsvg-2.0]=librsvg2-dev
  [pc:openssl]=libssl-dev
  [/usr/include/xdo.h]=libxdo-dev
  [file]=file
  [cc]=build-essential
  [pkg-config]=pkg-config
  [Xvfb]=xvfb
  [WebKitWebDriver]=webkit2gtk-driver
  [dbus-daemon]=dbus-daemon
  [dbus-launch]=dbus-x11
  [gdbus]=libglib2.0-bin
  [/usr/libexec/at-spi-bus-launcher]=at-spi2-core
  [import]=imagemagick
  [xdpyinfo]=x11-utils
  [node]=nodejs
  [npm]=npm
)

have() {
  case "$1" in
    pc:*) pkg-config --exists "${1#pc:}" 2>/dev/null ;;
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
  if [[ $(id -u) -ne 0 ]]; then
    die "missing packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run (e.g. a parallel setup script) may hold the lock: wait.
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# WebKitWebDriver lives in /usr/bin on Debian 12; fail loudly if the package
# did not provide it.
command -v WebKitWebDriver >/dev/null 2>&1 || die "WebKitWebDriver not found after installing webkit2gtk-driver"

# Tauri CLI (prebuilt, from npm) in a fixed cache directory.
cli="$TAURI_CLI_DIR/node_modules/.bin/tauri"
if [[ ! -x "$cli" ]] || [[ "$("$cli" --version 2>/dev/null)" != "tauri-cli $TAURI_CLI_VERSION" ]]; then
  log "installing @tauri-apps/cli@$TAURI_CLI_VERSION into $TAURI_CLI_DIR"
  mkdir -p "$TAURI_CLI_DIR"
  [[ -f "$TAURI_CLI_DIR/package.json" ]] || printf '{ "name": "botmox-tauri-cli", "private": true }\n' >"$TAURI_CLI_DIR/package.json"
  npm install --prefix "$TAURI_CLI_DIR" --no-audit --no-fund --loglevel=error \
    "@tauri-apps/cli@$TAURI_CLI_VERSION" >/dev/null
fi
"$cli" --version >/dev/null || die "the Tauri CLI at $cli does not run"

log "ready: Tauri build deps, Xvfb, WebKitWebDriver ($(command -v WebKitWebDriver)), $("$cli" --version) at $cli"

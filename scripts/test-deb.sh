#!/usr/bin/env bash
# Build the tray app's Debian package, install it with dpkg, check that the
# installed program runs, and remove it again. Idempotent: a package left
# over from an earlier (aborted) run is removed first; the package is always
# removed at the end.
#
#   scripts/test-deb.sh            # CI: `tauri build --debug --bundles deb`
#   BOTMOX_DEB_PROFILE=release scripts/test-deb.sh   # the real packaging build
#
# The release .deb for distribution is built with
#   cd agent-tauri && /var/tmp/botmox-tauri-cli/node_modules/.bin/tauri build --ci --bundles deb
# (output: $CARGO_TARGET_DIR/release/bundle/deb/*.deb). CI uses --debug
# because it reuses most of the dev build and is several times faster; the
# package layout and metadata are the same (only the binary is unoptimised).
#
# Checks:
#   - the .deb contains /usr/bin/botmox-agent-tray, a .desktop entry and an
#     icon, and depends on WebKitGTK 4.1, GTK 3 and ayatana-appindicator;
#   - `dpkg -i` installs it (all dependencies already present);
#   - `botmox-agent-tray --version` exits 0 and prints the crate version;
#   - started under a private Xvfb + D-Bus session bus (isolated config dir,
#     file secret store) it stays up for BOTMOX_DEB_SMOKE_SECS (6) seconds,
#     exports its tray icon (StatusNotifierItem) on the bus, and with
#     `--show status` its window renders (root-window screenshot not blank);
#   - `dpkg -r` removes it and the binary is gone.
#
# Needs root (dpkg). Under CI=true nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[test-deb] %s\n' "$*" >&2; }
die() { printf '[test-deb] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (dpkg -i / dpkg -r)"

PROFILE="${BOTMOX_DEB_PROFILE:-debug}"
[[ $PROFILE == debug || $PROFILE == release ]] || die "BOTMOX_DEB_PROFILE must be debug or release"
SMOKE_SECS="${BOTMOX_DEB_SMOKE_SECS:-6}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# the installed app's screenshot is kept here (next to the GUI test's)
ARTIFACTS="${BOTMOX_DEB_ARTIFACTS:-$CARGO_TARGET_DIR/gui-artifacts}"
TAURI_CLI_DIR="${BOTMOX_TAURI_CLI_DIR:-/var/tmp/botmox-tauri-cli}"
export BOTMOX_TAURI_CLI_DIR="$TAURI_CLI_DIR"
BIN=/usr/bin/botmox-agent-tray

bash scripts/gui-test-env.sh
cli="$TAURI_CLI_DIR/node_modules/.bin/tauri"

want_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[[ -n $want_version ]] || die "no workspace version in Cargo.toml"

# ------------------------------------------------------------------ build
bundle_dir="$CARGO_TARGET_DIR/$PROFILE/bundle/deb"
rm -f "$bundle_dir"/*.deb
build_args=(build --ci --bundles deb)
[[ $PROFILE == debug ]] && build_args+=(--debug)
log "building: tauri ${build_args[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
t0=$(date +%s)
(cd agent-tauri && "$cli" "${build_args[@]}")
t1=$(date +%s)
log "bundle built in $((t1 - t0)) s"

shopt -s nullglob
debs=("$bundle_dir"/*.deb)
shopt -u nullglob
((${#debs[@]} == 1)) || die "expected one .deb in $bundle_dir, found ${#debs[@]}"
deb=${debs[0]}
pkg=$(dpkg-deb -f "$deb" Package)
log "package $pkg $(dpkg-deb -f "$deb" Version) ($(du -h "$deb" | cut -f1)): $deb"

# ------------------------------------------------------- static checks
contents=$(dpkg-deb -c "$deb")
grep -Eq '(^|[ /])usr/bin/botmox-agent-tray$' <<<"$contents" || die "no /usr/bin/botmox-agent-tray in the package:"$'\n'"$contents"
grep -Eq '(^|[ /])usr/share/applications/.*\.desktop$' <<<"$contents" || die "no .desktop entry in the package"
grep -Eq '(^|[ /])usr/share/icons/.*\.png$' <<<"$contents" || die "no icon in the package"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1; do
  grep -q "$d" <<<"$depends" || die "Depends lacks $d: $depends"
done
[[ $(dpkg-deb -f "$deb" Version) == "$want_version" ]] || die "package version $(dpkg-deb -f "$deb" Version) != $want_version"

# ------------------------------------------------------- install / clean
remove_pkg() {
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    dpkg -r "$pkg" >/dev/null
  fi
}
remove_pkg  # a leftover from an aborted run

TMP=$(mktemp -d /tmp/botmox-deb-test.XXXXXX)
XVFB_PID='' DBUS_PID='' APP_PID=''
cleanup() {
  local rc=$?
  for pid in $APP_PID $DBUS_PID $XVFB_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $APP_PID $DBUS_PID $XVFB_PID; do
    wait "$pid" 2>/dev/null || true
  done
  remove_pkg || rc=1
  if ((rc != 0)); then
    log "logs in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT

log "dpkg -i $(basename "$deb")"
dpkg -i "$deb" >/dev/null
[[ -x $BIN ]] || die "$BIN not installed"
desktop=$(dpkg -L "$pkg" | grep '\.desktop$' | head -n1)
grep -q '^Exec=botmox-agent-tray' "$desktop" || die "$desktop has no Exec=botmox-agent-tray"
# botmox:// links reach the app only if the launcher passes the URL (%u)
if grep -q '^MimeType=.*x-scheme-handler/botmox' "$desktop" && ! grep -q '^Exec=.*%[uU]' "$desktop"; then
  log "WARNING: $desktop handles botmox:// but its Exec line has no %u, so the link is not passed to the app"
fi

# ------------------------------------------------------- --version
ver_out=$("$BIN" --version) || die "$BIN --version exited $?"
grep -qF "$want_version" <<<"$ver_out" || die "--version printed '$ver_out' (want $want_version)"
log "--version: $ver_out"

# ------------------------------------------------------- GUI smoke
# Private X display (Xvfb chooses a free one and prints it on its stdout, -displayfd 1) and a
# private session bus, so nothing of the host session is touched.
Xvfb -displayfd 1 -screen 0 1280x800x24 -nolisten tcp >"$TMP/display" 2>"$TMP/xvfb.log" &
XVFB_PID=$!
for _ in $(seq 1 100); do [[ -s $TMP/display ]] && break; sleep 0.1; done
[[ -s $TMP/display ]] || die "Xvfb did not start (see $TMP/xvfb.log)"
export DISPLAY=":$(head -n1 "$TMP/display")"
dbus-daemon --session --nofork --nopidfile --print-address=1 >"$TMP/bus" 2>"$TMP/dbus.log" &
DBUS_PID=$!
for _ in $(seq 1 100); do [[ -s $TMP/bus ]] && break; sleep 0.1; done
[[ -s $TMP/bus ]] || die "dbus-daemon did not start (see $TMP/dbus.log)"
export DBUS_SESSION_BUS_ADDRESS=$(head -n1 "$TMP/bus")

mkdir -p "$TMP/config" "$TMP/xdg/config" "$TMP/xdg/data" "$TMP/xdg/cache" "$TMP/xdg/runtime"
chmod 700 "$TMP/xdg/runtime"
BOTMOX_AGENT_CONFIG_DIR="$TMP/config" BOTMOX_AGENT_SECRET_STORE=file \
  XDG_CONFIG_HOME="$TMP/xdg/config" XDG_DATA_HOME="$TMP/xdg/data" \
  XDG_CACHE_HOME="$TMP/xdg/cache" XDG_RUNTIME_DIR="$TMP/xdg/runtime" \
  NO_AT_BRIDGE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 GDK_BACKEND=x11 \
  "$BIN" --show status >"$TMP/app.log" 2>&1 &
APP_PID=$!
log "started $BIN --show status (pid $APP_PID) on $DISPLAY"

tray_on_bus() {
  local names name nodes node
  names=$(gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.ListNames 2>/dev/null) || return 1
  grep -q "org.kde.StatusNotifierItem" <<<"$names" && return 0
  for name in $(grep -o "':[0-9.]*'" <<<"$names" | tr -d "'"); do
    nodes=$(gdbus introspect --session --dest "$name" --object-path /org/ayatana/NotificationItem 2>/dev/null \
      | sed -n 's/^ *node \([^ ]*\) .*/\1/p')
    for node in $nodes; do
      if gdbus introspect --session --dest "$name" --object-path "/org/ayatana/NotificationItem/$node" 2>/dev/null \
        | grep -q org.kde.StatusNotifierItem; then
        echo "$name /org/ayatana/NotificationItem/$node"
        return 0
      fi
    done
    if gdbus introspect --session --dest "$name" --object-path /StatusNotifierItem 2>/dev/null \
      | grep -q org.kde.StatusNotifierItem; then
      echo "$name /StatusNotifierItem"
      return 0
    fi
  done
  return 1
}

tray=''
for _ in $(seq 1 $((SMOKE_SECS * 2))); do
  kill -0 "$APP_PID" 2>/dev/null || { cat "$TMP/app.log" >&2; die "the app exited early"; }
  [[ -z $tray ]] && tray=$(tray_on_bus || true)
  sleep 0.5
done
kill -0 "$APP_PID" 2>/dev/null || { cat "$TMP/app.log" >&2; die "the app did not stay up for ${SMOKE_SECS}s"; }
[[ -n $tray ]] || { cat "$TMP/app.log" >&2; die "no tray icon (StatusNotifierItem) on the session bus"; }
log "stayed up ${SMOKE_SECS}s; tray exported: $tray"

shot="$TMP/deb-installed-status.png"
import -window root "$shot"
colours=$(identify -format '%k' "$shot")
((colours >= 32)) || die "the installed app's window looks blank ($colours colours): $shot"
log "window rendered: $colours distinct colours"
mkdir -p "$ARTIFACTS" && cp "$shot" "$ARTIFACTS/"

kill "$APP_PID"
wait "$APP_PID" 2>/dev/null || true
APP_PID=''

# ------------------------------------------------------- remove
dpkg -r "$pkg" >/dev/null
[[ ! -e $BIN ]] || die "$BIN still present after dpkg -r"
log "removed $pkg; OK (build $((t1 - t0)) s, profile $PROFILE)"

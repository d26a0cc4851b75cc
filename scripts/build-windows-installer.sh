#!/usr/bin/env bash
# Build the Windows installer of the Bot-Mox Agent on Linux with Debian's
# NSIS (makensis) from installer/windows/botmox-agent.nsi.
#
#   bash scripts/wine-test-env.sh            # builds the exes, then calls this
#   BOTMOX_WIN_PROFILE=release bash scripts/build-windows-installer.sh
#
# Input: botmox-agent.exe and botmox-agent-tray.exe (and WebView2Loader.dll
# when the tray build produced one) in
# $CARGO_TARGET_DIR/x86_64-pc-windows-gnu/<profile>/. They are copied into
# a staging dir and stripped (mingw's DWARF debug info would make the
# installer ten times bigger); the test-only bcryptprimitives.dll stand-in
# is never packaged.
# Output: .../<profile>/installer/botmox-agent-<version>-x64-setup.exe
# (the version is the workspace version in Cargo.toml).
#
# Unsigned: signing needs a code-signing certificate (see docs/windows.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[win-installer] %s\n' "$*" >&2; }
die() { printf '[win-installer] ERROR: %s\n' "$*" >&2; exit 1; }

PROFILE="${BOTMOX_WIN_PROFILE:-debug}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/$PROFILE"
DEST="$BIN/installer"
# zlib for the CI's debug builds (fast), lzma for release
COMPRESSOR="${BOTMOX_NSIS_COMPRESSOR:-$([[ $PROFILE == release ]] && echo lzma || echo zlib)}"

command -v makensis >/dev/null || die "makensis not found (apt-get install nsis)"
command -v x86_64-w64-mingw32-strip >/dev/null || die "x86_64-w64-mingw32-strip not found (apt-get install binutils-mingw-w64-x86-64)"
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "workspace version '$version' is not x.y.z"

stage=$(mktemp -d /tmp/botmox-win-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
for exe in botmox-agent.exe botmox-agent-tray.exe; do
  [[ -f $BIN/$exe ]] || die "$BIN/$exe missing: build it first (scripts/wine-test-env.sh)"
  x86_64-w64-mingw32-strip -o "$stage/$exe" "$BIN/$exe"
done
[[ -f $BIN/WebView2Loader.dll ]] && cp "$BIN/WebView2Loader.dll" "$stage/"

mkdir -p "$DEST"
out="$DEST/botmox-agent-$version-x64-setup.exe"
rm -f "$out"
t0=$(date +%s)
makensis -V2 -INPUTCHARSET UTF8 \
  "-DCOMPRESSOR=$COMPRESSOR" \
  "-DVERSION=$version" "-DSRCDIR=$stage" "-DOUTFILE=$out" \
  "-DICON=$ROOT/agent-tauri/icons/icon.ico" \
  installer/windows/botmox-agent.nsi >"$stage/makensis.log" 2>&1 \
  || { cat "$stage/makensis.log" >&2; die "makensis failed"; }
[[ -s $out ]] || die "no installer written"
log "built $out ($(du -h "$out" | cut -f1), $COMPRESSOR, $(($(date +%s) - t0)) s)"

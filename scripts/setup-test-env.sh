#!/usr/bin/env bash
# Make this machine able to run the whole test suite. Idempotent: installs
# only what is missing, starts PostgreSQL only when it is down.
#
# Under CI=true a missing service is an error, never a skip.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Debian packages the tests use, keyed by a command (or pkg-config module)
# that proves the package is present.
declare -A NEED=(
  [xorriso]=xorriso            # ISO reader (Rock Ridge names)
  [isoinfo]=genisoimage        # ISO reader (Joliet/RR listings, isoinfo -d)
  [genisoimage]=genisoimage    # benchmark comparison
  [7z]=p7zip-full              # ISO extraction
  [bsdtar]=libarchive-tools    # ISO extraction
  [pkg-config]=pkg-config
  [pg_isready]=postgresql-client
  [sshd]=openssh-server        # real OpenSSH server for the agent's SSH tests
  [ssh-keygen]=openssh-client
  [keyctl]=keyutils            # kernel keyring tests (inside `keyctl session -`)
  [gnome-keyring-daemon]=gnome-keyring   # Secret Service tests
  [dbus-run-session]=dbus-daemon
  [x86_64-w64-mingw32-gcc]=gcc-mingw-w64-x86-64   # Windows cross-check (C build scripts)
  [xmllint]=libxml2-utils       # unattend answer files checked against their XSD
  [chromium]=chromium           # the web console's browser tests (headless)
  [chromedriver]=chromium-driver   # ... driven over WebDriver
  [npm]=npm                     # fetches axe-core (below)
  [node]=nodejs
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# cdfs (Rust ISO reader used as a dev-dependency) links libfuse3.
if ! pkg-config --exists fuse3 2>/dev/null; then missing+=(libfuse3-dev); fi

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [[ $(id -u) -ne 0 ]]; then
    die "missing packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The agent's SSH password-auth tests log in as a dedicated local user.
if [[ $(id -u) -eq 0 ]]; then
  bash agent-core/tests/setup-ssh-test-user.sh
elif ! id botmox-ssh-test >/dev/null 2>&1; then
  die "the SSH tests need the local user botmox-ssh-test: run 'sudo bash agent-core/tests/setup-ssh-test-user.sh'"
fi

# schemathesis (PyPI, pinned) for the API contract test
# (control-server/tests/it/schemathesis.rs, which looks for it here), in its
# own virtualenv so it cannot clash with other Python packages.
ST_VERSION=4.32.5
ST_VENV=/var/tmp/botmox-tools/schemathesis
if [[ "$("$ST_VENV/bin/st" --version 2>/dev/null)" != *"$ST_VERSION"* ]]; then
  log "installing schemathesis $ST_VERSION into $ST_VENV"
  if ! python3 -m venv --clear "$ST_VENV" >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "python3 cannot create a virtualenv: run 'sudo apt-get install -y python3-venv'"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
    python3 -m venv --clear "$ST_VENV" || die "python3 cannot create a virtualenv in $ST_VENV"
  fi
  "$ST_VENV/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$ST_VERSION" \
    || die "cannot install schemathesis $ST_VERSION from PyPI"
fi
[[ "$("$ST_VENV/bin/st" --version 2>/dev/null)" == *"$ST_VERSION"* ]] \
  || die "schemathesis $ST_VERSION is not usable at $ST_VENV/bin/st"

# moto (PyPI, pinned) in server mode: the S3-compatible server the object
# storage tests start on 127.0.0.1 (control-server/tests/it/moto.rs looks
# for it here), in its own virtualenv like schemathesis.
MOTO_VERSION=5.2.5
MOTO_VENV=/var/tmp/botmox-tools/moto
moto_ok() {
  [[ -x "$MOTO_VENV/bin/moto_server" ]] \
    && [[ "$("$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" == "$MOTO_VERSION" ]]
}
if ! moto_ok; then
  log "installing moto[server] $MOTO_VERSION into $MOTO_VENV"
  if ! python3 -m venv --clear "$MOTO_VENV" >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "python3 cannot create a virtualenv: run 'sudo apt-get install -y python3-venv'"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
    python3 -m venv --clear "$MOTO_VENV" || die "python3 cannot create a virtualenv in $MOTO_VENV"
  fi
  "$MOTO_VENV/bin/python" -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
    || die "cannot install moto[server] $MOTO_VERSION from PyPI"
fi
moto_ok || die "moto $MOTO_VERSION is not usable at $MOTO_VENV/bin/moto_server"

# The web console's browser tests (control-server/tests/it/browser.rs) need
# Chromium and its WebDriver (Debian chromium + chromium-driver, same
# version) and axe-core's axe.min.js (npm, pinned), which they inject into
# every page. axe-core is fetched here rather than vendored: it is a 0.5 MB
# test-only file under another licence (MPL-2.0), like schemathesis and moto.
command -v chromium >/dev/null 2>&1 || die "chromium not found after installing the chromium package"
command -v chromedriver >/dev/null 2>&1 || die "chromedriver not found after installing chromium-driver"
cr=$(chromium --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)
cd_=$(chromedriver --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)
[[ -n "$cr" && "$cr" == "$cd_" ]] || die "chromium ($cr) and chromedriver ($cd_) differ: upgrade both (apt-get install chromium chromium-driver)"
AXE_VERSION=4.14.1
AXE_DIR=/var/tmp/botmox-tools/axe-core
AXE_JS="$AXE_DIR/node_modules/axe-core/axe.min.js"
if [[ "$(head -c 40 "$AXE_JS" 2>/dev/null)" != *"axe v$AXE_VERSION"* ]]; then
  log "installing axe-core $AXE_VERSION into $AXE_DIR"
  mkdir -p "$AXE_DIR"
  [[ -f "$AXE_DIR/package.json" ]] || printf '{ "name": "botmox-axe-core", "private": true }\n' >"$AXE_DIR/package.json"
  npm install --prefix "$AXE_DIR" --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION" >/dev/null \
    || die "cannot install axe-core $AXE_VERSION from npm"
fi
[[ "$(head -c 40 "$AXE_JS" 2>/dev/null)" == *"axe v$AXE_VERSION"* ]] || die "axe-core $AXE_VERSION is not at $AXE_JS"

# PostgreSQL on 127.0.0.1:5432 (the postgres:: tests need it).
PGURL="${BOTMOX_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
if ! pg_isready -q -d "$PGURL/postgres" 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    log "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  elif [[ $(id -u) -eq 0 ]]; then
    log "installing PostgreSQL server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -d "$PGURL/postgres" 2>/dev/null && break
    sleep 1
  done
fi
if ! pg_isready -q -d "$PGURL/postgres" 2>/dev/null; then
  die "PostgreSQL is not reachable at $PGURL (the postgres:: tests need it; set BOTMOX_TEST_POSTGRES_URL to use another server)"
fi
if ! psql "$PGURL/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
  die "PostgreSQL at $PGURL refuses the connection (trust auth for user postgres expected)"
fi
# Drop databases left behind by aborted test runs.
psql "$PGURL/postgres" -qAtc "select datname from pg_database where datname like 'botmox_t_%'" \
  | while read -r db; do [[ -n "$db" ]] && psql "$PGURL/postgres" -qc "drop database if exists \"$db\" with (force)"; done
log "ready: packages present, schemathesis $ST_VERSION, moto $MOTO_VERSION, chromium $cr, axe-core $AXE_VERSION, PostgreSQL at $PGURL"

#!/usr/bin/env bash
# Measure the headless agent's idle footprint: a release control-server and a
# paired release botmox-agent (no Proxmox target, nothing dispatched) run for
# SECONDS; prints the agent's RSS, peak RSS and CPU share. Not a test.
#   scripts/measure-agent-idle.sh [SECONDS]   (default 90)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-90}
cargo build --release -q -p control-server -p agent-core
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $srv $agent 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
"$bin/control-server" serve --data-dir "$work/srv" --tls off --listen "127.0.0.1:$port" 2>"$work/srv.log" &
srv=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null && break; sleep 0.2; done
pw=$(cat "$work/srv/initial-admin-password")
token=$(curl -fs "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$pw\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["token"])')
bundle=$(curl -fs "http://127.0.0.1:$port/api/v1/agents/pairings" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["pairing_bundle"])')
agent_args=(--config-dir "$work/agent" --secret-store file)
"$bin/botmox-agent" "${agent_args[@]}" pair "$bundle" >/dev/null
"$bin/botmox-agent" "${agent_args[@]}" run >/dev/null 2>&1 &
agent=$!
sleep 5
ticks() { awk '{print $14+$15}' "/proc/$agent/stat"; }
t0=$(ticks)
sleep "$secs"
t1=$(ticks)
rss=$(awk '/^VmRSS/{print $2}' "/proc/$agent/status")
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$agent/status")
hz=$(getconf CLK_TCK)
state=$(curl -fs "http://127.0.0.1:$port/api/v1/agents" -H "authorization: Bearer $token" \
  | python3 -c 'import sys,json;a=json.load(sys.stdin)["data"][0];print(a["connection"], a["last_seen_at"])')
echo "agent as the server sees it: $state"
python3 - "$rss" "$hwm" "$t0" "$t1" "$hz" "$secs" <<'PY'
import sys
rss, hwm, t0, t1, hz, secs = map(float, sys.argv[1:])
cpu = (t1 - t0) / hz / secs * 100
cpu_text = f"{cpu:.3f} %" if t1 > t0 else f"< {1 / hz / secs * 100:.3f} % (below one clock tick)"
print(f"botmox-agent idle for {secs:.0f} s: RSS {rss/1024:.1f} MiB, peak {hwm/1024:.1f} MiB, "
      f"CPU {cpu_text} of one core")
PY

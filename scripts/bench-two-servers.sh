#!/usr/bin/env bash
# Issue #15's scale-out run: two control-server processes on one PostgreSQL
# database, one botmox-loadgen process per server (each registers and runs
# its own agents against "its" server, and dispatches through the OTHER
# server, so every command crosses processes through LISTEN/NOTIFY). Prints
# both loadgens' figures, then checks in the database that every command
# was claimed exactly once.
#
#   scripts/bench-two-servers.sh [AGENTS_PER_SERVER] [RATE_PER_LOADGEN] [SECONDS]
#
# Defaults: 10000 agents per server, 100 commands/s per loadgen (200/s in
# all), 10 s. Needs release builds:
#   cargo build --release -p control-server -p botmox-loadgen
# and PostgreSQL at $BOTMOX_BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432);
# a throwaway database is created and dropped.
set -euo pipefail

AGENTS=${1:-10000}
RATE=${2:-100}
SECONDS_=${3:-10}
PG=${BOTMOX_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
TARGET=${CARGO_TARGET_DIR:-target}/release
SERVER=$TARGET/control-server
LOADGEN=$TARGET/botmox-loadgen
for b in "$SERVER" "$LOADGEN"; do
    [ -x "$b" ] || { echo "missing $b: cargo build --release -p control-server -p botmox-loadgen" >&2; exit 2; }
done

DB=botmox_two_servers_$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG/postgres" -qc "CREATE DATABASE $DB"
URL="$PG/$DB"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server N: starts server N on a free port, waits until it listens.
start_server() {
    local n=$1 port
    port=$(free_port)
    mkdir -p "$WORK/s$n"
    BOTMOX_LOG=${BOTMOX_LOG:-warn,control_server::server=info} "$SERVER" serve --tls off \
        --listen "127.0.0.1:$port" --data-dir "$WORK/s$n" --database-url "$URL" \
        --public-rate-limit-per-minute 100000000 --api-rate-limit-per-minute 100000000 \
        2>"$WORK/s$n.log" &
    PIDS+=($!)
    eval "PID$n=$!; PORT$n=$port"
    for _ in $(seq 1 300); do
        grep -q "listening on" "$WORK/s$n.log" && return 0
        sleep 0.1
    done
    echo "server $n did not start:" >&2; cat "$WORK/s$n.log" >&2; exit 1
}
start_server 1   # creates the schema and the first admin
start_server 2
PASSWORD=$(cat "$WORK/s1/initial-admin-password")

echo "two servers on $DB: pid $PID1 port $PORT1, pid $PID2 port $PORT2; $AGENTS agents each"
"$LOADGEN" --url "http://127.0.0.1:$PORT1" --dispatch-url "http://127.0.0.1:$PORT2" \
    --admin-password "$PASSWORD" --server-pid "$PID1" --size-database-url "$URL" \
    --agents "$AGENTS" --rate "$RATE" --seconds "$SECONDS_" --name-prefix lg1 \
    >"$WORK/lg1.out" 2>"$WORK/lg1.err" &
LG1=$!
"$LOADGEN" --url "http://127.0.0.1:$PORT2" --dispatch-url "http://127.0.0.1:$PORT1" \
    --admin-password "$PASSWORD" --server-pid "$PID2" \
    --agents "$AGENTS" --rate "$RATE" --seconds "$SECONDS_" --name-prefix lg2 \
    >"$WORK/lg2.out" 2>"$WORK/lg2.err" &
LG2=$!
status=0
wait $LG1 || status=$?
wait $LG2 || status=$?
for n in 1 2; do
    echo "--- loadgen $n (agents on server $n, dispatching through the other)"
    cat "$WORK/lg$n.out"
    grep -v "^registered" "$WORK/lg$n.err" | tail -5 || true
done
echo "--- server logs: warnings and errors"
grep -h "WARN\|ERROR" "$WORK/s1.log" "$WORK/s2.log" | tail -10 || true
echo "--- claims in the database"
read -r commands succeeded other < <(psql "$URL" -At -F ' ' -c "SELECT COUNT(*),
        COUNT(*) FILTER (WHERE status = 'succeeded'),
        COUNT(*) FILTER (WHERE attempt_count <> 1)
    FROM agent_commands")
echo "commands $commands, succeeded $succeeded, claimed other than once: $other"
[ "$other" = 0 ] || status=1
exit $status

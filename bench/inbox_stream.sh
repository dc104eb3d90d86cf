#!/usr/bin/env bash
# Benchmark of the live inbox across replicas: how long after the router commits an
# offer does the SDR's open `GET /v1/inbox/stream` show it, when the stream is held
# by another process than the one that routed the lead (PostgreSQL + RabbitMQ).
#
#   bash bench/inbox_stream.sh
#
# Two processes on one database and namespace: `huoke dev` (intake, qualify, router,
# everything) and `huoke serve pool` holding the stream. LEADS leads are posted at
# RATE/s to `huoke dev`, each with the SDR as owner hint. A reader timestamps every
# line of the stream as it arrives (Python, monotonic enough at ms); the latency of an
# offer is that arrival minus the assignment's `created_at` (the router's transaction,
# same machine clock): commit, outbox relay, broker, the pool process's live queue,
# the SSE write. Reported: p50, p99, max and how many offers arrived.
#
# Knobs: LEADS=300 RATE=20 PORT=18380 SKIP_BUILD=1 KEEP=1 BENCH_COMMIT=<sha>
#   PG_ADMIN_URL BENCH_REDIS_URL BENCH_AMQP_URL (see bench/lib.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

LEADS=${LEADS:-300}
RATE=${RATE:-20}
PORT=${PORT:-18380}
BENCH_NAME=inbox-stream
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
command -v python3 >/dev/null || die "python3 is required"

{
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:    ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}"
    echo "cpus:      $(nproc) x $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "settings:  LEADS=$LEADS RATE=$RATE"
} | tee "$OUT/machine.txt" >&2

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries"
    cargo build --release --locked --bin huoke --example loadgen >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
HUOKE=${HUOKE_BIN:-$BIN/huoke}
LOADGEN=$BIN/examples/loadgen
for b in "$HUOKE" "$LOADGEN"; do [ -x "$b" ] || die "missing $b (run without SKIP_BUILD)"; done

PIDS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -z "${KEEP:-}" ]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
        if command -v rabbitmqctl >/dev/null; then
            rabbitmqctl list_queues -q name 2>/dev/null | grep "^$NS\." | while read -r q; do
                rabbitmqctl delete_queue "$q" >/dev/null 2>&1
            done
        fi
    fi
    log "logs in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
DB_URL="${PG_ADMIN_URL%/*}/$DB"
q() { psql "$DB_URL" -XAtqc "$1"; }
PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=\n')"
run=(env DATABASE_URL="$DB_URL" REDIS_URL="$BENCH_REDIS_URL" AMQP_URL="$BENCH_AMQP_URL" HUOKE_NAMESPACE="$NS"
    HUOKE_JWT_SECRET="bench-secret-$RUN_ID-0123456789abcdef" HUOKE_LOG="${HUOKE_LOG:-warn}" HUOKE_DEV_PASSWORD="$PASSWORD")

wait_up() { # port pid name
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || die "$3 exited (see $OUT/$3.log)"
        sleep 0.1
    done
    die "$3 did not answer"
}
"${run[@]}" "$HUOKE" dev --listen "127.0.0.1:$PORT" --data "$OUT/data" >"$OUT/dev.log" 2>&1 &
PIDS+=($!)
wait_up "$PORT" "${PIDS[0]}" dev
"${run[@]}" "$HUOKE" serve pool --listen "127.0.0.1:$((PORT + 1))" >"$OUT/pool.log" 2>&1 &
PIDS+=($!)
wait_up "$((PORT + 1))" "${PIDS[1]}" pool

ADMIN=$("${run[@]}" "$HUOKE" token --tenant demo --email admin@demo.local)
SDR_ID=$(q "SELECT id FROM staff WHERE email = 'sdr1@demo.local'")
SDR=$("${run[@]}" "$HUOKE" token --tenant demo --email sdr1@demo.local)

# The reader: one line per stream line, prefixed with the arrival in epoch ms.
curl -sN -H "Authorization: Bearer $SDR" "http://127.0.0.1:$((PORT + 1))/v1/inbox/stream" \
    | python3 -u -c '
import sys, time
for line in sys.stdin:
    print(int(time.time() * 1000), line.rstrip("\n"), flush=True)
' >"$OUT/stream.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q ": connected" "$OUT/stream.log" 2>/dev/null && break; sleep 0.1; done
grep -q ": connected" "$OUT/stream.log" || die "the stream did not open"

log "posting $LEADS leads at $RATE/s for sdr1"
"$LOADGEN" --url "http://127.0.0.1:$PORT/v1/leads" --method POST --header "Authorization: Bearer $ADMIN" \
    --body "{\"name\":\"Live {n}\",\"phone\":\"+86139{n8}\",\"channel\":\"smart_card\",\"owner_hint\":\"$SDR_ID\"}" \
    --rate "$RATE" --duration "$(( (LEADS + RATE - 1) / RATE ))" --warmup 0 --connections 4 >"$OUT/loadgen.txt"
ACCEPTED=$(q "SELECT count(*) FROM captures")
for _ in $(seq 1 300); do
    [ "$(grep -c ' id: ' "$OUT/stream.log" || true)" -ge "$ACCEPTED" ] && break
    sleep 0.2
done
q "SELECT id, created_at FROM assignments WHERE staff_id = '$SDR_ID'" >"$OUT/assignments.txt"
python3 - "$OUT/stream.log" "$OUT/assignments.txt" "$ACCEPTED" <<'PY' | tee "$OUT/summary.txt"
import sys
arrived = {}
for line in open(sys.argv[1]):
    at, _, rest = line.rstrip("\n").partition(" ")
    if rest.startswith("id: "):
        arrived.setdefault(rest[4:], int(at))
made = dict(l.strip().split("|") for l in open(sys.argv[2]) if "|" in l)
lat = sorted(arrived[i] - int(made[i]) for i in arrived if i in made)
n = len(lat)
pick = lambda p: lat[min(n - 1, max(0, -(-int(p * n) // 1) - 1))] if n else None
print(f"offers made to the SDR: {len(made)} (captures accepted: {sys.argv[3]}); shown on the stream: {n}")
if n:
    print(f"routing commit -> stream (ms): p50 {pick(0.5)}, p99 {pick(0.99)}, max {lat[-1]}")
PY

#!/usr/bin/env bash
# Benchmark of the lead pipeline end to end: POST /v1/leads → intake → outbox →
# capture.received → qualify → lead.qualified → router → lead.assigned → pool →
# a row in an SDR's inbox, on PostgreSQL + Redis + RabbitMQ, everything in one
# `huoke dev` process (as on one small node).
#
#   bash bench/leads.sh
#
# Phases (docs/BENCHMARKS.md shows the figures and explains the why):
#   (a) flat out for FLAT_DURATION s: the load generator keeps CONNS connections busy;
#       reported: captures accepted per second at HTTP, and leads assigned per second
#       end to end (first capture to last inbox row, every lead a distinct person);
#   (b) fixed rates (RATES, each for RATE_DURATION s, open loop): capture → inbox
#       latency p50 / p99 / max, from the rows' own timestamps
#       (captures.created_at → inbox_items.created_at, both written by the app's clock);
#   (c) resident memory of huoke, RabbitMQ, Redis and PostgreSQL before and after;
#   (d) CPU time per lead, by process (PostgreSQL, huoke, RabbitMQ, Redis), from
#       /proc/*/stat sampled around each fixed-rate run, and for intake alone: a
#       `huoke serve intake` on its own database and namespace (so nothing relays or
#       consumes its events but itself) at INTAKE_RATE leads/s for RATE_DURATION s.
# After each phase the script waits until every accepted capture has reached an inbox
# (DRAIN_TIMEOUT) and checks that each lead was assigned exactly once.
#
# Knobs (environment): FLAT_DURATION=30 RATES="500 1000 2000" RATE_DURATION=20 CONNS=64
#   DRAIN_TIMEOUT=300 PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
#   BENCH_REDIS_URL=redis://127.0.0.1:6379 BENCH_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
#   PORT=18180 SKIP_BUILD=1 KEEP=1 PERF=1 (perf record the huoke process during phase a)
#   HUOKE_BUS_BATCH / HUOKE_BUS_PREFETCH / HUOKE_HTTP_WORKERS (passed through to huoke)
#   CARGO_TARGET_DIR (binaries are taken from $CARGO_TARGET_DIR/release, default ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FLAT_DURATION=${FLAT_DURATION:-30}
RATES=${RATES:-500 1000 2000}
RATE_DURATION=${RATE_DURATION:-20}
INTAKE_RATE=${INTAKE_RATE:-500}
CONNS=${CONNS:-64}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
PORT=${PORT:-18180}
BENCH_NAME=leads
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# ------------------------------------------------------------------ machine
{
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    if [ -n "${BENCH_COMMIT:-}" ]; then
        echo "commit:    $BENCH_COMMIT"
    else
        echo "commit:    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (work tree has uncommitted changes)')"
    fi
    echo "cpus:      $(nproc) x $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "memory:    $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "kernel:    $(uname -r)"
    echo "postgres:  $(psql "$PG_ADMIN_URL" -Atqc 'show server_version') (synchronous_commit=$(psql "$PG_ADMIN_URL" -Atqc 'show synchronous_commit'))"
    echo "redis:     $(redis-cli -u "$BENCH_REDIS_URL" info server | sed -n 's/^redis_version:\(.*\)\r*$/\1/p' | tr -d '\r')"
    echo "rabbitmq:  $(rabbitmqctl version 2>/dev/null || echo '?')"
    echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
    echo "settings:  FLAT_DURATION=${FLAT_DURATION}s RATES='$RATES' RATE_DURATION=${RATE_DURATION}s CONNS=$CONNS batch=${HUOKE_BUS_BATCH:-default} prefetch=${HUOKE_BUS_PREFETCH:-default}"
} | tee "$OUT/machine.txt" >&2

# ------------------------------------------------------------------ build
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries"
    cargo build --release --locked --bin huoke >&2
    cargo build --release --locked --example loadgen >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
HUOKE=${HUOKE_BIN:-$BIN/huoke}
LOADGEN=$BIN/examples/loadgen
for b in "$HUOKE" "$LOADGEN"; do [ -x "$b" ] || die "missing $b (run without SKIP_BUILD)"; done

# ------------------------------------------------------------------ cleanup
HUOKE_PID=
cleanup() {
    local rc=$?
    set +e
    if [ -n "$HUOKE_PID" ]; then
        kill "$HUOKE_PID" 2>/dev/null
        wait "$HUOKE_PID" 2>/dev/null
    fi
    if [ -z "${KEEP:-}" ]; then
        log "dropping database $DB, Redis keys $NS:* and queues $NS.*"
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"${DB}_intake\" WITH (FORCE)" >/dev/null 2>&1
        redis-cli -u "$BENCH_REDIS_URL" --scan --pattern "$NS:*" | xargs -r redis-cli -u "$BENCH_REDIS_URL" unlink >/dev/null
        if command -v rabbitmqctl >/dev/null; then
            rabbitmqctl list_queues -q name 2>/dev/null | grep "^$NS\." | while read -r q; do
                rabbitmqctl delete_queue "$q" >/dev/null 2>&1
            done
        fi
    else
        log "KEEP set: database $DB left in place"
    fi
    log "logs and raw outputs in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ start
log "creating database $DB"
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
DB_URL="${PG_ADMIN_URL%/*}/$DB"
q() { psql "$DB_URL" -XAtqc "$1"; }

PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=\n')"
DATA=$OUT/data
env DATABASE_URL="$DB_URL" REDIS_URL="$BENCH_REDIS_URL" AMQP_URL="$BENCH_AMQP_URL" \
    HUOKE_NAMESPACE="$NS" HUOKE_DEV_PASSWORD="$PASSWORD" HUOKE_LOG="${HUOKE_LOG:-warn}" \
    "$HUOKE" dev --listen "127.0.0.1:$PORT" --data "$DATA" >"$OUT/huoke.log" 2>&1 &
HUOKE_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
    kill -0 "$HUOKE_PID" 2>/dev/null || die "huoke exited (see $OUT/huoke.log)"
    sleep 0.1
done
TOKEN=$(curl -fsS "http://127.0.0.1:$PORT/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"tenant\":\"demo\",\"email\":\"admin@demo.local\",\"password\":\"$PASSWORD\"}" | jq -r .access_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "could not sign in"

rss_kib() { # comm-pattern → summed RSS in MiB of matching processes
    ps -eo rss=,comm= | awk -v pat="$1" '$2 ~ pat {s += $1} END {printf "%.0f", s / 1024}'
}
memory() {
    echo "huoke=$(ps -o rss= -p "$HUOKE_PID" | awk '{printf "%.0f", $1/1024}')MiB rabbitmq=$(rss_kib '^beam')MiB redis=$(rss_kib '^redis')MiB postgres=$(rss_kib '^postgres')MiB"
}
MEM_BEFORE=$(memory)
log "memory before: $MEM_BEFORE"

# Waits until every capture since $1 (ms) is in an inbox; prints the wait in seconds.
drain() {
    local since=$1 t0 total assigned
    t0=$(date +%s)
    while :; do
        total=$(q "SELECT count(*) FROM captures WHERE created_at >= $since")
        assigned=$(q "SELECT count(*) FROM captures c JOIN inbox_items i ON i.lead_id = c.lead_id WHERE c.created_at >= $since")
        [ "$assigned" -ge "$total" ] && break
        [ $(( $(date +%s) - t0 )) -lt "$DRAIN_TIMEOUT" ] || { log "drain timed out: $assigned of $total assigned"; break; }
        sleep 0.5
    done
    echo $(( $(date +%s) - t0 ))
}

body() { # phase → JSON template; {n} becomes the request number
    printf '{"name":"Lead %s {n}","phone":"+8613%s{n8}","email":"p%s-{n}@bench.example","company":"Bench Co","channel":"web_form"}' \
        "$1" "$2" "$1"
}
# Phones: +86 13, a one-digit phase code, then the request number on 8 digits:
# a valid mobile, distinct for every request of the run.

loadgen() { # rate duration phase-name phone-prefix
    "$LOADGEN" --url "http://127.0.0.1:$PORT/v1/leads" --method POST \
        --header "Authorization: Bearer $TOKEN" --body "$(body "$3" "$4")" \
        --rate "$1" --duration "$2" --warmup 0 --connections "$CONNS"
}

now_ms() { date +%s%3N; }

# Cumulative CPU ticks (user + system) per command name, every process.
cpu_sample() {
    for p in /proc/[0-9]*; do
        [ -r "$p/stat" ] && awk '{gsub(/[()]/, "", $2); print $2, $14 + $15}' "$p/stat" 2>/dev/null
    done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
# cpu_per_lead BEFORE AFTER N → "postgres 1.52 ms, huoke 0.98 ms, …" (CPU ms per lead)
cpu_per_lead() {
    local hz; hz=$(getconf CLK_TCK)
    join "$1" "$2" | awk -v n="$3" -v hz="$hz" '
        $1 ~ /^(postgres|huoke|beam\.smp|redis-server)$/ {
            name = ($1 == "beam.smp") ? "rabbitmq" : ($1 == "redis-server" ? "redis" : $1)
            ms = ($3 - $2) * 1000 / hz / n; total += ms
            printf "%s %.2f ms, ", name, ms
        }
        END { printf "total %.2f ms", total }'
}

# ------------------------------------------------------------------ (a) flat out
log "(a) flat out for ${FLAT_DURATION}s over $CONNS connections"
A_START=$(now_ms)
PERF_PID=
if [ -n "${PERF:-}" ] && command -v perf >/dev/null; then
    perf record -F 499 -g -p "$HUOKE_PID" -o "$OUT/perf.data" -- sleep "$FLAT_DURATION" >/dev/null 2>&1 &
    PERF_PID=$!
fi
loadgen 1000000 "$FLAT_DURATION" flat 9 | tee "$OUT/a-loadgen.txt" >&2
A_SENT_END=$(now_ms)
A_DRAIN=$(drain "$A_START")
[ -n "$PERF_PID" ] && wait "$PERF_PID" 2>/dev/null || true
read -r A_N A_FIRST A_LAST_CAPTURE A_LAST_INBOX < <(q "SELECT count(*), min(c.created_at), max(c.created_at), max(i.created_at)
    FROM captures c JOIN inbox_items i ON i.lead_id = c.lead_id WHERE c.created_at >= $A_START" | tr '|' ' ')
A_CAPTURES=$(q "SELECT count(*) FROM captures WHERE created_at >= $A_START")
A_HTTP_RATE=$(awk -v n="$A_CAPTURES" -v a="$A_FIRST" -v b="$A_LAST_CAPTURE" 'BEGIN { printf "%.0f", n / ((b - a) / 1000) }')
A_E2E_RATE=$(awk -v n="$A_N" -v a="$A_FIRST" -v b="$A_LAST_INBOX" 'BEGIN { printf "%.0f", n / ((b - a) / 1000) }')
A_DUPES=$(q "SELECT count(*) FROM (SELECT lead_id FROM assignments GROUP BY lead_id HAVING count(*) > 1) d")
A_LEADS=$(q "SELECT count(*) FROM leads WHERE created_at >= $A_START")
log "(a) accepted $A_CAPTURES at ${A_HTTP_RATE}/s; $A_N assigned end to end at ${A_E2E_RATE}/s; leads=$A_LEADS; double assignments=$A_DUPES; drain ${A_DRAIN}s"

# ------------------------------------------------------------------ (b) fixed rates
RATE_LINES=()
CPU_LINES=()
code=5
for rate in $RATES; do
    sleep 2
    log "(b) $rate leads/s for ${RATE_DURATION}s"
    start=$(now_ms)
    cpu_sample >"$OUT/cpu-$rate-before"
    loadgen "$rate" "$RATE_DURATION" "r$rate" "$code" | tee "$OUT/b-$rate-loadgen.txt" >&2
    code=$((code + 1))
    wait_s=$(drain "$start")
    cpu_sample >"$OUT/cpu-$rate-after"
    line=$(q "SELECT count(*),
                round(percentile_cont(0.5) WITHIN GROUP (ORDER BY i.created_at - c.created_at)::numeric, 1),
                round(percentile_cont(0.99) WITHIN GROUP (ORDER BY i.created_at - c.created_at)::numeric, 1),
                max(i.created_at - c.created_at)
              FROM captures c JOIN inbox_items i ON i.lead_id = c.lead_id WHERE c.created_at >= $start" | tr '|' ' ')
    read -r n p50 p99 max <<<"$line"
    http=$(sed -n 's/^RESULT .*achieved_rps=\([0-9]*\).*p99_ms=\([0-9.]*\).*/\1 \2/p' "$OUT/b-$rate-loadgen.txt")
    RATE_LINES+=("$(printf '%6s/s  n=%-6s capture→inbox p50 %6s ms  p99 %7s ms  max %6s ms   (HTTP: %s/s answered, p99 %s ms)' \
        "$rate" "$n" "$p50" "$p99" "$max" "${http% *}" "${http#* }")")
    log "${RATE_LINES[-1]}"
    CPU_LINES+=("$(printf '%6s/s  CPU per lead, load and drain: %s' "$rate" "$(cpu_per_lead "$OUT/cpu-$rate-before" "$OUT/cpu-$rate-after" "$n")")")
    log "${CPU_LINES[-1]}"
done

# ------------------------------------------------------------------ (d) intake alone
log "(d) intake alone: $INTAKE_RATE leads/s for ${RATE_DURATION}s, events published to no consumer"
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"${DB}_intake\"" >/dev/null
intake_env=(env DATABASE_URL="${PG_ADMIN_URL%/*}/${DB}_intake" REDIS_URL="$BENCH_REDIS_URL" AMQP_URL="$BENCH_AMQP_URL"
    HUOKE_NAMESPACE="$NS.intake" HUOKE_JWT_SECRET="$(cat "$DATA/jwt-secret")" HUOKE_LOG="${HUOKE_LOG:-warn}")
"${intake_env[@]}" "$HUOKE" tenant create --slug demo --name Demo --admin-email admin@demo.local \
    --admin-password "$PASSWORD" >/dev/null
INTAKE_TOKEN=$("${intake_env[@]}" "$HUOKE" token --tenant demo --email admin@demo.local)
"${intake_env[@]}" "$HUOKE" serve intake --listen "127.0.0.1:$((PORT + 1))" >"$OUT/intake.log" 2>&1 &
INTAKE_PID=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$((PORT + 1))/healthz" 2>/dev/null && break
    sleep 0.1
done
cpu_sample >"$OUT/cpu-intake-before"
"$LOADGEN" --url "http://127.0.0.1:$((PORT + 1))/v1/leads" --method POST \
    --header "Authorization: Bearer $INTAKE_TOKEN" --body "$(body intake 8)" \
    --rate "$INTAKE_RATE" --duration "$RATE_DURATION" --warmup 0 --connections "$CONNS" | tee "$OUT/d-loadgen.txt" >&2
sleep 1
cpu_sample >"$OUT/cpu-intake-after"
INTAKE_N=$(sed -n 's/^RESULT .* s2xx=\([0-9]*\).*/\1/p' "$OUT/d-loadgen.txt")
INTAKE_CPU=$(cpu_per_lead "$OUT/cpu-intake-before" "$OUT/cpu-intake-after" "${INTAKE_N:-1}")
kill "$INTAKE_PID" 2>/dev/null; wait "$INTAKE_PID" 2>/dev/null || true
log "(d) intake alone: $INTAKE_N accepted; CPU per lead: $INTAKE_CPU"

MEM_AFTER=$(memory)
TOTAL=$(q "SELECT count(*) FROM captures")
ASSIGNED=$(q "SELECT count(DISTINCT c.id) FROM captures c JOIN inbox_items i ON i.lead_id = c.lead_id")
DUPES=$(q "SELECT count(*) FROM (SELECT lead_id FROM assignments GROUP BY lead_id HAVING count(*) > 1) d")

if [ -n "${PERF:-}" ] && [ -f "$OUT/perf.data" ]; then
    perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | head -80 >"$OUT/perf-huoke.txt" || true
fi

{
    echo
    echo "== huoke leads benchmark ($(sed -n 's/^commit: *//p' "$OUT/machine.txt"))"
    echo "(a) flat out ${FLAT_DURATION}s, $CONNS connections:"
    echo "    accepted at HTTP:        $A_CAPTURES captures, ${A_HTTP_RATE}/s"
    echo "    assigned end to end:     $A_N leads, ${A_E2E_RATE}/s (first capture → last inbox row: $(( (A_LAST_INBOX - A_FIRST) / 1000 )) s; drained ${A_DRAIN}s after the load stopped)"
    echo "(b) fixed rates, capture → inbox:"
    for l in "${RATE_LINES[@]}"; do echo "    $l"; done
    echo "(d) CPU time per lead (all processes of each kind):"
    for l in "${CPU_LINES[@]}"; do echo "    $l"; done
    echo "    intake alone at $INTAKE_RATE/s: $INTAKE_CPU"
    echo "(c) memory (RSS) before: $MEM_BEFORE"
    echo "    memory (RSS) after:  $MEM_AFTER"
    echo "checks: $ASSIGNED of $TOTAL captures in an inbox; leads assigned more than once: $DUPES"
} | tee "$OUT/summary.txt"

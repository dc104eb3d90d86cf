#!/usr/bin/env bash
# Benchmark of qualification alone — capture.received → identity resolution, lead
# creation, possible-duplicate check, scoring → lead.qualified — on an empty store and
# on one holding a million identities, on PostgreSQL + RabbitMQ.
#
#   bash bench/qualify.sh
#
# Each round: `huoke serve intake` accepts N captures of new people (CAPTURE_RATE/s for
# CAPTURE_SECONDS s) and relays them to the qualify queue; intake stops; then
# `huoke serve qualify` starts and works off the backlog. Reported: captures qualified
# per second, from the captures' own timestamps (first to last `updated_at` when they
# became qualified), and the wall time of the drain. Two stores: one empty, one given
# SEED_LEADS leads with two identities each (phone and e-mail) written straight into
# PostgreSQL; after a warm-up round on each, ROUNDS rounds alternate between them and
# the medians are compared.
#
# Knobs (environment): CAPTURE_RATE=2000 CAPTURE_SECONDS=10 ROUNDS=3 SEED_LEADS=500000
#   CONNS=32 PORT=18280 DRAIN_TIMEOUT=600 SKIP_BUILD=1 KEEP=1 BENCH_COMMIT=<sha>
#   PG_ADMIN_URL BENCH_REDIS_URL BENCH_AMQP_URL (see bench/lib.sh)
#   CARGO_TARGET_DIR (binaries are taken from $CARGO_TARGET_DIR/release, default ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CAPTURE_RATE=${CAPTURE_RATE:-2000}
CAPTURE_SECONDS=${CAPTURE_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
SEED_LEADS=${SEED_LEADS:-500000}
CONNS=${CONNS:-32}
PORT=${PORT:-18280}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
BENCH_NAME=qualify
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

{
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:    ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}"
    echo "cpus:      $(nproc) x $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "memory:    $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "postgres:  $(psql "$PG_ADMIN_URL" -Atqc 'show server_version')"
    echo "settings:  CAPTURE_RATE=$CAPTURE_RATE CAPTURE_SECONDS=$CAPTURE_SECONDS ROUNDS=$ROUNDS SEED_LEADS=$SEED_LEADS"
} | tee "$OUT/machine.txt" >&2

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries"
    cargo build --release --locked --bin huoke --example loadgen >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
HUOKE=${HUOKE_BIN:-$BIN/huoke}
LOADGEN=$BIN/examples/loadgen
for b in "$HUOKE" "$LOADGEN"; do [ -x "$b" ] || die "missing $b (run without SKIP_BUILD)"; done

PID=
cleanup() {
    local rc=$?
    set +e
    [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
    if [ -z "${KEEP:-}" ]; then
        log "dropping databases ${DB}_* and queues $NS.*"
        for store in empty seeded; do
            psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"${DB}_$store\" WITH (FORCE)" >/dev/null 2>&1
        done
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

PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=\n')"
SECRET="bench-secret-$RUN_ID-0123456789abcdef"
# Two stores side by side: rounds alternate between them, so drift on the machine
# (caches, autovacuum, other load) falls on both alike.
declare -A URL TOKEN TENANT
for store in empty seeded; do
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"${DB}_$store\"" >/dev/null
    URL[$store]="${PG_ADMIN_URL%/*}/${DB}_$store"
    env DATABASE_URL="${URL[$store]}" HUOKE_NAMESPACE="$NS.$store" HUOKE_JWT_SECRET="$SECRET" HUOKE_LOG=warn \
        "$HUOKE" tenant create --slug demo --name Demo --admin-email admin@demo.local --admin-password "$PASSWORD" >/dev/null
    TOKEN[$store]=$(env DATABASE_URL="${URL[$store]}" HUOKE_JWT_SECRET="$SECRET" "$HUOKE" token --tenant demo --email admin@demo.local)
    TENANT[$store]=$(psql "${URL[$store]}" -XAtqc "SELECT id FROM tenants WHERE slug = 'demo'")
done
q() { psql "${URL[$1]}" -XAtqc "$2"; }

log "seeding $SEED_LEADS leads with two identities each into the seeded store"
SEED_T0=$(date +%s)
q seeded "INSERT INTO leads (id, tenant_id, name, phone, email, company, company_key, channel, score, grade, score_reasons, is_mql, status, created_at, updated_at)
   SELECT 'seed' || g, '${TENANT[seeded]}', 'Seed ' || g, '+8615' || lpad(g::text, 9, '0'), 'seed' || g || '@seed.example',
          'Seed Co ' || g, 'seedco' || g, 'api', 10, 'D', '[]', 0, 'new', 1700000000000 + g, 1700000000000 + g
   FROM generate_series(1, $SEED_LEADS) g" >/dev/null
q seeded "INSERT INTO lead_identities (tenant_id, kind, value, lead_id, created_at)
   SELECT '${TENANT[seeded]}', 'phone', '+8615' || lpad(g::text, 9, '0'), 'seed' || g, 1700000000000 FROM generate_series(1, $SEED_LEADS) g
   UNION ALL
   SELECT '${TENANT[seeded]}', 'email', 'seed' || g || '@seed.example', 'seed' || g, 1700000000000 FROM generate_series(1, $SEED_LEADS) g" >/dev/null
for store in empty seeded; do
    q "$store" "VACUUM ANALYZE" >/dev/null
done
IDENTITIES=$(q seeded "SELECT count(*) FROM lead_identities")
log "seeded in $(( $(date +%s) - SEED_T0 )) s: $IDENTITIES identities, database $(q seeded "SELECT pg_size_pretty(pg_database_size(current_database()))")"

start() { # store service port → starts it in the background, waits for /healthz
    env DATABASE_URL="${URL[$1]}" REDIS_URL="$BENCH_REDIS_URL" AMQP_URL="$BENCH_AMQP_URL" HUOKE_NAMESPACE="$NS.$1" \
        HUOKE_JWT_SECRET="$SECRET" HUOKE_LOG="${HUOKE_LOG:-warn}" \
        "$HUOKE" serve "$2" --listen "127.0.0.1:$3" >>"$OUT/$1-$2.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$3/healthz" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || die "huoke serve $2 exited (see $OUT/$1-$2.log)"
        sleep 0.1
    done
    die "huoke serve $2 did not answer"
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }

RESULTS=()
declare -A RATES
round() { # store round-number → one line of results
    local store=$1 n=$2 since accepted t0 t1 done_n rate leads line
    since=$(date +%s%3N)
    start "$store" intake "$PORT"
    # Phones: +86 13, the round's digit, the request number on 8 digits: a valid
    # mobile and a new person every time (the seeded ones start +8615).
    "$LOADGEN" --url "http://127.0.0.1:$PORT/v1/leads" --method POST --header "Authorization: Bearer ${TOKEN[$store]}" \
        --body "{\"name\":\"Person {n}\",\"phone\":\"+8613$n{n8}\",\"email\":\"r$n-{n}@bench.example\",\"company\":\"Company {n} of round $n\",\"channel\":\"web_form\"}" \
        --rate "$CAPTURE_RATE" --duration "$CAPTURE_SECONDS" --warmup 0 --connections "$CONNS" >"$OUT/loadgen-$store-$n.txt"
    accepted=$(q "$store" "SELECT count(*) FROM captures WHERE created_at >= $since")
    for _ in $(seq 1 600); do [ "$(q "$store" 'SELECT count(*) FROM outbox')" = 0 ] && break; sleep 0.2; done
    stop
    t0=$(date +%s%3N)
    start "$store" qualify "$((PORT + 1))"
    while :; do
        done_n=$(q "$store" "SELECT count(*) FROM captures WHERE created_at >= $since AND status = 'qualified'")
        [ "$done_n" -ge "$accepted" ] && break
        [ $(( $(date +%s%3N) - t0 )) -lt $((DRAIN_TIMEOUT * 1000)) ] || die "round $n ($store): $done_n of $accepted qualified after ${DRAIN_TIMEOUT}s"
        sleep 0.2
    done
    t1=$(date +%s%3N)
    stop
    rate=$(q "$store" "SELECT round(($accepted - 1) / ((max(updated_at) - min(updated_at)) / 1000.0)) FROM captures WHERE created_at >= $since")
    leads=$(q "$store" "SELECT count(*) FROM leads WHERE created_at >= $since")
    line=$(printf '%-7s round %s: %6d captures → %6d leads, qualified at %5s/s (drain wall %.1f s)' \
        "$store" "$n" "$accepted" "$leads" "$rate" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print (b - a) / 1000}')")
    log "$line"
    RESULTS+=("$line")
    RATES[$store]="${RATES[$store]:-} $rate"
}

# A warm-up round on each store (first runs of a fresh table plan differently), not
# reported; then ROUNDS alternating pairs.
round empty 0 >/dev/null 2>&1 || true
round seeded 0 >/dev/null 2>&1 || true
RESULTS=()
RATES=()
for n in $(seq 1 "$ROUNDS"); do
    round empty "$n"
    round seeded "$n"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
EMPTY_MEDIAN=$(echo "${RATES[empty]}" | median)
SEEDED_MEDIAN=$(echo "${RATES[seeded]}" | median)
{
    cat "$OUT/machine.txt"
    echo "identities in the seeded store: $IDENTITIES"
    printf '%s\n' "${RESULTS[@]}"
    echo "median: empty $EMPTY_MEDIAN/s, seeded $SEEDED_MEDIAN/s, seeded/empty $(awk -v a="$SEEDED_MEDIAN" -v b="$EMPTY_MEDIAN" 'BEGIN {printf "%.2f", a / b}')"
} | tee "$OUT/summary.txt"

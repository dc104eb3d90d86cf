#!/usr/bin/env bash
# Benchmark of routing and SLA timers on PostgreSQL + Redis + RabbitMQ, everything in
# one `huoke dev` process.
#
#   bash bench/routing.sh
#
# Setup through the HTTP API: 50 SDRs in 5 teams of 10 (no managers), 10 routing
# rules (conditions on city, grade and score; targets five teams and one person;
# round-robin, weighted and least-loaded), leads spread evenly over the ten cities
# c0…c9 — a lead of city c9 is checked against all ten rules.
#
# Phases (docs/BENCHMARKS.md shows the figures):
#   (a) routing latency: ROUTE_LEADS leads at ROUTE_RATE leads/s (open loop); per lead,
#       from qualify's `scored` history row (written in the transaction that emits
#       `lead.qualified`) to the router's `assigned` row (the transaction that emits
#       `lead.assigned`) — outbox relay, broker hop, decision and offer, as the app's
#       clock saw them. SLA 1 h, so nothing breaches.
#   (b) SLA timer lateness: the SLA becomes TIMER_SLA s with max_hops 0, then
#       TIMER_LEADS leads are posted at TIMER_RATE leads/s; nobody accepts, so every
#       offer breaches. Pending timers peak at TIMER_LEADS (plus phase a's, due in an
#       hour). Lateness = the moment the timer expired the offer − its due time, from
#       each breach's history row (`late_ms`); also the count of breaches per offer.
# Knobs: ROUTE_LEADS=3000 ROUTE_RATE=100 TIMER_LEADS=10000 TIMER_RATE=400 TIMER_SLA=60
#   CONNS=16 PORT=18190 SKIP_BUILD=1 KEEP=1 BENCH_COMMIT=<sha>
#   PG_ADMIN_URL BENCH_REDIS_URL BENCH_AMQP_URL, HUOKE_SLA_POLL_MS (passed through)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUTE_LEADS=${ROUTE_LEADS:-3000}
ROUTE_RATE=${ROUTE_RATE:-100}
TIMER_LEADS=${TIMER_LEADS:-10000}
TIMER_RATE=${TIMER_RATE:-400}
TIMER_SLA=${TIMER_SLA:-60}
CONNS=${CONNS:-16}
PORT=${PORT:-18190}
BENCH_NAME=routing
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

{
    echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:    ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (work tree has uncommitted changes)')}"
    echo "cpus:      $(nproc) x $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "memory:    $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "postgres:  $(psql "$PG_ADMIN_URL" -Atqc 'show server_version')"
    echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (before the run)"
    echo "settings:  ROUTE_LEADS=$ROUTE_LEADS ROUTE_RATE=$ROUTE_RATE TIMER_LEADS=$TIMER_LEADS TIMER_RATE=$TIMER_RATE TIMER_SLA=${TIMER_SLA}s poll=${HUOKE_SLA_POLL_MS:-250}ms"
} | tee "$OUT/machine.txt" >&2

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries"
    cargo build --release --locked --bin huoke >&2
    cargo build --release --locked --example loadgen >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
HUOKE=${HUOKE_BIN:-$BIN/huoke}
LOADGEN=$BIN/examples/loadgen
for b in "$HUOKE" "$LOADGEN"; do [ -x "$b" ] || die "missing $b (run without SKIP_BUILD)"; done

HUOKE_PID=
cleanup() {
    local rc=$?
    set +e
    if [ -n "$HUOKE_PID" ]; then
        kill "$HUOKE_PID" 2>/dev/null
        wait "$HUOKE_PID" 2>/dev/null
    fi
    if [ -z "${KEEP:-}" ]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
        redis-cli -u "$BENCH_REDIS_URL" --scan --pattern "$NS:*" | xargs -r redis-cli -u "$BENCH_REDIS_URL" unlink >/dev/null
        if command -v rabbitmqctl >/dev/null; then
            rabbitmqctl list_queues -q name 2>/dev/null | grep "^$NS\." | while read -r q; do
                rabbitmqctl delete_queue "$q" >/dev/null 2>&1
            done
        fi
    fi
    log "raw outputs in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
DB_URL="${PG_ADMIN_URL%/*}/$DB"
q() { psql "$DB_URL" -XAtqc "$1"; }

PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=\n')"
env DATABASE_URL="$DB_URL" REDIS_URL="$BENCH_REDIS_URL" AMQP_URL="$BENCH_AMQP_URL" \
    HUOKE_NAMESPACE="$NS" HUOKE_DEV_PASSWORD="$PASSWORD" HUOKE_LOG="${HUOKE_LOG:-warn}" \
    "$HUOKE" dev --listen "127.0.0.1:$PORT" --data "$OUT/data" >"$OUT/huoke.log" 2>&1 &
HUOKE_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
    kill -0 "$HUOKE_PID" 2>/dev/null || die "huoke exited (see $OUT/huoke.log)"
    sleep 0.1
done
API="http://127.0.0.1:$PORT"
# The demo tenant is seeded just after the server starts answering: try for a while.
TOKEN=
for _ in $(seq 1 100); do
    TOKEN=$(curl -sS "$API/v1/auth/token" -H 'content-type: application/json' \
        -d "{\"tenant\":\"demo\",\"email\":\"admin@demo.local\",\"password\":\"$PASSWORD\"}" | jq -r .access_token)
    [ -n "$TOKEN" ] && [ "$TOKEN" != null ] && break
    sleep 0.3
done
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "could not sign in"
call() { # method path [json]
    curl -fsS -X "$1" "$API$2" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}
}

# ------------------------------------------------------------------ setup
log "50 SDRs in 5 teams, 10 rules"
TEAMS=()
FIRST_SDR=
for t in 0 1 2 3 4; do
    members=()
    for i in 0 1 2 3 4 5 6 7 8 9; do
        id=$(call POST /v1/staff "{\"name\":\"SDR $t$i\",\"email\":\"sdr$t$i@bench.example\",\"roles\":[\"sdr\"],\"capacity\":10000}" | jq -r .id)
        members+=("\"$id\"")
        [ -n "$FIRST_SDR" ] || FIRST_SDR=$id
    done
    TEAMS+=("$(call POST /v1/teams "{\"name\":\"Team $t\",\"members\":[$(IFS=,; echo "${members[*]}")]}" | jq -r .id)")
done
RULES=$(jq -n --arg t0 "${TEAMS[0]}" --arg t1 "${TEAMS[1]}" --arg t2 "${TEAMS[2]}" --arg t3 "${TEAMS[3]}" \
    --arg t4 "${TEAMS[4]}" --arg s "$FIRST_SDR" '{rules: [
    {name: "r0", when: {city: ["c0"]}, target: {team_id: $t0}},
    {name: "r1", when: {city: ["c1"]}, target: {team_id: $t1}, strategy: "weighted"},
    {name: "r2", when: {city: ["c2"]}, target: {team_id: $t2}, strategy: "least_loaded"},
    {name: "r3", when: {city: ["c3"], score: {min: 0}}, target: {team_id: $t3}},
    {name: "r4", when: {city: ["c4"]}, target: {team_id: $t4}, strategy: "least_loaded"},
    {name: "r5", when: {city: ["c5"], grade: ["A", "B", "C", "D"]}, target: {team_id: $t0}},
    {name: "r6", when: {city: ["c6"]}, target: {staff_id: $s}},
    {name: "r7", when: {city: ["c7"], score: {min: 0, max: 1000}}, target: {team_id: $t1}},
    {name: "r8", when: {city: ["c8"], province: ["江苏", "上海"]}, target: {team_id: $t2}},
    {name: "r9", when: {channel: ["web_form"]}, target: {team_id: $t3}, strategy: "least_loaded"}]}')
call PUT /v1/routing/rules "$RULES" >/dev/null
call PUT /v1/sla/policies '{"default": {"accept_within_seconds": 3600}}' >/dev/null

body() { # phase → template: a distinct person per request, city c0…c9 by request number
    printf '{"name":"Lead {n}","phone":"+8613%s{n8}","channel":"web_form","attributes":{"city":"c{m10}","province":"江苏"}}' "$1"
}
post_leads() { # rate count phase
    local duration
    duration=$(awk -v n="$2" -v r="$1" 'BEGIN { printf "%.1f", n / r }')
    "$LOADGEN" --url "$API/v1/leads" --method POST --header "Authorization: Bearer $TOKEN" \
        --body "$(body "$3")" --rate "$1" --duration "$duration" --warmup 0 --connections "$CONNS"
}
wait_for() { # SQL count query, target, timeout s
    local t0 n
    t0=$(date +%s)
    while :; do
        n=$(q "$1")
        [ "$n" -ge "$2" ] && return 0
        [ $(( $(date +%s) - t0 )) -lt "$3" ] || { log "timed out: $n of $2"; return 1; }
        sleep 0.5
    done
}

# ------------------------------------------------------------------ (a)
log "(a) $ROUTE_LEADS leads at $ROUTE_RATE/s"
A_START=$(date +%s%3N)
post_leads "$ROUTE_RATE" "$ROUTE_LEADS" 1 >"$OUT/a-loadgen.txt"
wait_for "SELECT count(*) FROM lead_history WHERE kind = 'assigned' AND at >= $A_START" "$ROUTE_LEADS" 300
A=$(q "WITH l AS (
          SELECT a.at - s.at AS ms FROM lead_history s
          JOIN lead_history a ON a.tenant_id = s.tenant_id AND a.lead_id = s.lead_id AND a.kind = 'assigned'
          WHERE s.kind = 'scored' AND s.at >= $A_START)
        SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) FROM l")
RULE_SPREAD=$(q "SELECT string_agg(r || ':' || n, ' ' ORDER BY r) FROM (
          SELECT detail::json->'decision'->'rule'->>1 AS r, count(*) AS n FROM routing_decisions WHERE at >= $A_START GROUP BY 1) x")
DOUBLE=$(q "SELECT count(*) FROM (SELECT lead_id FROM assignments GROUP BY lead_id HAVING count(*) > 1) x")

# ------------------------------------------------------------------ (b)
log "(b) SLA ${TIMER_SLA}s; $TIMER_LEADS leads at $TIMER_RATE/s, never accepted"
call PUT /v1/sla/policies "{\"default\": {\"accept_within_seconds\": $TIMER_SLA}, \"max_hops\": 0}" >/dev/null
B_START=$(date +%s%3N)
post_leads "$TIMER_RATE" "$TIMER_LEADS" 2 >"$OUT/b-loadgen.txt"
wait_for "SELECT count(*) FROM lead_history WHERE kind = 'assigned' AND at >= $B_START" "$TIMER_LEADS" 600
PEAK=$(q "SELECT count(*) FROM sla_timers")
log "pending timers after posting: $PEAK; waiting for every offer to breach"
wait_for "SELECT count(*) FROM lead_history WHERE kind = 'sla_breached' AND at >= $B_START" "$TIMER_LEADS" $(( TIMER_SLA + 600 ))
B=$(q "WITH l AS (SELECT (detail::json->>'late_ms')::bigint AS ms FROM lead_history WHERE kind = 'sla_breached' AND at >= $B_START)
        SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) FROM l")
TWICE=$(q "SELECT count(*) FROM (SELECT detail::json->>'assignment_id' AS a FROM lead_history WHERE kind = 'sla_breached' AND at >= $B_START GROUP BY 1 HAVING count(*) > 1) x")
POOLED=$(q "SELECT count(*) FROM leads WHERE status = 'pool'")

{
    echo
    echo "(a) lead.qualified → lead.assigned, 10 rules, 50 SDRs, $ROUTE_RATE leads/s"
    echo "    leads=$(cut -d'|' -f1 <<<"$A") p50_ms=$(cut -d'|' -f2 <<<"$A") p99_ms=$(cut -d'|' -f3 <<<"$A") max_ms=$(cut -d'|' -f4 <<<"$A")"
    echo "    decisions by rule: $RULE_SPREAD"
    echo "    leads with more than one assignment: $DOUBLE"
    echo "    HTTP: $(grep '^RESULT' "$OUT/a-loadgen.txt" | cut -c1-200)"
    echo "(b) SLA timer lateness (expired at − due), $TIMER_LEADS offers, peak pending timers $PEAK"
    echo "    breaches=$(cut -d'|' -f1 <<<"$B") p50_ms=$(cut -d'|' -f2 <<<"$B") p99_ms=$(cut -d'|' -f3 <<<"$B") max_ms=$(cut -d'|' -f4 <<<"$B")"
    echo "    offers breached twice: $TWICE; leads in the pool: $POOLED"
    echo "    HTTP: $(grep '^RESULT' "$OUT/b-loadgen.txt" | cut -c1-200)"
} | tee "$OUT/summary.txt"

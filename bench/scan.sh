#!/usr/bin/env bash
# Benchmark of the public scan path GET /s/{code} against a bare actix-web 302 handler.
#
#   bash bench/scan.sh
#
# What it does (docs/BENCHMARKS.md explains the why):
#   1. builds target/release/huoke and the examples bare302 (baseline server) and
#      loadgen (open-loop fixed-rate client);
#   2. creates a fresh PostgreSQL database and a unique Redis key namespace;
#   3. seeds a tenant (`huoke tenant create`), SDR staff with cards and two live codes
#      through the HTTP API of short-lived `huoke serve console` / `serve cards` processes:
#        capped   — every member has daily_limit 100000 (the API's maximum), so each pick
#                   takes a place on the member's cap counter in Redis (reserved in leased
#                   blocks); the counters are deleted before every run (as at midnight)
#                   and checked after it, so no run ever reaches a full cap;
#        uncapped — the same members without daily_limit;
#   4. starts the measured servers, each with 2 HTTP workers:
#        huoke      `huoke serve codes` on PostgreSQL + Redis     (codes: capped, uncapped)
#        huoke-mem  `huoke serve codes` on PostgreSQL, REDIS_URL unset (in-process cache)
#        bare       `bare302`
#   5. max throughput: wrk, keep-alive, alternating the targets round by round,
#      ROUNDS rounds (median reported);
#   6. latency at half of huoke's (capped) median max rate: loadgen at that fixed rate
#      against every target;
#   7. prints a summary (also written to $OUT/summary.txt) and cleans up: stops the
#      servers it started, drops the database, deletes the namespace's Redis keys.
#
# Every request carries no cookie, so every scan is a first-time visitor: huoke mints
# a visitor cookie, does a full pick (a place on the cap) and seals the pick into a
# second cookie. That is the expensive, common case of a printed QR code. After every
# run the script checks that the scans the server counted are exactly the scans added
# to the tallies in PostgreSQL (scan_minutes).
#
# Knobs (environment): ROUNDS=3 DURATION=15 (s per wrk run) CONNS=64 WRK_THREADS=1
#   WARMUP=5 (s of wrk per target before measuring) HALF_DURATION=30 HALF_WARMUP=5 HALF_ROUNDS=2
#   HALF_RATE= (fixed rate for the latency runs; default half of huoke's median max)
#   PERF_TARGET= (e.g. huoke: after the rounds, profile that server with perf under wrk)
#   LOAD_CPUS= (taskset CPU list for wrk/loadgen; empty = unpinned)
#   SERVER_CPUS= (taskset CPU list for the servers; empty = unpinned)
#   STEAL_LIMIT=2 (% of the machine's time taken by the hypervisor above which a run is flagged)
#   FREEZE_OTHERS=1 (pause the servers not being measured; 0 leaves them running)
#   STAFF=10 DAILY_LIMIT=100000 PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
#   BENCH_REDIS_URL=redis://127.0.0.1:6379 BASE_PORT=18080 SKIP_BUILD=1 KEEP=1
#   TARGETS="bare huoke huoke-nocap huoke-mem" (order within each round)
#   BENCH_COMMIT (label for the summary when running outside a git checkout)
#   HUOKE_BIN (another huoke binary to measure, e.g. a local experiment)
#   TENANT_TZ=Asia/Shanghai (the tenant's zone: cap counters are per local day)
#   CARGO_TARGET_DIR (binaries are taken from $CARGO_TARGET_DIR/release, default ./target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
WARMUP=${WARMUP:-5}
HALF_DURATION=${HALF_DURATION:-30}
HALF_WARMUP=${HALF_WARMUP:-5}
HALF_ROUNDS=${HALF_ROUNDS:-2}
LOAD_CPUS=${LOAD_CPUS:-}
SERVER_CPUS=${SERVER_CPUS:-}
STAFF=${STAFF:-10}
# The API allows at most 100000 a day per member; the counters are reset before every run.
DAILY_LIMIT=${DAILY_LIMIT:-100000}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
BASE_PORT=${BASE_PORT:-18080}
TARGETS=${TARGETS:-bare huoke huoke-nocap huoke-mem}

HUOKE_PORT=$BASE_PORT
MEM_PORT=$((BASE_PORT + 1))
BARE_PORT=$((BASE_PORT + 2))
CONSOLE_PORT=$((BASE_PORT + 3))
CARDS_PORT=$((BASE_PORT + 4))

RUN_ID=$(date +%Y%m%d%H%M%S)_$$
NS="bench_$RUN_ID"
DB="huoke_bench_$RUN_ID"
OUT=${OUT:-${TMPDIR:-/tmp}/huoke-bench-$RUN_ID}
mkdir -p "$OUT"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ tools
for tool in curl jq psql redis-cli; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install -y curl jq postgresql-client redis-tools)"
done
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing wrk"
        apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    fi
    command -v wrk >/dev/null || die "wrk is required (Debian: apt-get install -y wrk)"
fi
psql "$PG_ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1 || die "PostgreSQL not reachable at $PG_ADMIN_URL"
[ "$(redis-cli -u "$BENCH_REDIS_URL" ping 2>/dev/null)" = PONG ] || die "Redis not reachable at $BENCH_REDIS_URL"

pin() { # pin CPUS cmd...
    local cpus=$1; shift
    if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

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
    echo "rustc:     $(rustc --version)"
    echo "redis:     $(redis-cli -u "$BENCH_REDIS_URL" info server | sed -n 's/^redis_version:\(.*\)\r*$/\1/p' | tr -d '\r')"
    echo "postgres:  $(psql "$PG_ADMIN_URL" -Atqc 'show server_version')"
    echo "wrk:       $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
    echo "settings:  ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS WRK_THREADS=$WRK_THREADS LOAD_CPUS=${LOAD_CPUS:-unpinned} SERVER_CPUS=${SERVER_CPUS:-unpinned} FREEZE_OTHERS=${FREEZE_OTHERS:-1}"
} | tee "$OUT/machine.txt" >&2

# ------------------------------------------------------------------ build
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries"
    # Two invocations on purpose: built together with the examples, huoke would get
    # the features the examples' dev-dependencies switch on, and differ from what
    # `cargo build --release` ships.
    cargo build --release --locked --bin huoke >&2
    cargo build --release --locked --example bare302 --example loadgen >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
# HUOKE_BIN: measure another build of huoke (e.g. an experiment) with the same harness.
HUOKE=${HUOKE_BIN:-$BIN/huoke}
BARE=$BIN/examples/bare302
LOADGEN=$BIN/examples/loadgen
for b in "$HUOKE" "$BARE" "$LOADGEN"; do [ -x "$b" ] || die "missing $b (run without SKIP_BUILD)"; done

# ------------------------------------------------------------------ cleanup
# Deletes every key matching a pattern in short server-side steps (the runs leave
# millions of sticky keys; client-side SCAN with its default COUNT would take minutes).
redis_unlink_all() {
    local cursor=0
    while :; do
        cursor=$(redis-cli -u "$BENCH_REDIS_URL" eval "
            local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 20000)
            for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end
            return r[1]" 0 "$cursor" "$1") || return 1
        [ "$cursor" = 0 ] && return 0
    done
}

PIDS=()
cleanup() {
    local rc=$?
    set +e
    declare -F thaw >/dev/null && thaw
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        wait "$pid" 2>/dev/null
    done
    if [ -z "${KEEP:-}" ]; then
        log "dropping database $DB and Redis keys $NS:*"
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
        redis_unlink_all "$NS:*"
    else
        log "KEEP set: database $DB and Redis keys $NS:* left in place"
    fi
    log "logs and raw outputs in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ backends
log "creating database $DB"
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
DB_URL="${PG_ADMIN_URL%/*}/$DB"

JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 48)
PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=\n')"

huoke_env=(
    env -u AMQP_URL
    DATABASE_URL="$DB_URL"
    REDIS_URL="$BENCH_REDIS_URL"
    HUOKE_NAMESPACE="$NS"
    HUOKE_JWT_SECRET="$JWT_SECRET"
    HUOKE_HTTP_WORKERS=2
    # One load generator on one address: lift the per-address flood guard.
    HUOKE_SCAN_RATE_PER_IP=1000000000
    HUOKE_LOG="${HUOKE_LOG:-warn}"
)

wait_http() { # url name
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not come up at $1 (see $OUT/$2.log)"
}

start() { # name cpus cmd... ; sets LAST_PID (the server's own pid: env and taskset exec it)
    local name=$1 cpus=$2; shift 2
    local cmd=("$@")
    [ -n "$cpus" ] && cmd=(taskset -c "$cpus" "${cmd[@]}")
    "${cmd[@]}" >"$OUT/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop() { # pid
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ------------------------------------------------------------------ seed
log "seeding: tenant, $STAFF SDRs with cards, two live codes"
"${huoke_env[@]}" "$HUOKE" tenant create --slug bench --name Bench \
    --admin-email admin@bench.local --admin-password "$PASSWORD" >"$OUT/tenant.json"

start console "" "${huoke_env[@]}" "$HUOKE" serve console --listen "127.0.0.1:$CONSOLE_PORT"
CONSOLE_PID=$LAST_PID
start cards "" "${huoke_env[@]}" "$HUOKE" serve cards --listen "127.0.0.1:$CARDS_PORT"
CARDS_PID=$LAST_PID
start huoke "$SERVER_CPUS" "${huoke_env[@]}" "$HUOKE" serve codes --listen "127.0.0.1:$HUOKE_PORT"
HUOKE_PID=$LAST_PID
wait_http "http://127.0.0.1:$CONSOLE_PORT/healthz" console
wait_http "http://127.0.0.1:$CARDS_PORT/healthz" cards
wait_http "http://127.0.0.1:$HUOKE_PORT/healthz" huoke

api() { # method port path [json]
    local method=$1 port=$2 path=$3 body=${4:-}
    local args=(-sS -X "$method" "http://127.0.0.1:$port$path" -H "authorization: Bearer $TOKEN"
        -o "$OUT/api-answer" -w '%{http_code}')
    [ -n "$body" ] && args+=(-H 'content-type: application/json' -d "$body")
    local status
    status=$(curl "${args[@]}")
    case $status in
        2??) cat "$OUT/api-answer" ;;
        *) die "$method $path answered $status: $(cat "$OUT/api-answer")" ;;
    esac
}

TOKEN=$(curl -fsS "http://127.0.0.1:$CONSOLE_PORT/v1/auth/token" -H 'content-type: application/json' \
    -d "$(jq -nc --arg p "$PASSWORD" '{tenant:"bench", email:"admin@bench.local", password:$p}')" | jq -r .access_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "could not sign in"

capped='[]'
uncapped='[]'
STAFF_IDS=()
for i in $(seq 1 "$STAFF"); do
    id=$(api POST "$CONSOLE_PORT" /v1/staff \
        "$(jq -nc --arg p "$PASSWORD" --arg i "$i" '{name:("SDR " + $i), email:("sdr" + $i + "@bench.local"), roles:["sdr"], password:$p}')" | jq -r .id)
    [ -n "$id" ] && [ "$id" != null ] || die "could not create staff $i"
    STAFF_IDS+=("$id")
    api PUT "$CARDS_PORT" "/v1/cards/$id" "$(jq -nc --arg i "$i" '{display_name:("SDR " + $i)}')" >/dev/null
    capped=$(jq -c --arg id "$id" --argjson limit "$DAILY_LIMIT" '. + [{staff_id:$id, daily_limit:$limit}]' <<<"$capped")
    uncapped=$(jq -c --arg id "$id" '. + [{staff_id:$id}]' <<<"$uncapped")
done
created=$(api POST "$HUOKE_PORT" /v1/live-codes "$(jq -nc --argjson m "$capped" '{name:"bench capped", members:$m}')")
CODE_CAPPED=$(jq -r .code <<<"$created")
CODE_CAPPED_ID=$(jq -r .id <<<"$created")
CODE_UNCAPPED=$(api POST "$HUOKE_PORT" /v1/live-codes "$(jq -nc --argjson m "$uncapped" '{name:"bench uncapped", members:$m}')" | jq -r .code)
[ -n "$CODE_CAPPED" ] && [ "$CODE_CAPPED" != null ] && [ -n "$CODE_UNCAPPED" ] && [ "$CODE_UNCAPPED" != null ] \
    || die "could not create the live codes"
stop "$CONSOLE_PID"
stop "$CARDS_PID"
log "codes: capped $CODE_CAPPED, uncapped $CODE_UNCAPPED"

# ------------------------------------------------------------------ measured servers
# huoke-mem keeps its cap counters in process memory: it is restarted before each of
# its runs, which is how its counters are reset.
start_mem() {
    start huoke-mem "$SERVER_CPUS" "${huoke_env[@]}" REDIS_URL= "$HUOKE" serve codes --listen "127.0.0.1:$MEM_PORT"
    MEM_PID=$LAST_PID
}
start_mem
start bare "$SERVER_CPUS" "$BARE" "127.0.0.1:$BARE_PORT"
BARE_PID=$LAST_PID
wait_http "http://127.0.0.1:$MEM_PORT/healthz" huoke-mem
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$BARE_PORT/s/x" && break; sleep 0.1; done

url_of() {
    case $1 in
        bare) echo "http://127.0.0.1:$BARE_PORT/s/$CODE_CAPPED" ;;
        huoke) echo "http://127.0.0.1:$HUOKE_PORT/s/$CODE_CAPPED" ;;
        huoke-nocap) echo "http://127.0.0.1:$HUOKE_PORT/s/$CODE_UNCAPPED" ;;
        huoke-mem) echo "http://127.0.0.1:$MEM_PORT/s/$CODE_CAPPED" ;;
        *) die "unknown target $1" ;;
    esac
}
pid_of() {
    case $1 in
        bare) echo "$BARE_PID" ;;
        huoke | huoke-nocap) echo "$HUOKE_PID" ;;
        huoke-mem) echo "$MEM_PID" ;;
    esac
}

log "sanity check: one request per target"
for t in $TARGETS; do
    head=$(curl -s -D - -o /dev/null "$(url_of "$t")" | tr -d '\r')
    status=$(head -1 <<<"$head" | awk '{print $2}')
    location=$(sed -n 's/^[Ll]ocation: //p' <<<"$head")
    printf '    %-12s %s %s\n' "$t" "$status" "$location" >&2
    [ "$status" = 302 ] || die "$t answered $status, expected 302"
done
# The namespace is still tiny here, so a SCAN is cheap: find the counter the sanity
# request reserved, and from its day suffix the keys of every member.
first_cap=$(redis-cli -u "$BENCH_REDIS_URL" --scan --pattern "$NS:huoke:codes:cap:{$CODE_CAPPED_ID}:*" | head -1)
[ -n "$first_cap" ] || die "no cap counter in Redis under $NS: the capped code is not counting on Redis"
DAY=${first_cap##*:}
# Caps count per local day of the tenant (Asia/Shanghai unless set): a run that crosses
# local midnight must reset and check the new day's counters too.
TENANT_TZ=${TENANT_TZ:-Asia/Shanghai}
cap_keys() {
    local d id
    for d in $(printf '%s\n' "$DAY" "$(TZ=$TENANT_TZ date +%Y%m%d)" | sort -u); do
        for id in "${STAFF_IDS[@]}"; do echo "$NS:huoke:codes:cap:{$CODE_CAPPED_ID}:$id:$d"; done
    done
}
log "picks are counted on Redis: $first_cap = $(redis-cli -u "$BENCH_REDIS_URL" get "$first_cap")"

# ------------------------------------------------------------------ helpers
# CPU ticks (utime + stime, all threads) of some pids.
ticks() {
    local sum=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$sum"
}
redis_pid() { pgrep -x redis-server | head -1; }
pg_pids() { pgrep -u postgres -d ' ' postgres || true; }
# user + nice + system of the whole machine: what processes ran (irq/softirq excluded).
busy_ticks() { awk '/^cpu / {print $2+$3+$4; exit}' /proc/stat; }
secs() { awk -v v="$1" -v h="$HZ" 'BEGIN {printf "%.1f", v / h}'; }
# CPU of processes other than the servers, Redis, PostgreSQL and the load tool; a
# run where it is above 10% of one core was disturbed (e.g. someone's build) and
# is flagged in the summary.
DISTURBED_FRACTION=${DISTURBED_FRACTION:-0.10}
HZ=$(getconf CLK_TCK)
# Time the hypervisor ran someone else on our vCPUs ("steal"): a guest cannot see or
# prevent it, and a few per cent of it stalls threads for milliseconds. Runs with
# more than STEAL_LIMIT % of the machine's time stolen are flagged as well.
STEAL_LIMIT=${STEAL_LIMIT:-2}
FREEZE_OTHERS=${FREEZE_OTHERS:-1}
FROZEN=()
steal_ticks() { awk '/^cpu / {print $9 + 0, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }
steal_pct() { # "steal all" before, "steal all" after
    awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[2] - x[2];
        printf "%.1f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0)}'
}

to_ms() { # wrk value like 1.23ms / 456.78us / 1.02s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else print "nan" }'
}

reset_caps() { cap_keys | xargs redis-cli -u "$BENCH_REDIS_URL" del >/dev/null; }
port_of() {
    case $1 in
        bare) echo "$BARE_PORT" ;;
        huoke | huoke-nocap) echo "$HUOKE_PORT" ;;
        huoke-mem) echo "$MEM_PORT" ;;
    esac
}
# Scans that did not land on a member (caps full: backup or "nobody" page), from
# huoke's own huoke_scans_total counter. wrk counts a 200 page as a success, so
# this is what proves every measured scan was a real pick.
not_picked() { # target
    [ "$1" = bare ] && { echo 0; return; }
    curl -fsS "http://127.0.0.1:$(port_of "$1")/metrics" \
        | awk '/^huoke_scans_total/ && !/outcome="member"/ {s += $NF} END {printf "%d\n", s}'
}
# Scan records the server dropped instead of writing (a full buffer): a run that drops
# any did less work than it claims, so it fails.
dropped() { # target
    [ "$1" = bare ] && { echo 0; return; }
    curl -fsS "http://127.0.0.1:$(port_of "$1")/metrics" \
        | awk '/^huoke_scans_dropped_total/ {s += $NF} END {printf "%d\n", s}'
}
# Every scan the server counted (any outcome), from huoke_scans_total.
scanned() { # target
    [ "$1" = bare ] && { echo 0; return; }
    curl -fsS "http://127.0.0.1:$(port_of "$1")/metrics" \
        | awk '/^huoke_scans_total/ {s += $NF} END {printf "%d\n", s}'
}
# Every scan written to the tallies (both huoke servers share the database).
tallied() {
    psql "$DB_URL" -Atqc 'SELECT COALESCE(SUM(scans), 0) FROM scan_minutes'
}
# Scans tallied in memory reach the database within a flush interval (1 s).
FLUSH_WAIT=1.5
# While one target is measured the other servers are paused (SIGSTOP) and resumed
# after: an idle huoke process still wakes up (its timers, its queue polls, their
# database statements), and on two vCPUs a neighbour's wake-ups show in the measured
# target's tail latency. FREEZE_OTHERS=0 leaves them running.
freeze_others() { # target
    [ "$FREEZE_OTHERS" = 1 ] || return 0
    local mine p
    mine=$(pid_of "$1")
    for p in "$HUOKE_PID" "$MEM_PID" "$BARE_PID"; do
        [ "$p" = "$mine" ] && continue
        kill -STOP "$p" 2>/dev/null && FROZEN+=("$p")
    done
    return 0
}
thaw() {
    local p
    for p in "${FROZEN[@]+"${FROZEN[@]}"}"; do kill -CONT "$p" 2>/dev/null; done
    FROZEN=()
}
# Before every measured run: fresh cap counters (and a fresh huoke-mem process).
prepare() { # target
    reset_caps
    if [ "$1" = huoke-mem ]; then
        stop "$MEM_PID"
        start_mem
        wait_http "http://127.0.0.1:$MEM_PORT/healthz" huoke-mem
        curl -s -o /dev/null "$(url_of huoke-mem)"
    fi
    NOT_PICKED_BEFORE=$(not_picked "$1")
    DROPPED_BEFORE=$(dropped "$1")
    SCANNED_BEFORE=$(scanned "$1")
    [ "$1" = bare ] || { sleep "$FLUSH_WAIT"; TALLIED_BEFORE=$(tallied); }
    freeze_others "$1"
}
# After every measured run: no scan may have missed a member.
verify() { # target what
    thaw
    local now
    now=$(not_picked "$1")
    [ "$now" = "$NOT_PICKED_BEFORE" ] \
        || die "$2: $((now - NOT_PICKED_BEFORE)) scans were not picks (caps full?): raise STAFF"
    now=$(dropped "$1")
    [ "$now" = "$DROPPED_BEFORE" ] \
        || die "$2: the server dropped $((now - DROPPED_BEFORE)) scan records instead of writing them"
    [ "$1" = bare ] && return
    local scans tallies
    scans=$(( $(scanned "$1") - SCANNED_BEFORE ))
    sleep "$FLUSH_WAIT"
    tallies=$(( $(tallied) - TALLIED_BEFORE ))
    [ "$scans" = "$tallies" ] || die "$2: the server counted $scans scans but the tallies gained $tallies"
    log "$2: $scans scans, all $tallies in the tallies"
}
# The highest cap counter must stay below the limit, or some scans were not picks.
check_caps() { # what
    local top=0 v
    for v in $(cap_keys | xargs redis-cli -u "$BENCH_REDIS_URL" mget); do
        [ "${v:-0}" -gt "$top" ] 2>/dev/null && top=$v
    done
    [ "$top" -lt "$DAILY_LIMIT" ] || die "$1: a cap counter reached $top (limit $DAILY_LIMIT): raise STAFF"
    echo "$top"
}

# run_wrk target tag: runs wrk, appends "target rps p50 p90 p99 non2xx3xx cpu..." to $OUT/wrk.tsv
run_wrk() {
    local t=$1 tag=$2 url file pid before_srv before_redis before_pg before_busy
    url=$(url_of "$t")
    file="$OUT/wrk-$tag-$t.txt"
    prepare "$t"
    pid=$(pid_of "$t")
    before_srv=$(ticks "$pid"); before_redis=$(ticks "$(redis_pid)")
    # shellcheck disable=SC2046
    before_pg=$(ticks $(pg_pids)); before_busy=$(busy_ticks); local before_steal; before_steal=$(steal_ticks)
    # `times` in the subshell reports the CPU its child (wrk) used.
    ( pin "$LOAD_CPUS" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$url"; times ) >"$file" 2>&1
    local srv redis pg busy
    srv=$(( $(ticks "$pid") - before_srv )); redis=$(( $(ticks "$(redis_pid)") - before_redis ))
    # shellcheck disable=SC2046
    pg=$(( $(ticks $(pg_pids)) - before_pg )); busy=$(( $(busy_ticks) - before_busy ))
    local steal; steal=$(steal_pct "$before_steal" "$(steal_ticks)")
    local rps p50 p90 p99 bad wrk_cpu
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$file")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$file")")
    p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$file")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$file")")
    bad=$(awk '/Non-2xx or 3xx/ {print $NF}' "$file"); bad=${bad:-0}
    # children's user and system time: the last line of `times`, e.g. "0m3.1s 0m9.2s"
    wrk_cpu=$(tail -1 "$file" | awk '{
        t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] } printf "%.1f", t }')
    local other
    other=$(awk -v b="$(secs "$busy")" -v s="$(secs "$srv")" -v r="$(secs "$redis")" -v p="$(secs "$pg")" -v w="$wrk_cpu" \
        'BEGIN {o = b - s - r - p - w; printf "%.1f", o < 0 ? 0 : o}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$t" "$rps" "$p50" "$p90" "$p99" "$bad" \
        "$(secs "$srv")" "$(secs "$redis")" "$(secs "$pg")" "$wrk_cpu" "$(secs "$busy")" "$other" "$steal" >>"$OUT/wrk.tsv"
    local flag=""
    awk -v o="$other" -v d="$DURATION" -v f="$DISTURBED_FRACTION" 'BEGIN {exit !(o > d * f)}' && flag="  DISTURBED: other processes used ${other}s CPU"
    awk -v v="$steal" -v l="$STEAL_LIMIT" 'BEGIN {exit !(v > l)}' && flag="$flag  DISTURBED: ${steal}% of the machine's time stolen by the host"
    local top
    top=$(check_caps "$tag $t")
    verify "$t" "$tag $t"
    printf '    %-7s %-12s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx/3xx %s  top cap counter %s  steal %s%%%s\n' "$tag" "$t" "$rps" "$p50" "$p99" "$bad" "$top" "$steal" "$flag" >&2
}

median() { sort -n | awk '{v[NR] = $1} END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col_median() { # target column
    awk -F'\t' -v t="$1" -v c="$2" '$1 ~ /^round/ && $2 == t {print $c}' "$OUT/wrk.tsv" | median
}

# ------------------------------------------------------------------ max throughput
printf 'tag\ttarget\trps\tp50_ms\tp90_ms\tp99_ms\tnon2xx3xx\tserver_cpu_s\tredis_cpu_s\tpostgres_cpu_s\twrk_cpu_s\tmachine_busy_cpu_s\tother_cpu_s\tsteal_pct\n' >"$OUT/wrk.tsv"
log "warm-up: ${WARMUP}s of wrk per target"
for t in $TARGETS; do
    DURATION=$WARMUP run_wrk "$t" warmup
done
for r in $(seq 1 "$ROUNDS"); do
    log "round $r/$ROUNDS: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency, targets: $TARGETS"
    for t in $TARGETS; do
        run_wrk "$t" "round$r"
    done
done

# ------------------------------------------------------------------ half rate
HUOKE_MAX=$(col_median huoke 3)
HALF=${HALF_RATE:-$(awk -v m="$HUOKE_MAX" 'BEGIN {printf "%.0f", m / 2}')}
printf 'tag\ttarget\ttarget_rps\tachieved_rps\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tmax_ms\terrors\tnon3xx\tserver_cpu_s\tredis_cpu_s\tpostgres_cpu_s\tloadgen_cpu_s\tmachine_busy_cpu_s\tother_cpu_s\tsteal_pct\n' >"$OUT/half.tsv"
log "latency at half of huoke's max ($HUOKE_MAX / 2 = $HALF req/s): loadgen, ${HALF_DURATION}s (${HALF_WARMUP}s warm-up), $CONNS connections, $HALF_ROUNDS round(s)"
for r in $(seq 1 "$HALF_ROUNDS"); do
    for t in $TARGETS; do
        file="$OUT/half-round$r-$t.txt"
        prepare "$t"
        pid=$(pid_of "$t")
        before_srv=$(ticks "$pid"); before_redis=$(ticks "$(redis_pid)")
        # shellcheck disable=SC2046
        before_pg=$(ticks $(pg_pids)); before_busy=$(busy_ticks); before_steal=$(steal_ticks)
        ( pin "$LOAD_CPUS" "$LOADGEN" --url "$(url_of "$t")" --rate "$HALF" --duration "$HALF_DURATION" \
            --warmup "$HALF_WARMUP" --connections "$CONNS" --timeline "$OUT/timeline-round$r-$t.csv"; times ) >"$file" 2>&1
        srv=$(( $(ticks "$pid") - before_srv )); redis=$(( $(ticks "$(redis_pid)") - before_redis ))
        # shellcheck disable=SC2046
        pg=$(( $(ticks $(pg_pids)) - before_pg )); busy=$(( $(busy_ticks) - before_busy ))
        steal=$(steal_pct "$before_steal" "$(steal_ticks)")
        line=$(grep '^RESULT ' "$file") || die "loadgen failed for $t (see $file)"
        check_caps "half $t" >/dev/null
        verify "$t" "half $t"
        lg_cpu=$(tail -1 "$file" | awk '{
            t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] } printf "%.1f", t }')
        other=$(awk -v b="$(secs "$busy")" -v s="$(secs "$srv")" -v r="$(secs "$redis")" -v p="$(secs "$pg")" -v w="$lg_cpu" \
            'BEGIN {o = b - s - r - p - w; printf "%.1f", o < 0 ? 0 : o}')
        get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        printf 'round%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$(get target_rps)" \
            "$(get achieved_rps)" "$(get p50_ms)" "$(get p90_ms)" "$(get p99_ms)" "$(get p999_ms)" "$(get max_ms)" \
            "$(get errors)" "$(( $(get s2xx) + $(get other) ))" \
            "$(secs "$srv")" "$(secs "$redis")" "$(secs "$pg")" "$lg_cpu" "$(secs "$busy")" "$other" "$steal" >>"$OUT/half.tsv"
        flag=""
        awk -v o="$other" -v d="$HALF_DURATION" -v f="$DISTURBED_FRACTION" 'BEGIN {exit !(o > d * f)}' \
            && flag="  DISTURBED: other processes used ${other}s CPU"
        awk -v v="$steal" -v l="$STEAL_LIMIT" 'BEGIN {exit !(v > l)}' \
            && flag="$flag  DISTURBED: ${steal}% of the machine's time stolen by the host"
        printf '    round%s %-12s achieved %6s req/s  p50 %7s ms  p99 %7s ms  p99.9 %7s ms  max %7s ms  errors %s  steal %s%%%s\n' "$r" "$t" \
            "$(get achieved_rps)" "$(get p50_ms)" "$(get p99_ms)" "$(get p999_ms)" "$(get max_ms)" "$(get errors)" "$steal" "$flag" >&2
    done
done

# ------------------------------------------------------------------ profile (optional)
if [ -n "${PERF_TARGET:-}" ]; then
    command -v perf >/dev/null || die "PERF_TARGET needs perf (Debian: apt-get install -y linux-perf)"
    prepare "$PERF_TARGET"
    pid=$(pid_of "$PERF_TARGET")
    log "profiling $PERF_TARGET (pid $pid) under wrk for ${DURATION}s (not counted in the tables)"
    reset_caps
    perf record -e cpu-clock -F 999 -p "$pid" -o "$OUT/perf-$PERF_TARGET.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    perf_pid=$!
    pin "$LOAD_CPUS" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" "$(url_of "$PERF_TARGET")" >"$OUT/wrk-perf-$PERF_TARGET.txt" 2>&1
    wait "$perf_pid" || true
    thaw
    perf report -i "$OUT/perf-$PERF_TARGET.data" --no-children --sort comm --stdio 2>/dev/null \
        | grep -v '^#' | grep -v '^$' >"$OUT/perf-$PERF_TARGET-threads.txt" || true
    perf report -i "$OUT/perf-$PERF_TARGET.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -80 >"$OUT/perf-$PERF_TARGET-symbols.txt" || true
    log "profile: $OUT/perf-$PERF_TARGET-threads.txt, $OUT/perf-$PERF_TARGET-symbols.txt"
fi

# ------------------------------------------------------------------ summary
BARE_MAX=$(col_median bare 3)
{
    echo
    echo "== GET /s/{code}: huoke vs bare actix-web 302 (medians of $ROUNDS rounds) =="
    cat "$OUT/machine.txt"
    echo
    echo "max throughput: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency (keep-alive)${LOAD_CPUS:+, wrk on CPUs $LOAD_CPUS}"
    printf '%-12s %10s %8s %9s %9s %10s   %s\n' target 'req/s' 'ratio' 'p50 ms' 'p99 ms' 'rounds' 'CPU s per 100k req: server redis postgres wrk'
    for t in $TARGETS; do
        rps=$(col_median "$t" 3)
        rounds=$(awk -F'\t' -v t="$t" '$1 ~ /^round/ && $2 == t {printf "%s%s", s, $3; s = "/"}' "$OUT/wrk.tsv")
        cpu=$(awk -F'\t' -v t="$t" '$1 ~ /^round/ && $2 == t {n += $3 * '"$DURATION"'; s += $8; r += $9; p += $10; w += $11}
            END { if (n > 0) printf "%6.2f %6.2f %6.2f %6.2f", s / n * 1e5, r / n * 1e5, p / n * 1e5, w / n * 1e5 }' "$OUT/wrk.tsv")
        printf '%-12s %10s %7.1f%% %9s %9s %10s   %s\n' "$t" "$rps" \
            "$(awk -v a="$rps" -v b="$BARE_MAX" 'BEGIN {print 100 * a / b}')" \
            "$(col_median "$t" 4)" "$(col_median "$t" 6)" "$rounds" "$cpu"
    done
    echo
    echo "fixed rate: loadgen --rate $HALF (half of huoke's $HUOKE_MAX req/s) --duration $HALF_DURATION --warmup $HALF_WARMUP --connections $CONNS (median of $HALF_ROUNDS round(s))"
    printf '%-12s %10s %9s %9s %9s %9s %9s %7s   %s\n' target 'achieved' 'p50 ms' 'p90 ms' 'p99 ms' 'p99.9 ms' 'max ms' 'errors' 'p99 per round (host steal %)'
    for t in $TARGETS; do
        hm() { awk -F'\t' -v t="$t" -v c="$1" '$2 == t {print $c}' "$OUT/half.tsv" | median; }
        printf '%-12s %10s %9s %9s %9s %9s %9s %7s   %s\n' "$t" "$(hm 4)" "$(hm 5)" "$(hm 6)" "$(hm 7)" "$(hm 8)" "$(hm 9)" "$(hm 10)" \
            "$(awk -F'\t' -v t="$t" '$2 == t {printf "%s%s (%s)", s, $7, $18; s = " / "}' "$OUT/half.tsv")"
    done
    disturbed=$(awk -F'\t' -v d="$DURATION" -v f="$DISTURBED_FRACTION" '$1 ~ /^round/ && $13 > d * f {n++} END {print n + 0}' "$OUT/wrk.tsv")
    disturbed_half=$(awk -F'\t' -v d="$HALF_DURATION" -v f="$DISTURBED_FRACTION" '$1 ~ /^round/ && $17 > d * f {n++} END {print n + 0}' "$OUT/half.tsv")
    if [ "$disturbed" -gt 0 ] || [ "$disturbed_half" -gt 0 ]; then
        echo
        echo "WARNING: $disturbed wrk run(s) and $disturbed_half fixed-rate run(s) were disturbed by other processes (other_cpu_s column): rerun on a quiet machine"
    fi
    stolen=$(awk -F'\t' -v l="$STEAL_LIMIT" '$1 ~ /^round/ && $14 > l {n++} END {print n + 0}' "$OUT/wrk.tsv")
    stolen_half=$(awk -F'\t' -v l="$STEAL_LIMIT" '$1 ~ /^round/ && $18 > l {n++} END {print n + 0}' "$OUT/half.tsv")
    if [ "$stolen" -gt 0 ] || [ "$stolen_half" -gt 0 ]; then
        echo
        echo "WARNING: in $stolen wrk run(s) and $stolen_half fixed-rate run(s) the host took more than $STEAL_LIMIT% of the machine's time (steal_pct column): latencies there measure the host, rerun when it is quiet"
    fi
    echo
    ratio=$(awk -v a="$HUOKE_MAX" -v b="$BARE_MAX" 'BEGIN {printf "%.1f", 100 * a / b}')
    half_p99=$(awk -F'\t' '$2 == "huoke" {print $7}' "$OUT/half.tsv" | median)
    echo "target 1: huoke >= 60% of bare req/s: $ratio% -> $(awk -v r="$ratio" 'BEGIN {print (r >= 60 ? "MET" : "NOT MET")}')"
    echo "target 2: huoke p99 <= 5 ms at half max: ${half_p99} ms -> $(awk -v p="$half_p99" 'BEGIN {print (p <= 5 ? "MET" : "NOT MET")}')"
    echo "raw: $OUT/wrk.tsv $OUT/half.tsv"
} | tee "$OUT/summary.txt"

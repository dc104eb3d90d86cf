#!/usr/bin/env bash
# Benchmark of a bulk import: a ROWS-row NDJSON file (every row a distinct person)
# uploaded to `huoke serve intake` on PostgreSQL, then turned into captures by the
# import worker. Only intake runs, so the figures are the import's own: upload time,
# rows per second, and the process's peak resident memory (VmHWM) — which must not
# grow with the file.
#
#   bash bench/import.sh                 # ROWS=1000000
#   ROWS=100000 SKIP_BUILD=1 bash bench/import.sh
#
# Knobs: ROWS, PORT=18191, SKIP_BUILD=1, KEEP=1, BENCH_COMMIT, PG_ADMIN_URL.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROWS=${ROWS:-1000000}
PORT=${PORT:-18191}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
RUN_ID=$(date +%Y%m%d%H%M%S)_$$
DB="huoke_bench_$RUN_ID"
OUT=${OUT:-${TMPDIR:-/tmp}/huoke-import-$RUN_ID}
mkdir -p "$OUT"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
for tool in curl jq psql; do command -v "$tool" >/dev/null || die "$tool is required"; done
psql "$PG_ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1 || die "PostgreSQL not reachable at $PG_ADMIN_URL"

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release --locked --bin huoke >&2
fi
HUOKE=${HUOKE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/huoke}
[ -x "$HUOKE" ] || die "missing $HUOKE (run without SKIP_BUILD)"

PID=
cleanup() {
    local rc=$?
    set +e
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    if [ -z "${KEEP:-}" ]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
        rm -f "$OUT/leads.ndjson"
    fi
    log "raw outputs in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "generating $ROWS rows"
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"name\":\"导入 %d\",\"phone\":\"+86135%08d\",\"email\":\"i%d@import.example\",\"company\":\"Import Co\",\"industry\":\"制造\"}\n", i, i, i }' >"$OUT/leads.ndjson"
SIZE=$(stat -c %s "$OUT/leads.ndjson")

psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
export DATABASE_URL="${PG_ADMIN_URL%/*}/$DB" HUOKE_LOG=${HUOKE_LOG:-warn} HUOKE_DATA_DIR="$OUT/data" HUOKE_JWT_SECRET="bench-secret-$RUN_ID-0123456789abcdef"
unset REDIS_URL AMQP_URL
"$HUOKE" migrate >/dev/null
"$HUOKE" tenant create --slug bench --name Bench --admin-email admin@bench.local --admin-password "bench-password-1" >"$OUT/tenant.json"
TOKEN=$("$HUOKE" token --tenant bench --email admin@bench.local --ttl 86400)
"$HUOKE" serve intake --listen "127.0.0.1:$PORT" >"$OUT/huoke.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break; sleep 0.1; done
hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$PID/status"; }
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status"; }
log "before upload: RSS $(rss) MiB"
T0=$(date +%s.%N)
ANSWER=$(curl -fsS "http://127.0.0.1:$PORT/v1/leads/bulk?channel=web_form" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/x-ndjson' --data-binary @"$OUT/leads.ndjson")
T1=$(date +%s.%N)
ID=$(jq -r .import_id <<<"$ANSWER")
UPLOAD_HWM=$(hwm)
log "uploaded $SIZE bytes in $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.1f", b - a}') s; peak RSS so far $UPLOAD_HWM MiB"
while :; do
    STATUS=$(curl -fsS "http://127.0.0.1:$PORT/v1/imports/$ID" -H "authorization: Bearer $TOKEN")
    [ "$(jq -r .status <<<"$STATUS")" = done ] && break
    echo "$(date +%s) $(jq -r .rows <<<"$STATUS") $(rss)" >>"$OUT/progress.txt"
    sleep 5
done
T2=$(date +%s.%N)
{
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:   ${BENCH_COMMIT:-$(git rev-parse --short HEAD)}"
    echo "machine:  $(nproc) x $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "file:     $ROWS rows, $SIZE bytes (NDJSON)"
    echo "upload:   $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.1f", b - a}') s"
    echo "import:   $(awk -v a="$T1" -v b="$T2" 'BEGIN {printf "%.1f", b - a}') s, $(awk -v a="$T1" -v b="$T2" -v n="$ROWS" 'BEGIN {printf "%.0f", n / (b - a)}') rows/s"
    echo "result:   $(jq -c '{rows, rows_imported, rows_failed}' <<<"$STATUS")"
    echo "peak RSS: $(hwm) MiB (after the upload: $UPLOAD_HWM MiB)"
} | tee "$OUT/summary.txt"

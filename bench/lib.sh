# Shared by the benchmarks that run a whole `huoke dev` on PostgreSQL + Redis +
# RabbitMQ (bench/leads.sh, bench/routing.sh): settings, checks, a fresh run id.
# Source it after setting `BENCH_NAME`.

PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
BENCH_AMQP_URL=${BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}

RUN_ID=$(date +%Y%m%d%H%M%S)_$$
NS="bench_$RUN_ID"
DB="huoke_bench_$RUN_ID"
OUT=${OUT:-${TMPDIR:-/tmp}/huoke-$BENCH_NAME-$RUN_ID}
mkdir -p "$OUT"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

for tool in curl jq psql redis-cli; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install -y curl jq postgresql-client redis-tools)"
done
psql "$PG_ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1 || die "PostgreSQL not reachable at $PG_ADMIN_URL"
[ "$(redis-cli -u "$BENCH_REDIS_URL" ping 2>/dev/null)" = PONG ] || die "Redis not reachable at $BENCH_REDIS_URL"
timeout 2 bash -c '</dev/tcp/127.0.0.1/5672' 2>/dev/null || die "RabbitMQ not reachable on 127.0.0.1:5672"

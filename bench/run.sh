#!/usr/bin/env bash
# shellcheck disable=SC2016  # markdown backticks and GraphQL, literal on purpose
# The load harness: the release build on PostgreSQL with Redis under wrk,
# beside the ceilings of this machine, with PASS/FAIL per target.
#
#   bench/run.sh [--users N] [--duration S] [--runs R] [--connections C]
#                [--quick] [--skip-ceiling] [--keep-db]
#                [--database-url URL] [--redis-url URL]
#
#   --users N           users to seed, 1000..10000000 (default 100000)
#   --duration S        seconds per wrk run, 1..600 (default 10)
#   --runs R            wrk runs per scenario, 1..20 (default 3)
#   --connections C     connections per scenario, 1..1024 (default 32)
#   --quick             a smoke run: --users 2000 --duration 3 --runs 1
#                       (options given explicitly still win)
#   --skip-ceiling      neither build nor measure the ceilings (their ratios
#                       are SKIP)
#   --keep-db           keep the database at the end (default: dropped)
#   --database-url URL  postgres://[user@]host[:port]/name on loopback
#                       (default postgres://postgres@127.0.0.1:5432/ug_bench_run)
#   --redis-url URL     redis://host[:port][/db] on loopback
#                       (default redis://127.0.0.1:6379)
#   -h, --help          this text
#
# Builds usergraph (`cargo build --release --locked -p usergraph`) unless
# USERGRAPH_BIN names a binary, and bench/ceiling unless --skip-ceiling or
# CEILING_BIN_DIR names a directory holding its four binaries.
# Then, in one run: the ceilings (argon2-rate on all cores, R runs of S s;
# axum-json, gql-one-field and gql-redis-get, the last reading one Redis key
# per request, under wrk); the database dropped and created
# again, and the start of usergraph on it while empty (migrations applied);
# `usergraph seed --users N`, an admin, VACUUM (ANALYZE); then each scenario
# on a server started afresh (start to /ready timed again, peak RSS its
# own; the first page by EMAIL and the deep one share a server and take
# their runs in turn, me, user(id:) and users take theirs in turn with the
# one-field ceiling's, and each run of login and register follows one more
# run of argon2-rate and is judged against it): a 1 s warm-up, then R runs of S s of wrk with bench/load/
# requests.lua. Scenarios: me, user(id:), users(first: 50), the first page
# by EMAIL and one ~90 % deep, login, register (C connections each),
# /health during login on 64 connections, and a mix held near 1,000 req/s.
# Appends machine facts, tables, ratios and PASS/FAIL per target to
# bench/results/<date>-run.md. Exit status: 0 when no target fails, 3 when
# one does, 1 on an error, 2 on bad arguments. Stops everything it started
# and drops the Redis keys of its prefix, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "run.sh: $*" >&2; exit 2; }

users=
duration=
runs=
connections=
quick=0
skip_ceiling=0
keep_db=0
db_url=postgres://postgres@127.0.0.1:5432/ug_bench_run
redis_url=redis://127.0.0.1:6379
while [ $# -gt 0 ]; do
  case $1 in
    --users) users=${2:?--users needs a number}; shift 2 ;;
    --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --connections) connections=${2:?--connections needs a number}; shift 2 ;;
    --quick) quick=1; shift ;;
    --skip-ceiling) skip_ceiling=1; shift ;;
    --keep-db) keep_db=1; shift ;;
    --database-url) db_url=${2:?--database-url needs a URL}; shift 2 ;;
    --redis-url) redis_url=${2:?--redis-url needs a URL}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if [ "$quick" = 1 ]; then
  : "${users:=2000}" "${duration:=3}" "${runs:=1}"
fi
: "${users:=100000}" "${duration:=10}" "${runs:=3}" "${connections:=32}"
[[ $users =~ ^[1-9][0-9]{3,7}$ ]] && [ "$users" -le 10000000 ] || die "--users must be 1000..10000000"
[[ $duration =~ ^[1-9][0-9]{0,2}$ ]] && [ "$duration" -le 600 ] || die "--duration must be 1..600"
[[ $runs =~ ^[1-9][0-9]?$ ]] && [ "$runs" -le 20 ] || die "--runs must be 1..20"
[[ $connections =~ ^[1-9][0-9]{0,3}$ ]] && [ "$connections" -le 1024 ] || die "--connections must be 1..1024"
url_re='^(postgres(ql)?://([^@/]+@)?(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?)/([a-z_][a-z0-9_]*)$'
[[ $db_url =~ $url_re ]] ||
  die "--database-url must be postgres://[user@]host[:port]/name with a loopback host and a lower-case name"
db_name=${BASH_REMATCH[6]}
admin_url="${BASH_REMATCH[1]}/postgres"
[ "$db_name" != postgres ] || die "--database-url must not name the database postgres (it is dropped)"
[[ $redis_url =~ ^redis://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/[0-9]+)?$ ]] ||
  die "--redis-url must be redis://host[:port][/db] with a loopback host"
for tool in wrk psql curl python3 timeout; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

log() { echo "run: $*" >&2; }
fail() { log "$*"; exit 1; }
cores=$(nproc)
run_id=$(date -u +%Y%m%d%H%M%S)-$$
redis_prefix="ugbench:$run_id:"
lua=$root/bench/load/requests.lua
# The mix: its connections and the rate it is held near.
mix_conns=50
mix_rate=1000
# Login storm of the /health scenario.
storm_conns=64

# --- build -------------------------------------------------------------------
if [ -n "${USERGRAPH_BIN:-}" ]; then
  [ -x "$USERGRAPH_BIN" ] && [ -f "$USERGRAPH_BIN" ] || die "USERGRAPH_BIN=$USERGRAPH_BIN is not an executable file"
  bin=$USERGRAPH_BIN
  bin_note="USERGRAPH_BIN"
else
  log "building usergraph (release)"
  cargo build --release --locked -p usergraph
  bin=${CARGO_TARGET_DIR:-target}/release/usergraph
  bin_note="cargo build --release"
fi
bin=$(realpath "$bin")
ceiling_dir=
if [ "$skip_ceiling" = 0 ] && [ -n "${CEILING_BIN_DIR:-}" ]; then
  ceiling_dir=$(realpath "$CEILING_BIN_DIR")
elif [ "$skip_ceiling" = 0 ]; then
  log "building bench/ceiling (release)"
  if [ -f bench/ceiling/Cargo.lock ]; then
    cargo build --release --locked --manifest-path bench/ceiling/Cargo.toml
  else
    log "bench/ceiling has no Cargo.lock yet: building without --locked (keep the lock it writes)"
    cargo build --release --manifest-path bench/ceiling/Cargo.toml
  fi
  ceiling_dir=$(realpath "${CARGO_TARGET_DIR:-bench/ceiling/target}/release")
fi
if [ -n "$ceiling_dir" ]; then
  for b in axum-json gql-one-field gql-redis-get argon2-rate; do
    [ -x "$ceiling_dir/$b" ] || die "no executable $ceiling_dir/$b"
  done
fi

# --- processes and cleanup ---------------------------------------------------
work=$(mktemp -d)
launcher_pid=
server_pid=
ceiling_pid=
wrk_pids=()
db_created=0

stop_server() {
  [ -n "$launcher_pid" ] || return 0
  kill -TERM "$launcher_pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$launcher_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$launcher_pid" 2>/dev/null; then
    log "usergraph did not stop within 15 s: killing it"
    [ -z "$server_pid" ] || kill -KILL "$server_pid" 2>/dev/null || true
    kill -KILL "$launcher_pid" 2>/dev/null || true
  fi
  wait "$launcher_pid" 2>/dev/null || true
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  launcher_pid=
  server_pid=
}
stop_ceiling() {
  [ -n "$ceiling_pid" ] || return 0
  kill -TERM "$ceiling_pid" 2>/dev/null || true
  wait "$ceiling_pid" 2>/dev/null || true
  ceiling_pid=
}
# shellcheck disable=SC2329  # run by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  local p
  for p in "${wrk_pids[@]}"; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  stop_ceiling
  stop_server
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$redis_url" --scan --pattern "${redis_prefix}*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null 2>&1
  fi
  if [ "$db_created" = 1 ] && [ "$keep_db" = 0 ]; then
    PGOPTIONS='-c client_min_messages=warning' psql "$admin_url" -X -q \
      -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server KIND: `usergraph serve` on a free loopback port, timed from
# exec to the first 200 of /ready by bench/load/serve.py; KIND (fresh or
# migrated) and the milliseconds go to starts. Sets base and server_pid.
start_server() {
  local port ready
  port=$(free_port)
  base=http://127.0.0.1:$port
  rm -f "$work/ready" "$work/server.pid"
  (cd "$work" && BIND_ADDR=127.0.0.1:$port exec python3 "$root/bench/load/serve.py" \
    "$base/ready" "$work/ready" "$work/server.pid" "$work/server.log" -- "$bin" serve) &
  launcher_pid=$!
  for _ in $(seq 1 700); do
    [ -s "$work/ready" ] && break
    sleep 0.1
  done
  server_pid=$(cat "$work/server.pid" 2>/dev/null || true)
  ready=$(cat "$work/ready" 2>/dev/null || echo "no answer in 70 s")
  if ! [[ $ready =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    log "usergraph did not become ready ($ready); the end of its log:"
    tail -n 40 "$work/server.log" >&2
    exit 1
  fi
  echo "$1 $ready" >>"$work/starts"
  log "usergraph ready in $ready ms ($1 database)"
}

# record_rss GROUP: the peak resident set (VmHWM, KiB) of the running server.
record_rss() {
  local pid=$1 group=$2 kib
  kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
  echo "$group $kib" >>"$work/rss"
  log "$group: peak RSS $((kib / 1024)) MiB"
}

# start_wrk LABEL REQUESTS CONNECTIONS SECONDS CHECK [DELAY_MS]: wrk against
# $base in the background (bounded by timeout); sets wrk_pid and wrk_out.
wrk_seq=0
start_wrk() {
  local label=$1 file=$2 conns=$3 secs=$4 check=$5 delay=${6:-} threads=$cores
  if [ "$conns" -lt "$threads" ]; then threads=$conns; fi
  wrk_seq=$((wrk_seq + 1))
  wrk_out=$work/wrk-$wrk_seq.out
  env REQUESTS="$file" UNIQUE="$run_id-$wrk_seq" CHECK="$check" DELAY_MS="$delay" LABEL="$label" \
    timeout --kill-after=5 $((secs + 30)) \
    wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 10s -s "$lua" "$base" >"$wrk_out" 2>&1 &
  wrk_pid=$!
  wrk_pids+=("$wrk_pid")
}
# finish_wrk PID OUT: waits for that wrk; its BENCH line goes to runs.jsonl.
finish_wrk() {
  local rc=0 line p kept=()
  wait "$1" || rc=$?
  for p in "${wrk_pids[@]}"; do
    [ "$p" = "$1" ] || kept+=("$p")
  done
  wrk_pids=("${kept[@]}")
  line=$(grep -m 1 '^BENCH ' "$2" || true)
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    log "wrk failed (exit $rc):"
    cat "$2" >&2
    exit 1
  fi
  echo "${line#BENCH }" >>"$work/runs.jsonl"
  python3 -c '
import json, sys
r = json.loads(sys.argv[1])
s = r["duration_us"] / 1e6
rate, ok = r["requests"] / s, (r["requests"] - r["bad_responses"]) / s
p50, p99 = r["p50_us"] / 1000, r["p99_us"] / 1000
print("run: %s: %.0f req/s (%.0f ok/s), p50 %.2f ms, p99 %.2f ms, %d errors (%d shed)"
      % (r["label"], rate, ok, p50, p99, r["errors"], r["shed"]))' \
    "${line#BENCH }" >&2
}
# measure LABEL CONNECTIONS CHECK [DELAY_MS]: a 1 s warm-up, then $runs runs
# of $duration s with $work/LABEL.req.
measure() {
  local label=$1 conns=$2 check=$3 delay=${4:-} i
  echo "conns_$label	$conns" >>"$work/facts"
  start_wrk "warmup:$label" "$work/$label.req" "$conns" 1 "$check" "$delay"
  finish_wrk "$wrk_pid" "$wrk_out"
  for ((i = 1; i <= runs; i++)); do
    start_wrk "$label" "$work/$label.req" "$conns" "$duration" "$check" "$delay"
    finish_wrk "$wrk_pid" "$wrk_out"
  done
}

# measure_pair CONNECTIONS LABEL_A BASE_A REQUESTS_A CHECK_A LABEL_B BASE_B
#   REQUESTS_B CHECK_B: two sides, each a wrk label, the base URL of its
# server, its request file and whether answers are checked; a warm-up of
# each, then their runs taken in turn (A B B A A B …), so a machine that
# speeds up or slows down during the group moves both alike: for a ratio
# of the two. Leaves base at side B's.
measure_pair() {
  local conns=$1 i j order
  local -a side=("$2" "$6") url=("$3" "$7") req=("$4" "$8") check=("$5" "$9")
  for j in 0 1; do
    echo "conns_${side[j]}	$conns" >>"$work/facts"
    base=${url[j]}
    start_wrk "warmup:${side[j]}" "${req[j]}" "$conns" 1 "${check[j]}"
    finish_wrk "$wrk_pid" "$wrk_out"
  done
  for ((i = 1; i <= runs; i++)); do
    order="0 1"
    ((i % 2 == 1)) || order="1 0"
    for j in $order; do
      base=${url[j]}
      start_wrk "${side[j]}" "${req[j]}" "$conns" "$duration" "${check[j]}"
      finish_wrk "$wrk_pid" "$wrk_out"
    done
  done
  base=${url[1]}
}

psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql "$admin_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_db() { psql "$db_url" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# --- facts -------------------------------------------------------------------
: >"$work/runs.jsonl"
: >"$work/rss"
: >"$work/starts"
mode=
[ "$quick" = 0 ] || mode="Smoke run (--quick): a check of the harness, not a measurement. "
[ "$bin_note" = "USERGRAPH_BIN" ] && mode+="The binary came from USERGRAPH_BIN; check it is a release build. "
[ "$skip_ceiling" = 0 ] || mode+="--skip-ceiling: no ceilings, so their ratios are SKIP. "
{
  printf 'time\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'cores\t%s\n' "$cores"
  printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  printf 'kernel\t%s\n' "$(uname -srm)"
  printf 'rustc\t%s\n' "$(rustc -V 2>/dev/null || echo 'not found')"
  printf 'commit\t%s\n' "$(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
  printf 'usergraph\t%s\n' "$("$bin" --version 2>/dev/null || echo usergraph), \`$bin\` ($bin_note)"
  printf 'postgres\t%s\n' "$(psql "$admin_url" -X -A -t -c 'SHOW server_version' 2>/dev/null || echo '?')"
  printf 'redis\t%s\n' "$(redis-cli -u "$redis_url" INFO server 2>/dev/null | tr -d '\r' | awk -F: '/^redis_version:/ { print $2 }' || true)"
  printf 'wrk\t%s\n' "$( (wrk -v 2>&1 || true) | head -n 1)"
  printf 'users\t%s\n' "$users"
  printf 'duration\t%s\n' "$duration"
  printf 'runs\t%s\n' "$runs"
  printf 'connections\t%s\n' "$connections"
  printf 'database\t%s\n' "$db_name"
  printf 'redis_prefix\t%s\n' "$redis_prefix"
  printf 'mode\t%s\n' "${mode% }"
} >"$work/facts"
if command -v redis-cli >/dev/null; then
  [ "$(redis-cli -u "$redis_url" PING 2>/dev/null || true)" = PONG ] || fail "Redis at $redis_url does not answer PING"
else
  log "no redis-cli: Redis is not checked up front, and the keys under $redis_prefix are left behind"
fi

# --- ceilings ----------------------------------------------------------------
# start_ceiling NAME: a ceiling server on a free loopback port; sets base.
start_ceiling() {
  local port
  port=$(free_port)
  base=http://127.0.0.1:$port
  "$ceiling_dir/$1" "127.0.0.1:$port" >"$work/ceiling.log" 2>&1 &
  ceiling_pid=$!
  for _ in $(seq 1 100); do
    grep -q 'listening on' "$work/ceiling.log" && return 0
    kill -0 "$ceiling_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/ceiling.log" >&2
  fail "$1 did not start"
}
if [ "$skip_ceiling" = 0 ]; then
  for ((i = 1; i <= runs; i++)); do
    timeout $((duration + 60)) "$ceiling_dir/argon2-rate" --threads "$cores" --seconds "$duration" >>"$work/argon2"
    log "argon2-rate: $(tail -n 1 "$work/argon2")"
  done
  printf 'GET\t/\t-\t\n' >"$work/ceiling_axum.req"
  printf 'POST\t/graphql\t-\t{"query":"{ hello }"}\n' >"$work/ceiling_gql.req"
  start_ceiling axum-json
  curl -fsS "$base/" | grep -q '"message"' || fail "axum-json did not answer its JSON"
  measure ceiling_axum "$connections" 0
  record_rss "$ceiling_pid" ceiling_axum
  stop_ceiling
  start_ceiling gql-one-field
  curl -fsS -H 'content-type: application/json' -d '{"query":"{ hello }"}' "$base/graphql" |
    grep -q '"hello":"world"' || fail "gql-one-field did not answer { hello }"
  measure ceiling_gql "$connections" 0
  record_rss "$ceiling_pid" ceiling_gql
  stop_ceiling
  # The same with one Redis GET per request: what one round trip costs
  # (no target; reported beside the targets).
  REDIS_URL="$redis_url" CEILING_REDIS_KEY="${redis_prefix}ceiling:hello" start_ceiling gql-redis-get
  curl -fsS -H 'content-type: application/json' -d '{"query":"{ hello }"}' "$base/graphql" |
    grep -q '"hello":"world"' || fail "gql-redis-get did not answer { hello } from Redis"
  cp "$work/ceiling_gql.req" "$work/ceiling_gql_redis.req"
  measure ceiling_gql_redis "$connections" 0
  record_rss "$ceiling_pid" ceiling_gql_redis
  stop_ceiling
fi

# --- database, first start, seed ---------------------------------------------
log "re-creating database $db_name"
psql_admin -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)"
psql_admin -c "CREATE DATABASE $db_name"
db_created=1
jwt_secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
# Without TLS: on loopback it protects nothing, and sqlx 0.9.0 leaves Nagle
# on, so each TLS handshake waits twice for a delayed ACK (~80 ms a
# connection; sqlx#4335; see DATABASE_URL in docs/configuration.md).
export DATABASE_URL="$db_url?sslmode=disable" REDIS_URL="$redis_url" REDIS_KEY_PREFIX="$redis_prefix" \
  RATE_LIMIT_AUTH_PER_MINUTE=0 LOCKOUT_THRESHOLD=0 RUST_LOG=warn APP_ENV=development \
  JWT_SECRET="$jwt_secret" ACCESS_TOKEN_TTL=24h SHUTDOWN_GRACE=5s AUTO_MIGRATE=true
unset DATABASE_READ_URL JWT_PRIVATE_KEY_FILE BOOTSTRAP_ADMIN_EMAIL BOOTSTRAP_ADMIN_PASSWORD TRUSTED_PROXIES

start_server fresh
stop_server

seed_password=seed-password-1234
log "seeding $users users"
(cd "$work" && "$bin" seed --users "$users" --password "$seed_password") >"$work/seed.out" 2>"$work/seed.err" ||
  { cat "$work/seed.err" >&2; fail "usergraph seed failed"; }
seed_line=$(grep -m 1 '^seeded ' "$work/seed.out" || true)
log "${seed_line:-seeded}"
admin_email=bench-admin@example.com
admin_password=load-harness-admin-passphrase-7
printf '%s\n' "$admin_password" |
  (cd "$work" && "$bin" create-admin --email "$admin_email" --password-stdin) >"$work/admin.out" 2>&1 ||
  { cat "$work/admin.out" >&2; fail "usergraph create-admin failed"; }
psql_db -c "VACUUM (ANALYZE)"
printf 'seed\tSeeded by `usergraph seed`: %s; then VACUUM (ANALYZE).\n' "${seed_line:-?}" >>"$work/facts"

# What the requests need: accounts, 1,000 user ids and seeded emails in a
# random order, and the row ~90 % deep by email with the one after it.
{
  echo "admin $admin_email $admin_password"
  echo "plain seed-1@example.com $seed_password"
  echo "seed - $seed_password"
} >"$work/accounts"
psql_db -c "SELECT id FROM users WHERE email LIKE 'seed-%' ORDER BY random() LIMIT 1000" >"$work/ids"
psql_db -c "SELECT email FROM users WHERE email LIKE 'seed-%' ORDER BY random() LIMIT 1000" >"$work/emails"
depth=$((users * 9 / 10))
deep_row=$(psql_db -c "SELECT email || '|' || id FROM users ORDER BY email, id OFFSET $((depth - 1)) LIMIT 1")
next_email=$(psql_db -c "SELECT email FROM users ORDER BY email, id OFFSET $depth LIMIT 1")
[ -n "$deep_row" ] && [ -n "$next_email" ] || fail "no row $depth by email"
echo "$deep_row|$next_email" >"$work/deep"
printf 'depth\t%s\n' "$depth" >>"$work/facts"

start_server migrated
python3 bench/load/prepare.py "$base" "$work" >&2
record_rss "$server_pid" prepare
stop_server

# --- scenarios ---------------------------------------------------------------
# scenario LABEL CONNECTIONS: a server of its own, then measure.
scenario() {
  start_server migrated
  measure "$1" "$2" 1
  record_rss "$server_pid" "$1"
  stop_server
}
# me, user(id:) and users are judged against the one-field ceiling: its
# server runs beside usergraph's (idle while the other is measured) and the
# runs of the two are taken in turn (A B B A A B), so a machine that speeds
# up or slows down during the group moves both alike.
scenario_vs_ceiling() {
  local label=$1 conns=$2 app_base
  start_server migrated
  app_base=$base
  start_ceiling gql-one-field
  measure_pair "$conns" "ceiling_gql_$label" "$base" "$work/ceiling_gql.req" 0 \
    "$label" "$app_base" "$work/$label.req" 1
  record_rss "$server_pid" "$label"
  stop_ceiling
  stop_server
}
if [ "$skip_ceiling" = 0 ]; then
  scenario_vs_ceiling me "$connections"
  scenario_vs_ceiling user "$connections"
  scenario_vs_ceiling users "$connections"
else
  scenario me "$connections"
  scenario user "$connections"
  scenario users "$connections"
fi
# The deep page is judged against the first one: measured in turn.
start_server migrated
measure_pair "$connections" users_email "$base" "$work/users_email.req" 1 \
  users_deep "$base" "$work/users_deep.req" 1
record_rss "$server_pid" users_email+deep
stop_server
# login and register are judged against the argon2 rate: each of their runs
# follows a run of argon2-rate (kept in argon2_LABEL for the report, which
# divides each run by the one before it, and added to those at the start),
# so that a machine that slows down during the run moves the rate with them.
scenario_hashing() {
  local label=$1 conns=$2 i
  start_server migrated
  echo "conns_$label	$conns" >>"$work/facts"
  start_wrk "warmup:$label" "$work/$label.req" "$conns" 1 1
  finish_wrk "$wrk_pid" "$wrk_out"
  for ((i = 1; i <= runs; i++)); do
    if [ "$skip_ceiling" = 0 ]; then
      timeout $((duration + 60)) "$ceiling_dir/argon2-rate" --threads "$cores" --seconds "$duration" |
        tee -a "$work/argon2_$label" >>"$work/argon2"
      log "argon2-rate: $(tail -n 1 "$work/argon2")"
    fi
    start_wrk "$label" "$work/$label.req" "$conns" "$duration" 1
    finish_wrk "$wrk_pid" "$wrk_out"
  done
  record_rss "$server_pid" "$label"
  stop_server
}
scenario_hashing login "$connections"
scenario_hashing register "$connections"

# /health, one connection with a random pause of 0..10 ms, while login runs
# on $storm_conns connections (started 1 s before, ending 1 s after).
start_server migrated
echo "conns_login64	$storm_conns" >>"$work/facts"
echo "conns_health	1" >>"$work/facts"
start_wrk warmup:login64 "$work/login.req" "$storm_conns" 1 1
finish_wrk "$wrk_pid" "$wrk_out"
for ((i = 1; i <= runs; i++)); do
  start_wrk login64 "$work/login.req" "$storm_conns" $((duration + 2)) 1
  storm_pid=$wrk_pid
  storm_out=$wrk_out
  sleep 1
  start_wrk health "$work/health.req" 1 "$duration" 1 5
  finish_wrk "$wrk_pid" "$wrk_out"
  finish_wrk "$storm_pid" "$storm_out"
done
record_rss "$server_pid" login64
stop_server

# The mix near $mix_rate req/s: each connection pauses between requests.
# A first run at a pause of connections/rate finds what a cycle costs
# beyond the pause; the measured runs pause that much less.
start_server migrated
pause=$((mix_conns * 1000 / mix_rate))
start_wrk calibrate:mix "$work/mix.req" "$mix_conns" $((duration < 5 ? duration : 5)) 1 "$pause"
finish_wrk "$wrk_pid" "$wrk_out"
pause=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1]); conns, rate, pause = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
achieved = r["requests"] / (r["duration_us"] / 1e6)
overhead = conns * 1000 / achieved - pause if achieved > 0 else 0
print(f"{min(pause, max(1.0, conns * 1000 / rate - overhead)):.1f}")' \
  "$(tail -n 1 "$work/runs.jsonl")" "$mix_conns" "$mix_rate" "$pause")
log "mix: a mean pause of $pause ms on $mix_conns connections"
printf 'mix_delay_2x\t%s\n' "$(python3 -c 'import sys; print(int(2 * float(sys.argv[1]) + 0.5))' "$pause")" >>"$work/facts"
measure mix "$mix_conns" 1 "$pause"
record_rss "$server_pid" mix
stop_server

# --- results -----------------------------------------------------------------
out="bench/results/$(date -u +%Y-%m-%d)-run.md"
verdict=$(python3 bench/load/report.py "$work" "$work/section.md")
cat "$work/section.md" >>"$out"
cat "$work/section.md"
log "appended to $out ($verdict)"
case $verdict in
  *fail=0*) exit 0 ;;
  *) exit 3 ;;
esac

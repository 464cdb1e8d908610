#!/usr/bin/env bash
# shellcheck disable=SC2016  # GraphQL $variables and markdown backticks, literal on purpose
# The users directory on PostgreSQL with a million users: keyset pages at
# the start and near the end of three orders, substring search, the roles
# batch; latency over HTTP and the plans behind it.
#
#   bench/directory.sh [--users N] [--repeat R] [--database-url URL]
#
#   --users N           users to seed (default 1000000)
#   --repeat R          timed requests per query, 1..1000 (default 50)
#   --database-url URL  postgres://[user@]host[:port]/name on loopback
#                       (default postgres://postgres@127.0.0.1:5432/ug_bench_directory)
#   -h, --help          this text
#
# Drops and re-creates that database, runs `usergraph migrate up`, times
# `usergraph seed --users N`, then VACUUM (ANALYZE) as autovacuum would
# shortly do. Creates bench-admin@example.com, starts the release build on a
# free loopback port (auth rate limit off), logs in, and times each query
# with curl: one checked warm-up request, then R in sequence. Records
# EXPLAIN ANALYZE of the SQL equivalent of the email pages and the searches
# (written here to mirror api/src/domain/directory.rs), and appends it all to
# bench/results/<date>-directory.md. Stops the server; keeps the database
# for inspection (the results say how to drop it).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

users=1000000
repeat=50
db_url=postgres://postgres@127.0.0.1:5432/ug_bench_directory
while [ $# -gt 0 ]; do
  case $1 in
    --users) users=${2:?--users needs a number}; shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
    --database-url) db_url=${2:?--database-url needs a URL}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "directory.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $users =~ ^[1-9][0-9]{0,7}$ ]] || { echo "directory.sh: --users must be 1..99999999" >&2; exit 2; }
[[ $repeat =~ ^[1-9][0-9]{0,3}$ ]] && [ "$repeat" -le 1000 ] ||
  { echo "directory.sh: --repeat must be 1..1000" >&2; exit 2; }
url_re='^(postgres(ql)?://([^@/]+@)?(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?)/([a-z_][a-z0-9_]*)$'
[[ $db_url =~ $url_re ]] || {
  echo "directory.sh: --database-url must be postgres://[user@]host[:port]/name with a loopback host and a lower-case name" >&2
  exit 2
}
server_url=${BASH_REMATCH[1]}
name=${BASH_REMATCH[6]}
admin_url="$server_url/postgres"

bin=target/release/usergraph
[ -x "$bin" ] || cargo build --release --locked
for tool in psql curl python3; do
  command -v "$tool" >/dev/null || { echo "directory.sh: needs $tool" >&2; exit 2; }
done

work=$(mktemp -d)
pid=
stop_server() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

log() { echo "directory: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql "$admin_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_db() { psql "$db_url" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# --- database, migrations, seed -------------------------------------------
log "re-creating database $name"
psql_admin -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"
psql_admin -c "CREATE DATABASE $name"
export DATABASE_URL="$db_url" JWT_SECRET="bench-directory-secret-0123456789abcdefg" RUST_LOG=warn
"$bin" migrate up >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
trgm=$(psql_db -c "SELECT count(*) FROM pg_indexes WHERE tablename = 'users' AND indexname LIKE '%_trgm'")
[ "$trgm" = 2 ] || log "warning: the trigram indexes are missing (pg_trgm unavailable?): search will scan"

log "seeding $users users"
began=$(now)
"$bin" seed --users "$users" >"$work/seed.out"
seed_wall=$(since "$began")
seed_line=$(grep '^seeded ' "$work/seed.out")
log "$seed_line"
began=$(now)
psql_db -c "VACUUM (ANALYZE) users, user_roles"
vacuum_s=$(since "$began")
IFS='|' read -r table_size index_size < <(psql_db -c "SELECT pg_size_pretty(pg_table_size('users')), pg_size_pretty(pg_indexes_size('users'))")

# --- server ----------------------------------------------------------------
admin_email=bench-admin@example.com
admin_password=directory-bench-password-42
printf '%s\n' "$admin_password" |
  "$bin" create-admin --email "$admin_email" --password-stdin >"$work/admin.out" 2>&1 ||
  { cat "$work/admin.out" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
BIND_ADDR="127.0.0.1:$port" ACCESS_TOKEN_TTL=1h RATE_LIMIT_AUTH_PER_MINUTE=0 \
  "$bin" serve >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/health" >/dev/null || { log "no /health after 30 s"; cat "$work/server.log" >&2; exit 1; }

# body FILE QUERY [VARIABLES_JSON]: a GraphQL request body.
body() {
  local variables=${3:-}
  [ -n "$variables" ] || variables='{}'
  python3 -c 'import json, sys; json.dump({"query": sys.argv[2], "variables": json.loads(sys.argv[3])}, open(sys.argv[1], "w"))' \
    "$1" "$2" "$variables"
}
# post FILE: sends it, fails on an HTTP or GraphQL error; the answer is in
# $work/answer.json.
post() {
  local code
  code=$(curl -sS -o "$work/answer.json" -w '%{http_code}' -H 'content-type: application/json' \
    "${auth[@]}" --data-binary "@$1" "$base/graphql")
  if [ "$code" != 200 ] || grep -q '"errors"' "$work/answer.json"; then
    log "HTTP $code: $(head -c 600 "$work/answer.json")"
    exit 1
  fi
}
# pick EXPR: a Python expression over the answer's `data` (as d).
pick() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["data"]; print(eval(sys.argv[2]))' "$work/answer.json" "$1"; }

auth=()
body "$work/login.json" 'mutation($email: String!, $password: String!) { login(input: {email: $email, password: $password}) { accessToken } }' \
  "{\"email\": \"$admin_email\", \"password\": \"$admin_password\"}"
post "$work/login.json"
token=$(pick 'd["login"]["accessToken"]')
auth=(-H "authorization: Bearer $token")

# --- latency ---------------------------------------------------------------
# measure LABEL FILE: one checked warm-up, then $repeat timed requests; a
# table row with the rows returned, median and p95 (nearest rank) in ms.
: >"$work/rows.md"
measure() {
  local label=$1 file=$2 rows i out
  post "$file"
  rows=$(pick 'len(d["users"]["nodes"])')
  : >"$work/times"
  for ((i = 0; i < repeat; i++)); do
    out=$(curl -sS -o "$work/answer.json" -w '%{http_code} %{time_total}' -H 'content-type: application/json' \
      "${auth[@]}" --data-binary "@$file" "$base/graphql")
    if [ "${out%% *}" != 200 ] || grep -q '"errors"' "$work/answer.json"; then
      log "$label: HTTP ${out%% *}: $(head -c 600 "$work/answer.json")"
      exit 1
    fi
    echo "${out#* }" >>"$work/times"
  done
  python3 - "$work/times" "$label" "$rows" >>"$work/rows.md" <<'PY'
import math, statistics, sys
times = sorted(float(t) * 1000 for t in open(sys.argv[1]))
p95 = times[math.ceil(0.95 * len(times)) - 1]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {statistics.median(times):.2f} | {p95:.2f} |")
PY
  log "$(tail -n 1 "$work/rows.md")"
}

# order_pair FIELD DIRECTION: the first page, and a page 100 rows from the end.
order_pair() {
  local order="orderBy: {field: $1, direction: $2}" cursor
  body "$work/first.json" "{ users(first: 50, $order) { nodes { id email } pageInfo { endCursor } } }"
  measure "\`$1 $2\`, first page (50)" "$work/first.json"
  body "$work/end.json" "{ users(last: 100, $order) { pageInfo { startCursor } } }"
  post "$work/end.json"
  cursor=$(pick 'd["users"]["pageInfo"]["startCursor"]')
  echo "$cursor" >"$work/cursor-$1"
  body "$work/deep.json" "query(\$after: String!) { users(first: 50, after: \$after, $order) { nodes { id email } } }" \
    "{\"after\": \"$cursor\"}"
  measure "\`$1 $2\`, page after the 100th row from the end (50)" "$work/deep.json"
}
order_pair EMAIL ASC
order_pair CREATED_AT DESC
order_pair DISPLAY_NAME ASC
body "$work/search1.json" '{ users(first: 20, filter: {search: "d-12345"}) { nodes { id email } } }'
measure 'search `"d-12345"` (email), first 20' "$work/search1.json"
body "$work/search2.json" '{ users(first: 20, filter: {search: "user 98765"}) { nodes { id email } } }'
measure 'search `"user 98765"` (display name), first 20' "$work/search2.json"
body "$work/roles.json" '{ users(first: 100) { nodes { id roles { name } } } }'
measure '`CREATED_AT DESC` first 100 with `roles { name }`' "$work/roles.json"
stop_server

# --- plans -----------------------------------------------------------------
# The deep email page continues after the cursor's email (unique, so the
# id is not needed).
read -r deep_email deep_id < <(python3 -c '
import base64, json, sys
raw = sys.argv[1]
c = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
print(c["v"]["s"], c["i"])' "$(cat "$work/cursor-EMAIL")")
# explain TITLE SQL (psql variables :'v' and :'id' available): the plan's
# scan, index and timing lines.
: >"$work/plans.md"
explain() {
  {
    echo
    echo "$1:"
    echo
    echo '```'
    local shown=${2//:\'v\'/\'$deep_email\'}
    echo "-- ${shown//:\'id\'/\'$deep_id\'}"
    printf 'EXPLAIN (ANALYZE, BUFFERS) %s;\n' "$2" |
      psql_db -v v="$deep_email" -v id="$deep_id" -f - |
      grep -E 'Limit|Sort|Presorted|Scan|BitmapOr|Index Cond|Recheck|Filter|Buffers|Planning|Execution Time'
    echo '```'
  } >>"$work/plans.md"
}
explain "first page by email" \
  "SELECT id, email, email_verified, display_name, status, locked_until, created_at, updated_at, last_login_at, version FROM users ORDER BY email ASC LIMIT 51"
explain "page after the 100th row from the end by email (cursor $deep_email)" \
  "SELECT id, email, email_verified, display_name, status, locked_until, created_at, updated_at, last_login_at, version FROM users WHERE email > :'v' ORDER BY email ASC LIMIT 51"
explain 'search "d-12345"' \
  "SELECT id, email, email_verified, display_name, status, locked_until, created_at, updated_at, last_login_at, version FROM users WHERE lower(email) LIKE '%d-12345%' ESCAPE '\\' OR lower(display_name) LIKE '%d-12345%' ESCAPE '\\' ORDER BY created_at DESC, id DESC LIMIT 21"
explain 'search "user 98765"' \
  "SELECT id, email, email_verified, display_name, status, locked_until, created_at, updated_at, last_login_at, version FROM users WHERE lower(email) LIKE '%user 98765%' ESCAPE '\\' OR lower(display_name) LIKE '%user 98765%' ESCAPE '\\' ORDER BY created_at DESC, id DESC LIMIT 21"

# --- results ---------------------------------------------------------------
reading=$(python3 - "$work/rows.md" "$work/plans.md" <<'PY'
import re, sys
rows = [line.split("|")[1:-1] for line in open(sys.argv[1])]
med = [float(r[2]) for r in rows]
plans = open(sys.argv[2]).read()
pairs = [("email", med[0], med[1]), ("creation time", med[2], med[3]), ("display name", med[4], med[5])]
ratios = ", ".join(f"{n} {d / f:.2f}x ({f:.1f} vs {d:.1f} ms)" for n, f, d in pairs)
same = all(0.5 <= d / f <= 2 for _, f, d in pairs)
trgm = sorted(set(re.findall(r"Bitmap Index Scan on (ix_users_\w+_trgm)", plans)))
times = re.findall(r"Execution Time: ([0-9.]+) ms", plans)
print(
    f"Deep page over first page, by median: {ratios}; "
    + ("a page near the end of a million rows costs about what the first one does, "
       "each being one index range read for 51 rows. "
       if same else "the deep pages do NOT cost about what the first ones do: read the plans. ")
    + f"The searches answer in {med[6]:.1f} and {med[7]:.1f} ms (median) "
    + (f"through {' and '.join(trgm)} (bitmap scans, then a sort of the few matches), "
       if trgm else "WITHOUT a trigram index (the plans scan the table), ")
    + f"the database's own execution time being {times[2]} and {times[3]} ms. "
    + f"The first 100 users with their roles take {med[8]:.1f} ms: one batch for the page, "
    "and the roles of repeated requests come from the in-process cache. "
    "Requests go one at a time over loopback, so these are latencies, not throughput."
)
PY
)
out="bench/results/$(date -u +%Y-%m-%d)-directory.md"
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
pg=$(psql_db -c "SELECT current_setting('server_version') || ', shared_buffers ' || current_setting('shared_buffers') || ', work_mem ' || current_setting('work_mem')")
{
  echo
  echo "## users directory, $(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$users") users, $(date -u +%H:%M) UTC"
  echo
  echo "$(nproc) cores (${cpu:-unknown CPU}), $mem RAM, PostgreSQL $pg, $(git describe --always --dirty), release build"
  echo
  echo "- seed: \`$seed_line\` (wall $seed_wall s with start-up); \`VACUUM (ANALYZE) users, user_roles\` afterwards: $vacuum_s s"
  echo "- table \`users\`: $table_size of rows, $index_size of indexes"
  echo "- each query: one checked warm-up request, then $repeat in sequence with curl over loopback (\`time_total\`, a new connection each); p95 by nearest rank"
  echo
  echo "| query | rows | median ms | p95 ms |"
  echo "|---|---|---|---|"
  cat "$work/rows.md"
  echo
  echo "Plans: \`EXPLAIN (ANALYZE, BUFFERS)\` in psql of the SQL the directory sends (written by hand after \`segment_query\` and \`filtered\` in api/src/domain/directory.rs), after the requests above; the scan, index and timing lines."
  cat "$work/plans.md"
  echo
  echo "$reading"
  echo
  echo "The database \`$name\` is kept for inspection; drop it with \`psql $admin_url -c 'DROP DATABASE $name WITH (FORCE)'\`."
} | tee -a "$out"
log "appended to $out"

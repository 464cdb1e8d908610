#!/usr/bin/env bash
# Checks usergraph from the client side against a live development server:
# GraphiQL in a real browser, the committed schema.graphql against the
# server's introspection, schemathesis fuzzing, and the TypeScript example.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Pinned tools. The npm ones are pinned by the lockfiles of graphiql/
# (playwright-core) and scripts/node/ (@graphql-inspector/cli, graphql).
readonly PIP_SCHEMATHESIS=(schemathesis==4.32.5)
readonly STEPS=(graphiql-browser schema-diff schemathesis typescript-example)
# Test cases per GraphQL operation (8 root fields): about half a minute
# against a debug build.
readonly ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-500}"

usage() {
  cat <<EOF
Usage: $(ug_prog) [--binary PATH] [-v]

Starts PATH (default target/debug/usergraph) as a development server with
the default settings, except a throwaway SQLite database, a free loopback
port and RATE_LIMIT_AUTH_PER_MINUTE=0, then runs each step and prints
PASS/FAIL/SKIP per step and a summary. Every step runs; the exit code is 1
when any failed.

Steps:
  graphiql-browser    node scripts/graphiql-offline-check.mjs in headless
                      Chromium: schema loads, Docs lists Query's fields, a
                      query with a Bearer token from the Headers editor
                      answers; nothing leaves the origin
  schema-diff         graphql-inspector diff schema.graphql <live /graphql>
                      (the schema introspected from the URL): must print
                      "No changes detected"
  schemathesis        st run <live /graphql> (schema by introspection),
                      signed in as a fresh user, --max-examples
                      $ST_MAX_EXAMPLES: no HTTP 5xx, no INTERNAL_SERVER_ERROR
                      (or uncoded) error, well-formed GraphQL responses
  typescript-example  examples/typescript/run.sh <live /graphql>: codegen
                      from the live URL, tsc --strict, then the round trip

Tools, installed when missing: Chromium (apt-get install chromium, as root;
or set CHROMIUM=/path), npm ci in graphiql/ and scripts/node/ (skipped while
node_modules matches the lockfile), and ${PIP_SCHEMATHESIS[*]} in a venv
under \$UG_TOOLS_DIR (default ~/.cache/usergraph-tools)/schemathesis-venv.
The GraphiQL screenshot and the server log are left in
target/client-checks/.

Options:
  --binary PATH   the usergraph binary to test (default target/debug/usergraph)
  -v, --verbose   show every step's whole output (default: its tail on FAIL,
                  its last line on PASS)
  -h, --help      show this help

Environment:
  UG_TOOLS_DIR     tool cache (default: \$HOME/.cache/usergraph-tools)
  ST_MAX_EXAMPLES  schemathesis --max-examples (default 500)
  CHROMIUM         Chromium executable (default /usr/bin/chromium)

Exit codes:
  0  every step passed (or was skipped)
  1  at least one step failed
  2  bad command line
  3  a required tool (node, npm, python3, curl, timeout, flock, sha256sum)
     is missing
  4  the server did not start
EOF
}

BINARY=target/debug/usergraph VERBOSE=0
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --binary) [[ $# -ge 2 ]] || usage_error "--binary needs a path"; BINARY="$2"; shift ;;
    --binary=*) BINARY="${1#--binary=}" ;;
    -v | --verbose) VERBOSE=1 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done

ROOT="$UG_REPO_ROOT"
cd "$ROOT"
[[ -f "$BINARY" && -x "$BINARY" ]] || die "$EX_USAGE" "not an executable: $BINARY (build it with cargo build -p usergraph)"
BINARY="$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")"
require_tool node npm python3 curl timeout flock sha256sum

readonly EX_SERVER=4
TOOLS_DIR="${UG_TOOLS_DIR:-${HOME:-/root}/.cache/usergraph-tools}"
ST_VENV="$TOOLS_DIR/schemathesis-venv"
ARTIFACTS="$ROOT/target/client-checks"
export PIP_DISABLE_PIP_VERSION_CHECK=1 NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false NPM_CONFIG_UPDATE_NOTIFIER=false
make_tmp_dir WORK
mkdir -p "$ARTIFACTS"

# --- the server ----------------------------------------------------------------
SERVER_PID='' FAILED=0
on_exit() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -f "$WORK/server.log" ]]; then
    cp "$WORK/server.log" "$ARTIFACTS/server.log" 2>/dev/null || true
    if ((rc != 0 || FAILED)); then
      printf '\n--- server log (last 40 lines; all of it in %s) ---\n' "${ARTIFACTS#"$ROOT"/}/server.log" >&2
      tail -n 40 "$WORK/server.log" >&2 || true
    fi
  fi
  ug_cleanup
}
trap on_exit EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A development server with the default settings: a clean environment (so no
# variable of the caller leaks in) and a working directory without .env (the
# binary loads .env from its working directory or above). Only these differ:
#   DATABASE_URL  a fresh SQLite file, so every run starts empty;
#   BIND_ADDR     loopback and a free port;
#   RATE_LIMIT_AUTH_PER_MINUTE=0  the per-IP limit of register/login/
#       refreshToken (20 a minute by default) is off: schemathesis and the
#       TypeScript example make many auth calls from this one IP, and would
#       get RATE_LIMITED instead of testing anything.
start_server() {
  local port
  port="$(free_port)"
  BASE="http://127.0.0.1:$port"
  GRAPHQL_URL="$BASE/graphql"
  mkdir -p "$WORK/server"
  (
    cd "$WORK/server"
    exec env -i PATH="$PATH" \
      DATABASE_URL="sqlite://$WORK/server/usergraph.db?mode=rwc" \
      BIND_ADDR="127.0.0.1:$port" \
      RATE_LIMIT_AUTH_PER_MINUTE=0 \
      "$BINARY" serve
  ) >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  local _
  for _ in $(seq 1 300); do
    # Ours, not another process that took the port meanwhile: alive, and
    # its log names the address.
    if curl -fsS -o /dev/null "$BASE/health" 2>/dev/null &&
      kill -0 "$SERVER_PID" 2>/dev/null &&
      grep -q "addr=127.0.0.1:$port" "$WORK/server.log"; then
      log_ok "server up at $BASE (pid $SERVER_PID, $(basename "$BINARY"))"
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log_error "the server did not answer $BASE/health within 30 s"
  else
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=''
    log_error "the server exited with status $status before answering $BASE/health"
  fi
  return 1
}

# --- tools -----------------------------------------------------------------------
# Each records its failure here; the steps that need the tool fail with it.
declare -A TOOL_ERROR=()

ensure_chromium() {
  local chromium="${CHROMIUM:-/usr/bin/chromium}"
  [[ -x "$chromium" ]] && return 0
  if [[ -n "${CHROMIUM:-}" ]]; then
    TOOL_ERROR[chromium]="CHROMIUM=$chromium is not executable"
  elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    log_info "no $chromium: apt-get install chromium"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
      [[ ! -x "$chromium" ]]; then
      TOOL_ERROR[chromium]="apt-get install chromium failed"
    fi
  else
    TOOL_ERROR[chromium]="no Chromium at $chromium: install it (Debian: apt-get install chromium, as root) or set CHROMIUM=/path"
  fi
}

# ensure_npm DIR: npm ci in DIR unless node_modules was installed from the same
# lockfile (and Node version) already.
ensure_npm() {
  local dir="$1" stamp want
  stamp="$dir/node_modules/.usergraph-lock-stamp"
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1) node-$(node --version)"
  if [[ -d "$dir/node_modules" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  log_info "npm ci in ${dir#"$ROOT"/}/"
  if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm-$(basename "$dir").log" 2>&1; then
    printf '%s' "$want" >"$stamp"
  else
    TOOL_ERROR[npm-$(basename "$dir")]="npm ci in ${dir#"$ROOT"/}/ failed: $(tail -n 5 "$WORK/npm-$(basename "$dir").log")"
  fi
}

# ensure_venv is in scripts/lib/common.sh (shared with scripts/check.sh).
install_tools() {
  ensure_chromium
  ensure_npm "$ROOT/graphiql"
  ensure_npm "$ROOT/scripts/node"
  mkdir -p "$TOOLS_DIR"
  # One installer at a time (parallel runs, and scripts/check.sh, share the cache).
  exec 9>"$TOOLS_DIR/.lock"
  flock 9
  ensure_venv "$ST_VENV" "${PIP_SCHEMATHESIS[@]}" >"$WORK/pip.log" 2>&1 ||
    TOOL_ERROR[schemathesis]="pip install ${PIP_SCHEMATHESIS[*]} failed: $(tail -n 5 "$WORK/pip.log")"
  flock -u 9
}

# need TOOL...: fail the step (return 1) when a tool it needs did not install.
need() {
  local t rc=0
  for t in "$@"; do
    if [[ -n "${TOOL_ERROR[$t]:-}" ]]; then
      echo "missing tool: ${TOOL_ERROR[$t]}"
      rc=1
    fi
  done
  return "$rc"
}

# --- steps -----------------------------------------------------------------------
step_graphiql_browser() {
  need chromium npm-graphiql || return 1
  timeout 300 node scripts/graphiql-offline-check.mjs "$BASE" "$ARTIFACTS/graphiql.png"
}

step_schema_diff() {
  need npm-node || return 1
  local out rc=0
  # Exit status alone is not enough: graphql-inspector exits 0 for
  # non-breaking and dangerous changes too; only its "No changes detected"
  # means the live schema is exactly schema.graphql.
  out="$(cd scripts/node && NO_COLOR=1 FORCE_COLOR=0 timeout 120 \
    node_modules/.bin/graphql-inspector diff "$ROOT/schema.graphql" "$GRAPHQL_URL" 2>&1)" || rc=$?
  printf '%s\n' "$out"
  ((rc == 0)) || { echo "graphql-inspector exited $rc"; return 1; }
  if ! grep -q 'No changes detected' <<<"$out"; then
    echo "the live schema differs from schema.graphql (regenerate it: usergraph export-schema --out schema.graphql)"
    return 1
  fi
}

# schemathesis' own not_a_server_error treats every GraphQL error that has a
# `path` as a server failure, so it would report each UNAUTHENTICATED,
# FORBIDDEN or INVALID_TOKEN the API answers by contract. This check keeps
# what "server error" means here: an HTTP 5xx, or a GraphQL error coded
# INTERNAL_SERVER_ERROR (every error of the API carries extensions.code).
write_st_hooks() {
  cat >"$WORK/usergraph_st_hooks.py" <<'PY'
import schemathesis


@schemathesis.check
def usergraph_no_server_error(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return None  # malformed JSON is response_schema_conformance's to report
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors or []:
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        if code is None or code == "INTERNAL_SERVER_ERROR":
            raise AssertionError(f"GraphQL error with code {code!r}: {error!r}")
    return None
PY
}

# register_token EMAIL: a new account's access token, on stdout.
register_token() {
  local body
  # shellcheck disable=SC2016  # $i is a GraphQL variable, not a shell one
  body="$(printf '{"query":"mutation($i: RegisterInput!){ register(input:$i){ accessToken } }","variables":{"i":{"email":"%s","password":"correct horse battery staple 42"}}}' "$1")"
  curl -fsS "$GRAPHQL_URL" -H 'content-type: application/json' -d "$body" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["register"]["accessToken"])'
}

step_schemathesis() {
  need schemathesis || return 1
  local token
  # Signed in, the fuzzed queries get past UNAUTHENTICATED into the resolvers
  # (a fuzzed `logout` may end the session part-way; that is fine too).
  token="$(register_token "schemathesis-$RANDOM$RANDOM@example.com")" ||
    { echo "could not register a user for schemathesis"; return 1; }
  write_st_hooks
  # In $WORK: schemathesis and hypothesis write nothing into the repository.
  # One worker: parallel register/login calls would fill the server's
  # password-hashing queue and be refused with RATE_LIMITED.
  local rc=0
  (
    cd "$WORK"
    PYTHONPATH="$WORK" SCHEMATHESIS_HOOKS=usergraph_st_hooks timeout 600 \
      "$ST_VENV/bin/st" run "$GRAPHQL_URL" \
      --header "Authorization: Bearer $token" \
      --checks usergraph_no_server_error,response_schema_conformance \
      --max-examples "$ST_MAX_EXAMPLES" --workers 1 --seed 1 \
      --generation-database none --no-color --request-timeout 30
  ) >"$WORK/st.out" 2>&1 || rc=$?
  cat "$WORK/st.out"
  # Its "N generated, N passed" line, last, for the summary.
  echo "schemathesis (exit $rc): $(grep -Eo '[0-9]+ generated.*' "$WORK/st.out" | tail -n 1)"
  return "$rc"
}

step_typescript_example() {
  timeout 600 bash examples/typescript/run.sh "$GRAPHQL_URL"
}

# --- main --------------------------------------------------------------------------
log_step "tools"
install_tools
for t in "${!TOOL_ERROR[@]}"; do log_warn "$t: ${TOOL_ERROR[$t]}"; done

log_step "server"
if ! start_server; then
  FAILED=1
  exit "$EX_SERVER"
fi

declare -A RESULT=() TOOK=()
for step in "${STEPS[@]}"; do
  log_step "$step"
  started=$SECONDS rc=0
  "step_${step//-/_}" >"$WORK/$step.log" 2>&1 || rc=$?
  TOOK[$step]=$((SECONDS - started))
  if ((rc == 0)); then
    RESULT[$step]=PASS
    if ((VERBOSE)); then sed 's/^/   | /' "$WORK/$step.log"; else tail -n 1 "$WORK/$step.log" | sed 's/^/   | /'; fi
  elif ((rc == 77)); then
    RESULT[$step]=SKIP
    sed -n 's/^SKIP: /   | /p' "$WORK/$step.log"
  else
    RESULT[$step]=FAIL FAILED=1
    if ((VERBOSE)); then sed 's/^/   | /' "$WORK/$step.log"; else tail -n 60 "$WORK/$step.log" | sed 's/^/   | /'; fi
  fi
  printf '%s %s (%ss)\n' "${RESULT[$step]}" "$step" "${TOOK[$step]}"
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log_error "the server exited during $step"
    FAILED=1
    break
  fi
done

printf '\n==== client checks: %s ====\n' "$GRAPHQL_URL"
passed=0 failed=0 skipped=0
for step in "${STEPS[@]}"; do
  r="${RESULT[$step]:-FAIL}"
  case "$r" in PASS) passed=$((passed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
  printf '  %-4s %-20s %ss\n' "$r" "$step" "${TOOK[$step]:--}"
done
printf 'client-checks: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((failed == 0)) || FAILED=1
((FAILED == 0))

#!/usr/bin/env bash
# Smoke test of a running usergraph: /ready answers 200 "ready" and a GraphQL
# query `{ __typename }` answers. Used by CI after each deploy.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly EX_READY=10 EX_GRAPHQL=11 EX_PORT_FORWARD=12

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] ENV
       $(ug_prog) [options] --url BASE_URL

Check that usergraph serves: GET /ready must answer 200 with "status":"ready"
(retried while pods settle), then POST /graphql {"query":"{ __typename }"}
must answer {"data":{"__typename":"Query"}}.

With ENV (dev | prod) the service is reached through
kubectl port-forward svc/\${UG_SERVICE:-usergraph} to a local port (the
Ingress exposes only /graphql, so /ready is checked from inside); with --url
the given base URL is used as is (docker compose: http://127.0.0.1:8080).

Options:
  --url BASE_URL    test this URL instead of port-forwarding
  --retries N       attempts for /ready, 3 s apart (default: 20)
  --dry-run         print the commands instead of running them
  -h, --help        show this help

Exit codes:
  0  ready and answering GraphQL
  1  unexpected error
  2  bad command line
  3  a required tool is missing (curl; kubectl without --url)
  4  wrong kubectl context
  10 /ready did not answer 200 "ready" within the retries
  11 the GraphQL query failed
  12 kubectl port-forward did not come up
EOF
}

URL='' RETRIES=20 SERVICE="${UG_SERVICE:-usergraph}" SERVICE_PORT="${UG_SERVICE_PORT:-80}"
args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --url) [[ $# -ge 2 ]] || usage_error "--url needs a value"; URL="${2%/}"; shift ;;
    --retries) [[ $# -ge 2 ]] || usage_error "--retries needs a value"; RETRIES="$2"; shift ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ "$RETRIES" =~ ^[1-9][0-9]{0,3}$ ]] || usage_error "--retries must be a positive number"
if [[ -n "$URL" ]]; then
  [[ ${#args[@]} -eq 0 ]] || usage_error "give ENV or --url, not both"
  [[ "$URL" =~ ^https?://[^[:space:]]+$ ]] || usage_error "--url must be an http(s) URL"
else
  [[ ${#args[@]} -eq 1 ]] || usage_error "expected ENV or --url"
  validate_env "${args[0]}"
fi
require_tool curl

PF_PID=''
stop_port_forward() {
  if [[ -n "$PF_PID" ]] && kill -0 "$PF_PID" 2>/dev/null; then
    kill "$PF_PID" 2>/dev/null || true
    wait "$PF_PID" 2>/dev/null || true
  fi
  ug_cleanup
}

if [[ -z "$URL" ]]; then
  require_tool kubectl
  ENV_NAME="${args[0]}"
  NS="$(namespace_for "$ENV_NAME")"
  check_kube_context "$ENV_NAME"
  PORT="${UG_LOCAL_PORT:-18080}"
  URL="http://127.0.0.1:$PORT"
  log_step "port-forward svc/$SERVICE ($NS) to 127.0.0.1:$PORT"
  if [[ "$DRY_RUN" == 1 ]]; then
    run kubectl -n "$NS" port-forward "svc/$SERVICE" "$PORT:$SERVICE_PORT" --address 127.0.0.1
  else
    make_tmp_dir WORK
    kubectl -n "$NS" port-forward "svc/$SERVICE" "$PORT:$SERVICE_PORT" --address 127.0.0.1 >"$WORK/pf.log" 2>&1 &
    PF_PID=$!
    trap stop_port_forward EXIT
    for _ in $(seq 1 30); do
      grep -q 'Forwarding from' "$WORK/pf.log" 2>/dev/null && break
      kill -0 "$PF_PID" 2>/dev/null || break
      sleep 0.5
    done
    grep -q 'Forwarding from' "$WORK/pf.log" || {
      cat "$WORK/pf.log" >&2
      die "$EX_PORT_FORWARD" "kubectl port-forward svc/$SERVICE did not come up"
    }
  fi
fi

curl_opts=(-sS --max-time 5 -o -)
log_step "GET $URL/ready"
if [[ "$DRY_RUN" == 1 ]]; then
  run curl "${curl_opts[@]}" -w '%{http_code}' "$URL/ready"
else
  ok=0
  for ((i = 1; i <= RETRIES; i++)); do
    body="$(curl "${curl_opts[@]}" -w '\n%{http_code}' "$URL/ready" 2>&1)" || body=$'\n000'
    code="${body##*$'\n'}"
    if [[ "$code" == 200 && "$body" == *'"status":"ready"'* ]]; then
      ok=1
      break
    fi
    log_info "attempt $i/$RETRIES: /ready answered $code ${body%$'\n'*}"
    ((i < RETRIES)) && sleep "${UG_SMOKE_SLEEP:-3}"
  done
  ((ok)) || die "$EX_READY" "/ready did not answer 200 ready"
  log_ok "/ready: ${body%$'\n'*}"
fi

log_step "POST $URL/graphql { __typename }"
query='{"query":"{ __typename }"}'
if [[ "$DRY_RUN" == 1 ]]; then
  run curl "${curl_opts[@]}" -H 'Content-Type: application/json' --data "$query" "$URL/graphql"
  exit 0
fi
body="$(curl "${curl_opts[@]}" -w '\n%{http_code}' -H 'Content-Type: application/json' --data "$query" "$URL/graphql" 2>&1)" || body=$'\n000'
code="${body##*$'\n'}" body="${body%$'\n'*}"
if [[ "$code" != 200 || "${body// /}" != *'"__typename":"Query"'* ]]; then
  die "$EX_GRAPHQL" "GraphQL smoke query failed: HTTP $code $body"
fi
log_ok "GraphQL: $body"

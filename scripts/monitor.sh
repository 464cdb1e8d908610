#!/usr/bin/env bash
# One screen of usergraph health for ENV: pods, HPA, recent events, and the
# error rate and p95 latency from Prometheus.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly EX_PROMETHEUS=10 EX_BREACH=11

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] ENV

Show the state of usergraph in ENV (dev | prod): pods, the HPA, the last
events of the namespace, and from Prometheus (\$PROMETHEUS_URL, HTTP API
/api/v1/query via curl + jq): request rate, 5xx error rate, p95 latency,
GraphQL error ratio and dependency status. Thresholds match the alerts
(error rate > \${MAX_ERROR_RATE:-0.05}, p95 > \${MAX_P95_MS:-100} ms).

Without PROMETHEUS_URL the metrics part is skipped with a hint (for example
kubectl -n monitoring port-forward svc/prometheus 9090 and
PROMETHEUS_URL=http://127.0.0.1:9090).

Options:
  --window DUR     PromQL rate window (default: 5m)
  --watch SECONDS  repeat every SECONDS until interrupted
  --dry-run        print the commands instead of running them
  -h, --help       show this help

Environment:
  PROMETHEUS_URL   base URL of Prometheus
  UG_PROM_SELECTOR extra label matchers for every series, e.g.
                   'namespace="usergraph-prod"' (default: none)
  UG_KUBE_CONTEXT, UG_NAMESPACE, UG_DEPLOYMENT (as deploy.sh)

Exit codes:
  0  shown; within the thresholds (or no Prometheus configured)
  1  unexpected error
  2  bad command line
  3  a required tool is missing (kubectl; curl and jq with PROMETHEUS_URL)
  4  wrong kubectl context
  10 Prometheus did not answer or answered an error
  11 a threshold is breached (error rate or p95)
EOF
}

WINDOW=5m WATCH=0
MAX_ERROR_RATE="${MAX_ERROR_RATE:-0.05}"
MAX_P95_MS="${MAX_P95_MS:-100}"
DEPLOYMENT="${UG_DEPLOYMENT:-usergraph}"
args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --window) [[ $# -ge 2 ]] || usage_error "--window needs a value"; WINDOW="$2"; shift ;;
    --watch) [[ $# -ge 2 ]] || usage_error "--watch needs a value"; WATCH="$2"; shift ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -eq 1 ]] || usage_error "expected ENV"
ENV_NAME="${args[0]}"
validate_env "$ENV_NAME"
[[ "$WINDOW" =~ ^[0-9]+[smh]$ ]] || usage_error "invalid --window '$WINDOW' (e.g. 5m)"
[[ "$WATCH" =~ ^[0-9]+$ ]] || usage_error "--watch needs a number of seconds"
[[ "$MAX_ERROR_RATE" =~ ^[0-9]*\.?[0-9]+$ && "$MAX_P95_MS" =~ ^[0-9]+$ ]] ||
  usage_error "MAX_ERROR_RATE must be a ratio and MAX_P95_MS a whole number"

require_tool kubectl
PROM="${PROMETHEUS_URL:-}"
PROM="${PROM%/}"
[[ -n "$PROM" ]] && require_tool curl jq
NS="$(namespace_for "$ENV_NAME")"
check_kube_context "$ENV_NAME"

SEL="${UG_PROM_SELECTOR:-}"
sel() { # sel EXTRA: a label selector joining UG_PROM_SELECTOR and EXTRA
  local joined
  joined="$(printf '%s\n%s\n' "$SEL" "${1:-}" | sed '/^$/d' | paste -sd, -)"
  printf '{%s}' "$joined"
}

# prom_query PROMQL: the first sample's value, "NaN" when there is none.
prom_query() {
  local body
  body="$(curl -fsS --max-time 10 --get --data-urlencode "query=$1" "$PROM/api/v1/query")" || return 1
  jq -er 'if .status == "success" then (.data.result[0].value[1] // "NaN") else error("query failed") end' <<<"$body"
}

# fmt NUMBER SCALE DECIMALS: printf a Prometheus value, "n/a" for NaN.
fmt() {
  awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { if (v == "NaN" || v == "" || v ~ /Inf/) print "n/a"; else printf "%.*f\n", d, v * s }'
}

# over VALUE LIMIT: true when VALUE is a number greater than LIMIT.
over() {
  awk -v v="$1" -v l="$2" 'BEGIN { exit !(v != "NaN" && v !~ /Inf/ && v + 0 > l + 0) }'
}

show_once() {
  local status=0 rps err p95 gql deps
  printf '%s== usergraph %s (namespace %s) at %s ==%s\n' "$C_BOLD" "$ENV_NAME" "$NS" "$(date -u +%FT%TZ)" "$C_RESET"
  printf '\n%s-- pods --%s\n' "$C_BOLD" "$C_RESET"
  run kubectl -n "$NS" get pods -l "app.kubernetes.io/name=$DEPLOYMENT" -o wide || status=$EX_FAIL
  printf '\n%s-- autoscaler --%s\n' "$C_BOLD" "$C_RESET"
  run kubectl -n "$NS" get hpa || status=$EX_FAIL
  printf '\n%s-- recent events --%s\n' "$C_BOLD" "$C_RESET"
  if [[ "$DRY_RUN" == 1 ]]; then
    run kubectl -n "$NS" get events --sort-by=.lastTimestamp
  else
    kubectl -n "$NS" get events --sort-by=.lastTimestamp | tail -n 15 || status=$EX_FAIL
  fi

  printf '\n%s-- metrics (window %s) --%s\n' "$C_BOLD" "$WINDOW" "$C_RESET"
  if [[ -z "$PROM" ]]; then
    log_warn "PROMETHEUS_URL is not set: metrics skipped (see --help)"
    return "$status"
  fi
  local all five bucket ops q
  all="usergraph_http_requests_total$(sel)"
  five="usergraph_http_requests_total$(sel 'status=~"5.."')"
  bucket="usergraph_http_request_duration_seconds_bucket$(sel)"
  ops="usergraph_graphql_operations_total"
  local -a queries=(
    "sum(rate(${all}[$WINDOW]))"
    "sum(rate(${five}[$WINDOW])) / sum(rate(${all}[$WINDOW]))"
    "histogram_quantile(0.95, sum by (le) (rate(${bucket}[$WINDOW])))"
    "sum(rate(${ops}$(sel 'outcome="error"')[$WINDOW])) / sum(rate(${ops}$(sel)[$WINDOW]))"
    "min(usergraph_dependency_up$(sel))"
  )
  if [[ "$DRY_RUN" == 1 ]]; then
    for q in "${queries[@]}"; do
      run curl -fsS --max-time 10 --get --data-urlencode "query=$q" "$PROM/api/v1/query"
    done
    return "$status"
  fi
  if ! rps="$(prom_query "${queries[0]}")" || ! err="$(prom_query "${queries[1]}")" ||
    ! p95="$(prom_query "${queries[2]}")" || ! gql="$(prom_query "${queries[3]}")" ||
    ! deps="$(prom_query "${queries[4]}")"; then
    log_error "Prometheus at $PROM did not answer the queries"
    return "$EX_PROMETHEUS"
  fi
  printf '%-24s %s req/s\n' 'request rate' "$(fmt "$rps" 1 2)"
  printf '%-24s %s %%\n' 'HTTP 5xx error rate' "$(fmt "$err" 100 3)"
  printf '%-24s %s ms\n' 'p95 latency' "$(fmt "$p95" 1000 1)"
  printf '%-24s %s %%\n' 'GraphQL error ratio' "$(fmt "$gql" 100 3)"
  printf '%-24s %s\n' 'dependencies up (min)' "$(fmt "$deps" 1 0)"
  if over "$err" "$MAX_ERROR_RATE"; then
    log_warn "error rate $(fmt "$err" 100 3) % is over $(fmt "$MAX_ERROR_RATE" 100 1) % (docs/runbook.md#usergraphhighhttperrorrate)"
    status=$EX_BREACH
  fi
  if over "$p95" "$(awk -v m="$MAX_P95_MS" 'BEGIN { print m / 1000 }')"; then
    log_warn "p95 latency $(fmt "$p95" 1000 1) ms is over $MAX_P95_MS ms (docs/runbook.md#usergraphhighlatencyp95)"
    status=$EX_BREACH
  fi
  if [[ "$deps" == 0 ]]; then
    log_warn "a dependency is down (usergraph_dependency_up == 0): see /ready of the pods"
  fi
  return "$status"
}

if ((WATCH > 0)); then
  while true; do
    [[ -t 1 ]] && clear
    show_once || true
    sleep "$WATCH"
  done
fi
rc=0
show_once || rc=$?
exit "$rc"

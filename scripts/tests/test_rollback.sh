# shellcheck shell=bash
# rollback.sh against a fake kubectl (sourced by run.sh).

rollback_setup() {
  use_fakes kubectl
  k8s_fixture
}

test_rollback_refuses_without_yes_when_stdin_is_not_a_tty() {
  rollback_setup
  local out rc
  out="$("$SCRIPTS/rollback.sh" dev </dev/null 2>&1)" && rc=0 || rc=$?
  assert_eq 5 "$rc" "exit code"
  assert_contains "$out" "stdin is not a terminal"
  assert_not_contains "$(calls)" "rollout undo"
}

test_rollback_with_yes_undoes_then_waits() {
  rollback_setup
  local rc
  "$SCRIPTS/rollback.sh" --yes dev </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code"
  assert_eq "-n usergraph-dev rollout history deployment/usergraph
-n usergraph-dev rollout undo deployment/usergraph
-n usergraph-dev rollout status deployment/usergraph --timeout=300s" "$(calls)" "kubectl calls"
}

test_rollback_to_a_revision() {
  rollback_setup
  FAKE_KUBE_CONTEXT=arn:aws:eks:eu-west-1:123456789012:cluster/usergraph-prod \
    "$SCRIPTS/rollback.sh" -y --timeout 90s prod 3 >/dev/null 2>&1 || fail "rollback to revision 3 failed"
  assert_eq "-n usergraph rollout history deployment/usergraph
-n usergraph rollout undo deployment/usergraph --to-revision=3
-n usergraph rollout status deployment/usergraph --timeout=90s" "$(calls)" "kubectl calls"
}

test_rollback_asks_on_a_tty() {
  rollback_setup
  command -v script >/dev/null || skip "no script(1) to provide a terminal"
  local rc
  # A terminal answering "n": refused, nothing undone.
  printf 'n\n' | script -qefc "$(printf '%q ' "$SCRIPTS/rollback.sh" dev)" /dev/null >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 5 "$rc" "exit code after answering n"
  assert_not_contains "$(calls)" "rollout undo"
  # Answering "y": rolled back.
  printf 'y\n' | script -qefc "$(printf '%q ' "$SCRIPTS/rollback.sh" dev)" /dev/null >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code after answering y"
  assert_contains "$(calls)" "rollout undo deployment/usergraph"
}

test_rollback_failures_have_distinct_codes() {
  rollback_setup
  local rc
  FAKE_UNDO_RC=1 "$SCRIPTS/rollback.sh" --yes dev >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 10 "$rc" "undo failed"
  FAKE_ROLLOUT_FAIL=1 "$SCRIPTS/rollback.sh" --yes dev >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 11 "$rc" "not healthy after undo"
  FAKE_KUBE_CONTEXT=usergraph-dev "$SCRIPTS/rollback.sh" --yes prod >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 4 "$rc" "wrong context"
  "$SCRIPTS/rollback.sh" --yes dev abc >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 2 "$rc" "bad revision"
}

test_rollback_dry_run_runs_nothing() {
  rollback_setup
  local out
  out="$("$SCRIPTS/rollback.sh" --dry-run dev 2 </dev/null 2>/dev/null)" || fail "dry-run failed"
  assert_eq 0 "$(wc -l <"$FAKE_LOG")" "kubectl calls under --dry-run"
  assert_contains "$out" "+ kubectl -n usergraph-dev rollout undo deployment/usergraph --to-revision=2"
}

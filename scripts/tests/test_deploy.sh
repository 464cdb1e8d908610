# shellcheck shell=bash
# deploy.sh against a fake kubectl (sourced by run.sh).

deploy_setup() {
  needs_kustomize
  use_fakes kubectl
  k8s_fixture
}

test_deploy_runs_migration_then_rollout_in_order() {
  deploy_setup
  local out rc
  out="$("$SCRIPTS/deploy.sh" dev v1.2.3 2>&1)" && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code (output: $out)"
  assert_eq "kustomize k8s/overlays/dev
kustomize <image-overlay>
kustomize <image-migrate>
apply -f prereqs.yaml
-n usergraph-dev rollout status statefulset/postgres --timeout=240s
delete -f job.yaml --ignore-not-found --wait=true
apply -f job.yaml
wait --for=condition=complete -f job.yaml --timeout=600s
apply -f app.yaml
-n usergraph-dev rollout status deployment/usergraph --timeout=300s" "$(calls)" "kubectl calls"
  # What was applied, in order: prerequisites, the Job, the Deployment; all with the new tag.
  local pre="$FAKE_DIR/applied-1.yaml" job="$FAKE_DIR/applied-2.yaml" app="$FAKE_DIR/applied-3.yaml"
  for kind in Namespace ConfigMap Service StatefulSet ServiceAccount; do
    grep -q "^kind: $kind\$" "$pre" || fail "prerequisites lack the $kind"
  done
  ! grep -qE '^kind: (Job|Deployment)$' "$pre" || fail "prerequisites hold the Job or the Deployment"
  assert_eq "kind: Job" "$(grep '^kind:' "$job")" "second apply"
  grep -q 'image: ghcr.io/example/usergraph:v1.2.3' "$job" || fail "Job image not retagged"
  grep -q 'namespace: usergraph-dev' "$job" || fail "Job not in the overlay's namespace"
  assert_eq "kind: Deployment" "$(grep '^kind:' "$app")" "third apply"
  grep -q 'image: ghcr.io/example/usergraph:v1.2.3' "$app" || fail "Deployment image not retagged"
  grep -q 'kubernetes.io/change-cause: deploy.sh dev v1.2.3' "$app" || fail "no change-cause"
  grep -q 'namespace: usergraph-dev' "$app" || fail "overlay namespace lost"
  grep -q 'image: postgres:15' "$pre" || fail "other images must stay as they are"
}

test_deploy_with_the_job_inside_the_overlay_and_another_registry() {
  needs_kustomize
  use_fakes kubectl
  k8s_fixture_inline_job
  local out rc
  out="$(FAKE_KUBE_CONTEXT=usergraph-prod "$SCRIPTS/deploy.sh" --repository ghcr.io/acme/usergraph prod 2.0.0 2>&1)" && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code (output: $out)"
  assert_eq "kustomize k8s/overlays/prod
kustomize <image-overlay>
apply -f prereqs.yaml
delete -f job.yaml --ignore-not-found --wait=true
apply -f job.yaml
wait --for=condition=complete -f job.yaml --timeout=600s
apply -f app.yaml
-n usergraph rollout status deployment/usergraph --timeout=300s" "$(calls)" "kubectl calls"
  grep -q 'image: ghcr.io/acme/usergraph:2.0.0' "$FAKE_DIR/applied-2.yaml" || fail "Job image not moved to the new repository"
  grep -q 'image: ghcr.io/acme/usergraph:2.0.0' "$FAKE_DIR/applied-3.yaml" || fail "Deployment image not moved"
}

# fill_terraform_outputs K8S_DIR: what the documented step does after
# `terraform apply`: every REPLACE-WITH- value of the overlays'
# terraform-outputs.env replaced by a value of the shape Terraform gives.
fill_terraform_outputs() {
  local f
  for f in "$1"/overlays/*/terraform/terraform-outputs.env; do
    sed -i -E \
      -e 's#^certificate_arn=REPLACE-WITH-.*#certificate_arn=arn:aws:acm:eu-west-1:111122223333:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0#' \
      -e 's#^db_owner_secret_arn=REPLACE-WITH-.*#db_owner_secret_arn=arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-AbCdEf#' \
      -e 's#^backup_bucket=REPLACE-WITH-.*#backup_bucket=usergraph-backups-111122223333#' "$f"
    ! grep -v '^#' "$f" | grep -q 'REPLACE-WITH-' || fail "fill_terraform_outputs left a placeholder in $f"
  done
}

test_deploy_splits_the_repository_k8s_overlays() {
  needs_kustomize
  local repo_k8s="$SCRIPTS/../k8s" env ns out
  [[ -d "$repo_k8s/overlays/dev" && -d "$repo_k8s/overlays/prod" ]] || skip "no k8s/overlays in the repository yet"
  use_fakes kubectl
  cp -R "$repo_k8s" "$TEST_TMP/k8s-copy"
  fill_terraform_outputs "$TEST_TMP/k8s-copy"
  export UG_K8S_DIR="$TEST_TMP/k8s-copy"
  for env in dev prod; do
    : >"$FAKE_LOG"
    rm -f "$FAKE_DIR"/applied-*.yaml "$FAKE_DIR"/count-*
    ns="$(sed -nE 's/^namespace:[[:space:]]*([a-z0-9-]+).*/\1/p' "$repo_k8s/overlays/$env/kustomization.yaml")"
    out="$(FAKE_KUBE_CONTEXT="usergraph-$env" "$SCRIPTS/deploy.sh" "$env" 9.9.9-test 2>&1)" || fail "$env deploy failed: $out"
    grep -q '^kind: Job$' "$FAKE_DIR/applied-2.yaml" || fail "$env: no migration Job applied second"
    grep -q 'args:.*migrate' "$FAKE_DIR/applied-2.yaml" || grep -q -- '- migrate' "$FAKE_DIR/applied-2.yaml" || fail "$env: the Job does not run migrate"
    grep -qE 'image: .*usergraph:9\.9\.9-test' "$FAKE_DIR/applied-2.yaml" || fail "$env: Job image not retagged"
    grep -qE 'image: .*usergraph:9\.9\.9-test' "$FAKE_DIR/applied-3.yaml" || fail "$env: Deployment image not retagged"
    assert_eq "kind: Deployment" "$(grep '^kind:' "$FAKE_DIR/applied-3.yaml")" "$env: third apply"
    if grep -E 'image: .*usergraph[:@]' "$FAKE_DIR/applied-1.yaml" | grep -vq 9.9.9-test; then
      fail "$env: a usergraph image in the prerequisites kept an old tag"
    fi
    ! grep -q '^kind: Secret$' "$FAKE_DIR"/applied-*.yaml || fail "$env: a deploy applied a Secret"
    # The Job and the Deployment name the same content-hashed ConfigMap,
    # which the prerequisites create.
    local cm_job cm_app
    cm_job="$(grep -oE 'usergraph-config-[a-z0-9]{10}' "$FAKE_DIR/applied-2.yaml" | sort -u)"
    cm_app="$(grep -oE 'usergraph-config-[a-z0-9]{10}' "$FAKE_DIR/applied-3.yaml" | sort -u)"
    [[ -n "$cm_app" && "$cm_job" == "$cm_app" ]] || fail "$env: Job uses [$cm_job], Deployment [$cm_app]"
    grep -q "name: $cm_app\$" "$FAKE_DIR/applied-1.yaml" || fail "$env: ConfigMap $cm_app is not among the prerequisites"
    # The Secrets come from ExternalSecrets, waited for before the Job.
    assert_contains "$(calls)" "-n $ns wait --for=condition=Ready externalsecret/usergraph-migrate-secrets" "$env calls"
    assert_contains "$(calls)" "-n $ns wait --for=condition=Ready externalsecret/usergraph-secrets" "$env calls"
    [[ "$(calls | grep -n 'externalsecret/usergraph-secrets' | cut -d: -f1)" -lt "$(calls | grep -n 'apply -f job.yaml' | cut -d: -f1)" ]] ||
      fail "$env: the Job was applied before its Secrets were Ready"
    assert_contains "$(calls)" "-n $ns rollout status deployment/usergraph" "$env calls"
  done
}

test_deploy_refuses_unfilled_terraform_values() {
  needs_kustomize
  local repo_k8s="$SCRIPTS/../k8s" out rc
  [[ -d "$repo_k8s/overlays/prod/terraform" ]] || skip "no terraform-outputs.env in the repository yet"
  use_fakes kubectl
  cp -R "$repo_k8s" "$TEST_TMP/k8s-copy"
  fill_terraform_outputs "$TEST_TMP/k8s-copy"
  sed -i 's#^backup_bucket=.*#backup_bucket=REPLACE-WITH-terraform-output-backup_bucket#' "$TEST_TMP/k8s-copy/overlays/prod/terraform/terraform-outputs.env"
  export UG_K8S_DIR="$TEST_TMP/k8s-copy"
  out="$(FAKE_KUBE_CONTEXT=usergraph-prod "$SCRIPTS/deploy.sh" prod 1.0.0 2>&1)" && rc=0 || rc=$?
  assert_eq 10 "$rc" "exit code (output: $out)"
  assert_contains "$out" "REPLACE-WITH-terraform-output-backup_bucket"
  assert_contains "$out" "terraform-outputs.env"
  assert_not_contains "$(calls)" "apply" "kubectl calls"
}

test_deploy_compares_terraform_outputs() {
  needs_kustomize
  command -v jq >/dev/null || skip "no jq"
  local repo_k8s="$SCRIPTS/../k8s" out rc json="$TEST_TMP/tf.json"
  [[ -d "$repo_k8s/overlays/prod/terraform" ]] || skip "no terraform-outputs.env in the repository yet"
  use_fakes kubectl
  cp -R "$repo_k8s" "$TEST_TMP/k8s-copy"
  fill_terraform_outputs "$TEST_TMP/k8s-copy"
  export UG_K8S_DIR="$TEST_TMP/k8s-copy"
  # The shape of `terraform output -json` (a list output joined with commas).
  cat >"$json" <<'JSON'
{
  "region": {"sensitive": false, "type": "string", "value": "eu-west-1"},
  "trusted_proxies": {"sensitive": false, "type": "string", "value": "10.50.0.0/20,10.50.16.0/20,10.50.32.0/20"},
  "certificate_arn": {"sensitive": false, "type": "string", "value": "arn:aws:acm:eu-west-1:111122223333:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
  "db_owner_secret_arn": {"sensitive": false, "type": "string", "value": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-AbCdEf"},
  "backup_bucket": {"sensitive": false, "type": "string", "value": "usergraph-backups-111122223333"},
  "backup_prefix": {"sensitive": false, "type": "string", "value": "db-backups"},
  "vpc_id": {"sensitive": false, "type": "string", "value": "vpc-0123456789abcdef0"}
}
JSON
  out="$(FAKE_KUBE_CONTEXT=usergraph-prod "$SCRIPTS/deploy.sh" --terraform-outputs "$json" prod 1.0.0 2>&1)" || fail "matching outputs refused: $out"
  assert_contains "$out" "6 Terraform value(s) of the overlay match"
  # The VPC instead of the ALB's subnets, as the state might say after a change.
  jq '.trusted_proxies.value = ["10.50.0.0/16"]' "$json" >"$json.new"
  : >"$FAKE_LOG"
  out="$(FAKE_KUBE_CONTEXT=usergraph-prod "$SCRIPTS/deploy.sh" --terraform-outputs "$json.new" prod 1.0.0 2>&1)" && rc=0 || rc=$?
  assert_eq 15 "$rc" "exit code on drift (output: $out)"
  assert_contains "$out" "trusted_proxies=10.50.0.0/20,10.50.16.0/20,10.50.32.0/20, but terraform output trusted_proxies is 10.50.0.0/16"
  assert_eq "" "$(calls)" "kubectl calls after a drift"
}

test_deploy_waits_for_external_secrets_before_the_job() {
  deploy_setup
  cat >>"$UG_K8S_DIR/base/resources.yaml" <<'YAML'
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: usergraph-secrets
spec:
  secretStoreRef:
    kind: ClusterSecretStore
    name: aws-secrets-manager
  target:
    name: usergraph-secrets
YAML
  local out rc
  out="$("$SCRIPTS/deploy.sh" dev v4 2>&1)" || fail "deploy failed: $out"
  assert_eq "apply -f prereqs.yaml
-n usergraph-dev wait --for=condition=Ready externalsecret/usergraph-secrets --timeout=240s
-n usergraph-dev rollout status statefulset/postgres --timeout=240s
delete -f job.yaml --ignore-not-found --wait=true" "$(calls | sed -n 4,7p)" "calls after the render"
  : >"$FAKE_LOG"
  out="$(FAKE_WAIT_RC=1 "$SCRIPTS/deploy.sh" dev v4 2>&1)" && rc=0 || rc=$?
  assert_eq 12 "$rc" "exit code when the Secret never syncs"
  assert_contains "$out" "externalsecret/usergraph-secrets is not Ready"
  assert_not_contains "$(calls)" "apply -f job.yaml"
}

test_deploy_rolls_back_when_rollout_fails() {
  deploy_setup
  local out rc
  out="$(FAKE_ROLLOUT_FAIL=1 "$SCRIPTS/deploy.sh" --timeout 120s dev v2 2>&1)" && rc=0 || rc=$?
  assert_eq 13 "$rc" "exit code"
  assert_contains "$out" "rolled back"
  assert_eq "apply -f app.yaml
-n usergraph-dev rollout status deployment/usergraph --timeout=120s
-n usergraph-dev get pods -l app.kubernetes.io/name=usergraph
-n usergraph-dev rollout undo deployment/usergraph
-n usergraph-dev rollout status deployment/usergraph --timeout=120s" "$(calls | tail -n 5)" "calls after the failed rollout"
}

test_deploy_reports_failed_rollback() {
  deploy_setup
  local rc
  FAKE_ROLLOUT_FAIL=1 FAKE_UNDO_RC=1 "$SCRIPTS/deploy.sh" dev v2 >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 14 "$rc" "exit code when the undo fails"
  assert_contains "$(calls)" "rollout undo deployment/usergraph"
}

test_deploy_stops_before_rollout_when_migration_fails() {
  deploy_setup
  local rc
  FAKE_WAIT_RC=1 "$SCRIPTS/deploy.sh" dev v3 >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 12 "$rc" "exit code"
  assert_contains "$(calls)" "wait --for=condition=complete -f job.yaml"
  assert_not_contains "$(calls)" "apply -f app.yaml"
  assert_not_contains "$(calls)" "deployment/usergraph"
}

test_deploy_refuses_wrong_context() {
  deploy_setup
  local out rc
  out="$(FAKE_KUBE_CONTEXT=usergraph-prod "$SCRIPTS/deploy.sh" dev v1 2>&1)" && rc=0 || rc=$?
  assert_eq 4 "$rc" "exit code"
  assert_contains "$out" "does not look like environment 'dev'"
  assert_eq "" "$(calls)" "calls besides the context look-up"
  FAKE_KUBE_CONTEXT=other UG_KUBE_CONTEXT=other "$SCRIPTS/deploy.sh" prod v1 >/dev/null 2>&1 ||
    fail "UG_KUBE_CONTEXT should allow an explicitly named context"
}

test_deploy_dry_run_runs_nothing() {
  deploy_setup
  local out rc
  out="$("$SCRIPTS/deploy.sh" --dry-run prod v9 2>/dev/null)" && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code"
  assert_eq 0 "$(wc -l <"$FAKE_LOG")" "kubectl calls under --dry-run"
  assert_contains "$out" "+ kubectl config current-context"
  assert_contains "$out" "+ kubectl apply -f"
  assert_contains "$out" "+ kubectl wait --for=condition=complete"
  assert_contains "$out" "+ kubectl -n usergraph rollout status deployment/usergraph --timeout=300s"
}

test_deploy_validates_arguments() {
  use_fakes kubectl
  k8s_fixture
  local rc
  "$SCRIPTS/deploy.sh" dev >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 2 "$rc" "missing TAG"
  "$SCRIPTS/deploy.sh" staging v1 >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 2 "$rc" "unknown ENV"
  "$SCRIPTS/deploy.sh" dev 'v1;rm -rf /' >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 2 "$rc" "bad tag"
  "$SCRIPTS/deploy.sh" --bogus dev v1 >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 2 "$rc" "unknown option"
  assert_eq 0 "$(wc -l <"$FAKE_LOG")" "kubectl calls on a bad command line"
  assert_contains "$("$SCRIPTS/deploy.sh" --help)" "Exit codes:"
}

test_deploy_requires_kubectl() {
  k8s_fixture
  local rc out
  out="$(PATH="$(path_without kubectl)" "$SCRIPTS/deploy.sh" dev v1 2>&1)" && rc=0 || rc=$?
  assert_eq 3 "$rc" "exit code without kubectl"
  assert_contains "$out" "kubectl"
}

test_deploy_no_colour_when_not_a_tty() {
  deploy_setup
  local out
  out="$(env -u NO_COLOR "$SCRIPTS/deploy.sh" --dry-run dev v1 2>&1)"
  assert_not_contains "$out" $'\033[' "non-TTY output"
}

# shellcheck shell=bash
# scripts/bootstrap-cluster.sh against fake kubectl and helm (sourced by run.sh):
# the External Secrets Operator under the names Terraform's Pod Identity
# association expects, the platform objects, and the ConfigMap rds-ca.

# bootstrap_setup: fakes, a copy of k8s/ whose prod Terraform values are filled
# (UG_K8S_DIR), and a one-certificate CA bundle in $TEST_TMP/bundle.pem.
bootstrap_setup() {
  needs_kustomize
  use_fakes kubectl helm
  cp -r "$SCRIPTS/../k8s" "$TEST_TMP/k8s"
  sed -i -E 's#^(certificate_arn)=REPLACE-WITH-.*#\1=arn:aws:acm:eu-west-1:123456789012:certificate/planted#' \
    "$TEST_TMP/k8s/overlays/prod/terraform/terraform-outputs.env"
  export UG_K8S_DIR="$TEST_TMP/k8s" FAKE_KUBE_CONTEXT=usergraph-prod
  printf -- '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n' >"$TEST_TMP/bundle.pem"
}

test_bootstrap_installs_eso_platform_and_rds_ca_in_order() {
  bootstrap_setup
  local out
  out="$("$SCRIPTS/bootstrap-cluster.sh" --rds-ca-file "$TEST_TMP/bundle.pem" prod 2>&1)" || fail "bootstrap failed: $out"
  assert_eq "helm upgrade --install external-secrets external-secrets --repo https://charts.external-secrets.io --version 2.12.0 --namespace external-secrets --create-namespace --values k8s/platform/external-secrets/values.yaml --wait --timeout 10m
-n external-secrets get serviceaccount external-secrets -o name
kustomize k8s/overlays/prod/platform
apply -f <tmp>/platform.yaml
-n usergraph create configmap rds-ca --from-file=global-bundle.pem=<tmp>/global-bundle.pem --dry-run=client -o yaml
apply -f <tmp>/rds-ca.yaml" "$(calls | sed -E 's#(^| |=)/[^ =]*/([a-z-]+\.(yaml|pem))#\1<tmp>/\2#g')" "calls"
  grep -q 'kind: ClusterSecretStore' "$FAKE_DIR/applied-1.yaml" || fail "the platform objects were not applied first"
  py "$FAKE_DIR/applied-2.yaml" <<'PY'
import sys, yaml
cm = yaml.safe_load(open(sys.argv[1]))
assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "rds-ca", cm["metadata"]
assert cm["metadata"]["namespace"] == "usergraph", cm["metadata"]
assert "BEGIN CERTIFICATE" in cm["data"]["global-bundle.pem"], cm["data"]
PY
}

test_bootstrap_refuses_unfilled_terraform_values() {
  bootstrap_setup
  sed -i -E 's#^(certificate_arn)=.*#\1=REPLACE-WITH-terraform-output-certificate_arn#' \
    "$TEST_TMP/k8s/overlays/prod/terraform/terraform-outputs.env"
  local out rc
  out="$("$SCRIPTS/bootstrap-cluster.sh" --skip-eso --rds-ca-file "$TEST_TMP/bundle.pem" prod 2>&1)" && rc=0 || rc=$?
  assert_eq 12 "$rc" "exit code with a placeholder in the platform render"
  assert_contains "$out" "REPLACE-WITH-terraform-output-certificate_arn"
  assert_not_contains "$(calls)" "apply -f"
}

test_bootstrap_refuses_a_service_account_terraform_does_not_associate() {
  bootstrap_setup
  sed -i 's/^  name: external-secrets$/  name: eso-controller/' "$TEST_TMP/k8s/platform/external-secrets/values.yaml"
  local out rc
  out="$("$SCRIPTS/bootstrap-cluster.sh" --rds-ca-file "$TEST_TMP/bundle.pem" prod 2>&1)" && rc=0 || rc=$?
  assert_eq 10 "$rc" "exit code when the chart's ServiceAccount is not Terraform's"
  assert_contains "$out" "external-secrets/external-secrets"
  assert_eq "" "$(calls)" "calls"
}

test_bootstrap_refuses_a_bundle_without_certificates() {
  bootstrap_setup
  printf '<html>not a bundle</html>\n' >"$TEST_TMP/bundle.pem"
  local out rc
  out="$("$SCRIPTS/bootstrap-cluster.sh" --skip-eso --rds-ca-file "$TEST_TMP/bundle.pem" prod 2>&1)" && rc=0 || rc=$?
  assert_eq 13 "$rc" "exit code for a bundle without a certificate"
  assert_not_contains "$(calls)" "create configmap rds-ca"
}

#!/usr/bin/env bash
# Bootstrap one cluster, once (and again after changing what it installs), as
# a cluster administrator: everything the manifests rely on that is neither
# Terraform's nor the deploy role's to create.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# The External Secrets Operator: pinned chart, values in the repository.
readonly ESO_CHART=external-secrets
readonly ESO_CHART_REPO=https://charts.external-secrets.io
readonly ESO_CHART_VERSION=2.12.0
readonly ESO_RELEASE=external-secrets
readonly RDS_CA_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
readonly EX_NAMES=10 EX_HELM=11 EX_PLATFORM=12 EX_RDS_CA=13

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] ENV

Prepare the ENV (dev | prod) cluster for usergraph, in this order:
  1. the External Secrets Operator: helm chart $ESO_CHART $ESO_CHART_VERSION
     ($ESO_CHART_REPO) with k8s/platform/external-secrets/values.yaml, into
     the namespace and under the ServiceAccount name that Terraform's Pod
     Identity association expects (variables external_secrets_namespace and
     external_secrets_service_account of terraform/, with
     terraform/environments/ENV.tfvars); refused when the values file names
     another ServiceAccount;
  2. k8s/overlays/ENV/platform (namespace usergraph, IngressClass alb,
     StorageClass gp3, ClusterSecretStore aws-secrets-manager, network policy
     enforcement, the deploy role's RBAC), refused while its render still
     holds a REPLACE-WITH- placeholder (terraform-outputs.env not filled);
  3. the ConfigMap rds-ca in the app namespace: the RDS CA bundle
     ($RDS_CA_URL) that DATABASE_URL's
     sslmode=verify-full checks the server against (mounted at /etc/rds-ca by
     the app, the migration Job and the backup CronJob). Re-run when AWS adds
     a CA.
Idempotent: every step is an upgrade or an apply. Needs an admin access entry
on the cluster (the deploy role may edit the namespace usergraph only).

Options:
  --dry-run            print the commands instead of running them
  --rds-ca-file FILE   take the CA bundle from FILE instead of downloading it
  --skip-eso           do not install or upgrade the External Secrets Operator
  -h, --help           show this help

Environment: UG_KUBE_CONTEXT (exact context required; default: the context
name must contain the environment), UG_NAMESPACE, UG_K8S_DIR.

Exit codes:
  0  done
  1  unexpected error
  2  bad command line
  3  a required tool is missing (kubectl, helm, curl)
  4  wrong kubectl context, or no overlay for ENV
  10 the chart values and Terraform disagree on the ESO namespace or ServiceAccount
  11 helm install/upgrade of the External Secrets Operator failed, or its
     ServiceAccount is not there afterwards
  12 the platform render failed, holds placeholders, or kubectl apply failed
  13 the RDS CA bundle could not be fetched, is not a PEM bundle, or the
     ConfigMap could not be applied
EOF
}

RDS_CA_FILE='' SKIP_ESO=0
args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --rds-ca-file) [[ $# -ge 2 ]] || usage_error "--rds-ca-file needs a file"; RDS_CA_FILE="$2"; shift ;;
    --skip-eso) SKIP_ESO=1 ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -eq 1 ]] || usage_error "expected ENV"
ENV_NAME="${args[0]}"
validate_env "$ENV_NAME"
[[ -z "$RDS_CA_FILE" || -r "$RDS_CA_FILE" ]] || usage_error "cannot read --rds-ca-file '$RDS_CA_FILE'"

PLATFORM="$(overlay_dir "$ENV_NAME")/platform"
[[ -f "$PLATFORM/kustomization.yaml" ]] || die "$EX_CONTEXT" "no platform overlay at $PLATFORM"
NS="$(namespace_for "$ENV_NAME")"
VALUES="$(k8s_dir)/platform/external-secrets/values.yaml"
TF_DIR="$UG_REPO_ROOT/terraform"

# tf_value VAR: VAR of the Terraform root for ENV: environments/ENV.tfvars,
# else the default in variables.tf.
tf_value() {
  local v
  v="$(sed -nE "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([^\"]*)\".*/\1/p" "$TF_DIR/environments/$ENV_NAME.tfvars" 2>/dev/null | head -n1)"
  if [[ -z "$v" ]]; then
    v="$(awk -v var="$1" '
      $0 ~ "^variable \"" var "\"" { inside = 1 }
      inside && /^[[:space:]]*default[[:space:]]*=/ { sub(/^[^"]*"/, ""); sub(/".*$/, ""); print; exit }
      inside && /^}/ { exit }
    ' "$TF_DIR/variables.tf" 2>/dev/null)"
  fi
  printf '%s\n' "$v"
}

# values_sa: serviceAccount.name of the chart values (top level, two-space indent).
values_sa() {
  awk '/^serviceAccount:/ { inside = 1; next } inside && /^[^ #]/ { exit }
       inside && /^  name:/ { sub(/^  name:[[:space:]]*/, ""); gsub(/["\047]/, ""); print; exit }' "$VALUES"
}

# --- 0. names ------------------------------------------------------------------
[[ -f "$VALUES" ]] || die "$EX_NAMES" "no chart values at $VALUES"
ESO_NAMESPACE="$(tf_value external_secrets_namespace)"
ESO_SERVICE_ACCOUNT="$(tf_value external_secrets_service_account)"
[[ -n "$ESO_NAMESPACE" && -n "$ESO_SERVICE_ACCOUNT" ]] ||
  die "$EX_NAMES" "cannot read external_secrets_namespace / external_secrets_service_account from $TF_DIR"
if [[ "$(values_sa)" != "$ESO_SERVICE_ACCOUNT" ]]; then
  die "$EX_NAMES" "${VALUES#"$UG_REPO_ROOT"/} names ServiceAccount '$(values_sa)', but Terraform's Pod Identity association is for $ESO_NAMESPACE/$ESO_SERVICE_ACCOUNT"
fi

require_tool kubectl
((SKIP_ESO)) || require_tool helm
[[ -n "$RDS_CA_FILE" ]] || require_tool curl
check_kube_context "$ENV_NAME"
log_step "bootstrap the $ENV_NAME cluster (ESO $ESO_NAMESPACE/$ESO_SERVICE_ACCOUNT, app namespace $NS)"
[[ "$DRY_RUN" == 1 ]] && log_info "dry-run: commands are printed, nothing is run"
make_tmp_dir WORK

# --- 1. External Secrets Operator ---------------------------------------------
if ((SKIP_ESO)); then
  log_warn "--skip-eso: the External Secrets Operator is left as it is"
else
  log_step "External Secrets Operator: chart $ESO_CHART $ESO_CHART_VERSION into $ESO_NAMESPACE"
  run helm upgrade --install "$ESO_RELEASE" "$ESO_CHART" \
    --repo "$ESO_CHART_REPO" --version "$ESO_CHART_VERSION" \
    --namespace "$ESO_NAMESPACE" --create-namespace \
    --values "$VALUES" --wait --timeout 10m ||
    die "$EX_HELM" "helm upgrade --install $ESO_RELEASE failed"
  run kubectl -n "$ESO_NAMESPACE" get serviceaccount "$ESO_SERVICE_ACCOUNT" -o name ||
    die "$EX_HELM" "no ServiceAccount $ESO_NAMESPACE/$ESO_SERVICE_ACCOUNT after the install: the Pod Identity role would reach nobody"
  [[ "$DRY_RUN" == 1 ]] || log_ok "External Secrets Operator $ESO_CHART_VERSION runs as $ESO_NAMESPACE/$ESO_SERVICE_ACCOUNT"
fi

# --- 2. platform objects ---------------------------------------------------------
log_step "platform objects: ${PLATFORM#"$UG_REPO_ROOT"/}"
run_to "$WORK/platform.yaml" kubectl kustomize "$PLATFORM" || die "$EX_PLATFORM" "kustomize failed on $PLATFORM"
if [[ "$DRY_RUN" != 1 ]] && grep -h 'REPLACE-WITH-' "$WORK/platform.yaml" >"$WORK/placeholders.txt"; then
  sed 's/^[[:space:]]*/  /' "$WORK/placeholders.txt" | sort -u >&2
  die "$EX_PLATFORM" "the platform render still holds REPLACE-WITH- placeholders: fill k8s/overlays/$ENV_NAME/terraform/terraform-outputs.env from terraform output (docs/deployment.md)"
fi
run kubectl apply -f "$WORK/platform.yaml" || die "$EX_PLATFORM" "kubectl apply of the platform objects failed"

# --- 3. RDS CA bundle ------------------------------------------------------------
log_step "ConfigMap $NS/rds-ca (RDS CA bundle)"
bundle="$WORK/global-bundle.pem"
if [[ -n "$RDS_CA_FILE" ]]; then
  cp -- "$RDS_CA_FILE" "$bundle"
else
  run curl -fsSL --proto '=https' --tlsv1.2 --retry 3 -o "$bundle" "$RDS_CA_URL" ||
    die "$EX_RDS_CA" "could not download $RDS_CA_URL"
fi
if [[ "$DRY_RUN" != 1 ]]; then
  n="$(grep -c -- '-----BEGIN CERTIFICATE-----' "$bundle" || true)"
  ((n > 0)) || die "$EX_RDS_CA" "the RDS CA bundle holds no PEM certificate"
  log_info "RDS CA bundle: $n certificate(s)"
fi
run_to "$WORK/rds-ca.yaml" kubectl -n "$NS" create configmap rds-ca \
  --from-file=global-bundle.pem="$bundle" --dry-run=client -o yaml ||
  die "$EX_RDS_CA" "could not build the ConfigMap rds-ca"
run kubectl apply -f "$WORK/rds-ca.yaml" || die "$EX_RDS_CA" "kubectl apply of the ConfigMap rds-ca failed"

if [[ "$DRY_RUN" == 1 ]]; then
  log_info "dry-run complete: nothing was changed"
else
  log_ok "the $ENV_NAME cluster is ready for scripts/deploy.sh $ENV_NAME"
fi

#!/usr/bin/env bash
# Deploy usergraph image TAG to ENV: migrations first, then the rollout, and an
# automatic `kubectl rollout undo` when the rollout does not become healthy.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly EX_RENDER=10 EX_APPLY=11 EX_MIGRATE=12 EX_ROLLED_BACK=13 EX_ROLLBACK_FAILED=14 EX_TF_DRIFT=15

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] ENV TAG

Deploy the usergraph image TAG to ENV (dev | prod) from k8s/overlays/ENV and
its migration kustomization k8s/overlays/ENV/migrate (when that exists; else
the Jobs of the overlay itself are the migration):
  1. render both with kustomize, the image tag set through a temporary
     kustomization (images: newTag [newName]), and split the result into
     prerequisites, the migration Job and the usergraph Deployment;
  2. apply the prerequisites (config, services, policies, ExternalSecrets,
     the backup CronJob, the in-cluster database of dev, ...) and wait for
     their workloads and for every ExternalSecret to be Ready (its Secret
     written by the External Secrets Operator);
  3. replace the migration Job and wait for it (kubectl wait
     --for=condition=complete); a failed migration stops here, nothing rolled;
  4. apply the Deployment and wait for kubectl rollout status;
  5. when the rollout fails: kubectl rollout undo, wait again, exit non-zero.

TAG is an image tag ([A-Za-z0-9_][A-Za-z0-9_.-]*) or a digest (sha256:<64 hex>);
CI deploys the digest it built and signed.

Values that come from Terraform (certificate, backup bucket, owner secret,
the load balancer's subnets) are in k8s/overlays/ENV/terraform/
terraform-outputs.env: the render is refused while one still reads
REPLACE-WITH-... (fill it as docs/deployment.md says). With
--terraform-outputs, the file is compared with the state first.

Options:
  --dry-run              print the commands instead of running them
  --timeout DUR          rollout timeout (default: \${ROLLOUT_TIMEOUT:-300s})
  --migrate-timeout DUR  migration Job timeout (default: \${MIGRATE_TIMEOUT:-600s})
  --prereq-timeout DUR   wait for each ExternalSecret and each prerequisite
                         workload (default: \${PREREQ_TIMEOUT:-240s})
  --image NAME           image name as it appears in the manifests
                         (default: \$UG_IMAGE, else read from the overlay)
  --repository REPO      pull the image from REPO instead (kustomize newName,
                         e.g. ghcr.io/acme/usergraph; default: \$UG_IMAGE_REPOSITORY)
  --skip-migrate         do not run the migration Job (emergency use only)
  --terraform-outputs FILE
                         JSON of "terraform output -json" for ENV: refuse to
                         deploy when terraform-outputs.env differs from it
  -h, --help             show this help

Environment:
  UG_KUBE_CONTEXT   exact kubectl context required (default: the context name
                    must contain the environment: dev/development, prod/production)
  UG_NAMESPACE      namespace (default: the overlay's namespace:, else usergraph)
  UG_DEPLOYMENT     deployment name (default: usergraph)
  UG_K8S_DIR        kustomize tree (default: <repo>/k8s)

Exit codes:
  0  deployed and healthy
  1  unexpected error
  2  bad command line
  3  a required tool is missing (kubectl)
  4  wrong kubectl context, or no overlay for ENV
  10 kustomize render failed (or no usergraph Deployment / migration Job in
     it, or a Terraform value is still a REPLACE-WITH- placeholder)
  11 kubectl apply failed
  12 migration Job failed or timed out, or a prerequisite (in-cluster
     database, ExternalSecret) did not become ready (the running version is
     untouched)
  13 rollout failed; rolled back to the previous revision
  14 rollout failed and the rollback failed too: act now (see docs/runbook.md)
  15 --terraform-outputs: the overlay's Terraform values differ from the state
EOF
}

ENV_NAME='' TAG='' IMAGE="${UG_IMAGE:-}" REPOSITORY="${UG_IMAGE_REPOSITORY:-}" SKIP_MIGRATE=0 TF_OUTPUTS=''
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-300s}"
MIGRATE_TIMEOUT="${MIGRATE_TIMEOUT:-600s}"
# The deploy jobs' timeout-minutes (.github/workflows/ci-cd.yml) must exceed
# the worst case of these waits added up, so that a deploy is never killed
# half-way (e.g. during its own rollback).
PREREQ_TIMEOUT="${PREREQ_TIMEOUT:-240s}"
DEPLOYMENT="${UG_DEPLOYMENT:-usergraph}"

args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --timeout) [[ $# -ge 2 ]] || usage_error "--timeout needs a value"; ROLLOUT_TIMEOUT="$2"; shift ;;
    --migrate-timeout) [[ $# -ge 2 ]] || usage_error "--migrate-timeout needs a value"; MIGRATE_TIMEOUT="$2"; shift ;;
    --prereq-timeout) [[ $# -ge 2 ]] || usage_error "--prereq-timeout needs a value"; PREREQ_TIMEOUT="$2"; shift ;;
    --image) [[ $# -ge 2 ]] || usage_error "--image needs a value"; IMAGE="$2"; shift ;;
    --repository) [[ $# -ge 2 ]] || usage_error "--repository needs a value"; REPOSITORY="$2"; shift ;;
    --skip-migrate) SKIP_MIGRATE=1 ;;
    --terraform-outputs) [[ $# -ge 2 ]] || usage_error "--terraform-outputs needs a file"; TF_OUTPUTS="$2"; shift ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -eq 2 ]] || usage_error "expected ENV and TAG"
ENV_NAME="${args[0]}" TAG="${args[1]}"
validate_env "$ENV_NAME"
if [[ ! "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ && ! "$TAG" =~ ^sha256:[0-9a-f]{64}$ ]]; then
  usage_error "invalid image tag '$TAG'"
fi
[[ -z "$REPOSITORY" || "$REPOSITORY" =~ ^[a-z0-9][a-z0-9./_-]*$ ]] || usage_error "invalid --repository '$REPOSITORY' (lower case)"
for d in "$ROLLOUT_TIMEOUT" "$MIGRATE_TIMEOUT" "$PREREQ_TIMEOUT"; do
  [[ "$d" =~ ^[0-9]+(s|m|h)?$ ]] || usage_error "invalid duration '$d' (e.g. 300s, 10m)"
done

[[ -z "$TF_OUTPUTS" || -r "$TF_OUTPUTS" ]] || usage_error "cannot read --terraform-outputs file '$TF_OUTPUTS'"

# --- pre-flight ------------------------------------------------------------
require_tool kubectl
OVERLAY="$(overlay_dir "$ENV_NAME")"
NS="$(namespace_for "$ENV_NAME")"
TF_ENV_FILE="$OVERLAY/terraform/terraform-outputs.env"

# check_terraform_outputs JSON: every key of terraform-outputs.env that is a
# Terraform output in JSON (`terraform output -json`) must hold its value
# (lists joined with commas, as trusted_proxies).
check_terraform_outputs() {
  local json="$1" key value want drift=0 checked=0
  require_tool jq
  [[ -f "$TF_ENV_FILE" ]] || die "$EX_CONTEXT" "no $TF_ENV_FILE to compare with $json"
  jq -e 'type == "object"' "$json" >/dev/null 2>&1 || die "$EX_USAGE" "$json is not the JSON of terraform output -json"
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[a-z_][a-z0-9_]*$ ]] || continue
    [[ "$(jq -r --arg k "$key" 'has($k)' "$json")" == true ]] || continue
    want="$(jq -r --arg k "$key" '.[$k].value | if type == "array" then join(",") else tostring end' "$json")"
    checked=$((checked + 1))
    if [[ "$want" != "$value" ]]; then
      log_error "${TF_ENV_FILE#"$UG_REPO_ROOT"/}: $key=$value, but terraform output $key is $want"
      drift=1
    fi
  done <"$TF_ENV_FILE"
  ((drift == 0)) || die "$EX_TF_DRIFT" "the overlay's Terraform values differ from $json: update ${TF_ENV_FILE#"$UG_REPO_ROOT"/} (docs/deployment.md)"
  log_ok "$checked Terraform value(s) of the overlay match $json"
}
[[ -z "$TF_OUTPUTS" ]] || check_terraform_outputs "$TF_OUTPUTS"
check_kube_context "$ENV_NAME"
log_step "deploy usergraph:$TAG to $ENV_NAME (namespace $NS, overlay ${OVERLAY#"$UG_REPO_ROOT"/})"
[[ "$DRY_RUN" == 1 ]] && log_info "dry-run: commands are printed, nothing is run"

make_tmp_dir WORK
mkdir -p "$WORK/overlay"

# split_manifests FILE OUTDIR: one multi-document YAML into prereqs.yaml,
# job.yaml (every Job) and app.yaml (the usergraph Deployment); prints kinds.
split_manifests() {
  awk -v outdir="$2" -v dep="$DEPLOYMENT" '
    function flush(   target) {
      if (doc == "") return
      if (kind == "Job") target = outdir "/job.yaml"
      else if (kind == "Deployment" && name == dep) target = outdir "/app.yaml"
      else target = outdir "/prereqs.yaml"
      printf "---\n%s", doc >> target
      printf "%s/%s -> %s\n", kind, name, target
      doc = ""; kind = ""; name = ""; section = ""
    }
    /^---/ { flush(); next }
    {
      if ($0 ~ /^[A-Za-z]/) { section = $1 }
      if ($0 ~ /^kind:/) { kind = $2 }
      if (section == "metadata:" && $0 ~ /^  name:/) { name = $2; gsub(/["\047]/, "", name) }
      doc = doc $0 "\n"
    }
    END { flush() }
  ' "$1"
}

# image_in RENDERED: the usergraph image repository (no tag) used in the build.
image_in() {
  sed -nE 's#^[[:space:]]*-?[[:space:]]*image:[[:space:]]*["'\'']?([^"'\''[:space:]@]*usergraph[^"'\''[:space:]@]*).*#\1#p' "$1" |
    head -n1 | sed -E 's#:[^:/]*$##'
}

# --- 1. render ---------------------------------------------------------------
log_step "render k8s/overlays/$ENV_NAME with image tag $TAG"
BASE_RENDER="$WORK/base.yaml" RENDERED="$WORK/rendered.yaml"
if [[ -z "$IMAGE" ]]; then
  run_to "$BASE_RENDER" kubectl kustomize "$OVERLAY" || die "$EX_RENDER" "kustomize failed on $OVERLAY"
  if [[ "$DRY_RUN" == 1 ]]; then
    IMAGE='<usergraph image from the overlay>'
  else
    IMAGE="$(image_in "$BASE_RENDER")"
    [[ -n "$IMAGE" ]] || die "$EX_RENDER" "no usergraph image found in the overlay (pass --image)"
  fi
fi
if [[ "$TAG" == sha256:* ]]; then image_field="digest: $TAG"; else image_field="newTag: \"$TAG\""; fi
new_name="${REPOSITORY:+newName: $REPOSITORY}"

# write_override DIR TARGET [with-change-cause]: a kustomization over TARGET
# that sets the image (and annotates the Deployment for rollout history).
write_override() {
  mkdir -p "$1"
  cat >"$1/kustomization.yaml" <<EOF
# generated by deploy.sh: $ENV_NAME with $IMAGE $TAG
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$1" "$2")
images:
  - name: $IMAGE
    $image_field
    $new_name
EOF
  if [[ "${3:-}" == with-change-cause ]]; then
    cat >>"$1/kustomization.yaml" <<EOF
patches:
  - target:
      kind: Deployment
      name: $DEPLOYMENT
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: $DEPLOYMENT
        annotations:
          kubernetes.io/change-cause: "deploy.sh $ENV_NAME $TAG"
EOF
  fi
}

write_override "$WORK/overlay" "$OVERLAY" with-change-cause
run_to "$RENDERED" kubectl kustomize "$WORK/overlay" || die "$EX_RENDER" "kustomize failed with the image override"
MIGRATE_OVERLAY=''
if [[ "$SKIP_MIGRATE" != 1 && -d "$OVERLAY/migrate" ]]; then
  MIGRATE_OVERLAY="$OVERLAY/migrate"
  write_override "$WORK/migrate" "$MIGRATE_OVERLAY"
  run_to "$WORK/migrate.yaml" kubectl kustomize "$WORK/migrate" || die "$EX_RENDER" "kustomize failed on $MIGRATE_OVERLAY"
fi

PREREQS="$WORK/split/prereqs.yaml" JOB="$WORK/split/job.yaml" APP="$WORK/split/app.yaml"
mkdir -p "$WORK/split"
WAIT_FOR=() JOB_NAMES=() EXTERNAL_SECRETS=()
if [[ "$DRY_RUN" != 1 ]]; then
  {
    split_manifests "$RENDERED" "$WORK/split"
    [[ -z "$MIGRATE_OVERLAY" ]] || split_manifests "$WORK/migrate.yaml" "$WORK/split"
  } >"$WORK/split.txt"
  sed "s#$WORK/split/##" "$WORK/split.txt" >&2
  [[ -s "$APP" ]] || die "$EX_RENDER" "the build has no Deployment named $DEPLOYMENT"
  if [[ ! -s "$JOB" && "$SKIP_MIGRATE" != 1 ]]; then
    die "$EX_RENDER" "the build has no migration Job (pass --skip-migrate to deploy without one)"
  fi
  grep -qE "image:.*[:@]${TAG}([\"']|$)" "$APP" || die "$EX_RENDER" "the rendered Deployment does not use tag $TAG (is --image right?)"
  # A value Terraform must provide that nobody filled in yet.
  if grep -h 'REPLACE-WITH-' "$RENDERED" ${MIGRATE_OVERLAY:+"$WORK/migrate.yaml"} >"$WORK/placeholders.txt"; then
    sed 's/^[[:space:]]*/  /' "$WORK/placeholders.txt" | sort -u >&2
    die "$EX_RENDER" "the render still holds REPLACE-WITH- placeholders: fill ${TF_ENV_FILE#"$UG_REPO_ROOT"/} from terraform output (docs/deployment.md)"
  fi
  # Workloads among the prerequisites (dev's PostgreSQL and Redis) must be up
  # before the migration runs.
  mapfile -t WAIT_FOR < <(sed -nE 's#^(StatefulSet|Deployment)/([^ ]+) -> .*/prereqs\.yaml$#\L\1\E/\2#p' "$WORK/split.txt")
  mapfile -t JOB_NAMES < <(sed -nE 's#^Job/([^ ]+) .*#\1#p' "$WORK/split.txt")
  # The External Secrets Operator writes the Secrets the Job and the pods
  # read; wait for them rather than for a Job stuck on a missing Secret.
  mapfile -t EXTERNAL_SECRETS < <(sed -nE 's#^ExternalSecret/([^ ]+) -> .*#\1#p' "$WORK/split.txt" | sort -u)
fi

# --- 2. prerequisites ------------------------------------------------------
if [[ "$DRY_RUN" == 1 || -s "$PREREQS" ]]; then
  log_step "apply prerequisites"
  run kubectl apply -f "$PREREQS" || die "$EX_APPLY" "kubectl apply of the prerequisites failed"
fi
for es in "${EXTERNAL_SECRETS[@]+"${EXTERNAL_SECRETS[@]}"}"; do
  if ! run kubectl -n "$NS" wait --for=condition=Ready "externalsecret/$es" --timeout="$PREREQ_TIMEOUT"; then
    kubectl -n "$NS" describe "externalsecret/$es" >&2 || true
    die "$EX_MIGRATE" "externalsecret/$es is not Ready (is the External Secrets Operator running, and the secret store reachable?): nothing rolled out"
  fi
done
if [[ "$SKIP_MIGRATE" != 1 ]]; then
  for w in "${WAIT_FOR[@]+"${WAIT_FOR[@]}"}"; do
    run kubectl -n "$NS" rollout status "$w" --timeout="$PREREQ_TIMEOUT" ||
      die "$EX_MIGRATE" "$w did not become ready: migrations not run, nothing rolled out"
  done
fi

# --- 3. migrations ---------------------------------------------------------
if [[ "$SKIP_MIGRATE" == 1 ]]; then
  log_warn "--skip-migrate: the migration Job is not run"
else
  log_step "run the migration Job"
  run kubectl delete -f "$JOB" --ignore-not-found --wait=true ||
    die "$EX_APPLY" "could not delete the previous migration Job"
  run kubectl apply -f "$JOB" || die "$EX_APPLY" "kubectl apply of the migration Job failed"
  if ! run kubectl wait --for=condition=complete -f "$JOB" --timeout="$MIGRATE_TIMEOUT"; then
    log_error "the migration Job did not complete within $MIGRATE_TIMEOUT; its logs:"
    for j in "${JOB_NAMES[@]+"${JOB_NAMES[@]}"}"; do
      kubectl -n "$NS" logs "job/$j" --tail=50 >&2 || true
    done
    die "$EX_MIGRATE" "migration failed: nothing was rolled out (the running version is untouched)"
  fi
  [[ "$DRY_RUN" == 1 ]] || log_ok "migrations applied"
fi

# --- 4. rollout ------------------------------------------------------------
log_step "roll out deployment/$DEPLOYMENT"
run kubectl apply -f "$APP" || die "$EX_APPLY" "kubectl apply of deployment/$DEPLOYMENT failed"
if run kubectl -n "$NS" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"; then
  if [[ "$DRY_RUN" == 1 ]]; then log_info "dry-run complete: nothing was changed"; else log_ok "usergraph:$TAG is live in $ENV_NAME"; fi
  exit "$EX_OK"
fi

# --- 5. automatic rollback --------------------------------------------------
log_error "rollout of $TAG did not become ready within $ROLLOUT_TIMEOUT: rolling back"
kubectl -n "$NS" get pods -l "app.kubernetes.io/name=$DEPLOYMENT" >&2 || true
if run kubectl -n "$NS" rollout undo "deployment/$DEPLOYMENT" &&
  run kubectl -n "$NS" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"; then
  die "$EX_ROLLED_BACK" "deploy of $TAG failed; rolled back to the previous revision"
fi
die "$EX_ROLLBACK_FAILED" "deploy of $TAG failed AND the automatic rollback failed: see docs/runbook.md#rollback"

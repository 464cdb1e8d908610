# shellcheck shell=bash
# Helpers for the script tests (sourced by run.sh). Each test is a bash
# function named test_*; it runs in its own subshell with `set -euo pipefail`,
# in a fresh directory $TEST_TMP, and fails by exiting non-zero (fail, or any
# failing command). `skip REASON` marks it skipped.

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPTS="$(cd "$TESTS_DIR/.." && pwd)"
export TESTS_DIR SCRIPTS

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

skip() {
  printf 'SKIP: %s\n' "$*" >&2
  exit 77
}

assert_eq() { # EXPECTED ACTUAL [WHAT]
  [[ "$1" == "$2" ]] || fail "${3:-value}: expected [$1], got [$2]"
}

assert_contains() { # HAYSTACK NEEDLE [WHAT]
  [[ "$1" == *"$2"* ]] || fail "${3:-output} does not contain [$2]:"$'\n'"$1"
}

assert_not_contains() { # HAYSTACK NEEDLE [WHAT]
  [[ "$1" != *"$2"* ]] || fail "${3:-output} unexpectedly contains [$2]:"$'\n'"$1"
}

# use_fakes NAME...: put the named fakes (kubectl, aws, curl) first on PATH,
# with a call log in $FAKE_LOG.
use_fakes() {
  local n
  mkdir -p "$TEST_TMP/bin" "$TEST_TMP/fake"
  for n in "$@"; do
    ln -sf "$TESTS_DIR/fakes/$n" "$TEST_TMP/bin/$n"
  done
  export PATH="$TEST_TMP/bin:$PATH"
  export FAKE_LOG="$TEST_TMP/fake/calls.log" FAKE_DIR="$TEST_TMP/fake"
  : >"$FAKE_LOG"
}

# calls: the fake's call log, temp paths reduced to file names, without the
# read-only context look-up.
calls() {
  sed -E -e 's#[^ ]*/(prereqs|job|app)\.yaml#\1.yaml#g' -e 's#kustomize [^ ]*/(overlay|migrate)$#kustomize <image-\1>#' \
    -e "s#$UG_K8S_DIR/#k8s/#g" "$FAKE_LOG" | grep -v '^config current-context$' || true
}

# path_without TOOL: a PATH directory holding every command but TOOL.
path_without() {
  local d="$TEST_TMP/path-without-$1" p
  mkdir -p "$d"
  for p in /usr/local/bin /usr/bin /bin; do
    [[ -d "$p" ]] && ln -s "$p"/* "$d"/ 2>/dev/null
  done
  rm -f "$d/$1"
  printf '%s\n' "$d"
}

# k8s_fixture: a small kustomize tree shaped like the repository's k8s/: base
# (config, Deployment, Service), migrate/ (the Job and its ServiceAccount), and
# overlays dev (namespace usergraph-dev, plus an in-cluster postgres
# StatefulSet) and prod (namespace usergraph), each with a migrate/ overlay.
# Exported as UG_K8S_DIR for the scripts.
k8s_fixture() {
  local k="$TEST_TMP/k8s" env
  mkdir -p "$k/base" "$k/migrate"
  printf 'resources: [resources.yaml]\n' >"$k/base/kustomization.yaml"
  cat >"$k/base/resources.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: usergraph-config
data:
  APP_ENV: production
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: usergraph
  labels:
    app.kubernetes.io/name: usergraph
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: usergraph
  template:
    metadata:
      labels:
        app.kubernetes.io/name: usergraph
    spec:
      containers:
        - name: usergraph
          image: ghcr.io/example/usergraph:0.1.0
---
apiVersion: v1
kind: Service
metadata:
  name: usergraph
spec:
  selector:
    app.kubernetes.io/name: usergraph
  ports:
    - port: 80
      targetPort: 8080
YAML
  printf 'resources: [job.yaml]\n' >"$k/migrate/kustomization.yaml"
  cat >"$k/migrate/job.yaml" <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata:
  name: usergraph-migrate
---
apiVersion: batch/v1
kind: Job
metadata:
  name: usergraph-migrate
spec:
  template:
    spec:
      restartPolicy: Never
      serviceAccountName: usergraph-migrate
      containers:
        - name: migrate
          image: ghcr.io/example/usergraph:0.1.0
          args: [migrate, up]
YAML
  for env in dev prod; do
    mkdir -p "$k/overlays/$env/migrate"
    ns=usergraph
    [[ "$env" == dev ]] && ns=usergraph-dev
    printf 'namespace: %s\nresources:\n  - ../../base\n  - namespace.yaml\n' "$ns" >"$k/overlays/$env/kustomization.yaml"
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$ns" >"$k/overlays/$env/namespace.yaml"
    printf 'namespace: %s\nresources:\n  - ../../../migrate\n' "$ns" >"$k/overlays/$env/migrate/kustomization.yaml"
  done
  printf '  - postgres.yaml\n' >>"$k/overlays/dev/kustomization.yaml"
  cat >"$k/overlays/dev/postgres.yaml" <<'YAML'
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
spec:
  serviceName: postgres
  selector:
    matchLabels:
      app: postgres
  template:
    metadata:
      labels:
        app: postgres
    spec:
      containers:
        - name: postgres
          image: postgres:15
YAML
  export UG_K8S_DIR="$k"
}

# k8s_fixture_inline_job: the same, but the Job is part of each overlay
# (no migrate/ kustomizations).
k8s_fixture_inline_job() {
  k8s_fixture
  local k="$UG_K8S_DIR"
  rm -rf "$k/overlays/dev/migrate" "$k/overlays/prod/migrate"
  cp "$k/migrate/job.yaml" "$k/base/job.yaml"
  printf 'resources: [resources.yaml, job.yaml]\n' >"$k/base/kustomization.yaml"
}

# needs_kustomize: skip unless a real kubectl can render offline.
needs_kustomize() {
  [[ -n "${REAL_KUBECTL:-}" && -x "$REAL_KUBECTL" ]] || skip "no real kubectl for kustomize"
}

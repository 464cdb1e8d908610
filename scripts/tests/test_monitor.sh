# shellcheck shell=bash
# monitor.sh against fake kubectl and curl (sourced by run.sh).

test_monitor_shows_cluster_state_and_prometheus_metrics() {
  use_fakes kubectl curl
  k8s_fixture
  local out rc
  out="$(PROMETHEUS_URL=http://127.0.0.1:9090/ "$SCRIPTS/monitor.sh" dev 2>&1)" && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code (output: $out)"
  assert_contains "$(calls)" "-n usergraph-dev get pods -l app.kubernetes.io/name=usergraph -o wide"
  assert_contains "$(calls)" "-n usergraph-dev get hpa"
  assert_contains "$(calls)" "-n usergraph-dev get events --sort-by=.lastTimestamp"
  assert_contains "$(calls)" "http://127.0.0.1:9090/api/v1/query"
  assert_contains "$(calls)" 'histogram_quantile(0.95, sum by (le) (rate(usergraph_http_request_duration_seconds_bucket{}[5m])))'
  assert_contains "$out" "HTTP 5xx error rate      0.200 %"
  assert_contains "$out" "p95 latency              42.0 ms"
}

test_monitor_flags_a_breached_threshold() {
  use_fakes kubectl curl
  k8s_fixture
  local out rc
  out="$(FAKE_P95=0.250 PROMETHEUS_URL=http://127.0.0.1:9090 UG_PROM_SELECTOR='namespace="usergraph-dev"' \
    "$SCRIPTS/monitor.sh" dev 2>&1)" && rc=0 || rc=$?
  assert_eq 11 "$rc" "exit code over the p95 threshold"
  assert_contains "$out" "p95 latency 250.0 ms is over 100 ms"
  assert_contains "$(calls)" 'usergraph_http_requests_total{namespace="usergraph-dev",status=~"5.."}'
}

test_monitor_prometheus_down_and_unset() {
  use_fakes kubectl curl
  k8s_fixture
  local out rc
  FAKE_CURL_RC=7 PROMETHEUS_URL=http://127.0.0.1:9 "$SCRIPTS/monitor.sh" dev >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 10 "$rc" "exit code when Prometheus does not answer"
  out="$(env -u PROMETHEUS_URL "$SCRIPTS/monitor.sh" dev 2>&1)" && rc=0 || rc=$?
  assert_eq 0 "$rc" "exit code without PROMETHEUS_URL"
  assert_contains "$out" "PROMETHEUS_URL is not set"
}

test_monitor_dry_run_runs_nothing() {
  use_fakes kubectl curl
  k8s_fixture
  local out
  out="$(PROMETHEUS_URL=http://127.0.0.1:9090 "$SCRIPTS/monitor.sh" --dry-run prod 2>/dev/null)" || fail "dry-run failed"
  assert_eq 0 "$(wc -l <"$FAKE_LOG")" "calls under --dry-run"
  assert_contains "$out" "+ kubectl -n usergraph get hpa"
  assert_contains "$out" "+ curl -fsS"
}

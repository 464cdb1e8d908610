# shellcheck shell=bash
# smoke-test.sh against a stub usergraph on 127.0.0.1 (sourced by run.sh).

# stub_server READY_CODE TYPENAME: serves /ready and /graphql on a free
# loopback port; sets STUB_URL. Stopped on exit.
stub_server() {
  command -v python3 >/dev/null || skip "no python3 for the stub server"
  python3 - "$1" "$2" >"$TEST_TMP/stub.port" 2>"$TEST_TMP/stub.log" <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
ready_code, typename = int(sys.argv[1]), sys.argv[2]
class H(BaseHTTPRequestHandler):
    def reply(self, code, doc):
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/ready":
            status = "ready" if ready_code == 200 else "unavailable"
            self.reply(ready_code, {"status": status, "checks": {"database": "ok", "cache": "ok"}})
        else:
            self.reply(404, {})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = self.path == "/graphql" and self.headers["Content-Type"] == "application/json" and "__typename" in body["query"]
        self.reply(200, {"data": {"__typename": typename}} if ok else {"errors": [{"message": "bad"}]})
    def log_message(self, *a):
        pass
srv = HTTPServer(("127.0.0.1", 0), H)
print(srv.server_port, flush=True)
srv.timeout = 0.5
for _ in range(120):  # bounded: at most about a minute
    srv.handle_request()
PY
  STUB_PID=$!
  trap 'kill "$STUB_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    [[ -s "$TEST_TMP/stub.port" ]] && break
    sleep 0.1
  done
  STUB_URL="http://127.0.0.1:$(cat "$TEST_TMP/stub.port")"
}

test_smoke_passes_against_a_ready_service() {
  stub_server 200 Query
  local out
  out="$("$SCRIPTS/smoke-test.sh" --url "$STUB_URL" 2>&1)" || fail "smoke test failed: $out"
  assert_contains "$out" '"__typename":"Query"'
}

test_smoke_fails_when_not_ready() {
  stub_server 503 Query
  local out rc
  out="$(UG_SMOKE_SLEEP=0 "$SCRIPTS/smoke-test.sh" --retries 2 --url "$STUB_URL" 2>&1)" && rc=0 || rc=$?
  assert_eq 10 "$rc" "exit code when /ready answers 503"
  assert_contains "$out" "attempt 2/2"
}

test_smoke_fails_on_a_bad_graphql_answer() {
  stub_server 200 Mutation
  local rc
  "$SCRIPTS/smoke-test.sh" --url "$STUB_URL" >/dev/null 2>&1 && rc=0 || rc=$?
  assert_eq 11 "$rc" "exit code for a wrong GraphQL answer"
}

test_smoke_port_forwards_in_dry_run() {
  use_fakes kubectl
  k8s_fixture
  local out
  out="$("$SCRIPTS/smoke-test.sh" --dry-run dev 2>/dev/null)" || fail "dry-run failed"
  assert_eq 0 "$(wc -l <"$FAKE_LOG")" "kubectl calls under --dry-run"
  assert_contains "$out" "+ kubectl -n usergraph-dev port-forward svc/usergraph 18080:80 --address 127.0.0.1"
  assert_contains "$out" "http://127.0.0.1:18080/graphql"
}

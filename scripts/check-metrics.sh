#!/usr/bin/env bash
# Starts a usergraph binary on loopback with a throwaway SQLite database,
# exercises it a little (health, a registration, a failed login), and lints
# its /metrics exposition with `promtool check metrics`.
#
# Usage: scripts/check-metrics.sh [PATH_TO_USERGRAPH_BINARY]   (default: target/debug/usergraph)
# Exit codes: 0 the exposition passes, 1 it does not, 3 a tool is missing, 4 the server did not start.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
bin=${1:-target/debug/usergraph}
for tool in promtool curl "$bin"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || { echo "check-metrics: missing $tool" >&2; exit 3; }
done

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:${port}"
DATABASE_URL="sqlite://${work}/metrics.db?mode=rwc" BIND_ADDR="127.0.0.1:${port}" \
  JWT_SECRET="metrics-check-secret-of-at-least-32-bytes" RUST_LOG=warn \
  "$bin" serve >"${work}/server.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "${base}/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "${base}/health" >/dev/null || { echo "check-metrics: server did not start" >&2; cat "${work}/server.log" >&2; exit 4; }

gql() { curl -fsS "${base}/graphql" -H 'content-type: application/json' -d "$1" >/dev/null; }
gql '{"query":"mutation { register(input: {email: \"metrics@example.com\", password: \"correct horse battery staple\"}) { accessToken } }"}'
gql '{"query":"mutation { login(input: {email: \"metrics@example.com\", password: \"wrong password here\"}) { accessToken } }"}'
gql '{"query":"{ me { id } }"}'
curl -fsS "${base}/ready" >/dev/null

curl -fsS "${base}/metrics" >"${work}/metrics.txt"
if promtool check metrics <"${work}/metrics.txt"; then
  echo "check-metrics: /metrics passes promtool check metrics ($(grep -vc '^#' "${work}/metrics.txt") samples)"
else
  echo "check-metrics: promtool found problems in /metrics" >&2
  exit 1
fi

#!/usr/bin/env bash
# Auth storm on the release build: peak memory and load shedding.
#
#   bench/auth-storm.sh            # SQLite in a temp dir, in-process cache
#   DATABASE_URL=postgres://… REDIS_URL=redis://… bench/auth-storm.sh
#
# Starts `target/release/usergraph` (built if missing) on a free loopback
# port with the production argon2 cost and the auth rate limit off, runs
# bench/auth_storm.py against it, and appends the result to
# bench/results/<date>-auth-storm.md. Exits non-zero when the peak RSS
# reaches 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/usergraph
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export DATABASE_URL="${DATABASE_URL:-sqlite://$work/bench.db?mode=rwc}"
export BIND_ADDR="127.0.0.1:$port"
export JWT_SECRET="bench-secret-of-at-least-32-bytes-long!"
export RATE_LIMIT_AUTH_PER_MINUTE=0 LOCKOUT_THRESHOLD=0 RUST_LOG=warn
"$bin" serve >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

out="bench/results/$(date -u +%Y-%m-%d)-auth-storm.md"
{
  echo
  echo "## auth storm, $(date -u +%H:%M) UTC"
  echo
  cache=in-process
  [ -n "${REDIS_URL:-}" ] && cache=redis
  echo "$(nproc) cores, $(git rev-parse --short HEAD), database ${DATABASE_URL%%:*}, cache $cache, argon2id m=19456 KiB t=2 p=1"
  echo
} >>"$out"
python3 bench/auth_storm.py "http://127.0.0.1:$port" "$pid" "$out"

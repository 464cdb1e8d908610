#!/usr/bin/env bash
# Times the session purge over many ended sessions on PostgreSQL, in a
# throwaway database it creates and drops.
#
#   bench/purge.sh [SESSIONS (300000)] [ROTATED_PER_SESSION (3)]
#
# Needs the local PostgreSQL (PGHOST/PGUSER as for psql; default
# 127.0.0.1, postgres). Appends to bench/results/<date>-purge.md.
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-300000}
rotated=${2:-3}
host=${PGHOST:-127.0.0.1}
user=${PGUSER:-postgres}
name="purge_bench_$$"
psql -h "$host" -U "$user" -qc "CREATE DATABASE $name"
trap 'psql -h "$host" -U "$user" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)"' EXIT
out="bench/results/$(date -u +%Y-%m-%d)-purge.md"
{
  echo
  echo "## session purge, $(date -u +%H:%M) UTC, $(nproc) cores, $(git rev-parse --short HEAD)"
  echo
  echo '```'
  RUST_LOG=warn cargo run --quiet --release --locked --example purge_bench -- \
    "postgres://$user@$host/$name" "$sessions" "$rotated"
  echo '```'
} | tee -a "$out"

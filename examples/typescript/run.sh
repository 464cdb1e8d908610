#!/usr/bin/env bash
# Builds the typed TypeScript client against a running usergraph and runs its
# round trip (register → login → me → refreshToken → logout).
#
#   examples/typescript/run.sh URL      e.g. http://127.0.0.1:8080/graphql
#
# 1. npm ci (from package-lock.json), 2. codegen from URL's introspection
# + tsc --strict, 3. node dist/index.js URL. Exits non-zero on any failure.
set -euo pipefail

usage() {
  echo "usage: $0 URL   (the GraphQL endpoint, e.g. http://127.0.0.1:8080/graphql)"
}

if [[ $# -ne 1 || "$1" == -h || "$1" == --help ]]; then
  usage >&2
  exit 2
fi
url=$1

cd "$(dirname "${BASH_SOURCE[0]}")"

echo "==> examples/typescript: npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "==> examples/typescript: codegen from $url (introspection) + tsc --strict"
SCHEMA_URL=$url npm run --silent check

echo "==> examples/typescript: round trip against $url"
node dist/index.js "$url"

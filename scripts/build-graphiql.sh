#!/usr/bin/env bash
# Build the offline GraphiQL playground assets served by usergraph at GET /graphql.
#
# Third-party code enters only through the pinned npm packages declared in
# graphiql/package.json (+ package-lock.json). This script installs them with
# `npm ci` and copies their prebuilt browser bundles, under stable names, into
# api/assets/graphiql/, together with LICENSES.txt. Our own files in that
# folder (index.html, init.js) are never touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG_DIR="$ROOT/graphiql"
OUT_DIR="$ROOT/api/assets/graphiql"

# destination name -> "package|path inside the package"
GENERATED_FILES=(
  "graphiql.min.js|graphiql|graphiql.min.js"
  "graphiql.min.css|graphiql|graphiql.min.css"
  "react.production.min.js|react|umd/react.production.min.js"
  "react-dom.production.min.js|react-dom|umd/react-dom.production.min.js"
)

usage() {
  cat <<EOF
Usage: scripts/build-graphiql.sh [--check] [--skip-install] [--out DIR]

Installs the pinned packages of graphiql/package.json with 'npm ci' and copies
their browser bundles into api/assets/graphiql/:

  graphiql.min.js  graphiql.min.css  react.production.min.js
  react-dom.production.min.js  LICENSES.txt

index.html and init.js in that folder are our own code and are left alone.

Options:
  --check         build into a temporary folder and compare with the committed
                  files; exit 1 if any differ (for CI: the committed assets must
                  be exactly what the lockfile produces)
  --skip-install  reuse graphiql/node_modules instead of running 'npm ci'
  --out DIR       write into DIR instead of api/assets/graphiql/
  -h, --help      show this help

Needs node (>= 20) and npm, and access to the npm registry unless
--skip-install is given.
EOF
}

if [[ -t 2 ]]; then RED=$'\e[31m'; GREEN=$'\e[32m'; RESET=$'\e[0m'; else RED=""; GREEN=""; RESET=""; fi
log() { printf '%s\n' "build-graphiql: $*" >&2; }
die() { printf '%s\n' "${RED}build-graphiql: error: $*${RESET}" >&2; exit 1; }

CHECK=0
INSTALL=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --check) CHECK=1 ;;
    --skip-install) INSTALL=0 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; OUT_DIR="$2"; shift ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
node -e 'process.exit(parseInt(process.versions.node, 10) >= 20 ? 0 : 1)' \
  || die "node >= 20 is required (found $(node --version))"
[[ -f "$PKG_DIR/package.json" && -f "$PKG_DIR/package-lock.json" ]] \
  || die "missing $PKG_DIR/package.json or package-lock.json"

if [[ "$INSTALL" == 1 ]]; then
  log "npm ci in graphiql/ (node $(node --version), npm $(npm --version))"
  (cd "$PKG_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
else
  [[ -d "$PKG_DIR/node_modules" ]] || die "--skip-install given but graphiql/node_modules is missing"
  log "reusing graphiql/node_modules"
fi

TARGET="$OUT_DIR"
TMP=""
if [[ "$CHECK" == 1 ]]; then
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  TARGET="$TMP"
fi
mkdir -p "$TARGET"

# Sanity checks on the installed packages: versions we rely on and MIT licences.
PKG_DIR="$PKG_DIR" node - <<'EOF' || die "installed packages failed the checks above"
const path = require('path');
const dir = process.env.PKG_DIR;
const want = { graphiql: 3, react: 18, 'react-dom': 18 };
let ok = true;
for (const [name, major] of Object.entries(want)) {
  const p = require(path.join(dir, 'node_modules', name, 'package.json'));
  if (major !== null && parseInt(p.version, 10) !== major) {
    console.error(`${name}@${p.version}: expected major version ${major}`);
    ok = false;
  }
  if (p.license !== 'MIT') {
    console.error(`${name}@${p.version}: licence is ${p.license}, expected MIT`);
    ok = false;
  }
}
process.exit(ok ? 0 : 1);
EOF

for entry in "${GENERATED_FILES[@]}"; do
  IFS='|' read -r dest pkg src <<<"$entry"
  from="$PKG_DIR/node_modules/$pkg/$src"
  [[ -f "$from" ]] || die "$pkg does not ship $src (wrong version installed?)"
  install -m 0644 "$from" "$TARGET/$dest"
done

# LICENSES.txt: every shipped package's licence file, plus the packages that
# graphiql.min.js bundles (read from its source map), with names and versions.
SHIPPED="$(printf '%s\n' "${GENERATED_FILES[@]}")" PKG_DIR="$PKG_DIR" node - >"$TARGET/LICENSES.txt" <<'EOF'
const fs = require('fs');
const path = require('path');
const dir = process.env.PKG_DIR;
const nm = path.join(dir, 'node_modules');
const rule = '='.repeat(78);
const out = [];

function pkgInfo(name) {
  const pdir = path.join(nm, name);
  if (!fs.existsSync(path.join(pdir, 'package.json'))) return null;
  const p = JSON.parse(fs.readFileSync(path.join(pdir, 'package.json'), 'utf8'));
  const files = fs.readdirSync(pdir)
    .filter((f) => /^(licen[cs]e|copying|notice)([.-].*)?$/i.test(f))
    .sort();
  const texts = files.map((f) => fs.readFileSync(path.join(pdir, f), 'utf8').trim());
  const license = typeof p.license === 'string' ? p.license
    : (p.license && p.license.type) || (p.licenses || []).map((l) => l.type || l).join(' OR ') || 'UNKNOWN';
  return { name, version: p.version, license, files, texts, homepage: p.homepage || '' };
}

function section(info, heading) {
  out.push(rule, `${heading}${info.name}@${info.version}  (${info.license})`, rule);
  if (info.texts.length) {
    info.files.forEach((f, i) => { out.push(`--- ${f}`, info.texts[i], ''); });
  } else {
    out.push(`(the package ships no licence file; its package.json declares "${info.license}"${info.homepage ? `; source: ${info.homepage}` : ''})`, '');
  }
}

out.push(
  'Third-party software in api/assets/graphiql/',
  '',
  'Generated by scripts/build-graphiql.sh from the npm packages pinned in',
  'graphiql/package-lock.json. Do not edit by hand. index.html and init.js are',
  "usergraph's own code and are not covered here.",
  '',
  'Files and the packages they come from:',
);
const shipped = [];
for (const line of process.env.SHIPPED.split('\n').filter(Boolean)) {
  const [dest, pkg, src] = line.split('|');
  const info = pkgInfo(pkg);
  out.push(`  ${dest.padEnd(30)} ${pkg}@${info.version} ${src} (${info.license})`);
  if (!shipped.some((s) => s.name === pkg)) shipped.push(info);
}
out.push('');
for (const info of shipped) section(info, '');

// What graphiql.min.js bundles, according to its source map.
const mapFile = path.join(nm, 'graphiql', 'graphiql.min.js.map');
const bundled = new Set();
if (fs.existsSync(mapFile)) {
  for (const s of JSON.parse(fs.readFileSync(mapFile, 'utf8')).sources) {
    const i = s.lastIndexOf('node_modules/');
    let name;
    if (i >= 0) {
      const parts = s.slice(i + 'node_modules/'.length).split('/');
      name = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
    } else {
      // graphiql's own monorepo packages, e.g. ../../graphiql-react/dist/...
      const m = /^(?:\.\.\/)+([^/]+)\//.exec(s);
      const mono = { 'graphiql-react': '@graphiql/react', 'graphiql-toolkit': '@graphiql/toolkit' };
      name = m ? (mono[m[1]] || m[1]) : null;
    }
    if (name && name !== 'src' && name !== 'graphiql') bundled.add(name);
  }
}
const bundledNames = [...bundled].filter((n) => !shipped.some((s) => s.name === n)).sort();
out.push(
  rule,
  'Packages bundled inside graphiql.min.js',
  rule,
  "graphiql's UMD build embeds the following packages (list read from",
  'graphiql.min.js.map). The licence texts below come from the copies that npm',
  'installs next to graphiql in graphiql/node_modules; the exact version embedded',
  "at graphiql's own build time may differ from the installed version shown.",
  '',
);
const missing = [];
for (const n of bundledNames) {
  const info = pkgInfo(n);
  if (info) section(info, 'bundled in graphiql.min.js: ');
  else missing.push(n);
}
if (missing.length) {
  out.push(rule, 'Bundled in graphiql.min.js but not installed in graphiql/node_modules', rule,
    '(licence text not available locally; see each package on the npm registry)');
  for (const n of missing) out.push(`  ${n}`);
  out.push('');
}

// Fonts embedded as data: URIs in graphiql.min.css.
const css = fs.readFileSync(path.join(nm, 'graphiql', 'graphiql.min.css'), 'utf8');
const fonts = [...new Set([...css.matchAll(/@font-face\{font-family:\s*["']?([^;"']+)/g)].map((m) => m[1].trim()))].sort();
if (fonts.length) {
  out.push(rule, 'Fonts embedded in graphiql.min.css', rule,
    `graphiql.min.css embeds these font families as data: URIs: ${fonts.join(', ')}.`,
    'They come from @graphiql/react (font/*.css) and are distributed by their',
    'authors under their own font licences (e.g. SIL Open Font License 1.1 /',
    'Apache License 2.0), which the npm packages do not include as files.', '');
}
process.stdout.write(out.join('\n') + '\n');
EOF

if [[ "$CHECK" == 1 ]]; then
  bad=0
  for f in "$TARGET"/*; do
    name="$(basename "$f")"
    if ! cmp -s "$f" "$OUT_DIR/$name"; then
      printf '%s\n' "${RED}differs or missing: api/assets/graphiql/$name${RESET}" >&2
      bad=1
    fi
  done
  [[ "$bad" == 0 ]] || die "committed GraphiQL assets are stale: run scripts/build-graphiql.sh"
  printf '%s\n' "${GREEN}build-graphiql: committed assets match graphiql/package-lock.json${RESET}" >&2
  exit 0
fi

written=()
for entry in "${GENERATED_FILES[@]}"; do written+=("${entry%%|*}"); done
log "wrote ${written[*]} LICENSES.txt"
log "total $(du -sh "$TARGET" | cut -f1) in ${TARGET#"$ROOT"/}"
printf '%s\n' "${GREEN}build-graphiql: done${RESET}" >&2

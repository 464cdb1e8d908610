#!/usr/bin/env bash
# Restore a usergraph dump made by backup-db.sh, after verifying its checksum.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly EX_CHECKSUM=10 EX_TARGET=11 EX_RESTORE=12 EX_DOWNLOAD=13

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] DUMP ENV|URL

Restore DUMP (a local path or s3://..., with DUMP.sha256 beside it) into the
database of ENV (dev | prod) or of a postgres:// URL. DUMP may also be an S3
prefix ending in / (the backup CronJob's s3://<bucket>/<prefix>/<env>/): the
newest <name>-<UTC stamp>.dump under it is restored.

  1. verify DUMP against DUMP.sha256 (refuses when missing or different) and
     that pg_restore can read the archive;
  2. ask for confirmation (unless --yes; refuses when stdin is not a terminal);
  3. default: pg_restore --clean --if-exists into the existing database, in a
     single transaction (a failure leaves the database as it was);
     --create: create the database named in the URL (it must not exist) on
     the same server and restore into it, e.g. to inspect or to switch over;
  4. ANALYZE, and print the row count of the users table when there is one.

Stop the application (or scale it to 0) before restoring over a live database.

Options:
  -y, --yes      do not ask for confirmation
  --create       restore into a new database instead of over the existing one
  --dry-run      print the commands instead of running them
  -h, --help     show this help

Environment: UG_DATABASE_URL / UG_DB_SECRET / UG_KUBE_CONTEXT for ENV (as
backup-db.sh); PGPASSWORD etc. as usual.

Exit codes:
  0  restored
  1  unexpected error
  2  bad command line
  3  a required tool is missing (pg_restore, psql, sha256sum, aws)
  4  wrong kubectl context / cannot read the database URL
  5  not confirmed (answered no, or stdin not a terminal without --yes)
  10 checksum file missing or not matching, or the archive is unreadable
  11 --create: the database exists already or cannot be created
  12 pg_restore failed (with the default mode nothing was changed)
  13 download from S3 failed
EOF
}

CREATE=0
args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -y | --yes) ASSUME_YES=1 ;;
    --create) CREATE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -eq 2 ]] || usage_error "expected DUMP and ENV or a postgres:// URL"
DUMP="${args[0]}" target="${args[1]}"

require_tool pg_restore psql sha256sum
[[ "$DUMP" == s3://* ]] && require_tool aws
if is_pg_url "$target"; then
  URL="$target"
else
  validate_env "$target"
  URL="$(db_url_for_env "$target")" || exit $?
fi
DB="$(url_dbname "$URL")"
[[ "$DB" =~ ^[A-Za-z_][A-Za-z0-9_-]{0,62}$ ]] || die "$EX_USAGE" "unsupported database name '$DB'"

# --- 1. fetch and verify ---------------------------------------------------
# newest_dump PREFIX: the key of the newest *-<stamp>.dump under an S3 prefix.
newest_dump() {
  local name
  name="$(aws s3 ls "$1" | awk '{ print $NF }' |
    sed -nE 's/^(.*-([0-9]{8}T[0-9]{6}Z)\.dump)$/\2 \1/p' | LC_ALL=C sort | tail -n1 | cut -d' ' -f2)" ||
    die "$EX_DOWNLOAD" "aws s3 ls $1 failed"
  [[ -n "$name" ]] || die "$EX_DOWNLOAD" "no *-<stamp>.dump under $1"
  printf '%s%s\n' "$1" "$name"
}
if [[ "$DUMP" == s3://*/ ]]; then
  log_step "find the newest dump under $DUMP"
  if [[ "$DRY_RUN" == 1 ]]; then
    run aws s3 ls "$DUMP"
    DUMP="${DUMP}<newest>.dump"
  else
    DUMP="$(newest_dump "$DUMP")"
    log_info "newest: $DUMP"
  fi
fi
if [[ "$DUMP" == s3://* ]]; then
  make_tmp_dir DL
  log_step "download $DUMP"
  for suffix in '' .sha256; do
    run aws s3 cp --only-show-errors "$DUMP$suffix" "$DL/$(basename "$DUMP")$suffix" ||
      die "$EX_DOWNLOAD" "aws s3 cp $DUMP$suffix failed"
  done
  DUMP="$DL/$(basename "$DUMP")"
fi

log_step "verify $(basename "$DUMP")"
if [[ "$DRY_RUN" == 1 ]]; then
  printf '+ (cd %q && sha256sum -c %q)\n' "$(dirname "$DUMP")" "$(basename "$DUMP").sha256"
  run_to /dev/null pg_restore --list "$DUMP"
else
  [[ -f "$DUMP" ]] || die "$EX_CHECKSUM" "no such dump: $DUMP"
  [[ -f "$DUMP.sha256" ]] || die "$EX_CHECKSUM" "no checksum file $DUMP.sha256: refusing to restore an unverified dump"
  expected="$(awk 'NR == 1 { print $1 }' "$DUMP.sha256")"
  actual="$(sha256sum "$DUMP" | cut -d' ' -f1)"
  [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die "$EX_CHECKSUM" "$DUMP.sha256 holds no sha256"
  [[ "$expected" == "$actual" ]] ||
    die "$EX_CHECKSUM" "checksum mismatch for $DUMP (expected $expected, got $actual): refusing to restore"
  pg_restore --list "$DUMP" >/dev/null || die "$EX_CHECKSUM" "$DUMP is not a readable pg_dump custom-format archive"
  log_ok "checksum $actual matches"
fi

# --- 2. confirm ----------------------------------------------------------
if [[ "$CREATE" == 1 ]]; then
  confirm "Restore $(basename "$DUMP") into a NEW database $DB on $(url_host "$URL")?"
else
  confirm "Restore $(basename "$DUMP") OVER database $DB on $(url_host "$URL")? Its current contents are replaced."
fi

# --- 3. restore ----------------------------------------------------------
restore=(pg_restore --no-owner --no-acl --exit-on-error --single-transaction --no-password)
if [[ "$CREATE" == 1 ]]; then
  ADMIN_URL="$(url_with_db "$URL" "${UG_ADMIN_DB:-postgres}")"
  if [[ "$DRY_RUN" != 1 ]]; then
    exists="$(psql --no-psqlrc -tA --dbname="$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ||
      die "$EX_TARGET" "cannot connect to $(url_host "$URL") to create $DB"
    [[ -z "$exists" ]] || die "$EX_TARGET" "database $DB exists already (restore over it without --create)"
  fi
  log_step "create database $DB"
  run psql --no-psqlrc -q --dbname="$ADMIN_URL" -c "CREATE DATABASE \"$DB\"" ||
    die "$EX_TARGET" "CREATE DATABASE $DB failed"
else
  restore+=(--clean --if-exists)
fi
log_step "pg_restore into $DB"
run "${restore[@]}" --dbname="$URL" "$DUMP" ||
  die "$EX_RESTORE" "pg_restore failed$([[ "$CREATE" == 1 ]] || echo ': the database was left as it was')"

run psql --no-psqlrc -q --dbname="$URL" -c 'ANALYZE' || log_warn "ANALYZE failed (the restore itself succeeded)"
if [[ "$DRY_RUN" != 1 ]]; then
  users='n/a'
  if [[ "$(psql --no-psqlrc -tA --dbname="$URL" -c "SELECT to_regclass('public.users') IS NOT NULL")" == t ]]; then
    users="$(psql --no-psqlrc -tA --dbname="$URL" -c 'SELECT count(*) FROM public.users')" || users='?'
  fi
  log_ok "restored $(basename "$DUMP") into $DB (users: $users)"
fi

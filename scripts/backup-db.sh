#!/usr/bin/env bash
# Back up the usergraph PostgreSQL database: pg_dump custom format, a sha256
# checksum beside it, retention, and an optional copy to S3.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly EX_DUMP=10 EX_UPLOAD=11

usage() {
  cat <<EOF
Usage: $(ug_prog) [options] ENV|URL

Dump the database of ENV (dev | prod) or of a postgres:// URL with
pg_dump --format=custom into DIR/<name>-<UTC timestamp>.dump, check that the
archive reads back (pg_restore --list), write <dump>.sha256 beside it
(sha256sum format), upload both to \$BACKUP_S3_URI when set, then apply the
retention. Prints the dump's path on stdout.

For ENV the URL is \$UG_DATABASE_URL, else DATABASE_URL from the Secret
\${UG_DB_SECRET:-usergraph-secrets} in ENV's namespace (kubectl context checked);
run it from a host that can reach the database.

Options:
  --dir DIR         where dumps go (default: \${BACKUP_DIR:-./backups})
  --keep-days N     delete this database's dumps older than N days
                    (default: \${BACKUP_KEEP_DAYS:-14}; 0 keeps them forever)
  --keep-last N     always keep the newest N dumps, whatever their age
                    (default: \${BACKUP_KEEP_LAST:-7})
  --dry-run         print the commands instead of running them
  -h, --help        show this help

Environment:
  BACKUP_S3_URI     e.g. s3://bucket/usergraph/prod: upload with aws s3 cp
                    (retention there is the bucket's lifecycle rule)
  PGPASSWORD etc.   the usual libpq variables work as well as the URL

Exit codes:
  0  backed up
  1  unexpected error
  2  bad command line
  3  a required tool is missing (pg_dump, pg_restore, sha256sum, aws)
  4  wrong kubectl context / cannot read the database URL
  10 pg_dump failed or the archive does not read back (no dump kept)
  11 upload to S3 failed (the local dump and checksum are kept)
EOF
}

DIR="${BACKUP_DIR:-./backups}"
KEEP_DAYS="${BACKUP_KEEP_DAYS:-14}"
KEEP_LAST="${BACKUP_KEEP_LAST:-7}"
args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --dir) [[ $# -ge 2 ]] || usage_error "--dir needs a value"; DIR="$2"; shift ;;
    --keep-days) [[ $# -ge 2 ]] || usage_error "--keep-days needs a value"; KEEP_DAYS="$2"; shift ;;
    --keep-last) [[ $# -ge 2 ]] || usage_error "--keep-last needs a value"; KEEP_LAST="$2"; shift ;;
    --) shift; args+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ ${#args[@]} -eq 1 ]] || usage_error "expected ENV or a postgres:// URL"
[[ "$KEEP_DAYS" =~ ^[0-9]+$ ]] || usage_error "--keep-days must be a number"
[[ "$KEEP_LAST" =~ ^[0-9]+$ && "$KEEP_LAST" -ge 1 ]] || usage_error "--keep-last must be a number >= 1"

require_tool pg_dump pg_restore sha256sum
[[ -n "${BACKUP_S3_URI:-}" ]] && require_tool aws
[[ -z "${BACKUP_S3_URI:-}" || "$BACKUP_S3_URI" == s3://* ]] || usage_error "BACKUP_S3_URI must start with s3://"

target="${args[0]}"
if is_pg_url "$target"; then
  URL="$target"
  PREFIX="$(url_dbname "$URL")"
else
  validate_env "$target"
  URL="$(db_url_for_env "$target")" || exit $?
  PREFIX="$target-$(url_dbname "$URL")"
fi
[[ "$PREFIX" =~ ^[A-Za-z0-9_.-]+$ ]] || die "$EX_USAGE" "database name '$PREFIX' is not safe for a file name"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
DUMP="$DIR/$PREFIX-$STAMP.dump"
log_step "back up $(url_dbname "$URL") on $(url_host "$URL") to $DUMP"
run mkdir -p "$DIR"
[[ -e "$DUMP" ]] && die "$EX_DUMP" "$DUMP already exists"

# Dump to a partial file, check it reads back, then move it into place: a
# crash never leaves a truncated *.dump that retention would count.
PARTIAL="$DUMP.partial"
if ! run pg_dump --format=custom --compress=6 --no-password --file="$PARTIAL" --dbname="$URL"; then
  run rm -f "$PARTIAL"
  die "$EX_DUMP" "pg_dump failed"
fi
if ! run_to /dev/null pg_restore --list "$PARTIAL"; then
  run rm -f "$PARTIAL"
  die "$EX_DUMP" "the dump does not read back with pg_restore --list"
fi
run mv -f "$PARTIAL" "$DUMP"
name="$(basename "$DUMP")"
if [[ "$DRY_RUN" == 1 ]]; then
  printf '+ (cd %q && sha256sum %q > %q)\n' "$DIR" "$name" "$name.sha256"
else
  (cd "$DIR" && sha256sum "$name" >"$name.sha256.partial" && mv -f "$name.sha256.partial" "$name.sha256")
  log_ok "$(du -h "$DUMP" | cut -f1) written, sha256 $(cut -d' ' -f1 "$DUMP.sha256")"
fi

if [[ -n "${BACKUP_S3_URI:-}" ]]; then
  log_step "upload to $BACKUP_S3_URI"
  for f in "$DUMP" "$DUMP.sha256"; do
    run aws s3 cp --only-show-errors "$f" "${BACKUP_S3_URI%/}/$(basename "$f")" ||
      die "$EX_UPLOAD" "aws s3 cp of $(basename "$f") failed (kept locally: $DUMP)"
  done
fi

# Retention: newest first; the newest KEEP_LAST are kept, older ones go once
# they are more than KEEP_DAYS days old.
log_step "retention: keep the newest $KEEP_LAST; delete others older than $KEEP_DAYS days"
shopt -s nullglob
dumps=("$DIR/$PREFIX"-*.dump)
shopt -u nullglob
n=0
for ((i = ${#dumps[@]} - 1; i >= 0; i--)); do
  f="${dumps[i]}"
  n=$((n + 1))
  ((n <= KEEP_LAST)) && continue
  ((KEEP_DAYS == 0)) && continue
  if [[ -n "$(find "$f" -maxdepth 0 -mmin +$((KEEP_DAYS * 1440)) -print)" ]]; then
    log_info "retention: delete $(basename "$f")"
    run rm -f -- "$f" "$f.sha256"
  fi
done

[[ "$DRY_RUN" == 1 ]] || printf '%s\n' "$DUMP"

# shellcheck shell=bash
# backup-db.sh and restore-db.sh round trips on the local PostgreSQL
# (127.0.0.1:5432, user postgres, trust auth; loopback only). Every test works
# on throwaway databases named ug_backup_test_<pid>_<n>, dropped on exit.

PG_HOST="${UG_TEST_PG_HOST:-127.0.0.1}"
PG_PORT="${UG_TEST_PG_PORT:-5432}"
PG_USER="${UG_TEST_PG_USER:-postgres}"

pg_url() { printf 'postgresql://%s@%s:%s/%s\n' "$PG_USER" "$PG_HOST" "$PG_PORT" "$1"; }
pg() { psql --no-psqlrc -X -q -tA -v ON_ERROR_STOP=1 --dbname="$(pg_url "${PGDB:-postgres}")" "$@"; }

# pg_setup: skip without a server; register cleanup of our databases.
pg_setup() {
  { command -v psql && command -v pg_dump; } >/dev/null || skip "no PostgreSQL client tools"
  pg -c 'SELECT 1' >/dev/null 2>&1 || skip "no PostgreSQL at $PG_HOST:$PG_PORT"
  PG_DBS=()
  trap pg_cleanup EXIT
}

pg_cleanup() {
  local d
  for d in "${PG_DBS[@]+"${PG_DBS[@]}"}"; do
    pg -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

# new_db: creates a throwaway database, named in $DB and dropped on exit.
new_db() {
  DB="ug_backup_test_$$_${#PG_DBS[@]}_$RANDOM"
  PG_DBS+=("$DB")
  pg -c "CREATE DATABASE \"$DB\"" >/dev/null
}

# seed_users DB N: a users table like usergraph's, N deterministic rows.
seed_users() {
  PGDB="$1" pg <<SQL >/dev/null
CREATE TABLE users (
  id uuid PRIMARY KEY,
  email text NOT NULL UNIQUE,
  display_name text,
  password_hash text NOT NULL,
  status text NOT NULL DEFAULT 'ACTIVE',
  created_at timestamptz NOT NULL
);
CREATE INDEX users_created_at ON users (created_at DESC, id);
INSERT INTO users (id, email, display_name, password_hash, created_at)
SELECT md5('user-' || g)::uuid, 'seed-' || g || '@example.com', 'Seed User ' || g,
       '\$argon2id\$v=19\$m=19456,t=2,p=1\$' || md5('salt' || g), timestamptz '2026-01-01' + g * interval '1 minute'
FROM generate_series(1, $2) AS g;
SQL
}

# fingerprint DB: row count and md5 over all rows in key order.
fingerprint() {
  PGDB="$1" pg -c "SELECT count(*) || ' ' || md5(string_agg(u::text, '|' ORDER BY id)) FROM users u"
}

db_exists() { [[ "$(pg -c "SELECT count(*) FROM pg_database WHERE datname = '$1'")" == 1 ]]; }

test_backup_drop_restore_round_trip() {
  pg_setup
  local db before dump after
  new_db
  db="$DB"
  seed_users "$db" 1000
  before="$(fingerprint "$db")"
  [[ "$before" == "1000 "* ]] || fail "seed did not write 1000 rows: $before"

  dump="$("$SCRIPTS/backup-db.sh" --dir "$TEST_TMP/backups" "$(pg_url "$db")" 2>/dev/null)" || fail "backup failed"
  [[ -s "$dump" && -s "$dump.sha256" ]] || fail "no dump or checksum at $dump"
  (cd "$(dirname "$dump")" && sha256sum -c --quiet "$(basename "$dump").sha256") || fail "checksum file does not verify"

  pg -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
  ! db_exists "$db" || fail "database still there after drop"

  "$SCRIPTS/restore-db.sh" --yes --create "$dump" "$(pg_url "$db")" </dev/null >/dev/null 2>&1 || fail "restore failed"
  after="$(fingerprint "$db")"
  assert_eq "$before" "$after" "count and md5 after backup, drop, restore"
}

test_restore_over_existing_database_replaces_its_contents() {
  pg_setup
  local db before dump
  new_db
  db="$DB"
  seed_users "$db" 1000
  before="$(fingerprint "$db")"
  dump="$("$SCRIPTS/backup-db.sh" --dir "$TEST_TMP/b" "$(pg_url "$db")" 2>/dev/null)"
  PGDB="$db" pg -c "DELETE FROM users WHERE email LIKE 'seed-1%'; UPDATE users SET display_name = 'changed'; CREATE TABLE stray (x int)"
  [[ "$(fingerprint "$db")" != "$before" ]] || fail "the change did not change the fingerprint"
  "$SCRIPTS/restore-db.sh" --yes "$dump" "$(pg_url "$db")" </dev/null >/dev/null 2>&1 || fail "restore --clean failed"
  assert_eq "$before" "$(fingerprint "$db")" "fingerprint after restore over the changed database"
}

test_restore_refuses_a_corrupted_dump_and_changes_nothing() {
  pg_setup
  local db dump rc out before
  new_db
  db="$DB"
  seed_users "$db" 50
  dump="$("$SCRIPTS/backup-db.sh" --dir "$TEST_TMP/b" "$(pg_url "$db")" 2>/dev/null)"
  PGDB="$db" pg -c "DELETE FROM users WHERE email = 'seed-7@example.com'"
  before="$(fingerprint "$db")"
  printf 'x' >>"$dump"
  out="$("$SCRIPTS/restore-db.sh" --yes "$dump" "$(pg_url "$db")" 2>&1)" && rc=0 || rc=$?
  assert_eq 10 "$rc" "exit code for a checksum mismatch"
  assert_contains "$out" "checksum mismatch"
  assert_eq "$before" "$(fingerprint "$db")" "database after a refused restore"
  rm -f "$dump.sha256"
  out="$("$SCRIPTS/restore-db.sh" --yes "$dump" "$(pg_url "$db")" 2>&1)" && rc=0 || rc=$?
  assert_eq 10 "$rc" "exit code without a checksum file"
}

test_restore_needs_confirmation() {
  pg_setup
  local db dump rc out
  new_db
  db="$DB"
  seed_users "$db" 10
  dump="$("$SCRIPTS/backup-db.sh" --dir "$TEST_TMP/b" "$(pg_url "$db")" 2>/dev/null)"
  out="$("$SCRIPTS/restore-db.sh" "$dump" "$(pg_url "$db")" </dev/null 2>&1)" && rc=0 || rc=$?
  assert_eq 5 "$rc" "exit code without --yes on a non-terminal stdin"
  assert_contains "$out" "pass --yes"
  out="$("$SCRIPTS/restore-db.sh" --yes --create "$dump" "$(pg_url "$db")" 2>&1)" && rc=0 || rc=$?
  assert_eq 11 "$rc" "--create over an existing database"
}

test_backup_retention_keeps_the_newest_and_drops_old_ones() {
  pg_setup
  local db dir f
  new_db
  db="$DB"
  seed_users "$db" 5
  dir="$TEST_TMP/r"
  mkdir -p "$dir"
  # Five old dumps (40..36 days old) and one recent, plus another database's old dump.
  for n in 1 2 3 4 5; do
    f="$dir/$db-2026010${n}T000000Z.dump"
    printf 'old' >"$f"
    printf 'x  %s\n' "$(basename "$f")" >"$f.sha256"
    touch -d "$((41 - n)) days ago" "$f" "$f.sha256"
  done
  printf 'recent' >"$dir/$db-20260110T000000Z.dump"
  touch -d '2 days ago' "$dir/$db-20260110T000000Z.dump"
  printf 'other' >"$dir/otherdb-20260101T000000Z.dump"
  touch -d '90 days ago' "$dir/otherdb-20260101T000000Z.dump"

  "$SCRIPTS/backup-db.sh" --dir "$dir" --keep-last 3 --keep-days 14 "$(pg_url "$db")" >/dev/null 2>&1 || fail "backup failed"
  # Kept: the new dump, the recent one, and the newest old one (keep-last 3); the others are gone.
  assert_eq 3 "$(find "$dir" -name "$db-*.dump" | wc -l)" "dumps kept"
  [[ -e "$dir/$db-20260105T000000Z.dump" ]] || fail "newest old dump should be kept by --keep-last"
  [[ ! -e "$dir/$db-20260104T000000Z.dump" && ! -e "$dir/$db-20260104T000000Z.dump.sha256" ]] || fail "old dump not deleted with its checksum"
  [[ -e "$dir/otherdb-20260101T000000Z.dump" ]] || fail "another database's dump was touched"
}

test_backup_dry_run_masks_password_and_writes_nothing() {
  pg_setup
  local out
  out="$("$SCRIPTS/backup-db.sh" --dry-run --dir "$TEST_TMP/d" 'postgres://app:s3cret-pw@127.0.0.1:5432/usergraph' 2>&1)" || fail "dry-run failed"
  assert_contains "$out" "+ pg_dump --format=custom"
  assert_contains "$out" "app:***@127.0.0.1"
  assert_not_contains "$out" "s3cret-pw" "dry-run output"
  [[ ! -e "$TEST_TMP/d" ]] || fail "dry-run created the backup directory"
}

test_backup_uploads_to_s3_when_configured() {
  pg_setup
  use_fakes aws
  local db dump
  new_db
  db="$DB"
  seed_users "$db" 5
  dump="$(BACKUP_S3_URI=s3://ug-backups/prod/ "$SCRIPTS/backup-db.sh" --dir "$TEST_TMP/b" "$(pg_url "$db")" 2>/dev/null)" || fail "backup failed"
  assert_eq "aws s3 cp --only-show-errors $dump s3://ug-backups/prod/$(basename "$dump")
aws s3 cp --only-show-errors $dump.sha256 s3://ug-backups/prod/$(basename "$dump").sha256" "$(cat "$FAKE_LOG")" "aws calls"
  # And restore straight from S3 (the fake serves what was uploaded).
  PGDB="$db" pg -c "TRUNCATE users"
  "$SCRIPTS/restore-db.sh" --yes "s3://ug-backups/prod/$(basename "$dump")" "$(pg_url "$db")" >/dev/null 2>&1 || fail "restore from s3 failed"
  assert_eq 5 "$(PGDB="$db" pg -c 'SELECT count(*) FROM users')" "rows after restore from s3"
}

test_restore_the_newest_dump_under_an_s3_prefix() {
  pg_setup
  use_fakes aws
  local db dump old out
  new_db
  db="$DB"
  seed_users "$db" 7
  # What the backup CronJob leaves under s3://<bucket>/<prefix>/<env>/: an
  # older dump (here unreadable, so restoring it would fail) and the newest.
  mkdir -p "$FAKE_DIR/s3"
  old="$FAKE_DIR/s3/prod-usergraph-20200101T031700Z.dump"
  printf 'not a dump' >"$old"
  (cd "$FAKE_DIR/s3" && sha256sum "$(basename "$old")" >"$(basename "$old").sha256")
  dump="$(BACKUP_S3_URI=s3://ug-backups/db-backups/prod/ "$SCRIPTS/backup-db.sh" --dir "$TEST_TMP/b" "$(pg_url "$db")" 2>/dev/null)" || fail "backup failed"
  PGDB="$db" pg -c "TRUNCATE users"
  out="$("$SCRIPTS/restore-db.sh" --yes s3://ug-backups/db-backups/prod/ "$(pg_url "$db")" 2>&1)" || fail "restore of the newest dump failed: $out"
  assert_contains "$out" "newest: s3://ug-backups/db-backups/prod/$(basename "$dump")"
  assert_eq 7 "$(PGDB="$db" pg -c 'SELECT count(*) FROM users')" "rows after restoring the newest dump"
  assert_contains "$(cat "$FAKE_LOG")" "aws s3 ls s3://ug-backups/db-backups/prod/"
}

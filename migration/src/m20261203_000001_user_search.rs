//! Substring search of the users directory that scales: on PostgreSQL,
//! trigram GIN indexes on `lower(email)` and `lower(display_name)` (what
//! `LOWER(col) LIKE '%…%'` uses), when the `pg_trgm` extension can be had.
//! A database user that may not create it still migrates (the search then
//! scans); the `DO` blocks keep a refused `CREATE EXTENSION` from failing the
//! migration's transaction. SQLite has no such index: it scans.
//!
//! The indexes build inside the migration's transaction, which blocks writes
//! to `users` while they build (seconds per million rows). Not
//! `CONCURRENTLY`: that waits for every other transaction, including
//! replicas starting together that wait for the migration lock, and would
//! never finish. For a large table, build them by hand first (the same
//! statements with `CONCURRENTLY`); `IF NOT EXISTS` then skips them here —
//! see docs/runbook.md.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'pg_trgm is not available (%): user search will scan', SQLERRM;
END $$;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    CREATE INDEX IF NOT EXISTS ix_users_email_trgm
      ON users USING gin (lower(email) gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS ix_users_display_name_trgm
      ON users USING gin (lower(display_name) gin_trgm_ops);
  END IF;
END $$;
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS ix_users_email_trgm;
DROP INDEX IF EXISTS ix_users_display_name_trgm;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager.get_connection().execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager.get_connection().execute_unprepared(DOWN).await?;
        }
        Ok(())
    }
}

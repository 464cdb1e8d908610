//! What keeps the cache honest (see `usergraph::infra::cache`) and the
//! session purge cheap:
//! - `users.version`, bumped by every write to a user row or to its role
//!   links, so a cached copy can be replaced only by a strictly newer one;
//! - `cache_epochs`, one version counter per cached set that has no row of
//!   its own (`roles`: the whole role catalogue), and `cache`: the generation
//!   every cache key lives under, with the Redis `run_id` it was last seen
//!   with (a new one means Redis may have lost writes: a new generation) and
//!   when that generation replaced an earlier one;
//! - `cache_outbox`, the invalidations a write commits with its own
//!   transaction, delivered to the cache by a worker, so an invalidation that
//!   could not reach Redis is not lost with the process;
//! - an index on `sessions.revoked_at` for the batched purge.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CacheEpochs::Table)
                    .col(
                        ColumnDef::new(CacheEpochs::Name)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CacheEpochs::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CacheEpochs::Marker).string_len(64).null())
                    .col(
                        ColumnDef::new(CacheEpochs::MovedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(CacheEpochs::Table)
                    .columns([CacheEpochs::Name, CacheEpochs::Version])
                    .values_panic(["roles".into(), 0i64.into()])
                    .values_panic(["cache".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CacheOutbox::Table)
                    .col(
                        ColumnDef::new(CacheOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CacheOutbox::CacheKey)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CacheOutbox::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CacheOutbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cache_outbox_created_at")
                    .table(CacheOutbox::Table)
                    .col(CacheOutbox::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_revoked_at")
                    .table(Sessions::Table)
                    .col(Sessions::RevokedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_sessions_revoked_at")
                    .table(Sessions::Table)
                    .to_owned(),
            )
            .await?;
        for table in [
            CacheOutbox::Table.into_iden(),
            CacheEpochs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::Version)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Version,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    RevokedAt,
}

#[derive(DeriveIden)]
enum CacheEpochs {
    Table,
    Name,
    Version,
    Marker,
    MovedAt,
}

#[derive(DeriveIden)]
enum CacheOutbox {
    Table,
    Id,
    CacheKey,
    Version,
    CreatedAt,
}

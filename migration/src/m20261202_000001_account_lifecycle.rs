//! What the account lifecycle needs on top of the initial tables:
//! - `mail_outbox.kind` (a ready `message`, or a `reset_request` the worker
//!   turns into a reset mail when the address has an account, so answering
//!   `requestPasswordReset` does the same work for every address),
//!   `mail_outbox.user_id` (pending mail of a deleted account is dropped with
//!   it) and `mail_outbox.dead_at` (given up after the last attempt), with an
//!   index for the purge of dead rows;
//! - `rotated_refresh_tokens.generation` (which rotation the token was the
//!   input of: only the immediate predecessor gets the reuse grace) and
//!   `rotated_refresh_tokens.successor` (the pair it was exchanged for,
//!   sealed under a key derived from the token itself: never plaintext),
//!   with an index on `rotated_at` for clearing it once the grace is over.
//!
//! One column per `ALTER TABLE`: SQLite takes one at a time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

async fn add(manager: &SchemaManager<'_>, table: DynIden, column: ColumnDef) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).add_column(column).to_owned())
        .await
}

async fn drop(manager: &SchemaManager<'_>, table: DynIden, column: DynIden) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let outbox = || MailOutbox::Table.into_iden();
        add(
            manager,
            outbox(),
            ColumnDef::new(MailOutbox::Kind)
                .string_len(32)
                .not_null()
                .default("message")
                .to_owned(),
        )
        .await?;
        add(
            manager,
            outbox(),
            ColumnDef::new(MailOutbox::UserId).uuid().null().to_owned(),
        )
        .await?;
        add(
            manager,
            outbox(),
            ColumnDef::new(MailOutbox::DeadAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_mail_outbox_dead_at")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::DeadAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_mail_outbox_user_id")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::UserId)
                    .to_owned(),
            )
            .await?;
        let rotated = || RotatedRefreshTokens::Table.into_iden();
        add(
            manager,
            rotated(),
            ColumnDef::new(RotatedRefreshTokens::Generation)
                .integer()
                .null()
                .to_owned(),
        )
        .await?;
        add(
            manager,
            rotated(),
            ColumnDef::new(RotatedRefreshTokens::Successor)
                .text()
                .null()
                .to_owned(),
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_rotated_refresh_tokens_rotated_at")
                    .table(RotatedRefreshTokens::Table)
                    .col(RotatedRefreshTokens::RotatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_rotated_refresh_tokens_rotated_at")
                    .table(RotatedRefreshTokens::Table)
                    .to_owned(),
            )
            .await?;
        for name in ["ix_mail_outbox_dead_at", "ix_mail_outbox_user_id"] {
            manager
                .drop_index(Index::drop().name(name).table(MailOutbox::Table).to_owned())
                .await?;
        }
        for column in [MailOutbox::Kind, MailOutbox::UserId, MailOutbox::DeadAt] {
            drop(manager, MailOutbox::Table.into_iden(), column.into_iden()).await?;
        }
        for column in [
            RotatedRefreshTokens::Generation,
            RotatedRefreshTokens::Successor,
        ] {
            drop(
                manager,
                RotatedRefreshTokens::Table.into_iden(),
                column.into_iden(),
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Kind,
    UserId,
    DeadAt,
}

#[derive(DeriveIden)]
enum RotatedRefreshTokens {
    Table,
    RotatedAt,
    Generation,
    Successor,
}

//! `mail_outbox`: messages queued in the same transaction as the token they
//! carry, delivered by a background worker with retries.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker claims a message by setting this; another replica skips it.
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// `message` (ready to send) or `reset_request` (the worker composes the
    /// reset mail if the address has an account, and drops it otherwise).
    pub kind: String,
    /// The account the message is for; its pending mail goes with it.
    pub user_id: Option<Uuid>,
    /// Set when the last attempt failed: never retried again.
    pub dead_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! `rotated_refresh_tokens`: hashes of refresh tokens a session has rotated
//! away from. Seeing one again is token reuse.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rotated_refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub session_id: Uuid,
    pub rotated_at: DateTimeUtc,
    /// The session's generation when this token was rotated away from: the
    /// immediate predecessor of generation `g` has `g - 1`.
    pub generation: Option<i32>,
    /// The pair this token was exchanged for, sealed under a key derived from
    /// the token (see `auth::tokens::seal`); cleared once the grace is over.
    pub successor: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::session::Entity",
        from = "Column::SessionId",
        to = "super::session::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

//! `cache_outbox`: invalidations committed with the write that made a cached
//! value stale, deleted once delivered to the cache.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cache_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The logical key (`user:<id>`, `session:<id>`, …), without prefix.
    pub cache_key: String,
    /// The version the invalidation carries: cached values older than it die.
    pub version: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

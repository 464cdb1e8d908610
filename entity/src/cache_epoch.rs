//! `cache_epochs`: a version counter per cached set that has no row of its
//! own (`roles`: the role catalogue; every write to the set bumps it in the
//! same transaction), and `cache`: the generation all cache keys live under,
//! with the Redis `run_id` it was last seen with in `marker`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cache_epochs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub version: i64,
    pub marker: Option<String>,
    /// When the `cache` generation replaced an earlier one (none for the
    /// first): replicas wait for requests older than that to end.
    pub moved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! Schema migrations of usergraph.
//!
//! Every migration is written with sea-query's schema builder only, so the
//! same statements run on SQLite (the zero-setup default) and PostgreSQL.
//! The binary applies them through `usergraph migrate …` or at `serve` when
//! `AUTO_MIGRATE` is on; tests run the very same migrations.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_initial;
mod m20261201_000001_cache_coherence;
mod m20261202_000001_account_lifecycle;
mod m20261203_000001_user_search;

/// The ordered list of migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_initial::Migration),
            Box::new(m20261201_000001_cache_coherence::Migration),
            Box::new(m20261202_000001_account_lifecycle::Migration),
            Box::new(m20261203_000001_user_search::Migration),
        ]
    }
}

//! `usergraph migrate up|down|status`.

use migration::{Migrator, MigratorTrait as _};

use super::MigrateAction;
use crate::config::Config;
use crate::db::Db;

pub async fn run(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    let db = Db::connect(&config, false).await?;
    match action {
        MigrateAction::Up => {
            Migrator::up(&db.write, None).await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&db.write, Some(steps)).await?;
            println!("rolled back {steps} migration(s)");
        }
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&db.write).await? {
                println!("{:<10} {}", format!("{:?}", m.status()), m.name());
            }
        }
    }
    Ok(())
}

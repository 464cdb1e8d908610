//! `usergraph migrate up|down|status`.

use migration::{Migrator, MigratorTrait as _};

use super::MigrateAction;
use crate::config::Config;
use crate::db::{Db, Lock};

pub async fn run(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    let db = Db::connect(&config, false).await?;
    match action {
        MigrateAction::Up => {
            db.migrate().await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            db.locked(Lock::Migrate, true, || {
                Migrator::down(&db.write, Some(steps))
            })
            .await?
            .unwrap_or(Ok(()))?;
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

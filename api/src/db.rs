//! Database connections: a write pool and a read pool.
//!
//! PostgreSQL: both pools point at `DATABASE_URL`, unless `DATABASE_READ_URL`
//! names a replica for reads. SQLite: WAL mode, one writer connection (SQLite
//! has one writer anyway; this turns "database is locked" into a short queue)
//! and several readers.

use std::time::Duration;

use anyhow::Context as _;
use migration::MigratorTrait as _;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::Config;

/// The two pools. Writes, and reads that must see the newest write, use `write`.
#[derive(Clone)]
pub struct Db {
    pub write: DatabaseConnection,
    pub read: DatabaseConnection,
}

fn options(url: &str, max: u32, lazy: bool) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy(lazy)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    opts
}

impl Db {
    /// Opens the pools. With `lazy`, no connection is made until first use
    /// (the service can start while the database is away).
    ///
    /// # Errors
    /// When the database cannot be reached (unless lazy).
    pub async fn connect(config: &Config, lazy: bool) -> anyhow::Result<Self> {
        let url = config.database_url.expose();
        let sqlite = url.starts_with("sqlite:");
        let max = config.database_max_connections;
        let write = Database::connect(options(url, if sqlite { 1 } else { max }, lazy))
            .await
            .context("connecting to DATABASE_URL")?;
        let read = match (&config.database_read_url, sqlite) {
            (Some(read_url), _) => Database::connect(options(read_url.expose(), max, lazy))
                .await
                .context("connecting to DATABASE_READ_URL")?,
            (None, true) => Database::connect(options(url, max.min(8), lazy))
                .await
                .context("connecting to DATABASE_URL")?,
            (None, false) => write.clone(),
        };
        Ok(Self { write, read })
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        migration::Migrator::up(&self.write, None)
            .await
            .context("applying migrations")
    }

    /// Readiness: can every pool answer?
    ///
    /// # Errors
    /// When one cannot.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.write.ping().await.context("write pool")?;
        self.read.ping().await.context("read pool")?;
        Ok(())
    }

    /// Publishes pool gauges (called at each scrape).
    pub fn record_pool_metrics(&self) {
        use sea_orm::DatabaseBackend;
        let (size, idle, max) = match self.write.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = self.write.get_postgres_connection_pool();
                (
                    pool.size(),
                    pool.num_idle() as u32,
                    pool.options().get_max_connections(),
                )
            }
            DatabaseBackend::Sqlite => {
                let pool = self.write.get_sqlite_connection_pool();
                (
                    pool.size(),
                    pool.num_idle() as u32,
                    pool.options().get_max_connections(),
                )
            }
            _ => return,
        };
        metrics::gauge!("usergraph_db_pool_connections", "state" => "idle").set(f64::from(idle));
        metrics::gauge!("usergraph_db_pool_connections", "state" => "in_use")
            .set(f64::from(size.saturating_sub(idle)));
        metrics::gauge!("usergraph_db_pool_max_connections").set(f64::from(max));
    }
}

//! Database connections: a write pool and a read pool.
//!
//! PostgreSQL: both pools point at `DATABASE_URL`, unless `DATABASE_READ_URL`
//! names a replica for reads. SQLite: WAL mode, one writer connection (SQLite
//! has one writer anyway; this turns "database is locked" into a short queue)
//! and several readers.
//!
//! Work that must run on one replica at a time (migrations, the session
//! purge) takes a PostgreSQL advisory lock on a connection of its own, which
//! releases the lock however the work ends. SQLite serves one process, so
//! there is nothing to coordinate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use migration::MigratorTrait as _;
use sea_orm::sqlx::Connection as _;
use sea_orm::{ConnectOptions, Database, DatabaseBackend, DatabaseConnection};

use crate::config::Config;

/// Work that runs on one replica at a time, each with its advisory-lock key.
#[derive(Clone, Copy, Debug)]
pub enum Lock {
    Migrate,
    Purge,
}

impl Lock {
    fn key(self) -> i64 {
        // "ug" and a number: unlikely to collide with another application's keys.
        match self {
            Self::Migrate => 0x7567_0000_0001,
            Self::Purge => 0x7567_0000_0002,
        }
    }
}

/// The pools. Writes use `write`; reads that must see every committed write
/// (every cache fill, session checks) use `fresh`; other reads may use
/// `read`, which may lag.
#[derive(Clone)]
pub struct Db {
    pub write: DatabaseConnection,
    pub read: DatabaseConnection,
    /// The primary; on SQLite without a separate read URL, the reader pool
    /// (same file, and readers see every commit), so reads do not queue
    /// behind the one writer connection.
    pub fresh: DatabaseConnection,
    separate_read: bool,
    statements: Arc<AtomicU64>,
    /// Until when lists skip a read replica that could not be reached.
    replica_skipped_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How long lists read the primary after the read replica failed to answer.
const REPLICA_BACKOFF: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// Set on background work (workers, janitors): its statements are not
    /// counted as request work.
    static BACKGROUND: ();
}

/// Runs `work` as background work (see [`Db::statements`]).
pub async fn in_background<F: Future>(work: F) -> F::Output {
    BACKGROUND.scope((), work).await
}

/// Counts every statement for the metrics, and those of requests for
/// [`Db::statements`] (tests that prove a page costs a bounded number).
fn count_statements(conn: &mut DatabaseConnection, counter: &Arc<AtomicU64>) {
    let counter = Arc::clone(counter);
    conn.set_metric_callback(move |info| {
        if BACKGROUND.try_with(|()| ()).is_err() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!("usergraph_db_queries_total").increment(1);
        if info.failed {
            metrics::counter!("usergraph_db_query_errors_total").increment(1);
        }
    });
}

/// Connections a PostgreSQL pool opens at start, at the same time: the
/// migration check, the cache and mail workers' first rounds and the first
/// readiness probe all find one idle. Each costs a TLS handshake (~100 ms
/// on loopback: sqlx 0.9.0 does not set `TCP_NODELAY`), paid once in
/// parallel instead of one after another.
const WARM_CONNECTIONS: u32 = 4;

/// Opens `n` connections of the pool at once and returns as soon as one
/// is open (the start waits for one handshake, not for the slowest of
/// `n`); the others finish in the background and wait idle in the pool.
/// An error only when every one of them fails.
async fn open_side_by_side(db: &DatabaseConnection, n: u32) -> anyhow::Result<()> {
    let pool = db.get_postgres_connection_pool().clone();
    let opening = (0..n.max(1)).map(|_| {
        let pool = pool.clone();
        Box::pin(async move { pool.acquire().await })
    });
    let (first, rest) = futures_util::future::select_ok(opening).await?;
    drop(first);
    for opening in rest {
        tokio::spawn(async move {
            if let Err(e) = opening.await {
                tracing::debug!(error = %e, "a warm connection did not open; the pool opens one on demand");
            }
        });
    }
    Ok(())
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
        let statements = Arc::new(AtomicU64::new(0));
        // PostgreSQL: the pool opens its first connections side by side
        // (below) rather than one now and the next when a background worker
        // or the first `/ready` finds none idle.
        let mut write =
            Database::connect(options(url, if sqlite { 1 } else { max }, lazy || !sqlite))
                .await
                .context("connecting to DATABASE_URL")?;
        if !lazy && !sqlite {
            open_side_by_side(&write, WARM_CONNECTIONS.min(max))
                .await
                .context("connecting to DATABASE_URL")?;
        }
        count_statements(&mut write, &statements);
        let read = match (&config.database_read_url, sqlite) {
            // Lazy: a replica that is away at start costs the queries that
            // use it, not the start.
            (Some(read_url), _) => Database::connect(options(read_url.expose(), max, true))
                .await
                .context("connecting to DATABASE_READ_URL")?,
            (None, true) => Database::connect(options(url, max.min(8), lazy))
                .await
                .context("connecting to DATABASE_URL")?,
            (None, false) => write.clone(),
        };
        let mut read = read;
        let separate_read = config.database_read_url.is_some();
        if separate_read || sqlite {
            count_statements(&mut read, &statements);
        }
        let fresh = if sqlite && !separate_read {
            read.clone()
        } else {
            write.clone()
        };
        Ok(Self {
            write,
            read,
            fresh,
            separate_read,
            statements,
            replica_skipped_until: Arc::default(),
        })
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        // Every start of a replica but the first of a release: reads on the
        // pool's one connection (in a transaction, so both queries get the
        // same one and the pool opens no second connection meanwhile), and
        // no connection for the lock.
        let pending = {
            use sea_orm::TransactionTrait as _;
            let tx = self
                .write
                .begin()
                .await
                .context("reading the applied migrations")?;
            let pending = migration::Migrator::get_pending_migrations_read_only(&tx).await;
            tx.commit()
                .await
                .context("reading the applied migrations")?;
            pending.context("reading the applied migrations")?
        };
        if pending.is_empty() {
            return Ok(());
        }
        self.locked(Lock::Migrate, true, || {
            migration::Migrator::up(&self.write, None)
        })
        .await?
        .unwrap_or(Ok(()))
        .context("applying migrations")
    }

    /// Runs `work` unless another replica holds `lock`; `None` when it does.
    ///
    /// # Errors
    /// When the lock cannot be asked for.
    pub async fn exclusively<T, Fut: Future<Output = T>>(
        &self,
        lock: Lock,
        work: impl FnOnce() -> Fut,
    ) -> anyhow::Result<Option<T>> {
        self.locked(lock, false, work).await
    }

    /// Runs `work` under `lock`, waiting for it (`wait`) or giving up at once.
    ///
    /// # Errors
    /// When the lock cannot be asked for.
    pub async fn locked<T, Fut: Future<Output = T>>(
        &self,
        lock: Lock,
        wait: bool,
        work: impl FnOnce() -> Fut,
    ) -> anyhow::Result<Option<T>> {
        use sea_orm::sqlx::postgres::PgConnection;
        if self.write.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(Some(work().await));
        }
        let options = self.write.get_postgres_connection_pool().connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .context("opening a connection for an advisory lock")?;
        let sql = if wait {
            "SELECT pg_advisory_lock($1) IS NOT NULL"
        } else {
            "SELECT pg_try_advisory_lock($1)"
        };
        let held: bool = sea_orm::sqlx::query_scalar(sql)
            .bind(lock.key())
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("taking the {lock:?} advisory lock"))?;
        if !held {
            return Ok(None);
        }
        let out = work().await;
        // Closing the session releases the lock (as does dropping it, when
        // `work` is cancelled).
        let _ = conn.close().await;
        Ok(Some(out))
    }

    /// How many SQL statements this process has run for requests
    /// (background work excluded, see [`in_background`]).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Readiness of the primary: nothing works without it.
    ///
    /// # Errors
    /// When it cannot answer.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.write.ping().await.context("primary")?;
        self.fresh.ping().await.context("primary readers")
    }

    /// Whether `DATABASE_READ_URL` names a replica of its own.
    pub fn has_replica(&self) -> bool {
        self.separate_read
    }

    /// The rows of a list query (`users`, `auditEvents`, …), read on the
    /// read replica, which may lag; on the primary when there is no
    /// replica, or while it cannot be reached: a replica that fails to
    /// connect is skipped for [`REPLICA_BACKOFF`] (counted in
    /// `usergraph_db_replica_fallbacks_total`), so a list is not an error
    /// because a replica is away.
    ///
    /// # Errors
    /// What the query returns on the database that answered.
    pub async fn list<E: sea_orm::EntityTrait>(
        &self,
        query: sea_orm::Select<E>,
    ) -> Result<Vec<E::Model>, sea_orm::DbErr> {
        self.listing(move |conn| {
            let query = query.clone();
            async move { query.all(&conn).await }
        })
        .await
    }

    /// The rows of a list query as tuples read by position (`query` selects
    /// the tuple's columns), read like [`Db::list`].
    ///
    /// # Errors
    /// What the query returns on the database that answered.
    pub async fn list_tuples<E: sea_orm::EntityTrait, T: sea_orm::TryGetableMany + Send>(
        &self,
        query: sea_orm::Select<E>,
    ) -> Result<Vec<T>, sea_orm::DbErr> {
        self.listing(move |conn| {
            let query = query.clone().into_tuple::<T>();
            async move { query.all(&conn).await }
        })
        .await
    }

    /// How many rows a list query matches, read like [`Db::list`].
    ///
    /// # Errors
    /// What the query returns on the database that answered.
    pub async fn list_count<E: sea_orm::EntityTrait>(
        &self,
        query: sea_orm::Select<E>,
    ) -> Result<u64, sea_orm::DbErr>
    where
        E::Model: Sync,
    {
        use sea_orm::PaginatorTrait as _;
        self.listing(move |conn| {
            let query = query.clone();
            async move { query.count(&conn).await }
        })
        .await
    }

    /// Runs `read` on the connection lists use, and once more on the
    /// primary when that was the replica and it could not be reached. A
    /// connection is a handle on its pool, so `read` takes its own.
    async fn listing<T, F, Fut>(&self, read: F) -> Result<T, sea_orm::DbErr>
    where
        F: Fn(DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, sea_orm::DbErr>>,
    {
        let conn = self.lister();
        match read(conn.clone()).await {
            Err(e) if self.replica_failed(conn, &e) => read(self.fresh.clone()).await,
            other => other,
        }
    }

    fn lister(&self) -> &DatabaseConnection {
        let skipped = self
            .replica_skipped_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| std::time::Instant::now() < t);
        if self.separate_read && !skipped {
            &self.read
        } else {
            &self.fresh
        }
    }

    /// Whether `err`, from `conn`, means the replica cannot be reached;
    /// if so it is skipped for a while.
    fn replica_failed(&self, conn: &DatabaseConnection, err: &sea_orm::DbErr) -> bool {
        let unreachable = matches!(
            err,
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_)
        );
        if !unreachable || !std::ptr::eq(conn, &self.read) || !self.separate_read {
            return false;
        }
        tracing::warn!(error = %err, "read replica unreachable: listing from the primary");
        metrics::counter!("usergraph_db_replica_fallbacks_total").increment(1);
        *self
            .replica_skipped_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now() + REPLICA_BACKOFF);
        true
    }

    /// Readiness of the read replica: without it, lists fall back on the
    /// primary (see [`Db::list`]).
    ///
    /// # Errors
    /// When it cannot answer.
    pub async fn ping_replica(&self) -> anyhow::Result<()> {
        self.read.ping().await.context("read replica")
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

//! A write transaction that knows the audit events it recorded, so they are
//! published on the event bus once (and only if) it commits.

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    TransactionTrait as _,
};

use crate::error::{AppError, AppResult};
use crate::state::App;

pub struct Tx {
    txn: DatabaseTransaction,
    recorded: std::sync::Mutex<Vec<entity::audit_event::Model>>,
}

impl Tx {
    /// Begins a transaction on the primary.
    ///
    /// # Errors
    /// `Internal` when the database fails.
    pub async fn begin(app: &App) -> AppResult<Self> {
        Ok(Self {
            txn: app.db.write.begin().await?,
            recorded: std::sync::Mutex::default(),
        })
    }

    /// Notes an event inserted in this transaction.
    pub(crate) fn recorded(&self, event: entity::audit_event::Model) {
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// Commits, then publishes the recorded events.
    ///
    /// # Errors
    /// `Internal` when the commit fails (nothing is published).
    pub async fn commit(self, app: &App) -> AppResult<()> {
        self.commit_holding(app, ()).await
    }

    /// [`Tx::commit`], keeping `guard` until the transaction has ended. The
    /// commit and the publication run in a task of their own: a request
    /// cancelled while its commit is in flight still publishes what
    /// committed, and still holds `guard` until then.
    ///
    /// # Errors
    /// `Internal` when the commit fails (nothing is published).
    pub async fn commit_holding<G: Send + 'static>(self, app: &App, guard: G) -> AppResult<()> {
        let Self { txn, recorded } = self;
        let events = recorded
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bus = std::sync::Arc::clone(&app.events);
        let committed = tokio::spawn(async move {
            let outcome = txn.commit().await;
            drop(guard);
            if outcome.is_ok() {
                bus.publish(events);
            }
            outcome
        })
        .await;
        match committed {
            Ok(outcome) => Ok(outcome?),
            Err(e) => Err(AppError::internal(anyhow::anyhow!(
                "the commit task failed: {e}"
            ))),
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

#[async_trait]
impl ConnectionTrait for Tx {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }
    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }
    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }
    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }
    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
    fn is_mock_connection(&self) -> bool {
        self.txn.is_mock_connection()
    }
}

//! The shared application state: every long-lived service a request needs.

use std::sync::Arc;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::config::Config;
use crate::db::Db;
use crate::infra::cache::Cache;
use crate::infra::events::EventBus;
use crate::infra::mailer::Mailer;
use crate::infra::ratelimit::RateLimiter;

/// Services shared by all requests. Cheap to clone through [`AppState`].
pub struct App {
    pub config: Config,
    pub db: Db,
    pub cache: Cache,
    pub hasher: PasswordHasher,
    pub jwt: JwtKeys,
    pub limiter: RateLimiter,
    pub mailer: Mailer,
    /// Committed audit events, to the subscribers of every replica.
    pub events: Arc<EventBus>,
    /// Rung after a commit that queued mail: the local mail worker starts a
    /// round at once instead of at its next tick.
    pub mail_queued: Arc<tokio::sync::Notify>,
    /// Set once shutdown begins (see [`App::start_draining`]); live
    /// subscriptions watch it.
    pub(crate) draining: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Set once shutdown begins: `/ready` answers 503 from then on.
    pub fn start_draining(&self) {
        self.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Changes when shutdown begins.
    pub fn draining(&self) -> tokio::sync::watch::Receiver<bool> {
        self.draining.subscribe()
    }
}

/// The state axum handlers and GraphQL resolvers receive.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

//! `Subscription.auditEvents`: audit events as they commit, on any replica.
//!
//! The caller was authenticated when the WebSocket connection began
//! (`connection_init`); each subscription checks the session and token
//! again when it starts, then every [`RECHECK_EVERY`], and at once when an
//! event concerns the caller or a role. It ends, with an error saying why,
//! when the session ends (logout, revocation, disabled account), the
//! `audit:read` permission is withdrawn, the access token expires, or the
//! replica begins to shut down; and when the client reads too slowly to
//! keep up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::{Context, Result, Subscription};
use futures_util::Stream;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::audit::{AuditEvent, AuditEventFilter};
use super::context::{self, Viewer};
use super::guards::AUDIT_READ;
use crate::domain::{audit, roles, sessions};
use crate::error::AppError;
use crate::state::AppState;

/// How often a live subscription checks its caller again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);
/// Subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 20;

/// The subscriptions live on one connection.
#[derive(Clone, Default)]
pub struct LiveCount(pub Arc<AtomicUsize>);

/// One counted subscription; uncounted when its stream is dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
pub struct AuditSubscription;

#[Subscription(name = "Subscription")]
impl AuditSubscription {
    /// Audit events as they are committed, on every replica, that match the
    /// filter. Needs `audit:read`. Ends with `UNAUTHENTICATED` when the
    /// session ends or the access token expires (subscribe again with a
    /// fresh one), `FORBIDDEN` when the permission is withdrawn.
    #[graphql(guard = "AUDIT_READ")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
    ) -> Result<impl Stream<Item = Result<AuditEvent>> + use<>> {
        let viewer = context::viewer(ctx)?;
        let filter = filter.unwrap_or_default().into_domain()?;
        let slot = match ctx.data_opt::<LiveCount>() {
            Some(LiveCount(live)) => {
                if live.fetch_add(1, Ordering::SeqCst) >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
                    live.fetch_sub(1, Ordering::SeqCst);
                    return Err(AppError::QueryTooComplex(format!(
                        "A connection may hold at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions"
                    ))
                    .into());
                }
                Some(Slot(Arc::clone(live)))
            }
            None => None,
        };
        let app = context::state(ctx).clone();
        let live = Live {
            events: app.events.subscribe(),
            draining: app.draining(),
            app,
            viewer,
            filter,
            recheck: tokio::time::interval_at(
                tokio::time::Instant::now() + RECHECK_EVERY,
                RECHECK_EVERY,
            ),
            ended: false,
            _slot: slot,
        };
        // The guard read the roles; the session and the token's expiry are
        // checked here (the connection's may have ended since it began).
        live.check().await?;
        Ok(futures_util::stream::unfold(live, |mut live| async move {
            let item = live.next().await?;
            Some((item, live))
        }))
    }
}

struct Live {
    app: AppState,
    viewer: Viewer,
    filter: audit::Filter,
    events: Receiver<Arc<entity::audit_event::Model>>,
    recheck: tokio::time::Interval,
    draining: tokio::sync::watch::Receiver<bool>,
    ended: bool,
    _slot: Option<Slot>,
}

impl Live {
    /// The next event for the caller, or the error that ends the stream
    /// (`None` after it).
    async fn next(&mut self) -> Option<Result<AuditEvent>> {
        if self.ended {
            return None;
        }
        loop {
            let outcome = tokio::select! {
                received = self.events.recv() => match received {
                    Ok(event) => {
                        let touches_caller = event.actor_id == Some(self.viewer.user_id)
                            || event.target_user_id == Some(self.viewer.user_id)
                            || audit::Action::may_change_permissions(&event.action);
                        let refused = if touches_caller { self.check().await.err() } else { None };
                        match refused {
                            Some(err) => err,
                            None if self.filter.matches(&event) => {
                                return Some(Ok(AuditEvent(Arc::unwrap_or_clone(event))));
                            }
                            None => continue,
                        }
                    }
                    Err(RecvError::Lagged(missed)) => coded(
                        format!(
                            "This subscription fell {missed} events behind and was ended; read \
                             the gap with auditEvents(filter: {{after: …}}) and subscribe again"
                        ),
                        "INTERNAL_SERVER_ERROR",
                    ),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.recheck.tick() => match self.check().await {
                    Ok(()) => continue,
                    Err(err) => err,
                },
                _ = self.draining.changed() => match self.check().await {
                    Ok(()) => continue,
                    Err(err) => err,
                },
            };
            self.ended = true;
            return Some(Err(outcome));
        }
    }

    /// Whether the caller may still listen.
    async fn check(&self) -> Result<()> {
        if self.app.is_draining() {
            return Err(coded(
                "This server is shutting down; subscribe again (another replica answers)",
                "INTERNAL_SERVER_ERROR",
            ));
        }
        if chrono::Utc::now().timestamp() >= self.viewer.token_expires_at {
            return Err(AppError::Unauthenticated(
                "The access token has expired; subscribe again with a fresh one".into(),
            )
            .into());
        }
        let Viewer {
            user_id,
            session_id,
            ..
        } = self.viewer;
        sessions::check_live(&self.app, user_id, session_id, None).await?;
        if !roles::user_holds(&self.app, user_id, AUDIT_READ.0, None).await? {
            return Err(
                AppError::Forbidden(format!("This needs the {} permission", AUDIT_READ.0)).into(),
            );
        }
        Ok(())
    }
}

/// An error with its contract code (and a message of our own).
fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    use async_graphql::ErrorExtensions as _;
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
}

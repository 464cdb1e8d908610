//! Cache invalidation that commits with the write (see `infra::cache` for
//! the rule it serves).
//!
//! A write that makes cached values stale bumps their versions in its
//! transaction and calls [`commit`]: before committing, the cache gets a
//! tombstone at each new version. If the cache cannot take them (Redis down,
//! slow, or failing over), they are inserted into `cache_outbox` in the same
//! transaction instead, so the invalidation is exactly as durable as the
//! write. Every replica runs [`spawn_worker`], which delivers queued rows
//! every [`INTERVAL`] once Redis answers, and only then lets its replica
//! trust the cache again. Delivery is idempotent (a tombstone never replaces
//! anything newer), so replicas may deliver the same row concurrently.

use std::time::Duration;

use entity::cache_outbox;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseTransaction, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, Set,
};
use uuid::Uuid;

use super::now;
use crate::error::AppResult;
use crate::state::{App, AppState};

/// How often each replica delivers queued invalidations (and so the bound
/// on a stale read, after Redis answers again, on a replica that did not
/// see it fail).
pub const INTERVAL: Duration = Duration::from_millis(500);
const BATCH: u64 = 500;

/// A logical cache key and the version that makes older copies stale.
pub type Stale = (String, u64);

/// Invalidates `keys` ahead of the caller's commit: tombstones in the cache,
/// or rows in `conn`'s transaction when the cache cannot take them.
///
/// # Errors
/// `Internal` when the outbox insert fails (the write then fails too).
pub async fn before_commit<C: ConnectionTrait>(
    app: &App,
    conn: &C,
    keys: &[Stale],
) -> AppResult<()> {
    if keys.is_empty() || app.cache.invalidate(keys).await.is_ok() {
        return Ok(());
    }
    let at = now();
    let rows = keys.iter().map(|(key, version)| cache_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        cache_key: Set(key.clone()),
        version: Set(i64::try_from(*version).unwrap_or(i64::MAX)),
        created_at: Set(at),
    });
    cache_outbox::Entity::insert_many(rows).exec(conn).await?;
    metrics::counter!("usergraph_cache_invalidations_queued_total").increment(keys.len() as u64);
    Ok(())
}

/// Commits `txn` together with the invalidation of `keys`. Nothing happens
/// after the commit, so a request cancelled past it leaves nothing stale.
///
/// # Errors
/// `Internal` when the outbox insert or the commit fails.
pub async fn commit(app: &App, txn: DatabaseTransaction, keys: &[Stale]) -> AppResult<()> {
    before_commit(app, &txn, keys).await?;
    txn.commit().await?;
    if let Some(delay) = app.config.after_commit_delay {
        // Testing hook: a window in which the request can be cut off.
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

/// Delivers queued invalidations, oldest first, and trusts the cache again
/// when it answers and nothing is left. Returns how many were delivered.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn drain(app: &App) -> AppResult<usize> {
    let mut delivered = 0;
    loop {
        let rows = cache_outbox::Entity::find()
            .order_by_asc(cache_outbox::Column::CreatedAt)
            .limit(BATCH)
            .all(&app.db.write)
            .await?;
        if rows.is_empty() {
            break;
        }
        let keys: Vec<Stale> = rows
            .iter()
            .map(|r| (r.cache_key.clone(), u64::try_from(r.version).unwrap_or(0)))
            .collect();
        if app.cache.invalidate(&keys).await.is_err() {
            return Ok(delivered);
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        cache_outbox::Entity::delete_many()
            .filter(cache_outbox::Column::Id.is_in(ids))
            .exec(&app.db.write)
            .await?;
        delivered += rows.len();
        metrics::counter!("usergraph_cache_invalidations_delivered_total")
            .increment(rows.len() as u64);
        if rows.len() < BATCH as usize {
            break;
        }
    }
    if !app.cache.is_trusted() && app.cache.ping().await.is_ok() {
        app.cache.trust_again();
    }
    Ok(delivered)
}

/// Runs [`drain`] every [`INTERVAL`] on this replica. Holds only a weak
/// reference, so it stops with the application.
pub fn spawn_worker(state: &AppState) {
    let weak = std::sync::Arc::downgrade(&state.0);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            match drain(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(invalidations = n, "delivered queued cache invalidations"),
                Err(e) => tracing::warn!(
                    error = e.message(),
                    "cache invalidation outbox: database unavailable"
                ),
            }
        }
    });
}

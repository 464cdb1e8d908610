//! Cache invalidation that commits with the write (see `infra::cache` for
//! the rule it serves).
//!
//! A write that makes cached values stale bumps their versions in its
//! transaction and calls [`commit`]: before committing, the cache gets a
//! tombstone at each new version. If the cache cannot take them (Redis down,
//! slow, or failing over), they are inserted into `cache_outbox` in the same
//! transaction instead, so the invalidation is exactly as durable as the
//! write. Every replica sharing a cache runs [`spawn_worker`], which every
//! [`INTERVAL`]:
//! 1. moves to a new key generation when Redis is not the server it was (a
//!    new `run_id`: restarted from a snapshot, or a promoted replica, either
//!    of which may have lost tombstones it had acknowledged);
//! 2. delivers queued rows (idempotent: a tombstone never replaces anything
//!    newer, so replicas may deliver the same row at once);
//! 3. trusts the cache again when all of that worked, nothing was left, and
//!    no failure or unsettled write came in the meantime.

use std::time::Duration;

use entity::{cache_epoch, cache_outbox};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, Set,
};
use uuid::Uuid;

use super::now;
use super::tx::Tx;
use crate::error::{AppError, AppResult};
use crate::state::{App, AppState};

/// How often each replica checks the cache and delivers queued
/// invalidations: the bound on a stale read, after Redis answers again, on a
/// replica that did not see it fail.
pub const INTERVAL: Duration = Duration::from_millis(500);
const BATCH: u64 = 500;
/// Outbox rows per insert (4 bind parameters each).
const INSERT_CHUNK: usize = 1000;
/// The `cache_epochs` row of the key generation.
const GENERATION: &str = "cache";

/// A logical cache key and the version that makes older copies stale.
pub type Stale = (String, u64);

async fn queue<C: ConnectionTrait>(conn: &C, keys: &[Stale]) -> AppResult<()> {
    let at = now();
    for chunk in keys.chunks(INSERT_CHUNK) {
        let rows = chunk
            .iter()
            .map(|(key, version)| cache_outbox::ActiveModel {
                id: Set(Uuid::now_v7()),
                cache_key: Set(key.clone()),
                version: Set(i64::try_from(*version).unwrap_or(i64::MAX)),
                created_at: Set(at),
            });
        cache_outbox::Entity::insert_many(rows).exec(conn).await?;
    }
    metrics::counter!("usergraph_cache_invalidations_queued_total").increment(keys.len() as u64);
    Ok(())
}

/// Commits `txn` together with the invalidation of `keys`: tombstones in the
/// cache before the commit, or rows in the outbox committed with it. Nothing
/// happens after the commit, so a request cancelled past it leaves nothing
/// stale.
///
/// # Errors
/// `Internal` when the outbox insert or the commit fails.
pub async fn commit(app: &App, txn: Tx, keys: &[Stale]) -> AppResult<()> {
    // Held until the transaction has ended: until then its rows may be
    // invisible to the worker, which must not trust the cache meanwhile.
    let unsettled = match app.cache.invalidate(keys).await {
        Ok(()) => None,
        Err(unsettled) => {
            queue(&txn, keys).await?;
            Some(unsettled)
        }
    };
    txn.commit_holding(app, unsettled).await?;
    if let Some(delay) = app.config.after_commit_delay {
        // Testing hook: a window in which the request can be cut off.
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

/// Moves this replica to the current key generation, first starting a new
/// one when Redis is not the server last recorded. Returns whether the cache
/// answered.
async fn sync_generation(app: &App) -> AppResult<bool> {
    let row = cache_epoch::Entity::find_by_id(GENERATION.to_owned())
        .one(&app.db.write)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("cache_epochs has no cache row")))?;
    let Ok(incarnation) = app.cache.incarnation().await else {
        return Ok(false);
    };
    let mut generation = row.version;
    let mut moved_at = row.moved_at;
    if let Some(run_id) = incarnation
        && row.marker.as_deref() != Some(run_id.as_str())
    {
        // Only the first replica to notice starts the new generation. The
        // first contact ever replaces nothing: no settling.
        let moved = row.marker.is_some().then(now);
        cache_epoch::Entity::update_many()
            .col_expr(
                cache_epoch::Column::Version,
                sea_orm::sea_query::ExprTrait::add(Expr::col(cache_epoch::Column::Version), 1),
            )
            .col_expr(cache_epoch::Column::Marker, Expr::value(run_id.clone()))
            .col_expr(cache_epoch::Column::MovedAt, Expr::value(moved))
            .filter(cache_epoch::Column::Name.eq(GENERATION))
            .filter(cache_epoch::Column::Version.eq(row.version))
            .exec(&app.db.write)
            .await?;
        if let Some(now_row) = cache_epoch::Entity::find_by_id(GENERATION.to_owned())
            .one(&app.db.write)
            .await?
        {
            generation = now_row.version;
            moved_at = now_row.moved_at;
        }
        if row.marker.is_some() {
            tracing::warn!(
                generation,
                "Redis is not the server it was (restarted or failed over): values it may have kept from before are ignored"
            );
        }
    }
    app.cache
        .set_generation(u64::try_from(generation).unwrap_or(0), moved_at);
    Ok(true)
}

/// Delivers queued invalidations, oldest first. Returns how many, and
/// whether everything queued was delivered.
async fn deliver(app: &App) -> AppResult<(usize, bool)> {
    let mut delivered = 0;
    loop {
        let rows = cache_outbox::Entity::find()
            .order_by_asc(cache_outbox::Column::CreatedAt)
            .limit(BATCH)
            .all(&app.db.write)
            .await?;
        if rows.is_empty() {
            return Ok((delivered, true));
        }
        let keys: Vec<Stale> = rows
            .iter()
            .map(|r| (r.cache_key.clone(), u64::try_from(r.version).unwrap_or(0)))
            .collect();
        if app.cache.invalidate(&keys).await.is_err() {
            return Ok((delivered, false));
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
            return Ok((delivered, true));
        }
    }
}

/// One round of the worker (see the module docs). Returns how many queued
/// invalidations it delivered.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn tick(app: &App) -> AppResult<usize> {
    // Read before looking at anything: a failure or a failed write from now
    // on means this round cannot vouch for the cache.
    let failures = app.cache.failures();
    // Always first: rows must reach the generation replicas read.
    if !sync_generation(app).await? {
        return Ok(0);
    }
    let (delivered, complete) = deliver(app).await?;
    if complete && !app.cache.is_trusted() && app.cache.ping().await.is_ok() {
        app.cache.trust_again(failures);
    }
    Ok(delivered)
}

/// Runs [`tick`] every [`INTERVAL`] on this replica when the cache is
/// shared. With the in-process cache there is nothing to deliver (it never
/// fails), and queued rows, if Redis-backed replicas share the database, are
/// theirs: no worker. Each round runs in a task of its own, so a panic ends
/// that round, not the worker. Database statements of the worker are not
/// counted as request work ([`crate::db::in_background`]). Holds only a weak
/// reference, so it stops with the application.
pub fn spawn_worker(state: &AppState) {
    let weak = std::sync::Arc::downgrade(&state.0);
    if !state.cache.is_shared() {
        return;
    }
    tokio::spawn(crate::db::in_background(async move {
        let mut tick_every = tokio::time::interval(INTERVAL);
        tick_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick_every.tick().await;
            let Some(app) = weak.upgrade() else { break };
            // Its own task: a panic ends that round, not the worker.
            let round = std::sync::Arc::clone(&app);
            let outcome = tokio::spawn(crate::db::in_background(async move { tick(&round).await }))
                .await
                .unwrap_or_else(|_| {
                    Err(AppError::internal(anyhow::anyhow!(
                        "a cache invalidation round panicked"
                    )))
                });
            metrics::gauge!("usergraph_cache_trusted").set(if app.cache.is_trusted() {
                1.0
            } else {
                0.0
            });
            match outcome {
                Ok(n) => {
                    if failing {
                        tracing::info!("cache invalidation worker: database reachable again");
                        failing = false;
                    }
                    if n > 0 {
                        tracing::info!(invalidations = n, "delivered queued cache invalidations");
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            error = ?e,
                            "cache invalidation worker: database unavailable"
                        );
                    }
                    failing = true;
                }
            }
        }
    }));
}

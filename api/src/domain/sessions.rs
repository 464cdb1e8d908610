//! Sessions: creation at login, refresh-token rotation with reuse detection,
//! revocation (one session, or all of a user's), and the liveness check every
//! authenticated request makes.
//!
//! Liveness is cached under `session:<id>` (see `infra::cache` for the
//! rule). A live session's entry carries the session's rotation generation
//! as its version; a refresh bumps it (the expiry moved), and a revocation
//! writes a tombstone at [`DEAD`], above every generation, before its commit.
//! So no replica can accept a revoked session's access token once the
//! revoking transaction has committed, whatever happens to the request after.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{rotated_refresh_token, session, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Action, Event};
use super::invalidations::{self, Stale};
use super::tx::Tx;
use super::users::UserView;
use super::{RequestMeta, now};
use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::infra::cache::{Family, Hints, Prefetch};
use crate::state::App;

/// Cached liveness, by session id.
const SESSIONS: Family = Family {
    name: "session",
    shape: 1,
    ttl: Duration::from_secs(300),
};

/// The version of an ended session: above any generation, so nothing a
/// reader saw while the session lived can replace it. Below 2^53, so Redis's
/// Lua compares it exactly.
const DEAD: u64 = 1 << 52;

/// The cached answer to "may tokens of this session be used?".
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SessionState {
    user_id: Uuid,
    live: bool,
    expires_at: DateTime<Utc>,
}

/// The stale keys of sessions that just ended.
pub fn ended(ids: &[Uuid]) -> Vec<Stale> {
    ids.iter().map(|id| (SESSIONS.key(id), DEAD)).collect()
}

/// Why a session ended, as stored in `revoked_reason`.
#[derive(Clone, Copy, Debug)]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    TokenReuse,
    PasswordChanged,
    PasswordReset,
    Revoked,
    AccountDeleted,
    Disabled,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::TokenReuse => "token_reuse",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::Revoked => "revoked",
            Self::AccountDeleted => "account_deleted",
            Self::Disabled => "disabled",
        }
    }
}

/// A new session's id and the refresh token to hand to the client (once).
pub struct NewSession {
    pub id: Uuid,
    pub refresh_token: String,
}

/// Creates a session for `user_id` inside the caller's transaction.
///
/// # Errors
/// `Internal` when the insert fails.
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    app: &App,
    user_id: Uuid,
    meta: &RequestMeta,
) -> AppResult<NewSession> {
    let token = tokens::generate(tokens::REFRESH_TOKEN_BYTES);
    let at = now();
    let id = Uuid::now_v7();
    session::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        refresh_token_hash: Set(token.hash),
        generation: Set(0),
        created_at: Set(at),
        last_used_at: Set(at),
        expires_at: Set(at + app.config.jwt.refresh_ttl),
        ip_address: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent_trimmed()),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(NewSession {
        id,
        refresh_token: token.token,
    })
}

/// Checks that `session_id` belongs to `user_id`, is neither revoked nor
/// expired, and that its user is active.
///
/// # Errors
/// `UNAUTHENTICATED` when it is not; `Internal` when the database fails.
pub async fn check_live(
    app: &App,
    user_id: Uuid,
    session_id: Uuid,
    hints: Hints<'_>,
) -> AppResult<()> {
    let mut states = app
        .cache
        .read_through_hinted(&SESSIONS, &[session_id], hints, |ids| load_states(app, ids))
        .await?;
    match states.remove(&session_id) {
        Some(s) if s.live && s.user_id == user_id && s.expires_at > Utc::now() => Ok(()),
        _ => Err(AppError::Unauthenticated(
            "Session has ended; sign in again".into(),
        )),
    }
}

/// Reads, in one round trip, what a signed-in request reads first: the
/// session's liveness, the user, the user's roles and the role catalogue
/// (see [`Prefetch`]).
pub async fn prefetch_viewer(app: &App, user_id: Uuid, session_id: Uuid) -> Prefetch {
    app.cache
        .prefetch(&[
            SESSIONS.key(session_id),
            super::users::USERS.key(user_id),
            super::roles::USER_ROLES.key(user_id),
            super::roles::CATALOGUE.key("all"),
        ])
        .await
}

/// Reads liveness from the primary: a lagging replica must not revive a
/// revoked session.
async fn load_states(app: &App, ids: Vec<Uuid>) -> AppResult<Vec<(Uuid, u64, SessionState)>> {
    let rows = session::Entity::find()
        .filter(session::Column::Id.is_in(ids))
        .find_also_related(user::Entity)
        .all(&app.db.fresh)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(s, owner)| {
            let live = s.revoked_at.is_none()
                && owner.is_some_and(|u| u.status == user::UserStatus::Active);
            let version = if live {
                u64::try_from(s.generation).unwrap_or(0)
            } else {
                DEAD
            };
            let state = SessionState {
                user_id: s.user_id,
                live,
                expires_at: s.expires_at,
            };
            (s.id, version, state)
        })
        .collect())
}

/// The outcome of a successful refresh.
pub struct Rotated {
    pub user: UserView,
    pub session_id: Uuid,
    pub refresh_token: String,
    pub access_token: String,
    /// How long ago the access token was signed (a grace replay hands out
    /// the one signed at the rotation).
    pub issued_ago: Duration,
}

/// The pair a rotation handed out, kept sealed for the reuse grace.
#[derive(Serialize, Deserialize)]
struct Successor {
    access_token: String,
    refresh_token: String,
}

/// Rotates a refresh token: the presented one dies, a new one is returned.
/// Presenting a token that was already rotated is reuse: the whole session is
/// revoked and `TOKEN_REUSE_DETECTED` audited — except for the immediate
/// predecessor within `REFRESH_TOKEN_REUSE_INTERVAL` of its rotation, which
/// answers with the same pair again (two tabs refreshing at once). That pair
/// is stored only sealed under a key derived from the presented token.
/// Everything the answer needs (the user, the signed access token) is made
/// before the rotation commits: once the old token is dead, nothing can fail
/// the request.
///
/// # Errors
/// `INVALID_TOKEN` for an unknown, rotated, expired or revoked token.
pub async fn refresh(app: &App, meta: &RequestMeta, presented: &str) -> AppResult<Rotated> {
    if presented.is_empty() || presented.len() > tokens::MAX_TOKEN_LEN {
        return Err(AppError::InvalidToken("Unknown refresh token".into()));
    }
    let hash = tokens::hash(presented);
    let txn = Tx::begin(app).await?;
    let current = session::Entity::find()
        .filter(session::Column::RefreshTokenHash.eq(hash.as_str()))
        .find_also_related(user::Entity)
        .one(&txn)
        .await?;
    let Some((s, Some(owner))) = current else {
        drop(txn);
        return replayed(app, meta, presented, &hash).await;
    };
    let at = now();
    if s.revoked_at.is_some() || s.expires_at <= at || owner.status != user::UserStatus::Active {
        return Err(AppError::InvalidToken(
            "Refresh token has expired or was revoked".into(),
        ));
    }
    let next = tokens::generate(tokens::REFRESH_TOKEN_BYTES);
    let updated = session::Entity::update_many()
        .col_expr(session::Column::RefreshTokenHash, Expr::value(next.hash))
        .col_expr(
            session::Column::Generation,
            sea_orm::sea_query::ExprTrait::add(Expr::col(session::Column::Generation), 1),
        )
        .col_expr(session::Column::LastUsedAt, Expr::value(at))
        .col_expr(
            session::Column::ExpiresAt,
            Expr::value(at + app.config.jwt.refresh_ttl),
        )
        .col_expr(session::Column::IpAddress, Expr::value(meta.ip_string()))
        .filter(session::Column::Id.eq(s.id))
        .filter(session::Column::RefreshTokenHash.eq(hash.as_str()))
        .filter(session::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        // Another request rotated this token first: this one is a replay.
        drop(txn);
        return replayed(app, meta, presented, &hash).await;
    }
    let access_token = app.jwt.issue(s.user_id, s.id)?;
    let successor = (!app.config.jwt.reuse_interval.is_zero()).then(|| {
        let pair = Successor {
            access_token: access_token.clone(),
            refresh_token: next.token.clone(),
        };
        tokens::seal(presented, &serde_json::to_vec(&pair).unwrap_or_default())
    });
    // Only the immediate predecessor keeps a sealed successor.
    rotated_refresh_token::Entity::update_many()
        .col_expr(
            rotated_refresh_token::Column::Successor,
            Expr::value(Option::<String>::None),
        )
        .filter(rotated_refresh_token::Column::SessionId.eq(s.id))
        .filter(rotated_refresh_token::Column::Successor.is_not_null())
        .exec(&txn)
        .await?;
    rotated_refresh_token::ActiveModel {
        token_hash: Set(hash),
        session_id: Set(s.id),
        rotated_at: Set(at),
        generation: Set(Some(s.generation)),
        successor: Set(successor),
    }
    .insert(&txn)
    .await?;
    // The expiry moved: the cached liveness of the old generation is stale.
    let generation = u64::try_from(s.generation).unwrap_or(0) + 1;
    invalidations::commit(app, txn, &[(SESSIONS.key(s.id), generation)]).await?;
    Ok(Rotated {
        user: owner.into(),
        session_id: s.id,
        refresh_token: next.token,
        access_token,
        issued_ago: Duration::ZERO,
    })
}

/// A token that is not its session's current one: within the grace, the
/// immediate predecessor gets its successor pair again; anything else that
/// was once valid is reuse.
async fn replayed(
    app: &App,
    meta: &RequestMeta,
    presented: &str,
    hash: &str,
) -> AppResult<Rotated> {
    let rotated = rotated_refresh_token::Entity::find_by_id(hash.to_owned())
        .one(&app.db.write)
        .await?;
    let Some(rotated) = rotated else {
        return Err(AppError::InvalidToken("Unknown refresh token".into()));
    };
    if let Some(again) = within_grace(app, &rotated, presented).await? {
        return Ok(again);
    }
    let txn = Tx::begin(app).await?;
    let Some(s) = session::Entity::find_by_id(rotated.session_id)
        .one(&txn)
        .await?
    else {
        return Err(AppError::InvalidToken("Unknown refresh token".into()));
    };
    // A replay against a session that is already dead changes nothing and
    // is not a new incident.
    if mark_revoked(&txn, &[s.id], RevokeReason::TokenReuse).await? > 0 {
        audit::record(
            &txn,
            meta,
            Event::new(Action::TokenReuseDetected)
                .by_self(s.user_id)
                .metadata(serde_json::json!({ "sessionId": s.id.to_string() })),
        )
        .await?;
        tracing::warn!(session_id = %s.id, user_id = %s.user_id, "refresh token reuse: session revoked");
    }
    invalidations::commit(app, txn, &ended(&[s.id])).await?;
    Err(AppError::InvalidToken(
        "Refresh token was already used; the session has been revoked".into(),
    ))
}

/// The pair handed out for `rotated`, when it is the live session's
/// immediate predecessor and was rotated within the grace interval.
async fn within_grace(
    app: &App,
    rotated: &rotated_refresh_token::Model,
    presented: &str,
) -> AppResult<Option<Rotated>> {
    let interval = app.config.jwt.reuse_interval;
    let (Some(sealed), Some(generation)) = (&rotated.successor, rotated.generation) else {
        return Ok(None);
    };
    let age = Utc::now() - rotated.rotated_at;
    if interval.is_zero() || age > chrono::Duration::from_std(interval).unwrap_or_default() {
        return Ok(None);
    }
    let found = session::Entity::find_by_id(rotated.session_id)
        .find_also_related(user::Entity)
        .one(&app.db.write)
        .await?;
    let Some((s, Some(owner))) = found else {
        return Ok(None);
    };
    let live =
        s.revoked_at.is_none() && s.expires_at > now() && owner.status == user::UserStatus::Active;
    if !live || s.generation != generation + 1 {
        return Ok(None);
    }
    let Some(pair) = tokens::open(presented, sealed)
        .and_then(|raw| serde_json::from_slice::<Successor>(&raw).ok())
    else {
        return Ok(None);
    };
    Ok(Some(Rotated {
        user: owner.into(),
        session_id: s.id,
        refresh_token: pair.refresh_token,
        access_token: pair.access_token,
        issued_ago: age.to_std().unwrap_or_default(),
    }))
}

/// Sets `revoked_at` on the sessions that are still live; returns how many.
///
/// # Errors
/// `Internal` when the update fails.
pub async fn mark_revoked<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
    reason: RevokeReason,
) -> AppResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.is_in(ids.to_vec()))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Ends the caller's own session (logout): its access and refresh tokens
/// stop working on every replica once this returns, and even if the request
/// is cancelled after the commit.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn logout(
    app: &App,
    meta: &RequestMeta,
    user_id: Uuid,
    session_id: Uuid,
) -> AppResult<()> {
    let txn = Tx::begin(app).await?;
    mark_revoked(&txn, &[session_id], RevokeReason::Logout).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::Logout)
            .by_self(user_id)
            .metadata(serde_json::json!({ "sessionId": session_id.to_string() })),
    )
    .await?;
    invalidations::commit(app, txn, &ended(&[session_id])).await
}

/// Revokes every live session of `user_id` but `except` inside the caller's
/// transaction; returns the keys to invalidate with its commit (pass them to
/// [`invalidations::commit`]). Password changes and resets, disabling and
/// deleting a user build on this.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn revoke_all_in<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    except: Option<Uuid>,
    reason: RevokeReason,
) -> AppResult<Vec<Stale>> {
    // One statement, whatever the number of sessions; RETURNING names
    // exactly the sessions it ended, also one created a moment ago.
    let mut live = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        // An expired session has ended already: not counted, not touched.
        .filter(session::Column::ExpiresAt.gt(now()));
    if let Some(keep) = except {
        live = live.filter(session::Column::Id.ne(keep));
    }
    let ids: Vec<Uuid> = live
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    Ok(ended(&ids))
}

/// Ends every session of `user_id` but `except`, audited as one
/// `SESSION_REVOKED`; returns how many ended. Honoured by every replica on
/// the next request, like [`logout`].
///
/// # Errors
/// `Internal` when the database fails.
pub async fn revoke_all(
    app: &App,
    meta: &RequestMeta,
    actor: Option<Uuid>,
    user_id: Uuid,
    except: Option<Uuid>,
    reason: RevokeReason,
) -> AppResult<u64> {
    let txn = Tx::begin(app).await?;
    let stale = revoke_all_in(&txn, user_id, except, reason).await?;
    if !stale.is_empty() {
        let mut event = Event::new(Action::SessionRevoked)
            .target(user_id)
            .metadata(serde_json::json!({ "sessions": stale.len(), "reason": reason.as_str() }));
        if let Some(actor) = actor {
            event = event.actor(actor);
        }
        audit::record(&txn, meta, event).await?;
    }
    invalidations::commit(app, txn, &stale).await?;
    Ok(stale.len() as u64)
}

/// Ends one session by id: the caller's own, or anyone's when
/// `may_manage_others` (`users:write`). Returns whether it was live.
///
/// # Errors
/// `NOT_FOUND` for an unknown session, and for another user's without the
/// permission (so its existence does not leak).
pub async fn revoke_one(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    session_id: Uuid,
    may_manage_others: bool,
) -> AppResult<bool> {
    let found = session::Entity::find_by_id(session_id)
        .one(&app.db.write)
        .await?
        .filter(|s| s.user_id == actor || may_manage_others);
    let Some(found) = found else {
        return Err(AppError::NotFound("No such session".into()));
    };
    if found.revoked_at.is_some() || found.expires_at <= now() {
        // Ended already (revoked or expired): nothing to do, nothing to audit.
        return Ok(false);
    }
    let txn = Tx::begin(app).await?;
    let ended_now = mark_revoked(&txn, &[found.id], RevokeReason::Revoked).await? > 0;
    if ended_now {
        audit::record(
            &txn,
            meta,
            Event::new(Action::SessionRevoked)
                .actor(actor)
                .target(found.user_id)
                .metadata(serde_json::json!({ "sessionId": found.id.to_string() })),
        )
        .await?;
    }
    invalidations::commit(app, txn, &ended(&[found.id])).await?;
    Ok(ended_now)
}

/// A session as the API shows it: no token hash.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl From<session::Model> for SessionView {
    fn from(m: session::Model) -> Self {
        Self {
            id: m.id,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            expires_at: m.expires_at,
            ip_address: m.ip_address,
            user_agent: m.user_agent,
        }
    }
}

/// The live sessions of many users at once (one query), newest first.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn list_live_many(
    app: &App,
    user_ids: &[Uuid],
) -> AppResult<std::collections::HashMap<Uuid, Vec<SessionView>>> {
    let mut out: std::collections::HashMap<Uuid, Vec<SessionView>> =
        user_ids.iter().map(|id| (*id, Vec::new())).collect();
    let rows = session::Entity::find()
        .filter(session::Column::UserId.is_in(user_ids.to_vec()))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .order_by_desc(session::Column::CreatedAt)
        .all(&app.db.fresh)
        .await?;
    for row in rows {
        out.entry(row.user_id)
            .or_default()
            .push(SessionView::from(row));
    }
    Ok(out)
}

/// Drops the sealed successor pairs whose grace is over (each session's
/// latest one is otherwise kept until its next rotation).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn clear_spent_successors(app: &App) -> AppResult<u64> {
    let grace = chrono::Duration::from_std(app.config.jwt.reuse_interval).unwrap_or_default();
    Ok(rotated_refresh_token::Entity::update_many()
        .col_expr(
            rotated_refresh_token::Column::Successor,
            Expr::value(Option::<String>::None),
        )
        .filter(rotated_refresh_token::Column::RotatedAt.lt(now() - grace))
        .filter(rotated_refresh_token::Column::Successor.is_not_null())
        .exec(&app.db.write)
        .await?
        .rows_affected)
}

/// How long ended sessions are kept (for the user's view of recent activity
/// and for reuse detection) before they are deleted.
const KEEP_ENDED: chrono::Duration = chrono::Duration::days(7);
/// Sessions whose rotated hashes one statement deletes, and at most how many.
const ROTATED_CHUNK: usize = 20;
const ROTATED_ROWS: u64 = 1000;

/// Deletes sessions that expired or were revoked more than a week ago, with
/// their rotated refresh-token hashes (one per refresh). Works in batches of
/// `batch` sessions: found through the `expires_at` and `revoked_at` indexes
/// in order, their rotated hashes deleted a few sessions at a time, then the
/// sessions (the cascade then finds nothing), so every statement is short.
/// Returns how many sessions were deleted and in how many batches.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn purge_ended(app: &App, batch: u64) -> AppResult<(u64, u32)> {
    clear_spent_successors(app).await?;
    let cutoff = now() - KEEP_ENDED;
    let (mut deleted, mut batches) = (0, 0);
    // Expired first, then revoked: each walks its own index in order, so a
    // batch starts where the last one ended instead of rescanning the rows
    // the previous batches have just deleted.
    for column in [session::Column::ExpiresAt, session::Column::RevokedAt] {
        loop {
            let ids: Vec<Uuid> = session::Entity::find()
                .select_only()
                .column(session::Column::Id)
                .filter(column.lt(cutoff))
                .order_by_asc(column)
                .limit(batch)
                .into_tuple()
                .all(&app.db.write)
                .await?;
            if ids.is_empty() {
                break;
            }
            let found = ids.len() as u64;
            deleted += delete_batch(app, ids).await?;
            batches += 1;
            if found < batch {
                break;
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
    }
    Ok((deleted, batches))
}

/// Deletes sessions `ids` after their rotated hashes: a few sessions at a
/// time (found through the `session_id` index), at most [`ROTATED_ROWS`]
/// rows per statement (a month of refreshes leaves about 2,900 per
/// session); returns how many sessions went.
async fn delete_batch(app: &App, ids: Vec<Uuid>) -> AppResult<u64> {
    use sea_orm::sea_query::Query;
    for sessions in ids.chunks(ROTATED_CHUNK) {
        loop {
            let some = Query::select()
                .column(rotated_refresh_token::Column::TokenHash)
                .from(rotated_refresh_token::Entity)
                .and_where(rotated_refresh_token::Column::SessionId.is_in(sessions.to_vec()))
                .limit(ROTATED_ROWS)
                .to_owned();
            let gone = rotated_refresh_token::Entity::delete_many()
                .filter(rotated_refresh_token::Column::TokenHash.in_subquery(some))
                .exec(&app.db.write)
                .await?
                .rows_affected;
            if gone < ROTATED_ROWS {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(session::Entity::delete_many()
        .filter(session::Column::Id.is_in(ids))
        .exec(&app.db.write)
        .await?
        .rows_affected)
}

//! Sessions: creation at login, refresh-token rotation with reuse detection,
//! revocation, and the liveness check every authenticated request makes.
//!
//! Liveness is cached under `session:<id>`. A read fills the key only if it
//! is absent (`SET NX`); a revocation overwrites it with a tombstone after
//! its commit. So a reader that saw the row before the revocation can never
//! overwrite the tombstone, and every replica sharing the cache refuses the
//! session's access tokens from the moment the revoking request returns.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{rotated_refresh_token, session, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, Set, TransactionTrait as _,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, Action, Event};
use super::{RequestMeta, now};
use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::state::App;

/// How long a live session stays cached (a backstop: revocations overwrite it).
const LIVE_TTL: Duration = Duration::from_secs(300);

/// The cached answer to "may tokens of this session be used?".
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SessionState {
    user_id: Uuid,
    live: bool,
}

fn key(id: Uuid) -> String {
    format!("session:{id}")
}

/// Why a session ended, as stored in `revoked_reason`.
#[derive(Clone, Copy, Debug)]
pub enum RevokeReason {
    Logout,
    TokenReuse,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::TokenReuse => "token_reuse",
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
pub async fn check_live(app: &App, user_id: Uuid, session_id: Uuid) -> AppResult<()> {
    let state = match app.cache.get::<SessionState>(&key(session_id)).await {
        Some(state) => state,
        None => {
            // The write pool: a lagging replica must not revive a revoked session.
            let found = session::Entity::find_by_id(session_id)
                .find_also_related(user::Entity)
                .one(&app.db.write)
                .await?;
            let at = now();
            let (state, ttl) = match found {
                Some((s, Some(u)))
                    if s.revoked_at.is_none()
                        && s.expires_at > at
                        && u.status == user::UserStatus::Active =>
                {
                    // Cached no longer than the session lives; a refresh that
                    // extends it is seen when this entry runs out.
                    let left = (s.expires_at - at).to_std().unwrap_or_default();
                    let state = SessionState {
                        user_id: s.user_id,
                        live: true,
                    };
                    (state, left.min(LIVE_TTL))
                }
                _ => (
                    SessionState {
                        user_id,
                        live: false,
                    },
                    tombstone_ttl(app),
                ),
            };
            app.cache.fill(&key(session_id), &state, ttl).await;
            state
        }
    };
    if state.live && state.user_id == user_id {
        Ok(())
    } else {
        Err(AppError::Unauthenticated(
            "Session has ended; sign in again".into(),
        ))
    }
}

/// A tombstone must outlive every access token of the session.
fn tombstone_ttl(app: &App) -> Duration {
    app.jwt.access_ttl() + Duration::from_secs(60)
}

/// Marks sessions dead in the cache; call after the revoking commit.
pub async fn bury(app: &App, sessions: &[(Uuid, Uuid)]) {
    for (session_id, user_id) in sessions {
        let state = SessionState {
            user_id: *user_id,
            live: false,
        };
        app.cache
            .put(&key(*session_id), &state, tombstone_ttl(app))
            .await;
    }
}

/// The outcome of a successful refresh.
pub struct Rotated {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub refresh_token: String,
}

/// Rotates a refresh token: the presented one dies, a new one is returned.
/// Presenting a token that was already rotated is reuse: the whole session is
/// revoked and `TOKEN_REUSE_DETECTED` audited.
///
/// # Errors
/// `INVALID_TOKEN` for an unknown, rotated, expired or revoked token.
pub async fn refresh(app: &App, meta: &RequestMeta, presented: &str) -> AppResult<Rotated> {
    if presented.is_empty() || presented.len() > tokens::MAX_TOKEN_LEN {
        return Err(AppError::InvalidToken("Unknown refresh token".into()));
    }
    let hash = tokens::hash(presented);
    let txn = app.db.write.begin().await?;
    let current = session::Entity::find()
        .filter(session::Column::RefreshTokenHash.eq(hash.as_str()))
        .find_also_related(user::Entity)
        .one(&txn)
        .await?;
    let Some((s, Some(owner))) = current else {
        drop(txn);
        return detect_reuse(app, meta, &hash).await;
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
        return detect_reuse(app, meta, &hash).await;
    }
    rotated_refresh_token::ActiveModel {
        token_hash: Set(hash),
        session_id: Set(s.id),
        rotated_at: Set(at),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Rotated {
        user_id: s.user_id,
        session_id: s.id,
        refresh_token: next.token,
    })
}

async fn detect_reuse(app: &App, meta: &RequestMeta, hash: &str) -> AppResult<Rotated> {
    let rotated = rotated_refresh_token::Entity::find_by_id(hash.to_owned())
        .one(&app.db.write)
        .await?;
    let Some(rotated) = rotated else {
        return Err(AppError::InvalidToken("Unknown refresh token".into()));
    };
    let txn = app.db.write.begin().await?;
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
    txn.commit().await?;
    bury(app, &[(s.id, s.user_id)]).await;
    Err(AppError::InvalidToken(
        "Refresh token was already used; the session has been revoked".into(),
    ))
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

/// Ends the caller's own session (logout).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn logout(
    app: &App,
    meta: &RequestMeta,
    user_id: Uuid,
    session_id: Uuid,
) -> AppResult<()> {
    let txn = app.db.write.begin().await?;
    mark_revoked(&txn, &[session_id], RevokeReason::Logout).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::Logout)
            .by_self(user_id)
            .metadata(serde_json::json!({ "sessionId": session_id.to_string() })),
    )
    .await?;
    txn.commit().await?;
    bury(app, &[(session_id, user_id)]).await;
    Ok(())
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

/// The sessions of a user that can still be used, newest first.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn list_live(app: &App, user_id: Uuid) -> AppResult<Vec<SessionView>> {
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .order_by_desc(session::Column::CreatedAt)
        .all(&app.db.read)
        .await?
        .into_iter()
        .map(SessionView::from)
        .collect())
}

/// How long ended sessions are kept (for the user's view of recent activity
/// and for reuse detection) before they are deleted.
const KEEP_ENDED: chrono::Duration = chrono::Duration::days(7);

/// Deletes sessions that expired or were revoked more than a week ago, and
/// with them (cascade) their rotated refresh-token hashes, which otherwise
/// grow with every refresh. Idempotent: every replica may run it.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn purge_ended(app: &App) -> AppResult<u64> {
    let cutoff = now() - KEEP_ENDED;
    let result = session::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(session::Column::ExpiresAt.lt(cutoff))
                .add(session::Column::RevokedAt.lt(cutoff)),
        )
        .exec(&app.db.write)
        .await?;
    Ok(result.rows_affected)
}

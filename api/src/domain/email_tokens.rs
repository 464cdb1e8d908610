//! Email verification and password-reset tokens: 256 random bits, only the
//! SHA-256 stored, single use, a lifetime per purpose, and a new token of a
//! purpose replaces the user's earlier ones.

use std::time::Duration;

use entity::email_token::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    Set,
};
use uuid::Uuid;

use super::now;
use crate::auth::tokens;
use crate::error::{AppError, AppResult};
use crate::state::App;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn kind(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// Issues a token inside the caller's transaction, replacing the user's
/// earlier tokens of the same purpose; returns the token to mail (the only
/// place it ever appears).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn issue<C: ConnectionTrait>(
    conn: &C,
    purpose: Purpose,
    user_id: Uuid,
    email: &str,
    ttl: Duration,
) -> AppResult<String> {
    email_token::Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Kind.eq(purpose.kind()))
        .filter(Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    let token = tokens::generate(tokens::EMAIL_TOKEN_BYTES);
    let at = now();
    email_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        kind: Set(purpose.kind().to_owned()),
        token_hash: Set(token.hash),
        email: Set(email.to_owned()),
        expires_at: Set(at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1))),
        used_at: Set(None),
        created_at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(token.token)
}

/// The cheap check, before any database work: a token is never empty nor
/// longer than [`tokens::MAX_TOKEN_LEN`].
///
/// # Errors
/// `INVALID_TOKEN` otherwise.
pub fn check_shape(presented: &str) -> AppResult<()> {
    if presented.is_empty() || presented.len() > tokens::MAX_TOKEN_LEN {
        return Err(AppError::InvalidToken(
            "This link is invalid, used or expired".into(),
        ));
    }
    Ok(())
}

/// Uses up a token inside the caller's transaction: it must exist, be of
/// this purpose, unused and unexpired; of two requests racing with one
/// token, one wins. Returns the token's row (its user and address).
///
/// # Errors
/// `INVALID_TOKEN` for a token that does not work; `Internal` when the
/// database fails.
pub async fn consume<C: ConnectionTrait>(
    conn: &C,
    purpose: Purpose,
    presented: &str,
) -> AppResult<email_token::Model> {
    check_shape(presented)?;
    let invalid = || AppError::InvalidToken("This link is invalid, used or expired".into());
    let at = now();
    let used = email_token::Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(at))
        .filter(Column::TokenHash.eq(tokens::hash(presented)))
        .filter(Column::Kind.eq(purpose.kind()))
        .filter(Column::UsedAt.is_null())
        .filter(Column::ExpiresAt.gt(at))
        .exec_with_returning(conn)
        .await?;
    used.into_iter().next().ok_or_else(invalid)
}

/// The user a token would act for, without using it up (the caller checks
/// its input before the slow work, then [`consume`]s it in its transaction).
///
/// # Errors
/// `INVALID_TOKEN` for a token that does not work.
pub async fn peek(app: &App, purpose: Purpose, presented: &str) -> AppResult<Uuid> {
    check_shape(presented)?;
    let invalid = || AppError::InvalidToken("This link is invalid, used or expired".into());
    email_token::Entity::find()
        .filter(Column::TokenHash.eq(tokens::hash(presented)))
        .filter(Column::Kind.eq(purpose.kind()))
        .filter(Column::UsedAt.is_null())
        .filter(Column::ExpiresAt.gt(now()))
        .one(&app.db.write)
        .await?
        .map(|row| row.user_id)
        .ok_or_else(invalid)
}

/// Whether a token of `purpose` was issued to the user since `since`.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn issued_since<C: ConnectionTrait>(
    conn: &C,
    purpose: Purpose,
    user_id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> AppResult<bool> {
    use sea_orm::PaginatorTrait as _;
    Ok(email_token::Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Kind.eq(purpose.kind()))
        .filter(Column::CreatedAt.gt(since))
        .count(conn)
        .await?
        > 0)
}

/// Every unused token of `purpose` the user holds dies (a reset invalidates
/// the other reset links).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn revoke_all<C: ConnectionTrait>(
    conn: &C,
    purpose: Purpose,
    user_id: Uuid,
) -> AppResult<()> {
    email_token::Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Kind.eq(purpose.kind()))
        .filter(Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes tokens a day past their expiry, a batch at a time.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn purge_expired(app: &App) -> AppResult<u64> {
    let cutoff = now() - chrono::Duration::days(1);
    super::delete_older_than::<email_token::Entity>(
        app,
        Column::Id,
        Column::ExpiresAt,
        cutoff,
        1000,
    )
    .await
}

//! What a user does to their own account besides signing in: email
//! verification, password reset and change, profile, deletion.
//!
//! Each write commits with its audit event (and its mail, token and cache
//! invalidations) in one transaction; password hashing, the slow part, runs
//! before that transaction opens.

use entity::user::{self, UserStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use uuid::Uuid;

use super::audit::{self, Action, Event};
use super::email_tokens::{self, Purpose};
use super::invalidations;
use super::sessions::{self, RevokeReason};
use super::tx::Tx;
use super::types::{DisplayName, EmailAddress, Password};
use super::users::{self, UserView, bumped};
use super::{RequestMeta, accounts, admin, mail, now};
use crate::auth::password::Verified;
use crate::error::{AppError, AppResult};
use crate::state::App;

async fn account(app: &App, user_id: Uuid) -> AppResult<user::Model> {
    user::Entity::find_by_id(user_id)
        .one(&app.db.write)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("This account no longer exists".into()))
}

/// Testing hook: fail a write after its token and mail are in, before the
/// commit (see `Config::fail_before_commit`).
fn forced_failure(app: &App) -> AppResult<()> {
    if app.config.fail_before_commit {
        return Err(AppError::internal(anyhow::anyhow!(
            "forced failure before commit (testing hook)"
        )));
    }
    Ok(())
}

/// The password of a signed-in caller, checked like a login's: refused
/// during a lockout, and a wrong one counts toward it (a stolen session must
/// not be a way to guess the password it protects).
async fn check_password(
    app: &App,
    meta: &RequestMeta,
    row: &user::Model,
    password: &Password,
    field: &str,
) -> AppResult<()> {
    if let Some(locked) = accounts::lock_in_force(app, row.locked_until) {
        return Err(locked);
    }
    if app.hasher.verify(password, &row.password_hash).await? != Verified::No {
        return Ok(());
    }
    match accounts::record_failure(app, meta, row).await? {
        locked @ AppError::AccountLocked { .. } => Err(locked),
        _ => Err(AppError::bad_input(field, "The password is wrong")),
    }
}

/// Mails the caller a link that verifies their address (replacing any
/// earlier link). An address already verified gets no mail.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn request_email_verification(
    app: &App,
    meta: &RequestMeta,
    user_id: Uuid,
) -> AppResult<()> {
    let row = account(app, user_id).await?;
    if row.email_verified {
        return Ok(());
    }
    let txn = Tx::begin(app).await?;
    // Two requests at once: one after the other, so the second supersedes
    // the first instead of both links staying valid.
    users::lock(&txn, row.id).await?;
    let token = email_tokens::issue(
        &txn,
        Purpose::VerifyEmail,
        row.id,
        &row.email,
        app.config.mail.verification_ttl,
    )
    .await?;
    mail::enqueue(
        &txn,
        row.id,
        &row.email,
        mail::verification_mail(app, &token),
    )
    .await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::EmailVerificationRequested).by_self(row.id),
    )
    .await?;
    forced_failure(app)?;
    txn.commit(app).await?;
    mail::queued(app, "email_verification");
    Ok(())
}

/// Marks the address the token was sent to as verified, if it is still the
/// account's address.
///
/// # Errors
/// `INVALID_TOKEN` for a token that does not work.
pub async fn verify_email(app: &App, meta: &RequestMeta, token: &str) -> AppResult<UserView> {
    email_tokens::check_shape(token)?;
    let owner = email_tokens::peek(app, Purpose::VerifyEmail, token).await?;
    let txn = Tx::begin(app).await?;
    // The user row first, then the token (the order every path takes, so
    // a deletion racing this click cannot deadlock with it).
    users::lock(&txn, owner).await?;
    let used = email_tokens::consume(&txn, Purpose::VerifyEmail, token).await?;
    let changed = user::Entity::update_many()
        .col_expr(user::Column::EmailVerified, Expr::value(true))
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(used.user_id))
        .filter(user::Column::Email.eq(used.email.as_str()))
        .exec_with_returning(&txn)
        .await?;
    let Some(row) = changed.into_iter().next() else {
        return Err(AppError::InvalidToken(
            "This link was sent to an address the account no longer has".into(),
        ));
    };
    audit::record(
        &txn,
        meta,
        Event::new(Action::EmailVerified)
            .by_self(row.id)
            .metadata(serde_json::json!({ "email": row.email })),
    )
    .await?;
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    Ok(row.into())
}

/// Queues a reset for `email` whether or not it has an account: one insert
/// either way, so the answer takes the same time (the worker looks it up).
///
/// # Errors
/// `BAD_USER_INPUT` for a malformed address; `Internal` when the database
/// fails.
pub async fn request_password_reset(app: &App, meta: &RequestMeta, email: &str) -> AppResult<()> {
    let email = EmailAddress::parse(email)?;
    mail::enqueue_reset_request(&app.db.write, email.as_str(), meta).await?;
    app.mail_queued.notify_one();
    Ok(())
}

/// Sets a new password with a reset token: every session ends, any lockout
/// is lifted, the other reset links die.
///
/// # Errors
/// `INVALID_TOKEN` for a token that does not work, `BAD_USER_INPUT`
/// (`newPassword`) for a password the policy refuses.
pub async fn reset_password(
    app: &App,
    meta: &RequestMeta,
    token: &str,
    new_password: &str,
) -> AppResult<()> {
    // Cheap checks first: the token (without using it), then the policy,
    // then the hash; the token is used up only in the writing transaction.
    Password::for_verification(new_password, "newPassword")?;
    let owner = email_tokens::peek(app, Purpose::ResetPassword, token).await?;
    let row = account(app, owner)
        .await
        .map_err(|_| AppError::InvalidToken("This link is invalid, used or expired".into()))?;
    let email = EmailAddress::parse(&row.email)?;
    let password = Password::new_checked(new_password, &email, "newPassword")?;
    let hash = app.hasher.hash(&password).await?;

    let txn = Tx::begin(app).await?;
    // The user row first, then the token (see verify_email).
    users::lock(&txn, owner).await?;
    let used = email_tokens::consume(&txn, Purpose::ResetPassword, token).await?;
    let changed = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::FailedLoginCount, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(used.user_id))
        // Not for a disabled account, nor one whose address changed since
        // the link was sent.
        .filter(user::Column::Status.eq(UserStatus::Active))
        .filter(user::Column::Email.eq(used.email.as_str()))
        .exec_with_returning(&txn)
        .await?;
    let Some(row) = changed.into_iter().next() else {
        return Err(AppError::InvalidToken(
            "This link is invalid, used or expired".into(),
        ));
    };
    let mut stale =
        sessions::revoke_all_in(&txn, row.id, None, RevokeReason::PasswordReset).await?;
    email_tokens::revoke_all(&txn, Purpose::ResetPassword, row.id).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::PasswordReset)
            .by_self(row.id)
            .metadata(serde_json::json!({ "sessionsRevoked": stale.len() })),
    )
    .await?;
    stale.extend(users::stale(row.id, row.version));
    invalidations::commit(app, txn, &stale).await
}

/// Changes the caller's password: the current one is required, every other
/// session ends, this one stays.
///
/// # Errors
/// `BAD_USER_INPUT` (`currentPassword` when it is wrong, `newPassword` for a
/// password the policy refuses).
pub async fn change_password(
    app: &App,
    meta: &RequestMeta,
    user_id: Uuid,
    session_id: Uuid,
    current: &str,
    new: &str,
) -> AppResult<()> {
    let current = Password::for_verification(current, "currentPassword")?;
    let row = account(app, user_id).await?;
    let email = EmailAddress::parse(&row.email)?;
    let new = Password::new_checked(new, &email, "newPassword")?;
    check_password(app, meta, &row, &current, "currentPassword").await?;
    let hash = app.hasher.hash(&new).await?;
    let txn = Tx::begin(app).await?;
    // Only over the hash just verified: a change or reset that committed
    // meanwhile wins, and this one is refused rather than undoing it.
    let changed = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(row.id))
        .filter(user::Column::PasswordHash.eq(row.password_hash.as_str()))
        .exec_with_returning(&txn)
        .await?;
    let Some(row) = changed.into_iter().next() else {
        return Err(AppError::bad_input(
            "currentPassword",
            "The password was changed meanwhile; sign in again",
        ));
    };
    let mut stale = sessions::revoke_all_in(
        &txn,
        row.id,
        Some(session_id),
        RevokeReason::PasswordChanged,
    )
    .await?;
    email_tokens::revoke_all(&txn, Purpose::ResetPassword, row.id).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::PasswordChanged)
            .by_self(row.id)
            .metadata(serde_json::json!({ "sessionsRevoked": stale.len() })),
    )
    .await?;
    stale.extend(users::stale(row.id, row.version));
    invalidations::commit(app, txn, &stale).await
}

/// Sets (`Some(Some(name))`) or clears (`Some(None)`) the caller's display
/// name; `None` leaves it.
///
/// # Errors
/// `BAD_USER_INPUT` (`displayName`) for a name the rules refuse.
pub async fn update_profile(
    app: &App,
    meta: &RequestMeta,
    user_id: Uuid,
    display_name: Option<Option<&str>>,
) -> AppResult<UserView> {
    let Some(display_name) = display_name else {
        return Ok(account(app, user_id).await?.into());
    };
    let display_name = display_name
        .map(DisplayName::parse)
        .transpose()?
        .map(DisplayName::into_string);
    let txn = Tx::begin(app).await?;
    let changed = user::Entity::update_many()
        .col_expr(user::Column::DisplayName, Expr::value(display_name))
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(user_id))
        .exec_with_returning(&txn)
        .await?;
    let Some(row) = changed.into_iter().next() else {
        return Err(AppError::Unauthenticated(
            "This account no longer exists".into(),
        ));
    };
    audit::record(
        &txn,
        meta,
        Event::new(Action::ProfileUpdated)
            .by_self(row.id)
            .metadata(serde_json::json!({ "fields": ["displayName"] })),
    )
    .await?;
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    Ok(row.into())
}

/// Deletes the caller's account: its sessions, role links, tokens and
/// pending mail go with it, its email can be registered again, and audit
/// events keep its id.
///
/// # Errors
/// `BAD_USER_INPUT` (`password`) when the password is wrong, `FORBIDDEN` for
/// the last active admin.
pub async fn delete_account(
    app: &App,
    meta: &RequestMeta,
    user_id: Uuid,
    password: &str,
) -> AppResult<()> {
    let password = Password::for_verification(password, "password")?;
    let row = account(app, user_id).await?;
    check_password(app, meta, &row, &password, "password").await?;
    let txn = Tx::begin(app).await?;
    // First, the user row, over the hash just verified: it locks the row
    // (a racing login or reset waits, and a reset that committed first wins)
    // and gives the exact version to tombstone above. (Locks in this order,
    // user row then admin role, wherever both are taken.)
    let locked = user::Entity::update_many()
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(row.id))
        .filter(user::Column::PasswordHash.eq(row.password_hash.as_str()))
        .exec_with_returning(&txn)
        .await?;
    let Some(row) = locked.into_iter().next() else {
        return Err(AppError::bad_input(
            "password",
            "The password was changed meanwhile; sign in again",
        ));
    };
    admin::keep_an_admin(
        &txn,
        &row,
        "The last active admin cannot delete their account",
    )
    .await?;
    // Every session that is live now, also one a login created a moment ago.
    let mut stale =
        sessions::revoke_all_in(&txn, row.id, None, RevokeReason::AccountDeleted).await?;
    let ended = stale.len();
    mail::drop_pending(&txn, row.id).await?;
    let deleted = user::Entity::delete_by_id(row.id).exec(&txn).await?;
    if deleted.rows_affected == 0 {
        return Err(AppError::Unauthenticated(
            "This account no longer exists".into(),
        ));
    }
    audit::record(
        &txn,
        meta,
        Event::new(Action::UserDeleted)
            .by_self(row.id)
            .metadata(serde_json::json!({ "self": true, "sessions": ended })),
    )
    .await?;
    // Above the version just written: no copy of the row can come back.
    stale.extend(users::stale(row.id, row.version + 1));
    invalidations::commit(app, txn, &stale).await
}

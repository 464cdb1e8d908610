//! Accounts: registration, login (with lockout), and admin creation.
//!
//! Login never tells an unknown email from a wrong password: both answer the
//! same error after the same work (an unknown email verifies a dummy hash).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::user::{self, UserStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, EntityTrait as _, JoinType,
    PaginatorTrait as _, QueryFilter as _, QuerySelect as _, RelationTrait as _, Set, SqlErr,
};
use uuid::Uuid;

use super::audit::{self, Action, Event};
use super::tx::Tx;
use super::types::{DisplayName, EmailAddress, Password};
use super::users::{self, UserView, bumped};
use super::{RequestMeta, invalidations, now, roles, sessions};
use crate::auth::password::Verified;
use crate::error::{AppError, AppResult};
use crate::state::App;

/// The raw registration input, as a client sent it.
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub display_name: Option<&'a str>,
}

/// A signed-in session: what register, login and refresh return.
pub struct SignedIn {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user: UserView,
    pub session_id: Uuid,
}

const INVALID_CREDENTIALS: &str = "Invalid email or password";
/// The first lockout lasts this long; each further failure doubles it.
const FIRST_LOCK_SECS: i64 = 60;
const MAX_LOCK_SECS: i64 = 15 * 60;

/// Issues the access token for a session and packages the answer.
///
/// # Errors
/// `Internal` when signing fails.
pub fn signed_in(
    app: &App,
    user: UserView,
    session_id: Uuid,
    refresh_token: String,
) -> AppResult<SignedIn> {
    let access_token = app.jwt.issue(user.id, session_id)?;
    Ok(SignedIn {
        access_token,
        refresh_token,
        expires_in: app.jwt.access_ttl().as_secs(),
        user,
        session_id,
    })
}

fn unique_email(err: sea_orm::DbErr) -> AppError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            AppError::conflict("email", "An account with this email already exists")
        }
        _ => err.into(),
    }
}

async fn email_taken(app: &App, email: &EmailAddress) -> AppResult<bool> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .count(&app.db.write)
        .await?
        > 0)
}

fn new_user(
    email: &EmailAddress,
    hash: String,
    display_name: Option<DisplayName>,
    verified: bool,
) -> user::ActiveModel {
    let at = now();
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(hash),
        display_name: Set(display_name.map(DisplayName::into_string)),
        status: Set(UserStatus::Active),
        email_verified: Set(verified),
        failed_login_count: Set(0),
        locked_until: Set(None),
        last_login_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        version: Set(0),
    }
}

/// Inserts a new account with the `user` role in a transaction left open for
/// the caller's own writes and audit event. The email is checked free before
/// the (costly) hash; a race past that check still ends in `CONFLICT` through
/// the unique index.
pub(crate) async fn begin_account(
    app: &App,
    email: &EmailAddress,
    password: &Password,
    display_name: Option<DisplayName>,
    verified: bool,
) -> AppResult<(Tx, user::Model)> {
    if email_taken(app, email).await? {
        return Err(AppError::conflict(
            "email",
            "An account with this email already exists",
        ));
    }
    let hash = app.hasher.hash(password).await?;
    let txn = Tx::begin(app).await?;
    let user = new_user(email, hash, display_name, verified)
        .insert(&txn)
        .await
        .map_err(unique_email)?;
    roles::link(&txn, user.id, roles::USER).await?;
    Ok((txn, user))
}

/// Creates an account with the `user` role and signs it in.
///
/// # Errors
/// `BAD_USER_INPUT` for an invalid field (before any hashing), `CONFLICT`
/// when the email is taken.
pub async fn register(
    app: &App,
    meta: &RequestMeta,
    input: Registration<'_>,
) -> AppResult<SignedIn> {
    let email = EmailAddress::parse(input.email)?;
    let display_name = input.display_name.map(DisplayName::parse).transpose()?;
    let password = Password::new_checked(input.password, &email, "password")?;
    let (txn, user) = begin_account(app, &email, &password, display_name, false).await?;
    let session = sessions::create(&txn, app, user.id, meta).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::UserRegistered).by_self(user.id),
    )
    .await?;
    txn.commit(app).await?;
    signed_in(app, user.into(), session.id, session.refresh_token)
}

/// Rotates a refresh token (see [`sessions::refresh`]) and issues a new
/// access token.
///
/// # Errors
/// `INVALID_TOKEN` for a token that does not work.
pub async fn refresh(app: &App, meta: &RequestMeta, token: &str) -> AppResult<SignedIn> {
    let rotated = sessions::refresh(app, meta, token).await?;
    Ok(SignedIn {
        access_token: rotated.access_token,
        refresh_token: rotated.refresh_token,
        expires_in: app
            .jwt
            .access_ttl()
            .saturating_sub(rotated.issued_ago)
            .as_secs(),
        user: rotated.user,
        session_id: rotated.session_id,
    })
}

/// Signs in with email and password.
///
/// # Errors
/// `UNAUTHENTICATED` for an unknown email or a wrong password (one message),
/// `ACCOUNT_LOCKED` during a lockout, `FORBIDDEN` for a disabled account with
/// the right password.
pub async fn login(
    app: &App,
    meta: &RequestMeta,
    email: &str,
    password: &str,
) -> AppResult<SignedIn> {
    let email = EmailAddress::parse(email)?;
    let password = Password::for_verification(password, "password")?;
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&app.db.write)
        .await?;
    let Some(account) = found else {
        // Same work as a wrong password, so timing tells nothing.
        app.hasher.verify_dummy(&password).await?;
        let event = Event::new(Action::LoginFailed)
            .metadata(serde_json::json!({ "email": email.as_str(), "reason": "unknown_email" }));
        audit::record_now(app, meta, event).await?;
        metrics::counter!("usergraph_auth_logins_total", "outcome" => "failure").increment(1);
        return Err(AppError::Unauthenticated(INVALID_CREDENTIALS.into()));
    };
    // Refused without counting, even with the right password.
    if let Some(err) = lock_in_force(app, account.locked_until) {
        return Err(err);
    }
    match app.hasher.verify(&password, &account.password_hash).await? {
        Verified::No => Err(record_failure(app, meta, &account).await?),
        verified => {
            if account.status == UserStatus::Disabled {
                let event = Event::new(Action::LoginFailed)
                    .target(account.id)
                    .metadata(serde_json::json!({ "reason": "disabled" }));
                audit::record_now(app, meta, event).await?;
                metrics::counter!("usergraph_auth_logins_total", "outcome" => "disabled")
                    .increment(1);
                return Err(AppError::Forbidden("This account is disabled".into()));
            }
            let new_hash = match verified {
                Verified::YesRehashed(hash) => Some(hash),
                _ => None,
            };
            succeed(app, meta, &account, new_hash).await
        }
    }
}

/// The lockout in force, as the error to answer with.
pub(crate) fn lock_in_force(app: &App, locked_until: Option<DateTime<Utc>>) -> Option<AppError> {
    if app.config.lockout_threshold == 0 {
        return None;
    }
    let until = locked_until.filter(|u| *u > Utc::now())?;
    metrics::counter!("usergraph_auth_logins_total", "outcome" => "locked").increment(1);
    let millis = u64::try_from((until - Utc::now()).num_milliseconds()).unwrap_or(0);
    Some(AppError::AccountLocked {
        retry_after: millis.div_ceil(1000).max(1),
    })
}

/// "No lockout in force": re-checked in the updating statement itself,
/// because a parallel failure may have locked the account while this
/// request was hashing.
fn not_locked() -> Condition {
    Condition::any()
        .add(user::Column::LockedUntil.is_null())
        .add(user::Column::LockedUntil.lte(now()))
}

/// Records a successful login: resets the failure count, opens a session.
async fn succeed(
    app: &App,
    meta: &RequestMeta,
    account: &user::Model,
    new_hash: Option<String>,
) -> AppResult<SignedIn> {
    let txn = Tx::begin(app).await?;
    let mut reset = user::Entity::update_many()
        .col_expr(user::Column::FailedLoginCount, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(user::Column::LastLoginAt, Expr::value(now()))
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(account.id))
        // Only over the hash this login verified: a reset or change that
        // committed meanwhile makes the old password sign in nothing.
        .filter(user::Column::PasswordHash.eq(account.password_hash.as_str()))
        // Nor for an account disabled while this login was hashing.
        .filter(user::Column::Status.eq(UserStatus::Active))
        .filter(not_locked());
    if let Some(hash) = new_hash {
        reset = reset.col_expr(user::Column::PasswordHash, Expr::value(hash));
    }
    let changed = reset.exec(&txn).await?.rows_affected;
    let row = user::Entity::find_by_id(account.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("user vanished during login")))?;
    if changed == 0 {
        drop(txn);
        if row.status == UserStatus::Disabled {
            return Err(AppError::Forbidden("This account is disabled".into()));
        }
        return Err(lock_in_force(app, row.locked_until)
            .unwrap_or_else(|| AppError::Unauthenticated(INVALID_CREDENTIALS.into())));
    }
    let session = sessions::create(&txn, app, account.id, meta).await?;
    let event = Event::new(Action::LoginSucceeded)
        .by_self(account.id)
        .metadata(serde_json::json!({ "sessionId": session.id.to_string() }));
    audit::record(&txn, meta, event).await?;
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    let view = UserView::from(row);
    metrics::counter!("usergraph_auth_logins_total", "outcome" => "success").increment(1);
    signed_in(app, view, session.id, session.refresh_token)
}

/// Counts a wrong password and locks the account once the threshold is hit;
/// returns the error to answer with.
pub(crate) async fn record_failure(
    app: &App,
    meta: &RequestMeta,
    account: &user::Model,
) -> AppResult<AppError> {
    let txn = Tx::begin(app).await?;
    // Increment in SQL so concurrent failures all count; a failure that lands
    // while a parallel one has just locked the account does not count.
    let counted = user::Entity::update_many()
        .col_expr(
            user::Column::FailedLoginCount,
            sea_orm::sea_query::ExprTrait::add(Expr::col(user::Column::FailedLoginCount), 1),
        )
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(account.id))
        .filter(not_locked())
        .exec(&txn)
        .await?
        .rows_affected;
    let mut row = user::Entity::find_by_id(account.id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("user vanished during login")))?;
    if counted == 0 {
        drop(txn);
        return Ok(lock_in_force(app, row.locked_until)
            .unwrap_or_else(|| AppError::Unauthenticated(INVALID_CREDENTIALS.into())));
    }
    let count = row.failed_login_count;
    audit::record(
        &txn,
        meta,
        Event::new(Action::LoginFailed)
            .target(account.id)
            .metadata(serde_json::json!({ "reason": "wrong_password", "failedAttempts": count })),
    )
    .await?;
    let threshold = i64::from(app.config.lockout_threshold);
    if threshold > 0 && i64::from(count) >= threshold {
        let doublings = u32::try_from(i64::from(count) - threshold)
            .unwrap_or(u32::MAX)
            .min(10);
        let seconds = (FIRST_LOCK_SECS << doublings).min(MAX_LOCK_SECS);
        let until = now() + ChronoDuration::seconds(seconds);
        user::Entity::update_many()
            .col_expr(user::Column::LockedUntil, Expr::value(until))
            .col_expr(user::Column::Version, bumped())
            .filter(user::Column::Id.eq(account.id))
            .exec(&txn)
            .await?;
        row.locked_until = Some(until);
        row.version += 1;
        audit::record(
            &txn,
            meta,
            Event::new(Action::AccountLocked)
                .target(account.id)
                .metadata(serde_json::json!({ "failedAttempts": count, "lockedSeconds": seconds })),
        )
        .await?;
        metrics::counter!("usergraph_auth_lockouts_total").increment(1);
    }
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    metrics::counter!("usergraph_auth_logins_total", "outcome" => "failure").increment(1);
    Ok(AppError::Unauthenticated(INVALID_CREDENTIALS.into()))
}

/// Creates an administrator (roles `user` and `admin`, email verified): the
/// CLI's `create-admin` and `BOOTSTRAP_ADMIN_*`.
///
/// # Errors
/// `BAD_USER_INPUT` for a bad email or password, `CONFLICT` when the email is taken.
pub async fn create_admin(
    app: &App,
    email: &str,
    password: &str,
    via: &str,
) -> AppResult<UserView> {
    let email = EmailAddress::parse(email)?;
    let password = Password::new_checked(password, &email, "password")?;
    let (txn, user) = begin_account(app, &email, &password, None, true).await?;
    roles::link(&txn, user.id, roles::ADMIN).await?;
    let event = Event::new(Action::UserCreated)
        .target(user.id)
        .metadata(serde_json::json!({ "via": via, "roles": [roles::USER, roles::ADMIN] }));
    audit::record(&txn, &RequestMeta::default(), event).await?;
    txn.commit(app).await?;
    Ok(user.into())
}

/// How many active users hold the `admin` role.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn active_admin_count(app: &App) -> AppResult<u64> {
    active_admin_count_in(&app.db.write).await
}

/// [`active_admin_count`] on a given connection (inside a transaction).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn active_admin_count_in<C: sea_orm::ConnectionTrait>(conn: &C) -> AppResult<u64> {
    Ok(user::Entity::find()
        .join(JoinType::InnerJoin, user::Relation::UserRoles.def())
        .join(JoinType::InnerJoin, entity::user_role::Relation::Role.def())
        .filter(entity::role::Column::Name.eq(roles::ADMIN))
        .filter(user::Column::Status.eq(UserStatus::Active))
        .count(conn)
        .await?)
}

/// Whether the account with `email` holds the `admin` role (active or not).
async fn holds_admin_role(app: &App, email: &str) -> AppResult<bool> {
    Ok(user::Entity::find()
        .join(JoinType::InnerJoin, user::Relation::UserRoles.def())
        .join(JoinType::InnerJoin, entity::user_role::Relation::Role.def())
        .filter(entity::role::Column::Name.eq(roles::ADMIN))
        .filter(user::Column::Email.eq(email))
        .count(&app.db.write)
        .await?
        > 0)
}

/// Creates the `BOOTSTRAP_ADMIN_EMAIL` admin when no admin exists yet.
///
/// # Errors
/// When the admin cannot be created (its email belongs to a non-admin account,
/// or its password breaks the policy).
pub async fn bootstrap_admin(app: &App) -> anyhow::Result<()> {
    let Some((email, password)) = app.config.bootstrap_admin.clone() else {
        return Ok(());
    };
    if active_admin_count(app)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?
        > 0
    {
        return Ok(());
    }
    match create_admin(app, &email, password.expose(), "bootstrap").await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "created the bootstrap admin");
            Ok(())
        }
        Err(AppError::Conflict { .. }) => {
            // Another replica starting at the same moment may have won the
            // race; an admin under that email is what we wanted.
            if holds_admin_role(app, &email)
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))?
            {
                tracing::info!("the bootstrap admin already exists");
                return Ok(());
            }
            anyhow::bail!(
                "BOOTSTRAP_ADMIN_EMAIL belongs to an existing account that is not an admin; \
                 choose another email (usergraph never promotes an existing account silently)"
            )
        }
        Err(e) => anyhow::bail!(
            "BOOTSTRAP_ADMIN_PASSWORD / BOOTSTRAP_ADMIN_EMAIL: {}",
            e.message()
        ),
    }
}

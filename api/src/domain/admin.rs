//! Administration of users and roles. Every write takes its locks in one
//! order — the user row (by bumping its version), then the `admin` role row
//! — and the changes that could leave no active admin (removing the role,
//! disabling, deleting) count the others only after both, so two concurrent
//! attempts cannot each see the other as the remaining admin.

use chrono::{DateTime, Utc};
use entity::user::{self, UserStatus};
use entity::{role, user_role};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, DatabaseTransaction,
    EntityTrait as _, PaginatorTrait as _, QueryFilter as _, Set, SqlErr,
};
use uuid::Uuid;

use super::audit::{self, Action, Event};
use super::invalidations;
use super::roles::{self, RoleView};
use super::sessions::{self, RevokeReason};
use super::tx::Tx;
use super::types::{DisplayName, EmailAddress, Password};
use super::users::{self, UserView, bumped};
use super::{RequestMeta, accounts, mail, now};
use crate::error::{AppError, AppResult};
use crate::state::App;

/// Nobody grants what they do not hold: a caller may act on a role, or on
/// an account, only when its permissions are a subset of the caller's own.
/// So only an admin can make, change or remove an admin.
async fn caller_holds(app: &App, actor: Uuid, permissions: &[String], what: &str) -> AppResult<()> {
    let mine = roles::permissions_of_user(app, actor, None).await?;
    if let Some(missing) = permissions.iter().find(|p| !mine.contains(p)) {
        return Err(AppError::Forbidden(format!(
            "{what} needs {missing}, which you do not hold"
        )));
    }
    Ok(())
}

/// The permissions an account holds now (for the rule above).
async fn held_by(app: &App, user_id: Uuid) -> AppResult<Vec<String>> {
    roles::permissions_of_user(app, user_id, None).await
}

/// Role names are bounded before anything is looked up.
fn check_role_ref(name: &str, field: &str) -> AppResult<()> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(AppError::bad_input(field, "Not a role name"));
    }
    Ok(())
}

/// The role `name`, when the caller may grant or take it (it exists, and
/// its permissions are all the caller's).
async fn grantable(app: &App, actor: Uuid, name: &str) -> AppResult<role::Model> {
    check_role_ref(name, "role")?;
    let found = roles::by_name(&app.db.write, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("Role {name} does not exist")))?;
    caller_holds(
        app,
        actor,
        &RoleView::from(found.clone()).permissions,
        "This role",
    )
    .await?;
    Ok(found)
}

async fn link_role(txn: &DatabaseTransaction, user_id: Uuid, role_id: Uuid) -> AppResult<()> {
    user_role::ActiveModel {
        user_id: Set(user_id),
        role_id: Set(role_id),
        created_at: Set(now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}

fn not_found_user() -> AppError {
    AppError::NotFound("No such user".into())
}

/// Bumps the user's version (taking its row lock) and returns the row.
async fn lock_user(txn: &DatabaseTransaction, id: Uuid) -> AppResult<user::Model> {
    user::Entity::update_many()
        .col_expr(user::Column::Version, bumped())
        .filter(user::Column::Id.eq(id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(not_found_user)
}

/// Refuses (FORBIDDEN, `message`) when `row` is an active admin and no
/// other active admin would be left. Takes the admin role's row lock first
/// (after the user's): two concurrent attempts cannot each see the other as
/// the remaining admin.
pub(crate) async fn keep_an_admin(
    txn: &DatabaseTransaction,
    row: &user::Model,
    message: &str,
) -> AppResult<()> {
    let Some(admin) = roles::lock_admin_role(txn).await? else {
        return Ok(());
    };
    let holds = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(row.id))
        .filter(user_role::Column::RoleId.eq(admin))
        .count(txn)
        .await?
        > 0;
    if holds && row.status == UserStatus::Active && accounts::active_admin_count_in(txn).await? <= 1
    {
        return Err(AppError::Forbidden(message.into()));
    }
    Ok(())
}

const LAST_ADMIN: &str = "This is the last active admin: keep one";

/// A new account, as an administrator creates it.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub display_name: Option<&'a str>,
    pub roles: Option<Vec<String>>,
    pub email_verified: bool,
}

async fn roles_named<C: ConnectionTrait>(
    conn: &C,
    names: &[String],
) -> AppResult<Vec<role::Model>> {
    let mut out = Vec::new();
    for name in names {
        let found = roles::by_name(conn, name)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("Role {name} does not exist")))?;
        out.push(found);
    }
    Ok(out)
}

/// # Errors
/// `BAD_USER_INPUT` for a bad field, `CONFLICT` for a taken email,
/// `NOT_FOUND` for an unknown role.
pub async fn create_user(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    input: NewUser<'_>,
) -> AppResult<UserView> {
    let email = EmailAddress::parse(input.email)?;
    let display_name = input.display_name.map(DisplayName::parse).transpose()?;
    let password = Password::new_checked(input.password, &email, "password")?;
    let mut wanted = input.roles.unwrap_or_default();
    if wanted.len() > 32 || wanted.iter().any(|r| r.len() > 64) {
        return Err(AppError::bad_input("roles", "Not a list of role names"));
    }
    wanted.retain(|r| r != roles::USER);
    wanted.sort();
    wanted.dedup();
    let granted = roles_named(&app.db.write, &wanted).await?;
    if !granted.is_empty() {
        // Granting roles is roles:assign's, and only what the caller holds.
        let mut needed = vec!["roles:assign".to_owned()];
        for role in &granted {
            needed.extend(RoleView::from(role.clone()).permissions);
        }
        caller_holds(app, actor, &needed, "Creating a user with these roles").await?;
    }
    let (txn, row) =
        accounts::begin_account(app, &email, &password, display_name, input.email_verified).await?;
    for role in &granted {
        link_role(&txn, row.id, role.id).await?;
    }
    let mut all = vec![roles::USER.to_owned()];
    all.extend(wanted);
    audit::record(
        &txn,
        meta,
        Event::new(Action::UserCreated)
            .actor(actor)
            .target(row.id)
            .metadata(serde_json::json!({ "roles": all })),
    )
    .await?;
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    Ok(row.into())
}

/// Changes an administrator may make to an account; `None` leaves a field.
#[derive(Default)]
pub struct UserChanges<'a> {
    pub email: Option<&'a str>,
    pub display_name: Option<Option<&'a str>>,
    pub email_verified: Option<bool>,
    pub status: Option<UserStatus>,
}

/// # Errors
/// `NOT_FOUND`, `BAD_USER_INPUT`, `CONFLICT` (email taken), `FORBIDDEN`
/// (disabling the last active admin).
pub async fn update_user(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    id: Uuid,
    changes: UserChanges<'_>,
) -> AppResult<UserView> {
    let email = changes.email.map(EmailAddress::parse).transpose()?;
    caller_holds(
        app,
        actor,
        &held_by(app, id).await?,
        "Changing this account",
    )
    .await?;
    let display_name = changes
        .display_name
        .map(|d| d.map(DisplayName::parse).transpose())
        .transpose()?;
    let txn = Tx::begin(app).await?;
    let before = lock_user(&txn, id).await?;
    let mut fields = Vec::new();
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .filter(user::Column::Id.eq(id));
    if let Some(email) = &email
        && email.as_str() != before.email
    {
        update = update.col_expr(user::Column::Email, Expr::value(email.as_str()));
        // A new address is not verified unless the admin says so (below).
        if changes.email_verified.is_none() {
            update = update.col_expr(user::Column::EmailVerified, Expr::value(false));
        }
        fields.push("email");
    }
    if let Some(name) = display_name {
        update = update.col_expr(
            user::Column::DisplayName,
            Expr::value(name.map(DisplayName::into_string)),
        );
        fields.push("displayName");
    }
    if let Some(verified) = changes.email_verified {
        update = update.col_expr(user::Column::EmailVerified, Expr::value(verified));
        fields.push("emailVerified");
    }
    let disabling =
        changes.status == Some(UserStatus::Disabled) && before.status == UserStatus::Active;
    if let Some(status) = changes.status {
        update = update.col_expr(user::Column::Status, Expr::value(status));
        fields.push("status");
    }
    if disabling {
        keep_an_admin(&txn, &before, LAST_ADMIN).await?;
    }
    let row = update
        .exec_with_returning(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::conflict("email", "An account with this email already exists")
            }
            _ => e.into(),
        })?
        .into_iter()
        .next()
        .ok_or_else(not_found_user)?;
    let mut stale = users::stale(row.id, row.version);
    if disabling {
        stale.extend(sessions::revoke_all_in(&txn, row.id, None, RevokeReason::Disabled).await?);
    }
    audit::record(
        &txn,
        meta,
        Event::new(Action::UserUpdated)
            .actor(actor)
            .target(row.id)
            .metadata(serde_json::json!({ "fields": fields })),
    )
    .await?;
    invalidations::commit(app, txn, &stale).await?;
    Ok(row.into())
}

/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for the last active admin.
pub async fn delete_user(app: &App, meta: &RequestMeta, actor: Uuid, id: Uuid) -> AppResult<()> {
    caller_holds(
        app,
        actor,
        &held_by(app, id).await?,
        "Deleting this account",
    )
    .await?;
    let txn = Tx::begin(app).await?;
    let row = lock_user(&txn, id).await?;
    keep_an_admin(&txn, &row, LAST_ADMIN).await?;
    let mut stale = sessions::revoke_all_in(&txn, id, None, RevokeReason::AccountDeleted).await?;
    mail::drop_pending(&txn, id).await?;
    user::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::UserDeleted)
            .actor(actor)
            .target(id)
            .metadata(serde_json::json!({ "email": row.email })),
    )
    .await?;
    stale.extend(users::stale(id, row.version + 1));
    invalidations::commit(app, txn, &stale).await
}

/// Lifts a login lockout.
///
/// # Errors
/// `NOT_FOUND`.
pub async fn unlock_user(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    id: Uuid,
) -> AppResult<UserView> {
    let txn = Tx::begin(app).await?;
    lock_user(&txn, id).await?;
    let row = user::Entity::update_many()
        .col_expr(user::Column::FailedLoginCount, Expr::value(0))
        .col_expr(
            user::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(user::Column::Id.eq(id))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(not_found_user)?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::AccountUnlocked).actor(actor).target(id),
    )
    .await?;
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    Ok(row.into())
}

/// Gives a user a role (nothing changes when they hold it already).
///
/// # Errors
/// `NOT_FOUND` for an unknown user or role.
pub async fn assign_role(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    user_id: Uuid,
    name: &str,
) -> AppResult<UserView> {
    let found = grantable(app, actor, name).await?;
    let txn = Tx::begin(app).await?;
    let row = lock_user(&txn, user_id).await?;
    let held = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .filter(user_role::Column::RoleId.eq(found.id))
        .count(&txn)
        .await?
        > 0;
    if !held {
        link_role(&txn, user_id, found.id).await?;
        audit::record(
            &txn,
            meta,
            Event::new(Action::RoleAssigned)
                .actor(actor)
                .target(user_id)
                .metadata(serde_json::json!({ "role": found.name })),
        )
        .await?;
    }
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    Ok(row.into())
}

/// Takes a role from a user (nothing changes when they do not hold it).
///
/// # Errors
/// `NOT_FOUND` for an unknown user or role; `FORBIDDEN` for the last active
/// admin's `admin` role.
pub async fn remove_role(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    user_id: Uuid,
    name: &str,
) -> AppResult<UserView> {
    let found = grantable(app, actor, name).await?;
    let txn = Tx::begin(app).await?;
    let row = lock_user(&txn, user_id).await?;
    if found.name == roles::ADMIN {
        keep_an_admin(&txn, &row, LAST_ADMIN).await?;
    }
    let removed = user_role::Entity::delete_many()
        .filter(user_role::Column::UserId.eq(user_id))
        .filter(user_role::Column::RoleId.eq(found.id))
        .exec(&txn)
        .await?
        .rows_affected;
    if removed > 0 {
        audit::record(
            &txn,
            meta,
            Event::new(Action::RoleRemoved)
                .actor(actor)
                .target(user_id)
                .metadata(serde_json::json!({ "role": found.name })),
        )
        .await?;
    }
    invalidations::commit(app, txn, &users::stale(row.id, row.version)).await?;
    Ok(row.into())
}

fn check_role_name(name: &str) -> AppResult<()> {
    let mut chars = name.chars();
    let ok = (2..=63).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_input(
            "name",
            "A role name is a lower-case slug: a letter, then 1–62 letters, digits, _ or -",
        ))
    }
}

/// Entries a permissions list may hold (duplicates included).
const MAX_PERMISSION_ENTRIES: usize = 32;

fn check_permissions(permissions: &[String]) -> AppResult<Vec<String>> {
    if permissions.len() > MAX_PERMISSION_ENTRIES {
        return Err(AppError::bad_input(
            "permissions",
            format!("At most {MAX_PERMISSION_ENTRIES} permissions may be listed"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for p in permissions {
        if !roles::PERMISSIONS.contains(&p.as_str()) {
            // Quoted only when short: the error never echoes a large input.
            let named = if p.chars().count() <= 64 {
                format!("Unknown permission {p:?}")
            } else {
                "Unknown permission (longer than any)".to_owned()
            };
            return Err(AppError::bad_input(
                "permissions",
                format!("{named}; known: {}", roles::PERMISSIONS.join(", ")),
            ));
        }
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}

fn check_description(description: Option<&str>) -> AppResult<Option<String>> {
    match description.map(str::trim) {
        Some(d) if d.chars().count() > 500 || d.chars().any(char::is_control) => {
            Err(AppError::bad_input(
                "description",
                "At most 500 characters, no control characters",
            ))
        }
        Some("") | None => Ok(None),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

/// # Errors
/// `BAD_USER_INPUT` (`name`, `permissions`, `description`), `CONFLICT` for a
/// taken name.
pub async fn create_role(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    name: &str,
    description: Option<&str>,
    permissions: &[String],
) -> AppResult<RoleView> {
    check_role_name(name)?;
    let permissions = check_permissions(permissions)?;
    let description = check_description(description)?;
    caller_holds(app, actor, &permissions, "A role with these permissions").await?;
    let txn = Tx::begin(app).await?;
    let at = now();
    let created = role::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.to_owned()),
        description: Set(description),
        permissions: Set(serde_json::json!(permissions)),
        built_in: Set(false),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            AppError::conflict("name", "A role with this name already exists")
        }
        _ => e.into(),
    })?;
    let stale = roles::touch_catalogue(&txn).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::RoleCreated)
            .actor(actor)
            .metadata(serde_json::json!({ "role": name, "permissions": permissions })),
    )
    .await?;
    invalidations::commit(app, txn, &[stale]).await?;
    Ok(created.into())
}

/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for the `admin` role's permissions (it holds
/// every one); `BAD_USER_INPUT` (`permissions`, `description`).
pub async fn update_role(
    app: &App,
    meta: &RequestMeta,
    actor: Uuid,
    name: &str,
    description: Option<Option<&str>>,
    permissions: Option<&[String]>,
) -> AppResult<RoleView> {
    check_role_ref(name, "name")?;
    let permissions = permissions.map(check_permissions).transpose()?;
    let description = description.map(check_description).transpose()?;
    let txn = Tx::begin(app).await?;
    let found = roles::by_name(&txn, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("Role {name} does not exist")))?;
    if found.built_in && permissions.is_some() {
        // admin holds every permission, user none of the administrative
        // ones (and every account holds it).
        return Err(AppError::Forbidden(format!(
            "The built-in role {name}'s permissions cannot change"
        )));
    }
    let mut touched = RoleView::from(found.clone()).permissions;
    touched.extend(permissions.clone().unwrap_or_default());
    caller_holds(app, actor, &touched, "This role").await?;
    let mut update = role::Entity::update_many()
        .col_expr(role::Column::UpdatedAt, Expr::value(now()))
        .filter(role::Column::Id.eq(found.id));
    let mut fields = Vec::new();
    if let Some(permissions) = &permissions {
        update = update.col_expr(
            role::Column::Permissions,
            Expr::value(serde_json::json!(permissions)),
        );
        fields.push("permissions");
    }
    if let Some(description) = description {
        update = update.col_expr(role::Column::Description, Expr::value(description));
        fields.push("description");
    }
    let row = update
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound(format!("Role {name} does not exist")))?;
    let stale = roles::touch_catalogue(&txn).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::RoleUpdated).actor(actor).metadata(
            serde_json::json!({ "role": name, "fields": fields, "permissions": permissions }),
        ),
    )
    .await?;
    invalidations::commit(app, txn, &[stale]).await?;
    Ok(row.into())
}

/// # Errors
/// `NOT_FOUND`; `FORBIDDEN` for a built-in role.
pub async fn delete_role(app: &App, meta: &RequestMeta, actor: Uuid, name: &str) -> AppResult<()> {
    check_role_ref(name, "name")?;
    let txn = Tx::begin(app).await?;
    // The catalogue's version first: concurrent role changes serialise here.
    let catalogue = roles::touch_catalogue(&txn).await?;
    let found = roles::by_name(&txn, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("Role {name} does not exist")))?;
    if found.built_in {
        return Err(AppError::Forbidden(format!(
            "The built-in role {name} cannot be deleted"
        )));
    }
    caller_holds(
        app,
        actor,
        &RoleView::from(found.clone()).permissions,
        "This role",
    )
    .await?;
    // Holders' cached role lists may keep the id: it resolves to nothing
    // once the catalogue (invalidated here) no longer has the role, and ids
    // are never reused; so no holder row needs touching.
    let holders = user_role::Entity::delete_many()
        .filter(user_role::Column::RoleId.eq(found.id))
        .exec(&txn)
        .await?
        .rows_affected;
    role::Entity::delete_by_id(found.id).exec(&txn).await?;
    audit::record(
        &txn,
        meta,
        Event::new(Action::RoleDeleted)
            .actor(actor)
            .metadata(serde_json::json!({ "role": name, "holders": holders })),
    )
    .await?;
    invalidations::commit(app, txn, &[catalogue]).await
}

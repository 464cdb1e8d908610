//! Roles and permissions.
//!
//! Roles are few and read on every permission check, so the whole set is
//! cached under one key (`roles:all`, versioned by the `roles` epoch in
//! `cache_epochs`); which roles a user holds is cached per user
//! (`user_roles:<id>`, role ids only, versioned by `users.version`), so
//! changing a role's permissions invalidates one key, not one per holder.
//! Fills read the primary: a just-registered user's roles must not be cached
//! from a replica that has not seen them yet.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use entity::{cache_epoch, role, user, user_role};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, JoinType,
    QueryFilter as _, QuerySelect as _, RelationTrait as _, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::invalidations::Stale;
use crate::error::{AppError, AppResult};
use crate::infra::cache::{Family, Hints};
use crate::state::App;

pub const ADMIN: &str = "admin";
pub const USER: &str = "user";

/// Every permission there is (API.md §4).
pub const PERMISSIONS: [&str; 7] = [
    "users:read",
    "users:write",
    "users:delete",
    "roles:read",
    "roles:write",
    "roles:assign",
    "audit:read",
];

/// The role catalogue, under the single id `all`.
pub(crate) const CATALOGUE: Family = Family {
    name: "roles",
    shape: 1,
    ttl: Duration::from_secs(300),
};
/// Which roles each user holds (role ids).
pub(crate) const USER_ROLES: Family = Family {
    name: "user_roles",
    shape: 1,
    ttl: Duration::from_secs(300),
};
/// The `cache_epochs` row that versions the catalogue.
const EPOCH: &str = "roles";

/// A role as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    pub built_in: bool,
}

impl From<role::Model> for RoleView {
    fn from(m: role::Model) -> Self {
        let permissions = serde_json::from_value::<Vec<String>>(m.permissions).unwrap_or_default();
        Self {
            id: m.id,
            name: m.name,
            description: m.description,
            permissions,
            built_in: m.built_in,
        }
    }
}

/// The sorted union of the roles' permissions.
pub fn permissions_of<'a>(roles: impl IntoIterator<Item = &'a RoleView>) -> Vec<String> {
    roles
        .into_iter()
        .flat_map(|r| r.permissions.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The key of a user's role links (versioned by the user row).
pub fn user_roles_key(id: Uuid) -> String {
    USER_ROLES.key(id)
}

/// Bumps the catalogue's version inside a role write's transaction; returns
/// the key to invalidate with its commit. Role writes serialize on this row.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn touch_catalogue<C: ConnectionTrait>(conn: &C) -> AppResult<Stale> {
    cache_epoch::Entity::update_many()
        .col_expr(
            cache_epoch::Column::Version,
            sea_orm::sea_query::ExprTrait::add(Expr::col(cache_epoch::Column::Version), 1),
        )
        .filter(cache_epoch::Column::Name.eq(EPOCH))
        .exec(conn)
        .await?;
    let version = catalogue_version(conn).await?;
    Ok((CATALOGUE.key("all"), version))
}

async fn catalogue_version<C: ConnectionTrait>(conn: &C) -> AppResult<u64> {
    let epoch = cache_epoch::Entity::find_by_id(EPOCH.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("cache_epochs has no roles row")))?;
    Ok(u64::try_from(epoch.version).unwrap_or(0))
}

/// Every role, by id.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn all(app: &App, hints: Hints<'_>) -> AppResult<HashMap<Uuid, RoleView>> {
    let mut found = app
        .cache
        .read_through_hinted(&CATALOGUE, &["all"], hints, |_| async {
            // The version first: roles read after it are at least that new.
            let version = catalogue_version(&app.db.fresh).await?;
            let roles: Vec<RoleView> = role::Entity::find()
                .all(&app.db.fresh)
                .await?
                .into_iter()
                .map(RoleView::from)
                .collect();
            Ok(vec![("all", version, roles)])
        })
        .await?;
    let roles = found.remove(&"all").unwrap_or_default();
    Ok(roles.into_iter().map(|r| (r.id, r)).collect())
}

/// The roles of each user, sorted by name: cache first, then one query on
/// the primary for the misses (the user's version and its links together).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn for_users(
    app: &App,
    user_ids: &[Uuid],
    hints: Hints<'_>,
) -> AppResult<HashMap<Uuid, Vec<RoleView>>> {
    let role_ids = app
        .cache
        .read_through_hinted(&USER_ROLES, user_ids, hints, |missing| async move {
            let rows: Vec<(Uuid, i64, Option<Uuid>)> = user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .column(user::Column::Version)
                .column(user_role::Column::RoleId)
                .join(JoinType::LeftJoin, user::Relation::UserRoles.def())
                .filter(user::Column::Id.is_in(missing))
                .into_tuple()
                .all(&app.db.fresh)
                .await?;
            let mut links: HashMap<Uuid, (u64, Vec<Uuid>)> = HashMap::new();
            for (user_id, version, role_id) in rows {
                let entry = links
                    .entry(user_id)
                    .or_insert_with(|| (u64::try_from(version).unwrap_or(0), Vec::new()));
                entry.1.extend(role_id);
            }
            Ok(links
                .into_iter()
                .map(|(user_id, (version, ids))| (user_id, version, ids))
                .collect())
        })
        .await?;
    let mut catalogue = all(app, hints).await?;
    // A hinted catalogue is as old as the request's start, the links may be
    // newer (read since, or loaded): a role it does not know yet is asked
    // for again rather than left out.
    if hints.is_some()
        && role_ids
            .values()
            .flatten()
            .any(|id| !catalogue.contains_key(id))
    {
        catalogue = all(app, None).await?;
    }
    Ok(user_ids
        .iter()
        .map(|user_id| {
            let mut roles: Vec<RoleView> = role_ids
                .get(user_id)
                .into_iter()
                .flatten()
                .filter_map(|id| catalogue.get(id).cloned())
                .collect();
            roles.sort_by(|a, b| a.name.cmp(&b.name));
            (*user_id, roles)
        })
        .collect())
}

/// The sorted permissions of one user.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn permissions_of_user(
    app: &App,
    user_id: Uuid,
    hints: Hints<'_>,
) -> AppResult<Vec<String>> {
    let roles = for_users(app, &[user_id], hints)
        .await?
        .remove(&user_id)
        .unwrap_or_default();
    Ok(permissions_of(&roles))
}

/// Whether the user's roles grant `permission`.
///
/// # Errors
/// `Internal` when the roles cannot be read.
pub async fn user_holds(
    app: &App,
    user_id: Uuid,
    permission: &str,
    hints: Hints<'_>,
) -> AppResult<bool> {
    Ok(permissions_of_user(app, user_id, hints)
        .await?
        .iter()
        .any(|p| p == permission))
}

/// Finds a role by name on `conn`.
///
/// # Errors
/// `Internal` when the database fails; `Internal` too when a built-in role is
/// missing (the database was not migrated).
pub async fn by_name<C: ConnectionTrait>(conn: &C, name: &str) -> AppResult<Option<role::Model>> {
    Ok(role::Entity::find()
        .filter(role::Column::Name.eq(name))
        .one(conn)
        .await?)
}

/// Gives `user_id` the role `name` inside the caller's transaction. The
/// caller bumps the user's version (a new account has nothing cached).
///
/// # Errors
/// `NOT_FOUND` when there is no such role.
pub async fn link<C: ConnectionTrait>(conn: &C, user_id: Uuid, name: &str) -> AppResult<()> {
    let role = by_name(conn, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("Role {name} does not exist")))?;
    user_role::ActiveModel {
        user_id: Set(user_id),
        role_id: Set(role.id),
        created_at: Set(super::now()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Locks the `admin` role's row for the rest of the transaction (`FOR
/// UPDATE` on PostgreSQL; SQLite serialises writers anyway) and returns its
/// id: every change that could remove the last admin takes it first.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn lock_admin_role<C: ConnectionTrait>(conn: &C) -> AppResult<Option<Uuid>> {
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QuerySelect as _};
    Ok(role::Entity::find()
        .filter(role::Column::Name.eq(ADMIN))
        .lock_exclusive()
        .one(conn)
        .await?
        .map(|r| r.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_a_sorted_union() {
        let role = |p: &[&str]| RoleView {
            id: Uuid::now_v7(),
            name: "r".into(),
            description: None,
            permissions: p.iter().map(|s| s.to_string()).collect(),
            built_in: false,
        };
        let roles = [
            role(&["users:write", "audit:read"]),
            role(&["audit:read", "roles:read"]),
        ];
        assert_eq!(
            permissions_of(&roles),
            ["audit:read", "roles:read", "users:write"]
        );
    }
}

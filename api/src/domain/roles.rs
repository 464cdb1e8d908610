//! Roles and permissions.
//!
//! Roles are few and read on every permission check, so the whole set is
//! cached under one key (`roles:all`); which roles a user holds is cached per
//! user (`user_roles:<id>`, role ids only), so changing a role's permissions
//! invalidates one key, not one per holder.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use entity::{role, user_role};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
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

const ALL_KEY: &str = "roles:all";
const TTL: Duration = Duration::from_secs(300);

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

fn user_key(id: Uuid) -> String {
    format!("user_roles:{id}")
}

/// Every role, by id.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn all(app: &App) -> AppResult<HashMap<Uuid, RoleView>> {
    let roles = match app.cache.get::<Vec<RoleView>>(ALL_KEY).await {
        Some(roles) => roles,
        None => {
            let roles: Vec<RoleView> = role::Entity::find()
                .all(&app.db.read)
                .await?
                .into_iter()
                .map(RoleView::from)
                .collect();
            app.cache.fill(ALL_KEY, &roles, TTL).await;
            roles
        }
    };
    Ok(roles.into_iter().map(|r| (r.id, r)).collect())
}

/// The roles of each user, sorted by name: cache first, one query for misses.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn for_users(app: &App, user_ids: &[Uuid]) -> AppResult<HashMap<Uuid, Vec<RoleView>>> {
    let keys: Vec<String> = user_ids.iter().map(|id| user_key(*id)).collect();
    let cached = app.cache.get_many::<Vec<Uuid>>(&keys).await;
    let mut role_ids: HashMap<Uuid, Vec<Uuid>> = HashMap::with_capacity(user_ids.len());
    let mut missing = Vec::new();
    for (id, hit) in user_ids.iter().zip(cached) {
        match hit {
            Some(ids) => {
                role_ids.insert(*id, ids);
            }
            None => missing.push(*id),
        }
    }
    if !missing.is_empty() {
        let links = user_role::Entity::find()
            .filter(user_role::Column::UserId.is_in(missing.clone()))
            .all(&app.db.read)
            .await?;
        let mut fetched: HashMap<Uuid, Vec<Uuid>> =
            missing.iter().map(|id| (*id, Vec::new())).collect();
        for link in links {
            fetched.entry(link.user_id).or_default().push(link.role_id);
        }
        for (user_id, ids) in fetched {
            app.cache.fill(&user_key(user_id), &ids, TTL).await;
            role_ids.insert(user_id, ids);
        }
    }
    let all = all(app).await?;
    Ok(role_ids
        .into_iter()
        .map(|(user_id, ids)| {
            let mut roles: Vec<RoleView> =
                ids.iter().filter_map(|id| all.get(id).cloned()).collect();
            roles.sort_by(|a, b| a.name.cmp(&b.name));
            (user_id, roles)
        })
        .collect())
}

/// The sorted permissions of one user.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn permissions_of_user(app: &App, user_id: Uuid) -> AppResult<Vec<String>> {
    let roles = for_users(app, &[user_id])
        .await?
        .remove(&user_id)
        .unwrap_or_default();
    Ok(permissions_of(&roles))
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

/// Gives `user_id` the role `name` inside the caller's transaction.
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

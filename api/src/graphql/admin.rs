//! Administration mutations, each behind the guard of its permission.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::context;
use super::guards::{ROLES_ASSIGN, ROLES_WRITE, USERS_DELETE, USERS_WRITE};
use super::query::parse_id;
use super::types::{Role, User, UserStatusGql};
use crate::domain::admin::{self, NewUser, UserChanges};

/// A new account, created by an administrator.
#[derive(InputObject)]
pub struct CreateUserInput {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
    /// Roles besides `user`, which every account holds.
    pub roles: Option<Vec<String>>,
    pub email_verified: Option<bool>,
}

/// Changes to an account; a field left out stays as it is.
#[derive(InputObject)]
pub struct UpdateUserInput {
    pub email: Option<String>,
    /// `null` clears it.
    pub display_name: MaybeUndefined<String>,
    pub email_verified: Option<bool>,
    /// `DISABLED` ends every session of the account at once.
    pub status: Option<UserStatusGql>,
}

/// A new role.
#[derive(InputObject)]
pub struct CreateRoleInput {
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
}

/// Changes to a role; a field left out stays as it is.
#[derive(InputObject)]
pub struct UpdateRoleInput {
    /// `null` clears it.
    pub description: MaybeUndefined<String>,
    pub permissions: Option<Vec<String>>,
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Creates an account (role `user`, plus `roles`). Needs `users:write`.
    #[graphql(guard = "USERS_WRITE")]
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let viewer = context::viewer(ctx)?;
        let view = admin::create_user(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            NewUser {
                email: &input.email,
                password: &input.password,
                display_name: input.display_name.as_deref(),
                roles: input.roles,
                email_verified: input.email_verified.unwrap_or(false),
            },
        )
        .await?;
        Ok(User::new(view))
    }

    /// Changes an account. Needs `users:write`.
    #[graphql(guard = "USERS_WRITE")]
    async fn update_user(&self, ctx: &Context<'_>, id: ID, input: UpdateUserInput) -> Result<User> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&id, "id")?;
        let changes = UserChanges {
            email: input.email.as_deref(),
            display_name: match &input.display_name {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(name) => Some(Some(name.as_str())),
            },
            email_verified: input.email_verified,
            status: input.status.map(Into::into),
        };
        let view = admin::update_user(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            id,
            changes,
        )
        .await?;
        Ok(User::new(view))
    }

    /// Deletes an account with its sessions, roles and tokens. Needs
    /// `users:delete`.
    #[graphql(guard = "USERS_DELETE")]
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&id, "id")?;
        admin::delete_user(context::state(ctx), context::meta(ctx), viewer.user_id, id).await?;
        Ok(true)
    }

    /// Lifts a login lockout. Needs `users:write`.
    #[graphql(guard = "USERS_WRITE")]
    async fn unlock_user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&id, "id")?;
        let view =
            admin::unlock_user(context::state(ctx), context::meta(ctx), viewer.user_id, id).await?;
        Ok(User::new(view))
    }

    /// Gives a user a role. Needs `roles:assign`.
    #[graphql(guard = "ROLES_ASSIGN")]
    async fn assign_role(&self, ctx: &Context<'_>, user_id: ID, role: String) -> Result<User> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&user_id, "userId")?;
        let view = admin::assign_role(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            id,
            &role,
        )
        .await?;
        Ok(User::new(view))
    }

    /// Takes a role from a user. Needs `roles:assign`.
    #[graphql(guard = "ROLES_ASSIGN")]
    async fn remove_role(&self, ctx: &Context<'_>, user_id: ID, role: String) -> Result<User> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&user_id, "userId")?;
        let view = admin::remove_role(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            id,
            &role,
        )
        .await?;
        Ok(User::new(view))
    }

    /// Creates a role. Needs `roles:write`.
    #[graphql(guard = "ROLES_WRITE")]
    async fn create_role(
        &self,
        ctx: &Context<'_>,
        input: CreateRoleInput,
    ) -> Result<Role<'static>> {
        let viewer = context::viewer(ctx)?;
        let view = admin::create_role(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            &input.name,
            input.description.as_deref(),
            &input.permissions,
        )
        .await?;
        Ok(Role::owned(view))
    }

    /// Changes a role's description or permissions. Needs `roles:write`.
    #[graphql(guard = "ROLES_WRITE")]
    async fn update_role(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: UpdateRoleInput,
    ) -> Result<Role<'static>> {
        let viewer = context::viewer(ctx)?;
        let description = match &input.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d.as_str())),
        };
        let view = admin::update_role(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            &name,
            description,
            input.permissions.as_deref(),
        )
        .await?;
        Ok(Role::owned(view))
    }

    /// Deletes a role that is not built in. Needs `roles:write`.
    #[graphql(guard = "ROLES_WRITE")]
    async fn delete_role(&self, ctx: &Context<'_>, name: String) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        admin::delete_role(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            &name,
        )
        .await?;
        Ok(true)
    }
}

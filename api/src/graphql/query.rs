//! Query roots, one object per area, merged in `graphql::schema`.

use async_graphql::{Context, ID, Object, Result};
use uuid::Uuid;

use super::context::{self, Auth};
use super::guards::{ROLES_READ, USERS_READ};
use super::types::{Role, User};
use crate::domain::{roles, users};
use crate::error::AppError;

/// Parses a GraphQL `ID` that must be a UUID.
///
/// # Errors
/// `BAD_USER_INPUT` naming `field`.
pub fn parse_id(id: &ID, field: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "Not a valid id"))
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user; null without a token; UNAUTHENTICATED with an
    /// invalid, expired or revoked one (so clients know to refresh).
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let viewer = match context::auth(ctx) {
            Auth::Anonymous => return Ok(None),
            _ => context::viewer(ctx)?,
        };
        Ok(
            users::load(context::state(ctx), viewer.user_id, context::hints(ctx))
                .await?
                .map(User::new),
        )
    }

    /// A user by id: the caller themself, or with `users:read`.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&id, "id")?;
        // Permission before existence: a caller without it learns nothing.
        if viewer.user_id != id && !context::has_permission(ctx, viewer, USERS_READ.0).await? {
            return Err(AppError::Forbidden("This needs the users:read permission".into()).into());
        }
        let (app, hints) = (context::state(ctx), context::hints(ctx));
        if let Some(hints) = hints {
            // The user, and their roles when asked for, in one round trip.
            let mut keys = vec![users::USERS.key(id)];
            let fields = ctx.look_ahead();
            if fields.field("roles").exists() || fields.field("permissions").exists() {
                keys.push(roles::USER_ROLES.key(id));
            }
            app.cache.prefetch_more(hints, &keys).await;
        }
        Ok(users::load(app, id, hints).await?.map(User::new))
    }
}

#[derive(Default)]
pub struct RoleQuery;

#[Object]
impl RoleQuery {
    /// Every role, by name. Needs `roles:read`.
    #[graphql(guard = "ROLES_READ")]
    async fn roles(&self, ctx: &Context<'_>) -> Result<Vec<Role<'static>>> {
        let mut all: Vec<_> = roles::all(context::state(ctx), context::hints(ctx))
            .await?
            .into_values()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all.into_iter().map(Role::owned).collect())
    }

    /// One role by name, or null. Needs `roles:read`.
    #[graphql(guard = "ROLES_READ")]
    async fn role(&self, ctx: &Context<'_>, name: String) -> Result<Option<Role<'static>>> {
        if name.len() > 63 {
            // Longer than any role name can be.
            return Ok(None);
        }
        let all = roles::all(context::state(ctx), context::hints(ctx)).await?;
        Ok(all.into_values().find(|r| r.name == name).map(Role::owned))
    }
}

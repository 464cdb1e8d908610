//! Permission checks as guards on the fields that need them: one constant
//! per permission, so each is spelled in one place.

use async_graphql::{Context, Guard, Result};

use super::context;

/// Lets a field resolve only for a signed-in caller whose roles grant the
/// permission: `UNAUTHENTICATED` without a working token, `FORBIDDEN` without
/// the permission (before anything is looked up, so existence never leaks).
pub struct Permission(pub &'static str);

pub const USERS_READ: Permission = Permission("users:read");
pub const USERS_WRITE: Permission = Permission("users:write");
pub const USERS_DELETE: Permission = Permission("users:delete");
pub const ROLES_READ: Permission = Permission("roles:read");
pub const ROLES_WRITE: Permission = Permission("roles:write");
pub const ROLES_ASSIGN: Permission = Permission("roles:assign");
pub const AUDIT_READ: Permission = Permission("audit:read");

impl Guard for Permission {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        context::require(ctx, self.0).await?;
        Ok(())
    }
}

//! Mutation roots, one object per area, merged in `graphql::schema`.

use async_graphql::{Context, InputObject, Object, Result};

use super::context;
use super::types::AuthPayload;
use crate::domain::accounts::{self, Registration};
use crate::domain::sessions;

/// A new account.
#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

/// Credentials.
#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account (role `user`) and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        context::rate_limit(ctx, "register").await?;
        let registration = Registration {
            email: &input.email,
            password: &input.password,
            display_name: input.display_name.as_deref(),
        };
        let signed_in =
            accounts::register(context::state(ctx), context::meta(ctx), registration).await?;
        Ok(AuthPayload(signed_in))
    }

    /// Signs in: a new session with an access and a refresh token.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        context::rate_limit(ctx, "login").await?;
        let signed_in = accounts::login(
            context::state(ctx),
            context::meta(ctx),
            &input.email,
            &input.password,
        )
        .await?;
        Ok(AuthPayload(signed_in))
    }

    /// Exchanges a refresh token for new tokens; the presented one dies.
    /// Presenting it again revokes the whole session.
    async fn refresh_token(&self, ctx: &Context<'_>, token: String) -> Result<AuthPayload> {
        context::rate_limit(ctx, "refreshToken").await?;
        let signed_in = accounts::refresh(context::state(ctx), context::meta(ctx), &token).await?;
        Ok(AuthPayload(signed_in))
    }

    /// Ends the current session: its access and refresh tokens stop working
    /// everywhere at once.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        sessions::logout(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            viewer.session_id,
        )
        .await?;
        Ok(true)
    }
}

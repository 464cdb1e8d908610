//! Mutation roots, one object per area, merged in `graphql::schema`.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result};

use super::context;
use super::query::parse_id;
use super::types::{AuthPayload, User};
use crate::domain::accounts::{self, Registration};
use crate::domain::{self_service, sessions};

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

/// Changes to the caller's profile; a field left out stays as it is.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// `null` clears it.
    pub display_name: MaybeUndefined<String>,
}

/// A new password for the signed-in caller.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
}

/// A new password with the token of a reset link.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    pub token: String,
    pub new_password: String,
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

    /// Ends every session of the caller, this one included; returns how many.
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<i32> {
        let viewer = context::viewer(ctx)?;
        let n = sessions::revoke_all(
            context::state(ctx),
            context::meta(ctx),
            Some(viewer.user_id),
            viewer.user_id,
            None,
            sessions::RevokeReason::LogoutAll,
        )
        .await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Ends one session: the caller's own, or anyone's with `users:write`
    /// (another user's session without it is NOT_FOUND). False when it had
    /// already ended.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        let id = parse_id(&id, "id")?;
        let manage = context::has_permission(ctx, viewer, super::guards::USERS_WRITE.0).await?;
        Ok(sessions::revoke_one(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            id,
            manage,
        )
        .await?)
    }

    /// Updates the caller's own profile.
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let viewer = context::viewer(ctx)?;
        let display_name = match &input.display_name {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(name) => Some(Some(name.as_str())),
        };
        let view = self_service::update_profile(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            display_name,
        )
        .await?;
        Ok(User::new(view))
    }

    /// Changes the caller's password (the current one is required); every
    /// other session ends, this one stays.
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        context::rate_limit(ctx, "changePassword").await?;
        self_service::change_password(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            viewer.session_id,
            &input.current_password,
            &input.new_password,
        )
        .await?;
        Ok(true)
    }

    /// Mails the caller a link that verifies their email address (replacing
    /// any earlier link). True also when it is verified already (no mail).
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        context::rate_limit(ctx, "requestEmailVerification").await?;
        self_service::request_email_verification(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
        )
        .await?;
        Ok(true)
    }

    /// Verifies the address with the token of a verification link.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<User> {
        context::rate_limit(ctx, "verifyEmail").await?;
        let view =
            self_service::verify_email(context::state(ctx), context::meta(ctx), &token).await?;
        Ok(User::new(view))
    }

    /// Mails a password-reset link if the address has an account. Always
    /// true, in the same time either way.
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        context::rate_limit(ctx, "requestPasswordReset").await?;
        self_service::request_password_reset(context::state(ctx), context::meta(ctx), &email)
            .await?;
        Ok(true)
    }

    /// Sets a new password with the token of a reset link: every session
    /// ends and any lockout is lifted.
    async fn reset_password(&self, ctx: &Context<'_>, input: ResetPasswordInput) -> Result<bool> {
        context::rate_limit(ctx, "resetPassword").await?;
        self_service::reset_password(
            context::state(ctx),
            context::meta(ctx),
            &input.token,
            &input.new_password,
        )
        .await?;
        Ok(true)
    }

    /// Deletes the caller's account (the password is required): sessions,
    /// roles and tokens go with it and the email can be registered again.
    async fn delete_account(&self, ctx: &Context<'_>, password: String) -> Result<bool> {
        let viewer = context::viewer(ctx)?;
        context::rate_limit(ctx, "deleteAccount").await?;
        self_service::delete_account(
            context::state(ctx),
            context::meta(ctx),
            viewer.user_id,
            &password,
        )
        .await?;
        Ok(true)
    }
}

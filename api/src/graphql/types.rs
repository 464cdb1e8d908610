//! GraphQL object types, built from domain values. None has a field for a
//! password hash to forget.

use std::borrow::Cow;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, ID, Object, Result};
use uuid::Uuid;

use super::context::{self, Auth};
use super::loaders::{RolesByUserLoader, SessionsByUserLoader};
use super::scalars::Timestamp;
use crate::domain::roles::{self, RoleView};
use crate::domain::sessions::SessionView;
use crate::domain::users::UserView;
use crate::error::AppError;

/// Whether an account can sign in.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(name = "UserStatus")]
pub enum UserStatusGql {
    Active,
    Disabled,
}

impl From<UserStatusGql> for entity::user::UserStatus {
    fn from(s: UserStatusGql) -> Self {
        match s {
            UserStatusGql::Active => Self::Active,
            UserStatusGql::Disabled => Self::Disabled,
        }
    }
}

impl From<entity::user::UserStatus> for UserStatusGql {
    fn from(s: entity::user::UserStatus) -> Self {
        match s {
            entity::user::UserStatus::Active => Self::Active,
            entity::user::UserStatus::Disabled => Self::Disabled,
        }
    }
}

/// An account.
#[derive(Clone)]
pub struct User {
    pub view: UserView,
    /// Set on the user of an `AuthPayload`: the session just opened, which
    /// acts as the viewer for this user's own fields (the request itself was
    /// anonymous).
    pub new_session: Option<Uuid>,
    /// Loaded with the list this user came from, in one batch per list
    /// (see `directory::users`): then no loader round is needed.
    pub roles: Option<Vec<RoleView>>,
    pub sessions: Option<Vec<SessionView>>,
    /// One of many in a response (an audit event's actor, …): its roles go
    /// through the request's loader, batched with its siblings'. A single
    /// user (`me`, `user(id:)`, a mutation's result) reads them at once,
    /// without the loader's wait for siblings that will not come.
    pub batched: bool,
}

impl User {
    /// The one user a field answers with.
    pub fn new(view: UserView) -> Self {
        Self {
            view,
            new_session: None,
            roles: None,
            sessions: None,
            batched: false,
        }
    }

    /// A user among siblings (see [`User::batched`]).
    pub fn batched(view: UserView) -> Self {
        Self {
            batched: true,
            ..Self::new(view)
        }
    }
}

impl User {
    async fn role_views(&self, ctx: &Context<'_>) -> Result<Cow<'_, [RoleView]>> {
        if let Some(roles) = &self.roles {
            return Ok(Cow::Borrowed(roles));
        }
        if !self.batched {
            let id = self.view.id;
            let hints = super::context::hints(ctx);
            let mut found = roles::for_users(super::context::state(ctx), &[id], hints).await?;
            return Ok(Cow::Owned(found.remove(&id).unwrap_or_default()));
        }
        Ok(Cow::Owned(
            ctx.data_unchecked::<DataLoader<RolesByUserLoader>>()
                .load_one(self.view.id)
                .await?
                .unwrap_or_default(),
        ))
    }
}

#[Object]
impl User {
    /// UUID.
    async fn id(&self) -> ID {
        ID(self.view.id.to_string())
    }
    /// Normalized (trimmed, lower-case).
    async fn email(&self) -> &str {
        &self.view.email
    }
    async fn email_verified(&self) -> bool {
        self.view.email_verified
    }
    async fn display_name(&self) -> Option<&str> {
        self.view.display_name.as_deref()
    }
    async fn status(&self) -> UserStatusGql {
        self.view.status.into()
    }
    /// Set while a login lockout is in force.
    async fn locked_until(&self) -> Option<Timestamp> {
        self.view.lock_in_force().map(Timestamp)
    }
    async fn roles(&self, ctx: &Context<'_>) -> Result<Vec<Role<'_>>> {
        Ok(match self.role_views(ctx).await? {
            Cow::Borrowed(roles) => roles.iter().map(|r| Role(Cow::Borrowed(r))).collect(),
            Cow::Owned(roles) => roles.into_iter().map(Role::owned).collect(),
        })
    }
    /// The union of the roles' permissions, sorted.
    async fn permissions(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        Ok(roles::permissions_of(self.role_views(ctx).await?.iter()))
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.view.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.view.updated_at)
    }
    async fn last_login_at(&self) -> Option<Timestamp> {
        self.view.last_login_at.map(Timestamp)
    }
    /// Live sessions, newest first: the user themself, or `users:read`.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        // The load starts at once, beside the permission check: every row
        // of a list then joins one batch (a check that resolves at different
        // moments would split it), and nothing loaded is shown unless the
        // check passes.
        let preloaded = self.sessions.clone();
        let load = async {
            match preloaded {
                Some(list) => Ok(Some(list)),
                None => {
                    ctx.data_unchecked::<DataLoader<SessionsByUserLoader>>()
                        .load_one(self.view.id)
                        .await
                }
            }
        };
        let check = async {
            match self.new_session {
                Some(session_id) => Ok::<_, async_graphql::Error>(Some(session_id)),
                None => {
                    let viewer = context::viewer(ctx)?;
                    if viewer.user_id != self.view.id
                        && !context::has_permission(ctx, viewer, super::guards::USERS_READ.0)
                            .await?
                    {
                        return Err(AppError::Forbidden(
                            "This needs the users:read permission".into(),
                        )
                        .into());
                    }
                    Ok(match context::auth(ctx) {
                        Auth::User(v) if v.user_id == self.view.id => Some(v.session_id),
                        _ => None,
                    })
                }
            }
        };
        let (current, list) = futures_util::future::join(check, load).await;
        let current = current?;
        let list = list?.unwrap_or_default();
        Ok(list
            .into_iter()
            .map(|s| Session {
                current: Some(s.id) == current,
                view: s,
            })
            .collect())
    }
}

/// A named set of permissions: borrowed from the user it was loaded with
/// (a page of 50 users then copies none of their roles), or owned.
pub struct Role<'a>(pub Cow<'a, RoleView>);

impl Role<'static> {
    pub fn owned(view: RoleView) -> Self {
        Self(Cow::Owned(view))
    }
}

#[Object]
impl Role<'_> {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Lower-case slug, unique.
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn permissions(&self) -> &[String] {
        &self.0.permissions
    }
    /// Built-in roles (`admin`, `user`) cannot be deleted or renamed.
    async fn built_in(&self) -> bool {
        self.0.built_in
    }
}

/// A signed-in device or browser.
pub struct Session {
    pub view: SessionView,
    pub current: bool,
}

#[Object]
impl Session {
    async fn id(&self) -> ID {
        ID(self.view.id.to_string())
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.view.created_at)
    }
    async fn last_used_at(&self) -> Timestamp {
        Timestamp(self.view.last_used_at)
    }
    async fn expires_at(&self) -> Timestamp {
        Timestamp(self.view.expires_at)
    }
    async fn ip_address(&self) -> Option<&str> {
        self.view.ip_address.as_deref()
    }
    async fn user_agent(&self) -> Option<&str> {
        self.view.user_agent.as_deref()
    }
    /// The session of the token making the request.
    async fn current(&self) -> bool {
        self.current
    }
}

/// Tokens for a new or refreshed session.
pub struct AuthPayload(pub crate::domain::accounts::SignedIn);

#[Object]
impl AuthPayload {
    /// A JWT to send as `Authorization: Bearer …`.
    async fn access_token(&self) -> &str {
        &self.0.access_token
    }
    /// Opaque; exchange it with `refreshToken` for new tokens. Single use.
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }
    /// Always "Bearer".
    async fn token_type(&self) -> &str {
        "Bearer"
    }
    /// Seconds until the access token expires.
    async fn expires_in(&self) -> i64 {
        i64::try_from(self.0.expires_in).unwrap_or(i64::MAX)
    }
    async fn user(&self) -> User {
        User {
            new_session: Some(self.0.session_id),
            ..User::new(self.0.user.clone())
        }
    }
}

//! What a resolver knows about its request: the shared state, who is asking
//! ([`Auth`]), where from ([`RequestMeta`]), and the per-request DataLoaders.

use async_graphql::Context;
use uuid::Uuid;

use crate::domain::RequestMeta;
use crate::domain::roles;
use crate::error::AppError;
use crate::infra::cache::{Hints, Prefetch};
use crate::infra::ratelimit::RateLimiter;
use crate::state::AppState;

/// A signed-in caller whose session was live when the request began.
#[derive(Clone, Copy, Debug)]
pub struct Viewer {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// When the access token expires (seconds since the epoch).
    pub token_expires_at: i64,
}

/// Who is asking.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No `Authorization` header.
    Anonymous,
    /// A token that does not work: `UNAUTHENTICATED` wherever identity matters.
    Invalid(String),
    /// The session could not be checked (database down): an internal error,
    /// not a reason for the client to throw its tokens away.
    Unavailable,
    User(Viewer),
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

pub fn meta<'a>(ctx: &Context<'a>) -> &'a RequestMeta {
    ctx.data_unchecked::<RequestMeta>()
}

pub fn auth<'a>(ctx: &Context<'a>) -> &'a Auth {
    ctx.data_unchecked::<Auth>()
}

/// What this request read ahead (a single read-only request over HTTP).
pub fn hints<'a>(ctx: &Context<'a>) -> Hints<'a> {
    ctx.data_opt::<std::sync::Arc<Prefetch>>()
        .map(AsRef::as_ref)
}

/// The signed-in caller.
///
/// # Errors
/// `UNAUTHENTICATED` without a working token.
pub fn viewer(ctx: &Context<'_>) -> Result<Viewer, AppError> {
    match auth(ctx) {
        Auth::User(v) => Ok(*v),
        Auth::Invalid(message) => Err(AppError::Unauthenticated(message.clone())),
        Auth::Unavailable => Err(AppError::internal(anyhow::anyhow!(
            "the session could not be checked"
        ))),
        Auth::Anonymous => Err(AppError::Unauthenticated(
            "Sign in first: send Authorization: Bearer <accessToken>".into(),
        )),
    }
}

/// The signed-in caller, if they hold `permission`.
///
/// # Errors
/// `UNAUTHENTICATED` without a working token, `FORBIDDEN` without the permission.
pub async fn require(ctx: &Context<'_>, permission: &str) -> Result<Viewer, AppError> {
    let viewer = viewer(ctx)?;
    if has_permission(ctx, viewer, permission).await? {
        Ok(viewer)
    } else {
        Err(AppError::Forbidden(format!(
            "This needs the {permission} permission"
        )))
    }
}

/// Whether the caller's roles grant `permission`.
///
/// # Errors
/// `Internal` when the roles cannot be read.
pub async fn has_permission(
    ctx: &Context<'_>,
    viewer: Viewer,
    permission: &str,
) -> Result<bool, AppError> {
    roles::user_holds(state(ctx), viewer.user_id, permission, hints(ctx)).await
}

/// Counts one call of an auth mutation against the caller's IP.
///
/// # Errors
/// `RATE_LIMITED` with the seconds to wait.
pub async fn rate_limit(ctx: &Context<'_>, operation: &str) -> Result<(), AppError> {
    let meta = meta(ctx);
    let client = match (&meta.ip, &meta.forwarded_as) {
        (Some(ip), _) => RateLimiter::client_key(*ip),
        (None, Some(name)) => format!("forwarded:{name}"),
        (None, None) => "unknown".to_owned(),
    };
    state(ctx)
        .limiter
        .check(operation, &client)
        .await
        .map_err(|wait| AppError::RateLimited {
            retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        })
}

//! The audit log as GraphQL: events and their keyset-paginated connection.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use uuid::Uuid;

use super::context;
use super::guards::AUDIT_READ;
use super::loaders::UserLoader;
use super::query::parse_id;
use super::scalars::Timestamp;
use super::types::User;
use crate::domain::audit::{self, Cursor};
use crate::error::AppError;

/// `first` of a list: default 20, at most 100.
///
/// # Errors
/// `BAD_USER_INPUT` (`first`) outside 0..=100.
pub fn page_size(first: Option<i32>) -> Result<u64, AppError> {
    match first {
        None => Ok(20),
        Some(n) if (0..=100).contains(&n) => Ok(u64::try_from(n).unwrap_or(0)),
        Some(_) => Err(AppError::bad_input(
            "first",
            "first must be between 0 and 100",
        )),
    }
}

/// Relay page information.
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[Object]
impl PageInfo {
    async fn has_next_page(&self) -> bool {
        self.has_next_page
    }
    async fn has_previous_page(&self) -> bool {
        self.has_previous_page
    }
    async fn start_cursor(&self) -> Option<&str> {
        self.start_cursor.as_deref()
    }
    async fn end_cursor(&self) -> Option<&str> {
        self.end_cursor.as_deref()
    }
}

/// A security-relevant action, recorded with the change it describes.
pub struct AuditEvent(pub entity::audit_event::Model);

impl AuditEvent {
    /// A user named by an event, when the caller may see them: themself, or
    /// with `users:read`; null once deleted.
    async fn named_user(&self, ctx: &Context<'_>, id: Option<Uuid>) -> Result<Option<User>> {
        let Some(id) = id else { return Ok(None) };
        let viewer = context::viewer(ctx)?;
        if viewer.user_id != id
            && !context::has_permission(ctx, viewer, super::guards::USERS_READ.0).await?
        {
            return Err(AppError::Forbidden("This needs the users:read permission".into()).into());
        }
        Ok(ctx
            .data_unchecked::<DataLoader<UserLoader>>()
            .load_one(id)
            .await?
            .map(User::batched))
    }
}

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// One of the actions listed in docs/api.md (e.g. `LOGIN_SUCCEEDED`).
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// Who acted: the signed-in user, an admin, or the user whose
    /// credentials were presented; null for an anonymous failure.
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|id| ID(id.to_string()))
    }
    /// The actor, while the account exists (yourself, or with `users:read`).
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        self.named_user(ctx, self.0.actor_id).await
    }
    /// The account acted on.
    async fn target_user_id(&self) -> Option<ID> {
        self.0.target_user_id.map(|id| ID(id.to_string()))
    }
    /// The account acted on, while it exists (yourself, or with `users:read`).
    async fn target_user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        self.named_user(ctx, self.0.target_user_id).await
    }
    async fn ip_address(&self) -> Option<&str> {
        self.0.ip_address.as_deref()
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
    /// Details of the action; never a password, token or hash.
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
}

pub struct AuditEventEdge(pub entity::audit_event::Model);

#[Object]
impl AuditEventEdge {
    async fn cursor(&self) -> String {
        Cursor::of(&self.0).encode()
    }
    async fn node(&self) -> AuditEvent {
        AuditEvent(self.0.clone())
    }
}

/// A page of audit events, newest first.
pub struct AuditEventConnection {
    pub page: audit::Page,
    pub after: bool,
    /// Which events (for `totalCount`).
    pub filter: audit::Filter,
}

#[Object]
impl AuditEventConnection {
    async fn edges(&self) -> Vec<AuditEventEdge> {
        self.page
            .events
            .iter()
            .cloned()
            .map(AuditEventEdge)
            .collect()
    }
    async fn nodes(&self) -> Vec<AuditEvent> {
        self.page.events.iter().cloned().map(AuditEvent).collect()
    }
    async fn page_info(&self) -> PageInfo {
        let cursor = |e: Option<&entity::audit_event::Model>| e.map(|e| Cursor::of(e).encode());
        PageInfo {
            has_next_page: self.page.has_next,
            has_previous_page: self.after,
            start_cursor: cursor(self.page.events.first()),
            end_cursor: cursor(self.page.events.last()),
        }
    }
    /// Every event of the list (computed only when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let n = audit::count(context::state(ctx), &self.filter).await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// Conditions events must all meet.
#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// One action, e.g. `LOGIN_FAILED`.
    pub action: Option<String>,
    pub actor_id: Option<ID>,
    pub target_user_id: Option<ID>,
    /// Only events after this moment.
    pub after: Option<Timestamp>,
    /// Only events before this moment.
    pub before: Option<Timestamp>,
}

impl AuditEventFilter {
    pub(crate) fn into_domain(self) -> Result<audit::Filter, AppError> {
        if self
            .action
            .as_ref()
            .is_some_and(|a| a.len() > 64 || a.contains('\0'))
        {
            return Err(AppError::bad_input("action", "Not an audit action"));
        }
        Ok(audit::Filter {
            involving: None,
            action: self.action,
            actor_id: self
                .actor_id
                .as_ref()
                .map(|id| parse_id(id, "actorId"))
                .transpose()?,
            target_user_id: self
                .target_user_id
                .as_ref()
                .map(|id| parse_id(id, "targetUserId"))
                .transpose()?,
            after: self.after.map(|t| t.0),
            before: self.before.map(|t| t.0),
        })
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Every event, newest first, filtered. Needs `audit:read`.
    #[graphql(guard = "AUDIT_READ")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditEventFilter>,
    ) -> Result<AuditEventConnection> {
        let first = page_size(first)?;
        let cursor = after.as_deref().map(Cursor::decode).transpose()?;
        let filter = filter.unwrap_or_default().into_domain()?;
        let page = audit::list(context::state(ctx), &filter, first, cursor).await?;
        Ok(AuditEventConnection {
            page,
            after: cursor.is_some(),
            filter,
        })
    }

    /// Events whose actor or target is the caller, newest first.
    async fn my_audit_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditEventConnection> {
        let viewer = context::viewer(ctx)?;
        let first = page_size(first)?;
        let cursor = after.as_deref().map(Cursor::decode).transpose()?;
        let filter = audit::Filter {
            involving: Some(viewer.user_id),
            ..audit::Filter::default()
        };
        let page = audit::list(context::state(ctx), &filter, first, cursor).await?;
        Ok(AuditEventConnection {
            page,
            after: cursor.is_some(),
            filter,
        })
    }
}

//! The users directory (`users`, `userByEmail`) for callers with
//! `users:read`.

use async_graphql::{Context, Enum, InputObject, Object, Result};

use super::audit::{PageInfo, page_size};
use super::context;
use super::guards::USERS_READ;
use super::scalars::Timestamp;
use super::types::{User, UserStatusGql};
use crate::domain::directory::{self, Cursor, Direction, Filter, OrderField, PageRequest};
use crate::domain::{roles, sessions};
use crate::error::AppError;

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OrderDirection {
    Asc,
    Desc,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserOrderField {
    CreatedAt,
    Email,
    DisplayName,
    LastLoginAt,
}

impl From<UserOrderField> for OrderField {
    fn from(f: UserOrderField) -> Self {
        match f {
            UserOrderField::CreatedAt => Self::CreatedAt,
            UserOrderField::Email => Self::Email,
            UserOrderField::DisplayName => Self::DisplayName,
            UserOrderField::LastLoginAt => Self::LastLoginAt,
        }
    }
}

/// How to order users; default `CREATED_AT DESC`. The id breaks ties; null
/// values come last ascending and first descending.
#[derive(InputObject)]
pub struct UserOrder {
    pub field: UserOrderField,
    pub direction: OrderDirection,
}

/// Conditions users must all meet.
#[derive(InputObject, Default)]
pub struct UserFilter {
    /// Case-insensitive substring of the email or the display name (`%` and
    /// `_` are matched literally).
    pub search: Option<String>,
    /// Holders of this role.
    pub role: Option<String>,
    pub status: Option<UserStatusGql>,
    pub email_verified: Option<bool>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
}

impl UserFilter {
    fn into_domain(self) -> Result<Filter, AppError> {
        if self
            .search
            .as_ref()
            .is_some_and(|s| s.chars().count() > directory::MAX_SEARCH || s.contains('\0'))
        {
            return Err(AppError::bad_input(
                "search",
                "search is at most 256 characters, without NUL",
            ));
        }
        if self
            .role
            .as_ref()
            .is_some_and(|r| r.len() > 64 || r.contains('\0'))
        {
            return Err(AppError::bad_input("role", "Not a role name"));
        }
        Ok(Filter {
            search: self.search,
            role: self.role,
            status: self.status.map(Into::into),
            email_verified: self.email_verified,
            created_after: self.created_after.map(|t| t.0),
            created_before: self.created_before.map(|t| t.0),
        })
    }
}

pub struct UserEdge {
    cursor: String,
    node: User,
}

#[Object]
impl UserEdge {
    async fn cursor(&self) -> &str {
        &self.cursor
    }
    async fn node(&self) -> User {
        self.node.clone()
    }
}

/// A page of users. Cursors are encoded only for the fields that show
/// them (`edges`, `pageInfo`).
pub struct UserConnection {
    nodes: Vec<User>,
    order: OrderField,
    page_info: (bool, bool),
    filter: Filter,
}

impl UserConnection {
    fn cursor(&self, node: &User) -> String {
        Cursor::of(self.order, &node.view).encode()
    }
}

#[Object]
impl UserConnection {
    async fn edges(&self) -> Vec<UserEdge> {
        self.nodes
            .iter()
            .map(|node| UserEdge {
                cursor: self.cursor(node),
                node: node.clone(),
            })
            .collect()
    }
    async fn nodes(&self) -> &[User] {
        &self.nodes
    }
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.page_info.0,
            has_previous_page: self.page_info.1,
            start_cursor: self.nodes.first().map(|n| self.cursor(n)),
            end_cursor: self.nodes.last().map(|n| self.cursor(n)),
        }
    }
    /// Every user the filter matches (counted only when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let n = directory::count(context::state(ctx), &self.filter).await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// A user by email, or null. Needs `users:read`.
    #[graphql(guard = "USERS_READ")]
    async fn user_by_email(&self, ctx: &Context<'_>, email: String) -> Result<Option<User>> {
        Ok(directory::by_email(context::state(ctx), &email)
            .await?
            .map(User::new))
    }

    /// Users, filtered and ordered, a page at a time (`first`/`after`
    /// forward, `last`/`before` backward; at most 100). Needs `users:read`.
    #[graphql(guard = "USERS_READ")]
    #[allow(clippy::too_many_arguments)]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<UserOrder>,
    ) -> Result<UserConnection> {
        let (field, direction) = order_by.map_or((OrderField::CreatedAt, Direction::Desc), |o| {
            (
                o.field.into(),
                match o.direction {
                    OrderDirection::Asc => Direction::Asc,
                    OrderDirection::Desc => Direction::Desc,
                },
            )
        });
        if first.is_some() && last.is_some() {
            return Err(AppError::bad_input("last", "Give first or last, not both").into());
        }
        let backward = last.is_some() || (before.is_some() && first.is_none());
        // One direction per request: a page between two cursors is not
        // offered (each bound would have to be applied to both ends).
        if backward && after.is_some() {
            return Err(AppError::bad_input(
                "after",
                "Page backward with last/before, or forward with first/after",
            )
            .into());
        }
        if !backward && before.is_some() {
            return Err(AppError::bad_input(
                "before",
                "Page backward with last/before, or forward with first/after",
            )
            .into());
        }
        let size = if backward {
            page_size(last)
                .map_err(|_| AppError::bad_input("last", "last must be between 0 and 100"))?
        } else {
            page_size(first)?
        };
        let after = after
            .as_deref()
            .map(|c| Cursor::decode(c, field, "after"))
            .transpose()?;
        let before = before
            .as_deref()
            .map(|c| Cursor::decode(c, field, "before"))
            .transpose()?;
        let filter = filter.unwrap_or_default().into_domain()?;
        let request = PageRequest {
            field,
            direction,
            size,
            after,
            before,
            backward,
        };
        let app = context::state(ctx);
        let page = directory::page(app, &filter, &request).await?;
        // What the selection asks of every row is loaded here, one batch per
        // relation, however long the page: its cost does not grow with it.
        let ids: Vec<_> = page.users.iter().map(|u| u.id).collect();
        let look = ctx.look_ahead();
        let wants = |name: &str| {
            look.field("nodes").field(name).exists()
                || look.field("edges").field("node").field(name).exists()
        };
        let mut roles = if wants("roles") || wants("permissions") {
            Some(roles::for_users(app, &ids, context::hints(ctx)).await?)
        } else {
            None
        };
        let mut sessions = if wants("sessions") {
            Some(sessions::list_live_many(app, &ids).await?)
        } else {
            None
        };
        Ok(UserConnection {
            nodes: page
                .users
                .into_iter()
                .map(|view| {
                    let mut user = User::new(view);
                    user.roles = roles
                        .as_mut()
                        .map(|r| r.remove(&user.view.id).unwrap_or_default());
                    user.sessions = sessions
                        .as_mut()
                        .map(|s| s.remove(&user.view.id).unwrap_or_default());
                    user
                })
                .collect(),
            order: field,
            page_info: (page.has_next, page.has_previous),
            filter,
        })
    }
}

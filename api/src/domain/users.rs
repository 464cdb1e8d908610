//! Reading users, through the cache.
//!
//! [`UserView`] is the cached, hash-free form of a user row. Reads by id go
//! through the cache (`user:<id>`, MGET for batches), versioned by
//! `users.version`; every write to a user row (or to its role links) bumps
//! that version and commits with [`stale`]'s keys invalidated.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::user::{self, UserStatus};
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QuerySelect as _};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::invalidations::Stale;
use crate::error::AppResult;
use crate::infra::cache::{Family, Hints};
use crate::state::App;

/// Users by id. The TTL is a backstop: writes invalidate.
pub(crate) const USERS: Family = Family {
    name: "user",
    shape: 1,
    ttl: Duration::from_secs(300),
};

/// A user as the API shows it: no password hash, no failure counter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub status: UserStatus,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<user::Model> for UserView {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            email_verified: m.email_verified,
            display_name: m.display_name,
            status: m.status,
            locked_until: m.locked_until,
            created_at: m.created_at,
            updated_at: m.updated_at,
            last_login_at: m.last_login_at,
        }
    }
}

/// The columns a [`UserView`] is read from, in the order of [`ViewRow`]:
/// no password hash is read where none is shown.
pub(crate) const VIEW_COLUMNS: [user::Column; 10] = [
    user::Column::Id,
    user::Column::Email,
    user::Column::EmailVerified,
    user::Column::DisplayName,
    user::Column::Status,
    user::Column::LockedUntil,
    user::Column::CreatedAt,
    user::Column::UpdatedAt,
    user::Column::LastLoginAt,
    user::Column::Version,
];

/// A row of [`VIEW_COLUMNS`], read by position (sea-orm reads a model by
/// column name, building and looking up each name for every row: on a
/// page of 50 that was a tenth of the server's time).
pub(crate) type ViewRow = (
    Uuid,
    String,
    bool,
    Option<String>,
    UserStatus,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    i64,
);

impl UserView {
    /// The view of a row of [`VIEW_COLUMNS`], and the row's version.
    pub(crate) fn from_row(row: ViewRow) -> (Self, i64) {
        let view = Self {
            id: row.0,
            email: row.1,
            email_verified: row.2,
            display_name: row.3,
            status: row.4,
            locked_until: row.5,
            created_at: row.6,
            updated_at: row.7,
            last_login_at: row.8,
        };
        (view, row.9)
    }

    /// The lockout still in force, if any.
    pub fn lock_in_force(&self) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|until| *until > Utc::now())
    }
}

/// The cached keys a write to user `id` at `version` makes stale: the user
/// and its role links (both are versioned by the user row).
pub fn stale(id: Uuid, version: i64) -> Vec<Stale> {
    let version = u64::try_from(version).unwrap_or(0);
    vec![
        (USERS.key(id), version),
        (super::roles::user_roles_key(id), version),
    ]
}

/// `version + 1`: every write to a user row makes its cached copies stale.
pub fn bumped() -> sea_orm::sea_query::SimpleExpr {
    sea_orm::sea_query::ExprTrait::add(sea_orm::sea_query::Expr::col(user::Column::Version), 1)
}

/// Takes user `id`'s row lock for the rest of the transaction, with a write
/// that changes nothing (not even the version): a plain write, so it is also
/// the statement that makes a SQLite transaction the writer at once.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn lock<C: sea_orm::ConnectionTrait>(conn: &C, id: Uuid) -> crate::error::AppResult<()> {
    user::Entity::update_many()
        .col_expr(
            user::Column::Version,
            sea_orm::sea_query::Expr::col(user::Column::Version),
        )
        .filter(user::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Loads users by id: cache first (one MGET), then one query on the primary
/// for the misses.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn load_many(
    app: &App,
    ids: &[Uuid],
    hints: Hints<'_>,
) -> AppResult<HashMap<Uuid, UserView>> {
    app.cache
        .read_through_hinted(&USERS, ids, hints, |missing| async move {
            let rows: Vec<ViewRow> = user::Entity::find()
                .select_only()
                .columns(VIEW_COLUMNS)
                .filter(user::Column::Id.is_in(missing))
                .into_tuple()
                .all(&app.db.fresh)
                .await?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let (view, version) = UserView::from_row(row);
                    (view.id, u64::try_from(version).unwrap_or(0), view)
                })
                .collect())
        })
        .await
}

/// One user by id.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn load(app: &App, id: Uuid, hints: Hints<'_>) -> AppResult<Option<UserView>> {
    Ok(load_many(app, &[id], hints).await?.remove(&id))
}

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
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
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

impl UserView {
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
            let rows = user::Entity::find()
                .filter(user::Column::Id.is_in(missing))
                .all(&app.db.fresh)
                .await?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let version = u64::try_from(row.version).unwrap_or(0);
                    (row.id, version, UserView::from(row))
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

//! Reading users, through the cache.
//!
//! [`UserView`] is the cached, hash-free form of a user row. Reads by id go
//! through the cache (`user:<id>`, MGET for batches); every write to a user
//! row calls [`invalidate`] after its commit.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::user::{self, UserStatus};
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppResult;
use crate::state::App;

/// How long a user stays cached without a write (a backstop: writes invalidate).
const USER_TTL: Duration = Duration::from_secs(300);

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

fn key(id: Uuid) -> String {
    format!("user:{id}")
}

/// Loads users by id: cache first (one MGET), then one query for the misses.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn load_many(app: &App, ids: &[Uuid]) -> AppResult<HashMap<Uuid, UserView>> {
    let keys: Vec<String> = ids.iter().map(|id| key(*id)).collect();
    let cached = app.cache.get_many::<UserView>(&keys).await;
    let mut found = HashMap::with_capacity(ids.len());
    let mut missing = Vec::new();
    for (id, hit) in ids.iter().zip(cached) {
        match hit {
            Some(user) => {
                found.insert(*id, user);
            }
            None => missing.push(*id),
        }
    }
    if !missing.is_empty() {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(missing))
            .all(&app.db.read)
            .await?;
        for row in rows {
            let view = UserView::from(row);
            app.cache.fill(&key(view.id), &view, USER_TTL).await;
            found.insert(view.id, view);
        }
    }
    Ok(found)
}

/// One user by id.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn load(app: &App, id: Uuid) -> AppResult<Option<UserView>> {
    Ok(load_many(app, &[id]).await?.remove(&id))
}

/// Overwrites cached users with their committed state (after a write, before
/// the response). Overwriting rather than deleting matters: a reader that
/// fetched the old row before the commit fills only absent keys, so it can
/// never put the old row back.
pub async fn store(app: &App, views: &[UserView]) {
    for view in views {
        app.cache.put(&key(view.id), view, USER_TTL).await;
    }
}

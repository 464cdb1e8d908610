//! DataLoaders: nested fields of a list resolve in one batch per level, not
//! one query per row. They live for one request only (never across requests),
//! and sit on top of the shared cache (MGET), so a warm page costs no SQL.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::roles::{self, RoleView};
use crate::domain::users::{self, UserView};
use crate::infra::cache::Prefetch;
use crate::state::AppState;

/// The roles of each user, sorted by name; with the request's hints (the
/// role catalogue read beside the session).
pub struct RolesByUserLoader(pub AppState, pub Option<Arc<Prefetch>>);

impl async_graphql::dataloader::Loader<Uuid> for RolesByUserLoader {
    type Value = Vec<RoleView>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<RoleView>>, Self::Error> {
        Ok(roles::for_users(&self.0, keys, self.1.as_deref()).await?)
    }
}

/// Users by id; with the request's hints.
pub struct UserLoader(pub AppState, pub Option<Arc<Prefetch>>);

impl async_graphql::dataloader::Loader<Uuid> for UserLoader {
    type Value = UserView;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, UserView>, Self::Error> {
        Ok(users::load_many(&self.0, keys, self.1.as_deref()).await?)
    }
}

/// The live sessions of each user, newest first.
pub struct SessionsByUserLoader(pub AppState);

impl async_graphql::dataloader::Loader<Uuid> for SessionsByUserLoader {
    type Value = Vec<crate::domain::sessions::SessionView>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<crate::domain::sessions::SessionView>>, Self::Error> {
        Ok(crate::domain::sessions::list_live_many(&self.0, keys).await?)
    }
}

//! HTTP routes besides GraphQL resolvers: the GraphQL transport itself,
//! probes, metrics, JWKS, the GraphiQL assets, and middleware.

pub mod graphiql;
pub mod graphql;
pub mod health;
pub mod middleware;
pub mod observability;
pub mod ws;

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::graphql::AppSchema;
use crate::graphql::guard::Guard;
use crate::state::AppState;

/// The router's state.
#[derive(Clone)]
pub struct ServerState(pub Arc<Server>);

pub struct Server {
    pub app: AppState,
    pub schema: AppSchema,
    /// Every request passes it on its way to the schema.
    pub guard: Guard,
    pub sdl: String,
    pub metrics: PrometheusHandle,
    /// Open WebSocket connections left before new ones are refused.
    pub ws_slots: Arc<tokio::sync::Semaphore>,
}

impl std::ops::Deref for ServerState {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

//! usergraph: user management over GraphQL.
//!
//! A tour of the crate, from the outside in:

/// Wiring: state, router, listener, graceful shutdown.
pub mod app;
/// Credentials: argon2id, JWTs, opaque tokens.
pub mod auth;
/// Command line: `serve`, `migrate`, `export-schema`, `create-admin`, `healthcheck`.
pub mod cli;
/// Typed configuration from the environment, validated before the port opens.
pub mod config;
/// Database pools and migrations.
pub mod db;
/// Business rules over sea-orm: accounts, sessions, users, roles, audit.
pub mod domain;
/// The one error type and its mapping to GraphQL codes and HTTP statuses.
pub mod error;
/// The GraphQL schema: resolvers, types, loaders, limits.
pub mod graphql;
/// HTTP: the GraphQL transport, probes, metrics, JWKS, GraphiQL, middleware.
pub mod http;
/// Adapters: the cache (in-process or Redis).
pub mod infra;
/// Shared application state.
pub mod state;
/// Logs and metrics set-up.
pub mod telemetry;

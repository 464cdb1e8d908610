//! The one-field async-graphql server with one Redis round trip per
//! request: `{ hello }` answers the value of one key, read with GET through
//! a `ConnectionManager` (as usergraph reads its cache). It is what any
//! query costs that must ask Redis once, as `me` must for its session
//! (a revoked session is refused on every replica at once), before it does
//! anything of its own.
//!
//!     gql-redis-get [ADDR]    # or BIND_ADDR; default 127.0.0.1:8093
//!
//! `REDIS_URL` (default `redis://127.0.0.1:6379`, loopback only) and
//! `CEILING_REDIS_KEY` (default `ugbench:ceiling:hello`): the key is set to
//! `world` at start, with a one-hour expiry.

use std::process::ExitCode;

use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Result, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

struct Key(String);

struct Query;

#[Object]
impl Query {
    /// The value of the key, read from Redis for every request.
    async fn hello(&self, ctx: &Context<'_>) -> Result<String> {
        let mut conn = ctx.data_unchecked::<ConnectionManager>().clone();
        let key = &ctx.data_unchecked::<Key>().0;
        let value: Option<String> = conn.get(key).await?;
        value.ok_or_else(|| "the key is gone".into())
    }
}

type OneField = Schema<Query, EmptyMutation, EmptySubscription>;

async fn graphql(State(schema): State<OneField>, request: GraphQLRequest) -> GraphQLResponse {
    schema.execute(request.into_inner()).await.into()
}

/// The connection, with the key set; a message when Redis is not usable.
async fn connect(url: &str, key: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL {url:?}: {e}"))?;
    let host = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, _) => host.clone(),
        other => {
            return Err(format!(
                "REDIS_URL {url:?}: {other} is not a plain TCP address"
            ));
        }
    };
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "[::1]") {
        return Err(format!(
            "REDIS_URL {url:?}: only a loopback Redis is accepted"
        ));
    }
    let mut conn = ConnectionManager::new(client)
        .await
        .map_err(|e| format!("Redis at {url}: {e}"))?;
    let () = conn
        .set_ex(key, "world", 3600)
        .await
        .map_err(|e| format!("Redis at {url}: SET {key}: {e}"))?;
    Ok(conn)
}

fn main() -> ExitCode {
    let env = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let url = env("REDIS_URL", "redis://127.0.0.1:6379");
    let key = env("CEILING_REDIS_KEY", "ugbench:ceiling:hello");
    usergraph_bench_ceiling::serve_with("gql-redis-get", "127.0.0.1:8093", async move {
        let conn = connect(&url, &key).await?;
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .data(conn)
            .data(Key(key))
            .finish();
        Ok(Router::new()
            .route("/graphql", post(graphql))
            .with_state(schema))
    })
}

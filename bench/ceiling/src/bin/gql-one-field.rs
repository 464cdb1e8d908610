//! The ceiling of async-graphql over axum: a schema with one query field
//! that returns a constant string, at POST /graphql (`{"query":"{ hello }"}`).
//!
//!     gql-one-field [ADDR]    # or BIND_ADDR; default 127.0.0.1:8092

use std::process::ExitCode;

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::routing::post;

struct Query;

#[Object]
impl Query {
    /// The one field.
    async fn hello(&self) -> &'static str {
        "world"
    }
}

type OneField = Schema<Query, EmptyMutation, EmptySubscription>;

async fn graphql(State(schema): State<OneField>, request: GraphQLRequest) -> GraphQLResponse {
    schema.execute(request.into_inner()).await.into()
}

fn main() -> ExitCode {
    let schema = Schema::build(Query, EmptyMutation, EmptySubscription).finish();
    let app = Router::new()
        .route("/graphql", post(graphql))
        .with_state(schema);
    usergraph_bench_ceiling::serve("gql-one-field", "127.0.0.1:8092", app)
}

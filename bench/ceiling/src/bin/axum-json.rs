//! The ceiling of a bare axum endpoint: any method on any path answers a
//! tiny JSON body, serialized per request.
//!
//!     axum-json [ADDR]    # or BIND_ADDR; default 127.0.0.1:8091

use std::process::ExitCode;

use axum::{Json, Router};
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

async fn hello() -> Json<Message> {
    Json(Message {
        message: "Hello, World!",
    })
}

fn main() -> ExitCode {
    let app = Router::new().fallback(hello);
    usergraph_bench_ceiling::serve("axum-json", "127.0.0.1:8091", app)
}

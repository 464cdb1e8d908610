//! `/metrics`, `/.well-known/jwks.json` and `/schema.graphql`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ServerState;

pub async fn metrics(State(server): State<ServerState>) -> impl IntoResponse {
    let app = &server.app;
    app.db.record_pool_metrics();
    crate::telemetry::collect_process_metrics();
    // The outbox gauges are the mail worker's (no query per scrape).
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        server.metrics.render(),
    )
}

pub async fn jwks(State(server): State<ServerState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(server.app.jwt.jwks().clone()),
    )
}

pub async fn schema(State(server): State<ServerState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        server.sdl.clone(),
    )
}

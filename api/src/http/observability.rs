//! `/metrics`, `/.well-known/jwks.json` and `/schema.graphql`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use entity::mail_outbox;
use sea_orm::{ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _};

use super::ServerState;

pub async fn metrics(State(server): State<ServerState>) -> impl IntoResponse {
    let app = &server.app;
    app.db.record_pool_metrics();
    crate::telemetry::collect_process_metrics();
    let pending = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::SentAt.is_null())
        .count(&app.db.read);
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), pending).await {
        metrics::gauge!("usergraph_mail_outbox_pending").set(n as f64);
    }
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

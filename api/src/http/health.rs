//! Kubernetes probes. `/health` is liveness and never touches a dependency;
//! `/ready` asks the database and the cache, each within 1 s. Without the
//! database nothing works: 503. Without Redis everything still works,
//! correctly and a little slower (the database is the truth): 200 with
//! `"status":"degraded"`, so a Redis failover does not pull every replica
//! out of the load balancer at once. The same for a read replica
//! (`DATABASE_READ_URL`) that cannot answer: only the uncached queries that
//! use it fail. While shutting down: 503.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ServerState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn check(name: &'static str, fut: impl Future<Output = anyhow::Result<()>>) -> bool {
    let ok = match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(
                dependency = name,
                error = format!("{e:#}"),
                "readiness check failed"
            );
            false
        }
        Err(_) => {
            tracing::warn!(dependency = name, "readiness check timed out");
            false
        }
    };
    metrics::gauge!("usergraph_dependency_up", "dependency" => name).set(if ok {
        1.0
    } else {
        0.0
    });
    ok
}

pub async fn ready(State(server): State<ServerState>) -> Response {
    let app = &server.app;
    let replica = async {
        if app.db.has_replica() {
            Some(check("replica", app.db.ping_replica()).await)
        } else {
            None
        }
    };
    let (database, cache, replica) = tokio::join!(
        check("database", app.db.ping()),
        check("cache", app.cache.ping()),
        replica
    );
    let word = |ok: bool| if ok { "ok" } else { "error" };
    let draining = app.is_draining();
    let ready = database && !draining;
    let status = match (ready, cache && replica != Some(false)) {
        (false, _) => "unavailable",
        (true, true) => "ready",
        (true, false) => "degraded",
    };
    let mut checks = json!({ "database": word(database), "cache": word(cache) });
    if let Some(ok) = replica {
        checks["replica"] = json!(word(ok));
    }
    let body = json!({ "status": status, "checks": checks, "draining": draining });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

//! `GET /graphql/ws`: subscriptions over the `graphql-transport-ws`
//! protocol (the `graphql-ws` npm client).
//!
//! The access token comes in the `connection_init` payload,
//! `{"Authorization": "Bearer …"}`. The connection is acknowledged either
//! way: a missing or bad token makes each subscription answer
//! `UNAUTHENTICATED`, with the code a client reads, instead of a bare close.
//! Only subscriptions run here (see `graphql::guard::Subscriptions`).
//!
//! Bounds: [`MAX_CONNECTIONS`] per process (then 503), frames and messages
//! of at most `GRAPHQL_MAX_BODY_BYTES`; a connection that sends no
//! `connection_init` within [`INIT_TIMEOUT`], or holds no subscription for
//! [`IDLE_TIMEOUT`], is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::ServerState;
use super::graphql::{authenticate, context_data, error_body, request_meta};
use crate::graphql::context::Auth;
use crate::graphql::guard::Subscriptions;
use crate::graphql::subscription::LiveCount;

const PROTOCOL: &str = "graphql-transport-ws";

/// The protocol value async-graphql-axum wants (it is only made by its
/// extractor, which would pick the legacy `graphql-ws` when a client offers
/// both).
async fn transport_ws() -> GraphQLProtocol {
    use axum::extract::FromRequestParts as _;
    let (mut parts, ()) = axum::http::Request::builder()
        .header(header::SEC_WEBSOCKET_PROTOCOL, PROTOCOL)
        .body(())
        .unwrap_or_default()
        .into_parts();
    GraphQLProtocol::from_request_parts(&mut parts, &())
        .await
        .unwrap_or_else(|_| unreachable!("graphql-transport-ws is a known protocol"))
}

/// How long a new connection may take to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open without a live subscription.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// WebSocket connections one process holds at once.
pub const MAX_CONNECTIONS: usize = 10_000;

/// `GET /graphql/ws`.
pub async fn upgrade(
    State(server): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let wants = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !wants.split(',').any(|p| p.trim() == PROTOCOL) {
        return error_body(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "Open a WebSocket with Sec-WebSocket-Protocol: graphql-transport-ws",
        );
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return error_body(
                StatusCode::UPGRADE_REQUIRED,
                "BAD_USER_INPUT",
                &format!(
                    "/graphql/ws takes a WebSocket (graphql-transport-ws): {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let Ok(slot) = Arc::clone(&server.ws_slots).try_acquire_owned() else {
        let mut refused = error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "RATE_LIMITED",
            "This server holds as many WebSocket connections as it can; retry in a few seconds",
        );
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return refused;
    };
    let meta = request_meta(&server, peer, &headers);
    let request_id: Arc<str> = headers
        .get(super::middleware::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .into();
    let max_message = server.app.config.graphql.max_body_bytes;
    upgrade
        .protocols([PROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let initialised = Arc::new(AtomicBool::new(false));
            let seen = Arc::clone(&initialised);
            let live = LiveCount::default();
            let counted = live.clone();
            let app = server.app.clone();
            let executor = Subscriptions {
                schema: server.schema.clone(),
                guard: server.guard.clone(),
                request_id,
            };
            let serve = GraphQLWebSocket::new(socket, executor, transport_ws().await)
                .on_connection_init(move |payload| async move {
                    seen.store(true, Ordering::SeqCst);
                    let auth = authenticate_init(&app, &payload).await;
                    let mut data = context_data(&app, auth, meta, None);
                    data.insert(counted);
                    Ok::<Data, async_graphql::Error>(data)
                })
                .serve();
            // Dropping the connection closes it.
            let watchdog = async {
                let mut idle_since = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if live.0.load(Ordering::SeqCst) > 0 {
                        idle_since = tokio::time::Instant::now();
                    } else if !initialised.load(Ordering::SeqCst) {
                        if idle_since.elapsed() >= INIT_TIMEOUT {
                            return "no connection_init";
                        }
                    } else if idle_since.elapsed() >= IDLE_TIMEOUT {
                        return "no subscription";
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                why = watchdog => tracing::debug!(why, "closed an idle WebSocket"),
            }
        })
}

/// Reads `Authorization` (any case) from the `connection_init` payload.
async fn authenticate_init(app: &crate::state::AppState, payload: &serde_json::Value) -> Auth {
    let value = payload.as_object().and_then(|fields| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v)
    });
    let authorization = match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Auth::Invalid("connection_init: Authorization must be a string".into());
        }
    };
    authenticate(app, authorization).await
}

//! GraphQL over HTTP.
//!
//! POST takes `application/json` only (a form or text body is 415, so no
//! cross-site form can reach a mutation); GET serves GraphiQL to browsers and
//! runs queries (never mutations) from `?query=`. Each request gets the
//! caller's identity, its network facts and fresh DataLoaders.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{BatchRequest, BatchResponse, Data, Request as GqlRequest};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ServerState;
use super::middleware::{Client, client};
use crate::domain::{RequestMeta, sessions};
use crate::graphql::context::{Auth, Viewer};
use crate::graphql::guard::{Tally, Transport, coded_error};
use crate::graphql::loaders::{RolesByUserLoader, SessionsByUserLoader, UserLoader};
use crate::infra::cache::Prefetch;
use crate::state::AppState;

pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json")
}

/// Who is asking: a bearer token is verified and its session checked.
pub async fn authenticate(app: &AppState, authorization: Option<&str>) -> Auth {
    authenticate_ahead(app, authorization).await.0
}

/// [`authenticate`], with what the caller's request will read next, read
/// in the same round trip as the session (see [`Prefetch`]).
pub async fn authenticate_ahead(
    app: &AppState,
    authorization: Option<&str>,
) -> (Auth, Option<Prefetch>) {
    let Some(value) = authorization else {
        return (Auth::Anonymous, None);
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return (
            Auth::Invalid("Authorization must be: Bearer <accessToken>".into()),
            None,
        );
    };
    let claims = match app.jwt.verify(token) {
        Ok(claims) => claims,
        Err(e) => return (Auth::Invalid(e.message()), None),
    };
    let ahead = sessions::prefetch_viewer(app, claims.sub, claims.sid).await;
    let auth = match sessions::check_live(app, claims.sub, claims.sid, Some(&ahead)).await {
        Ok(()) => Auth::User(Viewer {
            user_id: claims.sub,
            session_id: claims.sid,
            token_expires_at: claims.exp,
        }),
        Err(crate::error::AppError::Internal(e)) => {
            tracing::error!(error = format!("{e:#}"), "session check failed");
            Auth::Unavailable
        }
        Err(e) => Auth::Invalid(e.message()),
    };
    (auth, Some(ahead))
}

/// What resolvers find in the context: the state, the caller, the network
/// facts and fresh DataLoaders. Per operation over HTTP, per
/// connection over WebSocket (the loaders cache nothing, so nothing read
/// outlives the batch it was loaded for).
///
/// `hints` only for a single request over HTTP (see [`Prefetch`]).
pub fn context_data(
    app: &AppState,
    auth: Auth,
    meta: RequestMeta,
    hints: Option<Arc<Prefetch>>,
) -> Data {
    let mut data = Data::default();
    data.insert(app.clone());
    data.insert(DataLoader::new(
        RolesByUserLoader(app.clone(), hints.clone()),
        tokio::spawn,
    ));
    data.insert(DataLoader::new(
        UserLoader(app.clone(), hints.clone()),
        tokio::spawn,
    ));
    if let Some(hints) = hints {
        data.insert(hints);
    }
    data.insert(auth);
    data.insert(meta);
    data.insert(DataLoader::new(
        SessionsByUserLoader(app.clone()),
        tokio::spawn,
    ));
    data
}

pub fn request_meta(server: &ServerState, peer: SocketAddr, headers: &HeaderMap) -> RequestMeta {
    let (ip, forwarded_as) = match client(peer, headers, &server.app.config.trusted_proxies) {
        Client::Ip(ip) => (Some(ip), None),
        Client::Named(name) => (None, Some(name)),
    };
    RequestMeta {
        ip,
        forwarded_as,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

async fn execute(
    server: &ServerState,
    peer: SocketAddr,
    headers: &HeaderMap,
    batch: BatchRequest,
    transport: Transport,
) -> Response {
    let app = &server.app;
    // Timed from here, so a request cut off while it authenticates counts.
    let mut first = Some(Tally::start());
    let (auth, ahead) = authenticate_ahead(
        app,
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .await;
    let meta = request_meta(server, peer, headers);
    let request_id = headers
        .get(super::middleware::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut run = |mut req: GqlRequest, hints: Option<Arc<Prefetch>>| {
        // Nothing else puts data in a request: these are all of it.
        req.data = context_data(app, auth.clone(), meta.clone(), hints.clone());
        let tally = first.take().unwrap_or_else(Tally::start);
        async move {
            server
                .guard
                .execute(
                    &server.schema,
                    req,
                    transport,
                    request_id,
                    hints.as_deref(),
                    tally,
                )
                .await
        }
    };
    let response = match batch {
        BatchRequest::Single(req) => BatchResponse::Single(run(req, ahead.map(Arc::new)).await),
        BatchRequest::Batch(reqs) => {
            let mut out = Vec::with_capacity(reqs.len());
            for req in reqs {
                // Each operation sees the writes of those before it: no hints.
                out.push(run(req, None).await);
            }
            BatchResponse::Batch(out)
        }
    };
    let mut http = axum::Json(&response).into_response();
    http.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    http
}

/// `POST /graphql`.
pub async fn post(
    State(server): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !is_json(&headers) {
        return error_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "Content-Type must be application/json",
        );
    }
    // Over the limit (by Content-Length or while reading): the same JSON
    // error shape as every other refusal, so a GraphQL client can read it.
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let max = server.app.config.graphql.max_body_bytes;
            return error_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                &format!("Request body is larger than the limit of {max} bytes"),
            );
        }
        Err(rejection) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("Request body could not be read: {}", rejection.body_text()),
            );
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("Body is not a GraphQL request: {e}"),
            );
        }
    };
    let empty = match &batch {
        BatchRequest::Single(req) => req.query.trim().is_empty(),
        BatchRequest::Batch(reqs) => reqs.iter().any(|r| r.query.trim().is_empty()),
    };
    if empty {
        return error_body(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "Body is not a GraphQL request: query is missing",
        );
    }
    let max = server.app.config.graphql.max_batch;
    if let BatchRequest::Batch(reqs) = &batch {
        if reqs.len() > max {
            // One refusal per operation, so a batching client can match
            // them; past a few times the limit (no real client), a single
            // one: the answer must not be many times the request.
            let refused = || {
                async_graphql::Response::from_errors(vec![coded_error(
                    format!("A batch may hold at most {max} operations"),
                    "QUERY_TOO_COMPLEX",
                )])
            };
            let n = if reqs.len() <= max.max(10) * 4 {
                reqs.len()
            } else {
                1
            };
            let answers = BatchResponse::Batch((0..n).map(|_| refused()).collect());
            return axum::Json(answers).into_response();
        }
        if reqs.is_empty() {
            return error_body(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "A batch must hold at least one operation",
            );
        }
    }
    execute(&server, peer, &headers, batch, Transport::Post).await
}

#[derive(Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql`: GraphiQL for browsers, else a query from the URL.
pub async fn get(
    State(server): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params: GetParams = match serde_urlencoded_params(raw.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(message) => return error_body(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &message),
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let Some(query) = params.query else {
        if wants_html && server.app.config.graphql.graphiql {
            return super::graphiql::page();
        }
        return error_body(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "Send a query with ?query= or POST JSON",
        );
    };
    let mut req = GqlRequest::new(query);
    if let Some(name) = params.operation_name {
        req = req.operation_name(name);
    }
    for (raw, target) in [(params.variables, 0), (params.extensions, 1)] {
        let Some(raw) = raw else { continue };
        match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(value) if target == 0 => req.variables = async_graphql::Variables::from_json(value),
            Ok(value) => {
                if let Ok(ext) = serde_json::from_value(value) {
                    req.extensions = ext;
                }
            }
            Err(_) => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    "BAD_USER_INPUT",
                    "variables must be JSON",
                );
            }
        }
    }
    execute(
        &server,
        peer,
        &headers,
        BatchRequest::Single(req),
        Transport::Get,
    )
    .await
}

/// Query-string decoding with axum's own extractor logic.
fn serde_urlencoded_params(raw: &str) -> Result<GetParams, String> {
    let uri: axum::http::Uri = format!("/?{raw}")
        .parse()
        .map_err(|_| "Malformed query string".to_owned())?;
    axum::extract::Query::<GetParams>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| e.body_text())
}

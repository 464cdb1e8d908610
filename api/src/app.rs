//! Building and running the service: the one place routes are wired.
//!
//! [`Application::build`] turns a [`Config`] into a bound listener and a
//! router; tests bind port 0 and read [`Application::port`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::config::Config;
use crate::db::Db;
use crate::http::{Server, ServerState, graphiql, graphql, health, middleware, observability, ws};
use crate::infra::cache::Cache;
use crate::infra::events::EventBus;
use crate::infra::mailer::Mailer;
use crate::infra::ratelimit::RateLimiter;
use crate::infra::redis::{RedisBackend, RedisTarget};
use crate::state::{App, AppState};

/// Options that are not configuration: how the process was started.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
    /// Do not connect to the database until first use (and do not migrate).
    pub lazy_database: bool,
}

/// A service ready to run: bound, migrated, wired.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// Builds the shared state (connections, cache, keys) from configuration.
///
/// # Errors
/// When the database cannot be reached or migrated, or Redis's URL is unusable.
pub async fn build_state(config: Config, options: BuildOptions) -> anyhow::Result<AppState> {
    // Before anything records a metric: values set earlier would be lost.
    crate::telemetry::metrics_handle();
    let db = Db::connect(&config, options.lazy_database).await?;
    if config.auto_migrate && !options.lazy_database {
        db.migrate().await?;
    }
    let redis = config
        .redis_url
        .as_ref()
        .map(|url| RedisBackend::connect(url.expose()))
        .transpose()?;
    let cache = match &redis {
        // Tombstones outlast any request that read before the write.
        Some(backend) => Cache::new(
            backend.clone(),
            &config.redis_key_prefix,
            config.request_timeout * 4,
        ),
        None => Cache::memory(&config.redis_key_prefix),
    };
    let limiter = RateLimiter::new(
        config.rate_limit_auth_per_minute,
        redis.map(|backend| (backend, config.redis_key_prefix.clone())),
    );
    let hasher = PasswordHasher::new(config.argon2);
    // Half the request timeout: a shed caller hears it at once and still has
    // time to retry within its own deadline.
    hasher.set_max_wait(config.request_timeout / 2);
    // In the background: the first unknown-email login must not pay for it.
    let warm = hasher.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.warm_up().await {
            tracing::warn!(
                error = e.message(),
                "could not precompute the dummy password hash"
            );
        }
    });
    let jwt = JwtKeys::from_config(&config.jwt)?;
    let mailer = Mailer::from_config(&config.mailer, &config.mail.from)?;
    if config.app_env == crate::config::AppEnv::Production {
        if config.mailer == crate::config::MailerConfig::Log {
            tracing::warn!(
                "MAILER is log: verification and reset mails (with their links) go to the log, \
                 not to users; set MAILER=smtp://… or smtps://…"
            );
        }
        if config.mail.from.contains("@localhost") {
            tracing::warn!("MAIL_FROM is a localhost address: mail servers will refuse it");
        }
    }
    let events = match &config.redis_url {
        Some(url) => {
            let nodes = match RedisTarget::parse(url.expose())
                .map_err(|m| anyhow::anyhow!("REDIS_URL: {m}"))?
            {
                RedisTarget::Single(url) => vec![url],
                RedisTarget::Cluster(nodes) => nodes,
            };
            EventBus::redis(
                &nodes,
                format!("{}events:audit", config.redis_key_prefix),
                db.write.clone(),
            )
            .context("REDIS_URL")?
        }
        None => EventBus::in_process(),
    };
    Ok(AppState(Arc::new(App {
        config,
        db,
        cache,
        hasher,
        jwt,
        limiter,
        mailer,
        events: Arc::new(events),
        mail_queued: Arc::new(tokio::sync::Notify::new()),
        draining: tokio::sync::watch::Sender::new(false),
    })))
}

impl Application {
    /// Connects, migrates (when `AUTO_MIGRATE`), creates the bootstrap admin
    /// and binds `BIND_ADDR`.
    ///
    /// # Errors
    /// Any failure to start, with context.
    pub async fn build(config: Config, options: BuildOptions) -> anyhow::Result<Self> {
        let bind = config.bind_addr;
        let state = build_state(config, options).await?;
        if !options.lazy_database {
            crate::domain::accounts::bootstrap_admin(&state).await?;
        }
        crate::domain::invalidations::spawn_worker(&state);
        crate::domain::mail::spawn_worker(&state);
        spawn_janitor(&state);
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding BIND_ADDR {bind}"))?;
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, marks itself
    /// not ready and lets in-flight requests finish (up to the grace period).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let grace = state.config.shutdown_grace;
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let signal_state = state.clone();
        let graceful = async move {
            shutdown.await;
            signal_state.start_draining();
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopped_tx.send(());
        };
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(graceful);
        let mut server = std::pin::pin!(server.into_future());
        tokio::select! {
            result = &mut server => return result.context("serving HTTP"),
            _ = stopped_rx => {}
        }
        match tokio::time::timeout(grace, server).await {
            Ok(result) => result.context("serving HTTP"),
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    "in-flight requests did not finish within the grace period"
                );
                Ok(())
            }
        }
    }
}

/// How often the session purge runs, and how many rows each of its
/// statements deletes.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
const PURGE_BATCH: u64 = 1000;

/// Hourly housekeeping: deletes long-ended sessions and audit events past
/// `AUDIT_RETENTION`, on one replica at a
/// time (a PostgreSQL advisory lock; a replica that finds it taken skips the
/// round). The first round comes half a period after start plus a random
/// share of it, so replicas started together neither purge at boot nor in
/// step. Holds only a weak reference, so it stops with the application.
fn spawn_janitor(state: &AppState) {
    let weak = std::sync::Arc::downgrade(&state.0);
    let jitter = PURGE_EVERY.mul_f64(f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 512.0);
    tokio::spawn(crate::db::in_background(async move {
        let start = tokio::time::Instant::now() + PURGE_EVERY / 2 + jitter;
        let mut tick = tokio::time::interval_at(start, PURGE_EVERY);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            let round = app.db.exclusively(crate::db::Lock::Purge, || {
                crate::domain::sessions::purge_ended(&app, PURGE_BATCH)
            });
            match round.await {
                Ok(None) => tracing::debug!("session purge: another replica holds the lock"),
                Ok(Some(Ok((0, _)))) => {}
                Ok(Some(Ok((n, batches)))) => {
                    tracing::info!(sessions = n, batches, "deleted long-ended sessions");
                }
                Ok(Some(Err(e))) => tracing::warn!(error = e.message(), "session clean-up failed"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "session clean-up: no lock"),
            }
            // Audit events past AUDIT_RETENTION, under the same one-replica lock.
            let round = app.db.exclusively(crate::db::Lock::Purge, || {
                crate::domain::audit::purge_expired(&app, PURGE_BATCH)
            });
            match round.await {
                Ok(Some(Ok(0)) | None) => {}
                Ok(Some(Ok(n))) => {
                    tracing::info!(events = n, "deleted audit events past AUDIT_RETENTION")
                }
                Ok(Some(Err(e))) => tracing::warn!(error = e.message(), "audit purge failed"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "audit purge: no lock"),
            }
        }
    }));
}

/// The whole HTTP surface.
pub fn router(app: AppState) -> Router {
    let config = &app.config;
    let schema = crate::graphql::build_schema(&config.graphql);
    let guard = crate::graphql::build_guard(&config.graphql);
    let sdl = crate::graphql::export(&schema);
    let body_limit = config.graphql.max_body_bytes;
    let timeout = config.request_timeout;
    let cors = cors_layer(&config.cors_allowed_origins);
    let state = ServerState(Arc::new(Server {
        app,
        schema,
        guard,
        sdl,
        metrics: crate::telemetry::metrics_handle(),
        ws_slots: Arc::new(tokio::sync::Semaphore::new(ws::MAX_CONNECTIONS)),
    }));

    let request_id = HeaderName::from_static(middleware::REQUEST_ID);
    let mut router = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(observability::metrics))
        .route("/.well-known/jwks.json", get(observability::jwks))
        .route("/schema.graphql", get(observability::schema))
        .route("/assets/graphiql/{file}", get(graphiql::asset))
        // Inside `track`, so a 408 is counted (and timed) as any answer.
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .route_layer(axum::middleware::from_fn(middleware::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req.headers().get(middleware::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::from_fn(middleware::sanitize_request_id))
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

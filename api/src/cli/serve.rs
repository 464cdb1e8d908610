//! `usergraph serve`: run until SIGTERM or Ctrl-C, then drain.

use crate::app::{Application, BuildOptions};
use crate::config::{AppEnv, Config};

pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.app_env == AppEnv::Development && config.database_url.expose().starts_with("sqlite:")
    {
        tracing::info!(
            "development mode: SQLite database and in-process cache (set DATABASE_URL / REDIS_URL for production)"
        );
    }
    let app = Application::build(config, BuildOptions::default()).await?;
    let addr = app.state().config.bind_addr;
    tracing::info!(%addr, port = app.port(), "usergraph listening; GraphiQL at /graphql");
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

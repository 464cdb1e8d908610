//! What the ceiling servers share: where to listen, and a runtime built
//! as usergraph builds its own (multi-threaded, one worker per core).

use std::net::SocketAddr;
use std::process::ExitCode;

/// The address to listen on: the first argument, else `BIND_ADDR`, else
/// `default`. Loopback addresses only: these servers are for benchmarks on
/// one machine.
///
/// # Errors
/// A message when the address does not parse or is not a loopback one.
pub fn bind_addr(default: &str) -> Result<SocketAddr, String> {
    let text = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BIND_ADDR").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| default.to_owned());
    let addr: SocketAddr = text
        .parse()
        .map_err(|e| format!("bind address {text:?}: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "bind address {addr}: only a loopback address (127.0.0.1, ::1) is accepted"
        ));
    }
    Ok(addr)
}

/// Serves `app` until the process is stopped; prints the address once it
/// listens. Exit code 2 for a bad address, 1 for any other failure.
pub fn serve(name: &str, default_addr: &str, app: axum::Router) -> ExitCode {
    serve_with(name, default_addr, async move { Ok(app) })
}

/// As [`serve`], with the app built on the serving runtime (for what spawns
/// tasks of its own, such as a Redis connection); a message from `make`
/// is a failure (exit code 1).
pub fn serve_with(
    name: &str,
    default_addr: &str,
    make: impl Future<Output = Result<axum::Router, String>>,
) -> ExitCode {
    let addr = match bind_addr(default_addr) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let app = make.await.map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("{name}: listening on {}", listener.local_addr()?);
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

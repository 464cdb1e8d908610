//! `usergraph healthcheck`: for container HEALTHCHECKs without curl. Reads
//! only `BIND_ADDR`, so a probe does not depend on the rest of the config.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub fn run() -> ExitCode {
    let _ = dotenvy::dotenv();
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let port = match bind.trim().parse::<SocketAddr>() {
        Ok(addr) => addr.port(),
        Err(_) => {
            eprintln!("usergraph: configuration error: BIND_ADDR: expected host:port");
            return ExitCode::from(2);
        }
    };
    match probe(port, Duration::from_secs(2)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usergraph: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(port: u16, budget: Duration) -> Result<(), String> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, budget).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = budget
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("read: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {}",
            line.lines().next().unwrap_or_default()
        ))
    }
}

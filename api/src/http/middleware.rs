//! Middleware: request-id hygiene, HTTP metrics, the client IP behind
//! trusted proxies.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

pub const REQUEST_ID: &str = "x-request-id";

/// An incoming request id is echoed only when it is sane: 1–128 visible
/// ASCII characters. Anything else is dropped and a fresh one assigned.
pub async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let valid = req.headers().get(REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
    });
    if !valid {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// Counts requests and their latency by method, matched route and status
/// (never by raw path, nor by a method outside the standard ones: either
/// would let clients grow the series without bound).
pub async fn track(req: Request, next: Next) -> Response {
    let mut tally = HttpTally {
        started: Instant::now(),
        method: method_label(req.method()),
        route: req.extensions().get::<MatchedPath>().cloned(),
        status: None,
    };
    let response = next.run(req).await;
    tally.status = Some(response.status());
    response
}

/// One request's metrics, recorded when it is dropped. A request whose
/// client went away before the answer (its connection closed, so the
/// server dropped it) is counted as `499`, the status proxies use for it;
/// one dropped while a panic unwinds as `500`.
/// The request timeout runs inside [`track`], so its `408` is counted as
/// any answer.
struct HttpTally {
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
    status: Option<StatusCode>,
}

impl Drop for HttpTally {
    fn drop(&mut self) {
        let route = self
            .route
            .as_ref()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned();
        let status = match self.status {
            Some(status) => status.as_u16(),
            // A handler that panicked: the server's fault, not the client's.
            None if std::thread::panicking() => 500,
            None => 499,
        }
        .to_string();
        metrics::counter!("usergraph_http_requests_total", "method" => self.method, "route" => route.clone(), "status" => status.clone())
            .increment(1);
        metrics::histogram!("usergraph_http_request_duration_seconds", "method" => self.method, "route" => route, "status" => status)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// A standard method by its name; any other is `other`.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    STANDARD
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// Adds headers every response should carry.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers
        .entry("x-content-type-options")
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry("referrer-policy")
        .or_insert(HeaderValue::from_static("no-referrer"));
    response
}

/// Who the client is, as far as the network tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Client {
    Ip(IpAddr),
    /// A trusted proxy named the client with something that is not an
    /// address (e.g. `unknown`, or an obfuscated RFC 7239 identifier): the
    /// entry itself (at most 64 bytes) tells such clients apart, so they are
    /// not all counted as the proxy.
    Named(String),
}

/// Longest `X-Forwarded-For` entry kept as a client name.
const MAX_NAME: usize = 64;

/// The client: the TCP peer, unless the peer is a trusted proxy, in which
/// case the right-most `X-Forwarded-For` entry that is not itself a trusted
/// proxy (entries further left are client-controlled and unreliable).
/// Entries may carry a port (`1.2.3.4:5678`, `[2001:db8::1]:443`).
pub fn client(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer_ip) {
        return Client::Ip(peer_ip);
    }
    // Split before decoding: a stray non-ASCII byte a client put in its own
    // entry must not erase the entry the proxy appended to the same line.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|piece| String::from_utf8_lossy(piece).trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>();
    for entry in forwarded.iter().map(String::as_str).rev() {
        let parsed = entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()));
        match parsed {
            Ok(ip) if is_trusted(&ip.to_canonical()) => continue,
            Ok(ip) => return Client::Ip(ip.to_canonical()),
            Err(_) => {
                let mut end = entry.len().min(MAX_NAME);
                while !entry.is_char_boundary(end) {
                    end -= 1;
                }
                return Client::Named(entry[..end].to_owned());
            }
        }
    }
    Client::Ip(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a request's tally records when dropped: its status, else 499
    /// for a client gone, else 500 while a panic unwinds.
    #[test]
    fn a_dropped_request_is_counted_by_how_it_ended() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let tally = |status| HttpTally {
            started: Instant::now(),
            method: "POST",
            route: None,
            status,
        };
        metrics::with_local_recorder(&recorder, || {
            drop(tally(Some(StatusCode::REQUEST_TIMEOUT)));
            drop(tally(None));
            let unwound = std::panic::catch_unwind(|| {
                let _tally = tally(None);
                panic!("a handler's bug");
            });
            assert!(unwound.is_err());
        });
        let text = handle.render();
        for status in ["408", "499", "500"] {
            let series = format!(
                "usergraph_http_requests_total{{method=\"POST\",route=\"unmatched\",status=\"{status}\"}} 1"
            );
            assert!(text.contains(&series), "{series} in:\n{text}");
        }
    }

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
        match client(peer, headers, trusted) {
            Client::Ip(ip) => ip,
            Client::Named(name) => panic!("not an address: {name}"),
        }
    }

    #[test]
    fn forwarded_entries_may_carry_a_port_and_garbage_stays_apart() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        for (xff, want) in [
            ("1.2.3.4:5678", "1.2.3.4"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::2", "2001:db8::2"),
            ("9.9.9.9, 1.2.3.4:80, 10.0.0.7:1", "1.2.3.4"),
            ("[::ffff:1.2.3.4]:80", "1.2.3.4"),
        ] {
            assert_eq!(
                client_ip(proxy, &headers(xff), &trusted).to_string(),
                want,
                "{xff}"
            );
        }
        // Not an address: a name of its own, never the proxy's address.
        assert_eq!(
            client(proxy, &headers("unknown"), &trusted),
            Client::Named("unknown".into())
        );
        assert_eq!(
            client(proxy, &headers("1.2.3.4, _hidden1"), &trusted),
            Client::Named("_hidden1".into())
        );
        // A byte that is not ASCII spoils only its own entry.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\x80junk, 1.2.3.4").unwrap(),
        );
        assert_eq!(client_ip(proxy, &h, &trusted).to_string(), "1.2.3.4");
        let long = "x".repeat(500);
        assert_eq!(
            client(proxy, &headers(&long), &trusted),
            Client::Named("x".repeat(64))
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &headers("1.2.3.4"), &trusted),
            stranger.ip()
        );
        assert_eq!(
            client_ip(proxy, &headers("6.6.6.6, 1.2.3.4"), &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            client_ip(proxy, &headers("1.2.3.4, 10.9.9.9"), &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy.ip());
    }
}

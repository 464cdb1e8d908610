//! The Redis cache backend: a single server (`redis://`, `rediss://`) through
//! a lazily connecting, self-healing `ConnectionManager`, or a cluster
//! (`redis+cluster://host1:port,host2:port`, `rediss+cluster://…`).
//!
//! Every call has a short timeout, so a hung Redis costs a request at most
//! that long before the cache is bypassed; after a failure the breaker stays
//! open for a second and calls fail at once, then a single call probes while
//! the others still fail at once, so an outage (or a stalled server) does not
//! cost every request a timeout. Invalidations that fail are not retried from memory:
//! they are committed to the database outbox (`domain::invalidations`) and
//! delivered by a worker, so they survive this process.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::cache::{CacheBackend, Write};

/// Redis answers in well under a millisecond; a call still waiting after
/// this is treated as failed (the database is the truth, and writes that
/// cannot tombstone in time queue their invalidation instead).
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Tombstones sent at once; larger sets go in rounds.
const WRITE_CHUNK: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long calls fail at once after a failure (the breaker is open).
const BREAKER_OPEN: Duration = Duration::from_secs(1);

/// The replacement rule of `infra::cache::replaces`, atomically in Redis.
/// KEYS[1] the key; ARGV: version, header, value, TTL (ms), "1" for a tombstone.
const WRITE_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+):'))
  local new = tonumber(ARGV[1])
  if not v then
    if ARGV[5] ~= '1' then return 0 end
  elseif v > new then
    return 0
  elseif v == new and (ARGV[5] == '1' or string.sub(cur, 1, #ARGV[2]) == ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// Where Redis is, parsed from `REDIS_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Single(String),
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// # Errors
    /// A message for the operator when the URL has another scheme or no host.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected redis://, rediss:// or redis+cluster://")?;
        let target = match scheme {
            "redis" | "rediss" => Self::Single(url.to_owned()),
            "redis+cluster" | "rediss+cluster" => {
                let node_scheme = scheme.trim_end_matches("+cluster");
                // Credentials, if any, apply to every node: user:pass@h1,h2
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let hosts = hosts.trim_end_matches('/');
                let nodes: Vec<String> = hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{node_scheme}://{auth}{h}"))
                    .collect();
                if nodes.is_empty() {
                    return Err("redis+cluster:// needs at least one host:port".into());
                }
                Self::Cluster(nodes)
            }
            _ => return Err("expected redis://, rediss:// or redis+cluster://".into()),
        };
        let urls = match &target {
            Self::Single(u) => vec![u.clone()],
            Self::Cluster(nodes) => nodes.clone(),
        };
        for u in urls {
            redis::Client::open(u.as_str()).map_err(|e| format!("invalid Redis URL ({e})"))?;
        }
        Ok(target)
    }
}

/// One connection handle, single or cluster, cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

enum Source {
    Single(ConnectionManager),
    /// Connected on first use, and again after a failure (at most once a second).
    Cluster {
        client: Box<ClusterClient>,
        conn: tokio::sync::Mutex<(Option<ClusterConnection>, Option<Instant>)>,
    },
}

pub struct RedisBackend {
    source: Source,
    write_if_newer: redis::Script,
    breaker: Mutex<Breaker>,
    info_refused: std::sync::atomic::AtomicBool,
}

/// Whether `err` is Redis answering with an error (a refusal), as opposed to
/// not answering (down, timed out, connection lost).
fn is_refusal(err: &anyhow::Error) -> bool {
    err.downcast_ref::<redis::RedisError>().is_some_and(refused)
}

/// Whether Redis answered with an error (NOPERM, a script error, …) rather
/// than not answering: sending the same again would be refused again.
pub(crate) fn refused(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
}

/// Closed (`open_until` unset): calls go through. Open: they fail at once
/// until `open_until`; then one call probes (`probing`, since when) while
/// the others still fail at once, and its outcome closes or reopens the
/// breaker. A probe that never reports (its request was cancelled) is
/// replaced after two timeouts.
#[derive(Default)]
struct Breaker {
    open_until: Option<Instant>,
    probing: Option<Instant>,
}

impl RedisBackend {
    /// Prepares the connection without requiring Redis to be up: the service
    /// starts (and reports not-ready) while Redis is away.
    ///
    /// # Errors
    /// When the URL cannot be used.
    pub fn connect(url: &str) -> anyhow::Result<Arc<Self>> {
        let target = RedisTarget::parse(url).map_err(|m| anyhow::anyhow!("REDIS_URL: {m}"))?;
        let source = match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str()).context("REDIS_URL")?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(OP_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                Source::Single(
                    ConnectionManager::new_lazy_with_config(client, config).context("REDIS_URL")?,
                )
            }
            RedisTarget::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(OP_TIMEOUT)
                    .build()
                    .context("REDIS_URL")?;
                Source::Cluster {
                    client: Box::new(client),
                    conn: tokio::sync::Mutex::new((None, None)),
                }
            }
        };
        Ok(Arc::new(Self {
            source,
            write_if_newer: redis::Script::new(WRITE_IF_NEWER),
            breaker: Mutex::new(Breaker::default()),
            info_refused: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    async fn conn(&self) -> anyhow::Result<Conn> {
        match &self.source {
            Source::Single(m) => Ok(Conn::Single(m.clone())),
            Source::Cluster { client, conn } => {
                let mut guard = conn.lock().await;
                if let Some(c) = &guard.0 {
                    return Ok(Conn::Cluster(c.clone()));
                }
                if guard
                    .1
                    .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
                {
                    anyhow::bail!("redis cluster unreachable (retrying)");
                }
                guard.1 = Some(Instant::now());
                let c = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection())
                    .await
                    .context("connecting to the redis cluster timed out")??;
                guard.0 = Some(c.clone());
                Ok(Conn::Cluster(c))
            }
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to Redis now.
    fn admit(&self) -> bool {
        let mut breaker = self.breaker();
        match breaker.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_)
                if breaker
                    .probing
                    .is_some_and(|t| t.elapsed() < OP_TIMEOUT * 2) =>
            {
                false
            }
            Some(_) => {
                breaker.probing = Some(Instant::now());
                true
            }
        }
    }

    /// Records the outcome of a call: a failure opens the breaker.
    fn record<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let mut breaker = self.breaker();
        breaker.probing = None;
        breaker.open_until = match &result {
            Ok(_) => None,
            Err(_) => Some(Instant::now() + BREAKER_OPEN),
        };
        drop(breaker);
        result
    }

    async fn guarded<T>(&self, call: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        if !self.admit() {
            anyhow::bail!("redis unavailable (failing fast for {BREAKER_OPEN:?} after an error)");
        }
        self.record(call.await)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        let value = tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn))
            .await
            .context("redis timed out")?;
        Ok(value?)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: Cmd) -> anyhow::Result<T> {
        self.guarded(self.query(&cmd)).await
    }

    /// Runs a Lua script (the rate limiter's GCRA) with the usual timeout.
    ///
    /// # Errors
    /// When Redis cannot answer in time.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> anyhow::Result<T> {
        self.guarded(async {
            let mut conn = self.conn().await?;
            let value = tokio::time::timeout(OP_TIMEOUT, invocation.invoke_async::<T>(&mut conn))
                .await
                .context("redis timed out")?;
            Ok(value?)
        })
        .await
    }
}

#[async_trait::async_trait]
impl CacheBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn mget(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(keys);
        self.run(cmd).await
    }

    async fn write_if_newer(&self, writes: &[Write]) -> anyhow::Result<()> {
        // One script call per key (a cluster routes each by its own key),
        // sent concurrently over the multiplexed connection.
        for chunk in writes.chunks(WRITE_CHUNK) {
            let calls = chunk.iter().map(|w| {
                let mut invocation = self.write_if_newer.key(&w.key);
                invocation
                    .arg(w.version)
                    .arg(&w.header)
                    .arg(&w.value)
                    .arg(u64::try_from(w.ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .arg(if w.is_tombstone() { "1" } else { "0" });
                async move { self.invoke::<i64>(&invocation).await }
            });
            for result in futures_util::future::join_all(calls).await {
                result?;
            }
        }
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    /// `run_id` from `INFO server`: new after a restart or a failover. A
    /// cluster has one per node, so there is none to compare.
    async fn incarnation(&self) -> anyhow::Result<Option<String>> {
        if matches!(self.source, Source::Cluster { .. }) {
            return Ok(None);
        }
        let mut cmd = redis::cmd("INFO");
        cmd.arg("server");
        let info: String = match self.query(&cmd).await {
            Ok(info) => self.record(Ok(info))?,
            // An answer, only not the one asked for (INFO denied by an ACL,
            // or renamed): Redis is up, so the breaker stays as it is; the
            // check is skipped, as in cluster mode.
            Err(e) if is_refusal(&e) => {
                if !self
                    .info_refused
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "Redis refuses INFO: a restart or failover of Redis cannot be detected, so values it kept from before could be served until their TTL; allow INFO for usergraph's Redis user (+info)"
                    );
                }
                return Ok(None);
            }
            Err(e) => return self.record(Err(e)),
        };
        let run_id = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
            .context("INFO server has no run_id")?;
        Ok(Some(run_id))
    }

    /// Bypasses the breaker: this is how recovery is noticed.
    async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = self.record(self.query(&redis::cmd("PING")).await)?;
        anyhow::ensure!(pong == "PONG", "unexpected PING answer");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379").unwrap(),
            RedisTarget::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            RedisTarget::parse("redis+cluster://:pw@a:7000,b:7001").unwrap(),
            RedisTarget::Cluster(vec![
                "redis://:pw@a:7000".into(),
                "redis://:pw@b:7001".into()
            ])
        );
        assert!(RedisTarget::parse("http://x").is_err());
        assert!(RedisTarget::parse("redis+cluster://").is_err());
    }
}

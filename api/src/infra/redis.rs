//! The Redis cache backend: a single server (`redis://`, `rediss://`) through
//! a lazily connecting, self-healing `ConnectionManager`, or a cluster
//! (`redis+cluster://host1:port,host2:port`, `rediss+cluster://…`).
//!
//! Every call has a short timeout, so a hung Redis costs a request at most
//! that long before the cache is bypassed. Invalidations that fail (Redis
//! down during a write) are retried in the background until they land, so a
//! stale entry cannot survive Redis coming back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::cache::CacheBackend;

const OP_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Invalidations are retried this long; past it, TTLs are the backstop.
const RETRY_FOR: Duration = Duration::from_secs(3600);

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

/// A failed invalidation waiting to be retried.
enum Pending {
    Del(Vec<String>),
    Set {
        key: String,
        value: String,
        ttl: Duration,
    },
}

pub struct RedisBackend {
    source: Source,
    pending: Mutex<Vec<(Instant, Pending)>>,
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
        let backend = Arc::new(Self {
            source,
            pending: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&backend);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(backend) = weak.upgrade() else { break };
                backend.retry_pending().await;
            }
        });
        Ok(backend)
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

    async fn run<T: redis::FromRedisValue>(&self, cmd: Cmd) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        let value = tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn))
            .await
            .context("redis timed out")?;
        Ok(value?)
    }

    /// Runs a Lua script (the rate limiter's GCRA) with the usual timeout.
    ///
    /// # Errors
    /// When Redis cannot answer in time.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> anyhow::Result<T> {
        let mut conn = self.conn().await?;
        let value = tokio::time::timeout(OP_TIMEOUT, invocation.invoke_async::<T>(&mut conn))
            .await
            .context("redis timed out")?;
        Ok(value?)
    }

    fn remember(&self, op: Pending) {
        if let Ok(mut pending) = self.pending.lock()
            && pending.len() < 100_000
        {
            pending.push((Instant::now(), op));
        }
    }

    async fn retry_pending(&self) {
        let batch: Vec<(Instant, Pending)> = match self.pending.lock() {
            Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
            _ => return,
        };
        for (since, op) in batch {
            if since.elapsed() > RETRY_FOR {
                continue;
            }
            let result = match &op {
                Pending::Del(keys) => self.run::<()>(del_cmd(keys)).await,
                Pending::Set { key, value, ttl } => {
                    self.run::<()>(set_cmd(key, value, *ttl, false)).await
                }
            };
            if result.is_err()
                && let Ok(mut p) = self.pending.lock()
            {
                p.push((since, op));
            }
        }
    }
}

fn set_cmd(key: &str, value: &str, ttl: Duration, only_if_absent: bool) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key)
        .arg(value)
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64);
    if only_if_absent {
        cmd.arg("NX");
    }
    cmd
}

fn del_cmd(keys: &[String]) -> Cmd {
    let mut cmd = redis::cmd("DEL");
    cmd.arg(keys);
    cmd
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

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        let result = self.run::<()>(set_cmd(key, value, ttl, false)).await;
        if result.is_err() {
            self.remember(Pending::Set {
                key: key.to_owned(),
                value: value.to_owned(),
                ttl,
            });
        }
        result
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        self.run::<Option<String>>(set_cmd(key, value, ttl, true))
            .await
            .map(|_| ())
    }

    async fn del(&self, keys: &[String]) -> anyhow::Result<()> {
        let result = self.run::<()>(del_cmd(keys)).await;
        if result.is_err() {
            self.remember(Pending::Del(keys.to_vec()));
        }
        result
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let pong: String = self.run(redis::cmd("PING")).await?;
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

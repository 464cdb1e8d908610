//! Per-client rate limits of the auth mutations (API.md §4).
//!
//! GCRA everywhere: `N` requests a minute with a burst of `N`. With Redis the
//! state lives in Redis (one Lua script, Redis's own clock), so the limit
//! holds across every replica. Without Redis, or while Redis cannot answer,
//! each process limits on its own with `governor` (the limit then holds per
//! replica): a Redis failure weakens the limit, it never fails a request.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::redis::RedisBackend;

/// GCRA in Redis. KEYS[1] holds the theoretical arrival time (µs).
/// ARGV[1] = emission interval T (µs), ARGV[2] = burst tolerance (µs).
/// Returns {allowed (1/0), retry-after (µs)}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, tat - now - tolerance}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1000)
return {1, 0}
";

/// The limiter of the auth mutations.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    per_minute: u32,
    local: DefaultKeyedRateLimiter<String>,
    redis: Option<(Arc<RedisBackend>, redis::Script, String)>,
}

impl RateLimiter {
    /// `per_minute = 0` turns limiting off.
    pub fn new(per_minute: u32, redis: Option<(Arc<RedisBackend>, String)>) -> Self {
        let Some(n) = NonZeroU32::new(per_minute) else {
            return Self { inner: None };
        };
        let local = governor::RateLimiter::keyed(Quota::per_minute(n).allow_burst(n));
        let inner = Arc::new(Inner {
            per_minute,
            local,
            redis: redis.map(|(backend, prefix)| (backend, redis::Script::new(GCRA), prefix)),
        });
        // Forget idle keys so a flood of addresses cannot grow the process.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.local.retain_recent();
                inner.local.shrink_to_fit();
            }
        });
        Self { inner: Some(inner) }
    }

    /// The bucket of a client address: the address itself for IPv4, its /64
    /// for IPv6 (one host usually holds a whole /64, so per-address buckets
    /// would be free to multiply).
    pub fn client_key(ip: std::net::IpAddr) -> String {
        match ip.to_canonical() {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }

    /// Counts one `operation` from `client`.
    ///
    /// # Errors
    /// The time to wait when the client is over its limit.
    pub async fn check(&self, operation: &str, client: &str) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let key = format!("{operation}:{client}");
        let verdict = match &inner.redis {
            Some((backend, script, prefix)) => {
                let interval_us = 60_000_000 / u64::from(inner.per_minute);
                let tolerance_us = interval_us * u64::from(inner.per_minute - 1);
                let mut invocation = script.key(format!("{prefix}ratelimit:{key}"));
                invocation.arg(interval_us.max(1)).arg(tolerance_us);
                match backend.invoke::<(u8, u64)>(&invocation).await {
                    Ok((1, _)) => Ok(()),
                    Ok((_, wait_us)) => Err(Duration::from_micros(wait_us.max(1))),
                    Err(e) => {
                        metrics::counter!("usergraph_cache_errors_total", "backend" => "redis")
                            .increment(1);
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "rate limiter: Redis unavailable; limiting per process"
                        );
                        local_check(inner, &key)
                    }
                }
            }
            None => local_check(inner, &key),
        };
        if verdict.is_err() {
            metrics::counter!("usergraph_rate_limited_total", "operation" => operation.to_owned())
                .increment(1);
        }
        verdict
    }
}

fn local_check(inner: &Inner, key: &String) -> Result<(), Duration> {
    inner
        .local
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allows_the_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(3, None);
        for _ in 0..3 {
            assert!(limiter.check("login", "1.2.3.4").await.is_ok());
        }
        let wait = limiter.check("login", "1.2.3.4").await.unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            limiter.check("register", "1.2.3.4").await.is_ok(),
            "per operation"
        );
        assert!(
            limiter.check("login", "5.6.7.8").await.is_ok(),
            "per client"
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = RateLimiter::client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = RateLimiter::client_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            RateLimiter::client_key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1"
        );
    }

    #[tokio::test]
    async fn zero_turns_it_off() {
        let limiter = RateLimiter::new(0, None);
        for _ in 0..100 {
            assert!(limiter.check("login", "1.2.3.4").await.is_ok());
        }
    }
}

//! The read-through cache and its backends.
//!
//! [`Cache`] is what the domain uses: typed JSON values under prefixed keys,
//! hit/miss/error counters, and two write modes that keep it honest across
//! replicas:
//! - [`Cache::fill`] stores a value read from the database only if the key is
//!   absent (`SET NX`), so a slow reader can never overwrite a newer write;
//! - [`Cache::put`] overwrites, for values that *are* the newest truth (a
//!   revoked session's tombstone, written after the commit).
//!
//! A backend failure is logged, counted and treated as a miss: the cache can
//! make a request slower, never make it fail.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A key-value store with per-key TTLs.
#[async_trait::async_trait]
pub trait CacheBackend: Send + Sync {
    /// `memory` or `redis`, for metrics and readiness.
    fn name(&self) -> &'static str;
    async fn mget(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>>;
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()>;
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()>;
    async fn del(&self, keys: &[String]) -> anyhow::Result<()>;
    async fn ping(&self) -> anyhow::Result<()>;
}

/// The cache as the application uses it.
#[derive(Clone)]
pub struct Cache {
    backend: Arc<dyn CacheBackend>,
    prefix: Arc<str>,
}

impl Cache {
    pub fn new(backend: Arc<dyn CacheBackend>, prefix: &str) -> Self {
        Self {
            backend,
            prefix: prefix.into(),
        }
    }

    /// An in-process cache (the zero-setup default; one replica only).
    pub fn memory(prefix: &str) -> Self {
        Self::new(Arc::new(MemoryBackend::new()), prefix)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn failed(&self, op: &str, err: &anyhow::Error) {
        metrics::counter!("usergraph_cache_errors_total", "backend" => self.backend.name())
            .increment(1);
        tracing::warn!(
            backend = self.backend.name(),
            op,
            error = format!("{err:#}"),
            "cache unavailable; bypassing"
        );
    }

    /// Reads one value; a miss, an undecodable value or a backend error is `None`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.get_many::<T>(&[key.to_owned()]).await.pop().flatten()
    }

    /// Reads many values in one round trip (`MGET`), in the order of `keys`.
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[String]) -> Vec<Option<T>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let raw = match self.backend.mget(&full).await {
            Ok(raw) => raw,
            Err(e) => {
                self.failed("mget", &e);
                vec![None; keys.len()]
            }
        };
        let values: Vec<Option<T>> = raw
            .into_iter()
            .map(|v| v.and_then(|s| serde_json::from_str(&s).ok()))
            .collect();
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        let name = self.backend.name();
        metrics::counter!("usergraph_cache_hits_total", "backend" => name).increment(hits);
        metrics::counter!("usergraph_cache_misses_total", "backend" => name)
            .increment(keys.len() as u64 - hits);
        values
    }

    /// Stores a value read from the database, unless the key is already set.
    pub async fn fill<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        if let Err(e) = self.backend.set_nx(&self.key(key), &json, ttl).await {
            self.failed("set_nx", &e);
        }
    }

    /// Overwrites a value with the newest truth (after a commit).
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        if let Err(e) = self.backend.set(&self.key(key), &json, ttl).await {
            self.failed("set", &e);
        }
    }

    /// Drops keys a write made stale (after its commit, before the response).
    pub async fn invalidate(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        if let Err(e) = self.backend.del(&full).await {
            self.failed("del", &e);
        }
    }

    /// Readiness: can the backend answer?
    ///
    /// # Errors
    /// When it cannot.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.backend.ping().await
    }
}

/// The in-process backend: moka, with a TTL per entry.
pub struct MemoryBackend {
    entries: moka::future::Cache<String, (Arc<str>, Duration)>,
}

struct PerEntryTtl;

impl moka::Expiry<String, (Arc<str>, Duration)> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _: &String,
        value: &(Arc<str>, Duration),
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
    fn expire_after_update(
        &self,
        _: &String,
        value: &(Arc<str>, Duration),
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

impl MemoryBackend {
    /// Bounded, so a flood of distinct keys cannot grow the process.
    pub fn new() -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(200_000)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl CacheBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }
    async fn mget(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.entries.get(key).await.map(|(v, _)| v.to_string()));
        }
        Ok(out)
    }
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        self.entries
            .insert(key.to_owned(), (value.into(), ttl))
            .await;
        Ok(())
    }
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        self.entries
            .entry(key.to_owned())
            .or_insert_with(async { (value.into(), ttl) })
            .await;
        Ok(())
    }
    async fn del(&self, keys: &[String]) -> anyhow::Result<()> {
        for key in keys {
            self.entries.invalidate(key).await;
        }
        Ok(())
    }
    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fill_never_overwrites_and_put_does() {
        let cache = Cache::memory("t:");
        cache.fill("k", &1, Duration::from_secs(60)).await;
        cache.fill("k", &2, Duration::from_secs(60)).await;
        assert_eq!(cache.get::<i32>("k").await, Some(1));
        cache.put("k", &3, Duration::from_secs(60)).await;
        assert_eq!(cache.get::<i32>("k").await, Some(3));
        cache.invalidate(&["k".into()]).await;
        assert_eq!(cache.get::<i32>("k").await, None);
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache = Cache::memory("t:");
        cache.put("k", &1, Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get::<i32>("k").await, None);
    }
}

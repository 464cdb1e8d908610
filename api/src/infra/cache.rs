//! The read-through cache, and the one rule that keeps it honest.
//!
//! **The database is the truth; the cache only ever holds values read from
//! the primary, each tagged with the version of the row (or set) it came
//! from.** A write bumps that version in its transaction and, *before it
//! commits*, writes a tombstone carrying the new version. A value is
//! replaced only by a strictly newer one ([`replaces`]; the same rule runs
//! in Redis as one Lua script), so:
//! - a reader that read the old row and fills late can never put it back
//!   (its version is below the tombstone's);
//! - two writers' invalidations land in any order and the newest wins;
//! - nothing has to happen after the commit, so a request cancelled after
//!   its commit (timeout, disconnect, shutdown) leaves nothing stale.
//!
//! When the tombstone cannot be written (Redis down or slow), the write
//! commits the invalidation into the database outbox instead
//! (`domain::invalidations`), and every replica's worker delivers it as soon
//! as Redis answers. The bound on staleness this leaves: **none** on a
//! replica that saw the failure — it stops reading the cache ("untrusted")
//! until its worker has delivered every queued invalidation — and at most
//! one worker interval ([`crate::domain::invalidations::INTERVAL`], 500 ms)
//! after Redis answers again on a replica that did not. TTLs are a backstop
//! only.
//!
//! Values also carry their family's *shape* number: a rolling deploy that
//! changes a cached shape bumps it, and the old and new code each treat the
//! other's values as misses — while tombstones, which have no shape, are
//! honoured by both. (Putting the shape in the key instead would split old
//! and new replicas onto different keys, and one's invalidations would miss
//! the other's copies.)
//!
//! Concurrent misses of one key in one process share a single load
//! (single-flight), so a flushed or restarted Redis does not stampede the
//! database. A backend failure is logged, counted and bypassed: the cache
//! can make a request slower, never make it fail or answer wrongly.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::AppResult;

/// How long a tombstone blocks older fills: longer than any request that
/// read the old row can take to fill it.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(300);

/// A kind of cached value: its key prefix, the version of its JSON shape,
/// and how long an entry lives without a write (a backstop).
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub shape: u32,
    pub ttl: Duration,
}

impl Family {
    /// The logical key of `id` in this family (`user:<id>`).
    pub fn key(&self, id: impl Display) -> String {
        format!("{}:{id}", self.name)
    }
}

/// One conditional write: data (`<version>:<shape>:<json>`) or a tombstone
/// (`<version>:-`). `header` is the value's prefix up to the JSON.
#[derive(Clone, Debug)]
pub struct Write {
    pub key: String,
    pub version: u64,
    pub header: String,
    pub value: String,
    pub ttl: Duration,
}

impl Write {
    fn data(key: String, version: u64, shape: u32, json: &str, ttl: Duration) -> Self {
        let header = format!("{version}:{shape}:");
        let value = format!("{header}{json}");
        Self {
            key,
            version,
            header,
            value,
            ttl,
        }
    }

    fn tombstone(key: String, version: u64) -> Self {
        let header = format!("{version}:-");
        Self {
            key,
            version,
            value: header.clone(),
            header,
            ttl: TOMBSTONE_TTL,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.header.ends_with('-')
    }
}

/// The replacement rule. `current` is replaced when it is older than `new`,
/// or of the same version but a tombstone or another shape while `new` is
/// data. Anything unreadable is replaced.
pub fn replaces(current: &str, new: &Write) -> bool {
    let Some(version) = current
        .split_once(':')
        .and_then(|(v, _)| v.parse::<u64>().ok())
    else {
        return true;
    };
    match version.cmp(&new.version) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => !new.is_tombstone() && !current.starts_with(&new.header),
    }
}

/// A key-value store with per-key TTLs and the conditional write above.
#[async_trait::async_trait]
pub trait CacheBackend: Send + Sync {
    /// `memory` or `redis`, for metrics and readiness.
    fn name(&self) -> &'static str;
    async fn mget(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>>;
    /// Applies each write if [`replaces`] allows it.
    async fn write_if_newer(&self, writes: &[Write]) -> anyhow::Result<()>;
    async fn ping(&self) -> anyhow::Result<()>;
}

/// What a finished load hands to the requests that waited on it: the JSON
/// of the value, or `None` when the database has no such row.
type Outcome = Option<String>;

struct Inner {
    backend: Arc<dyn CacheBackend>,
    prefix: String,
    /// False from a backend failure until every queued invalidation has been
    /// delivered: reads skip the cache meanwhile.
    trusted: AtomicBool,
    flights: Mutex<HashMap<String, watch::Sender<Option<Outcome>>>>,
}

/// The cache as the application uses it. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

/// Removes the flights a load leads when it ends, however it ends: a
/// cancelled or failed leader drops its senders, and its followers load for
/// themselves instead of waiting forever.
struct Lead<'a> {
    cache: &'a Cache,
    keys: Vec<String>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Ok(mut flights) = self.cache.inner.flights.lock() {
            for key in &self.keys {
                flights.remove(key);
            }
        }
    }
}

impl Cache {
    pub fn new(backend: Arc<dyn CacheBackend>, prefix: &str) -> Self {
        metrics::gauge!("usergraph_cache_trusted").set(1.0);
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix: prefix.to_owned(),
                trusted: AtomicBool::new(true),
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// An in-process cache (the zero-setup default; one replica only).
    pub fn memory(prefix: &str) -> Self {
        Self::new(Arc::new(MemoryBackend::new()), prefix)
    }

    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    /// Whether reads may use the cache (no failure since the last full drain).
    pub fn is_trusted(&self) -> bool {
        self.inner.trusted.load(Ordering::SeqCst)
    }

    fn failed(&self, op: &str, err: &anyhow::Error) {
        let name = self.inner.backend.name();
        metrics::counter!("usergraph_cache_errors_total", "backend" => name).increment(1);
        if self.inner.trusted.swap(false, Ordering::SeqCst) {
            metrics::gauge!("usergraph_cache_trusted").set(0.0);
            tracing::warn!(
                backend = name,
                op,
                error = format!("{err:#}"),
                "cache unavailable: reading the database until the cache is reachable and every queued invalidation has reached it"
            );
        } else {
            tracing::debug!(
                backend = name,
                op,
                error = format!("{err:#}"),
                "cache still unavailable"
            );
        }
    }

    /// Trusts the cache again: called by the invalidation worker once the
    /// backend answers and nothing is left to deliver.
    pub fn trust_again(&self) {
        if !self.inner.trusted.swap(true, Ordering::SeqCst) {
            metrics::gauge!("usergraph_cache_trusted").set(1.0);
            tracing::info!(
                backend = self.inner.backend.name(),
                "cache reachable again and up to date; using it"
            );
        }
    }

    /// Reads the values of `ids` in `family`: one multi-get, then `load` for
    /// the misses (absent, tombstoned, another shape, or the cache
    /// untrusted), whose results are filled at the version they were read
    /// at. `load` must read the primary and return `(id, version, value)`
    /// for the ids that exist; in-process, concurrent misses of a key share
    /// one load.
    ///
    /// # Errors
    /// Whatever `load` fails with.
    pub async fn read_through<K, T, F, Fut>(
        &self,
        family: &Family,
        ids: &[K],
        load: F,
    ) -> AppResult<HashMap<K, T>>
    where
        K: Display + Eq + Hash + Clone,
        T: Serialize + DeserializeOwned,
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = AppResult<Vec<(K, u64, T)>>>,
    {
        let mut found = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(found);
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.full_key(&family.key(id)))
            .collect();
        let cached = self.mget(&keys).await;
        let mut misses = Vec::new();
        for ((id, key), raw) in ids.iter().zip(keys).zip(cached) {
            match raw
                .as_deref()
                .and_then(|raw| decode::<T>(raw, family.shape))
            {
                Some(value) => {
                    found.insert(id.clone(), value);
                }
                None => misses.push((id.clone(), key)),
            }
        }
        let name = self.inner.backend.name();
        metrics::counter!("usergraph_cache_hits_total", "backend" => name)
            .increment(found.len() as u64);
        metrics::counter!("usergraph_cache_misses_total", "backend" => name)
            .increment(misses.len() as u64);
        if misses.is_empty() {
            return Ok(found);
        }

        // Lead the loads nobody runs yet; follow the others.
        let mut led = Vec::new();
        let mut followed = Vec::new();
        {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
            for (id, key) in misses {
                match flights.get(&key) {
                    Some(flight) => followed.push((id, flight.subscribe())),
                    None => {
                        let (tx, _) = watch::channel(None);
                        flights.insert(key.clone(), tx);
                        led.push((id, key));
                    }
                }
            }
        }
        if !led.is_empty() {
            let lead = Lead {
                cache: self,
                keys: led.iter().map(|(_, key)| key.clone()).collect(),
            };
            let loaded = self
                .load_and_fill(
                    family,
                    led.iter().map(|(id, _)| id.clone()).collect(),
                    &load,
                )
                .await?;
            if let Ok(flights) = self.inner.flights.lock() {
                for (id, key) in &led {
                    if let Some(flight) = flights.get(key) {
                        flight.send_replace(Some(loaded.get(id).map(|(json, _)| json.clone())));
                    }
                }
            }
            drop(lead);
            found.extend(loaded.into_iter().map(|(id, (_, value))| (id, value)));
        }
        let mut orphaned = Vec::new();
        for (id, mut rx) in followed {
            metrics::counter!("usergraph_cache_coalesced_total").increment(1);
            let outcome = rx
                .wait_for(Option::is_some)
                .await
                .map(|o| o.clone().flatten());
            match outcome {
                Ok(Some(json)) => {
                    if let Ok(value) = serde_json::from_str::<T>(&json) {
                        found.insert(id, value);
                    }
                }
                Ok(None) => {}
                // The leader was cancelled or failed: load it ourselves.
                Err(_) => orphaned.push(id),
            }
        }
        if !orphaned.is_empty() {
            let loaded = self.load_and_fill(family, orphaned, &load).await?;
            found.extend(loaded.into_iter().map(|(id, (_, value))| (id, value)));
        }
        Ok(found)
    }

    /// Runs `load` and fills what it found; returns each value with its JSON.
    async fn load_and_fill<K, T, F, Fut>(
        &self,
        family: &Family,
        ids: Vec<K>,
        load: &F,
    ) -> AppResult<HashMap<K, (String, T)>>
    where
        K: Display + Eq + Hash + Clone,
        T: Serialize,
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = AppResult<Vec<(K, u64, T)>>>,
    {
        let rows = load(ids).await?;
        let mut writes = Vec::with_capacity(rows.len());
        let mut out = HashMap::with_capacity(rows.len());
        for (id, version, value) in rows {
            let Ok(json) = serde_json::to_string(&value) else {
                continue;
            };
            let key = self.full_key(&family.key(&id));
            writes.push(Write::data(key, version, family.shape, &json, family.ttl));
            out.insert(id, (json, value));
        }
        // Fills are safe at any time (a newer value or tombstone wins), but
        // not worth a timeout while the backend is known to be failing.
        if self.is_trusted()
            && !writes.is_empty()
            && let Err(e) = self.inner.backend.write_if_newer(&writes).await
        {
            self.failed("fill", &e);
        }
        Ok(out)
    }

    async fn mget(&self, keys: &[String]) -> Vec<Option<String>> {
        if !self.is_trusted() {
            metrics::counter!("usergraph_cache_bypassed_total").increment(keys.len() as u64);
            return vec![None; keys.len()];
        }
        match self.inner.backend.mget(keys).await {
            Ok(raw) => raw,
            Err(e) => {
                self.failed("mget", &e);
                vec![None; keys.len()]
            }
        }
    }

    /// Tombstones logical `keys` at their new versions: every cached value
    /// older than that is dead from now on, on every replica.
    ///
    /// # Errors
    /// When the backend could not take them all: the caller must queue them
    /// in the outbox (`domain::invalidations`).
    pub async fn invalidate(&self, keys: &[(String, u64)]) -> anyhow::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let writes: Vec<Write> = keys
            .iter()
            .map(|(key, version)| Write::tombstone(self.full_key(key), *version))
            .collect();
        let result = self.inner.backend.write_if_newer(&writes).await;
        if let Err(e) = &result {
            self.failed("invalidate", e);
        }
        result
    }

    /// Readiness: can the backend answer?
    ///
    /// # Errors
    /// When it cannot.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.inner.backend.ping().await
    }
}

/// The value of `raw` when it is data of `shape` that decodes as `T`.
fn decode<T: DeserializeOwned>(raw: &str, shape: u32) -> Option<T> {
    let (_, rest) = raw.split_once(':')?;
    let (found, json) = rest.split_once(':')?;
    if found.parse::<u32>().ok()? != shape {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// The in-process backend: moka, with a TTL per entry. Bounded, so a flood
/// of distinct keys cannot grow the process.
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
    async fn write_if_newer(&self, writes: &[Write]) -> anyhow::Result<()> {
        use moka::ops::compute::Op;
        for write in writes {
            self.entries
                .entry(write.key.clone())
                .and_compute_with(|current| async move {
                    match current {
                        Some(entry) if !replaces(&entry.value().0, write) => Op::Nop,
                        _ => Op::Put((write.value.as_str().into(), write.ttl)),
                    }
                })
                .await;
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

    const THINGS: Family = Family {
        name: "thing",
        shape: 1,
        ttl: Duration::from_secs(60),
    };

    fn data(version: u64, shape: u32) -> Write {
        Write::data("k".into(), version, shape, "1", Duration::from_secs(1))
    }

    #[test]
    fn only_a_strictly_newer_value_replaces() {
        let stored = data(5, 1).value;
        assert!(!replaces(&stored, &data(4, 1)), "older data");
        assert!(!replaces(&stored, &data(5, 1)), "the same value");
        assert!(
            replaces(&stored, &data(5, 2)),
            "the same version in another shape"
        );
        assert!(replaces(&stored, &data(6, 1)), "newer data");
        assert!(
            !replaces(&stored, &Write::tombstone("k".into(), 5)),
            "a tombstone of the same version"
        );
        assert!(
            replaces(&stored, &Write::tombstone("k".into(), 6)),
            "a newer tombstone"
        );
        let tomb = Write::tombstone("k".into(), 6).value;
        assert!(!replaces(&tomb, &data(5, 1)), "a late fill of the old row");
        assert!(
            replaces(&tomb, &data(6, 1)),
            "the row the tombstone announced"
        );
        assert!(replaces("garbage", &data(0, 1)));
    }

    async fn load_counting(
        calls: &std::sync::atomic::AtomicUsize,
        ids: Vec<u32>,
        version: u64,
    ) -> AppResult<Vec<(u32, u64, String)>> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok(ids
            .into_iter()
            .map(|id| (id, version, format!("v{version}")))
            .collect())
    }

    #[tokio::test]
    async fn reads_fill_and_tombstones_win_over_late_fills() {
        use std::sync::atomic::AtomicUsize;
        let cache = Cache::memory("t:");
        let calls = AtomicUsize::new(0);
        let got = cache
            .read_through(&THINGS, &[1u32], |ids| load_counting(&calls, ids, 1))
            .await
            .unwrap();
        assert_eq!(got[&1], "v1");
        let again = cache
            .read_through(&THINGS, &[1u32], |ids| load_counting(&calls, ids, 1))
            .await
            .unwrap();
        assert_eq!(again[&1], "v1");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the second read is a hit");

        // A write at version 2 tombstones; a reader that saw version 1 fills late.
        cache.invalidate(&[(THINGS.key(1), 2)]).await.unwrap();
        let late = Write::data(cache.full_key(&THINGS.key(1)), 1, 1, "\"v1\"", THINGS.ttl);
        cache.inner.backend.write_if_newer(&[late]).await.unwrap();
        let fresh = cache
            .read_through(&THINGS, &[1u32], |ids| load_counting(&calls, ids, 2))
            .await
            .unwrap();
        assert_eq!(fresh[&1], "v2", "the late fill of version 1 was refused");
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        use std::sync::atomic::AtomicUsize;
        let cache = Cache::memory("t:");
        let calls = AtomicUsize::new(0);
        let reads = (0..50)
            .map(|_| cache.read_through(&THINGS, &[7u32], |ids| load_counting(&calls, ids, 1)));
        for got in futures_util::future::join_all(reads).await {
            assert_eq!(got.unwrap()[&7], "v1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cancelled_leader_does_not_strand_its_followers() {
        use std::sync::atomic::AtomicUsize;
        let cache = Cache::memory("t:");
        let calls = AtomicUsize::new(0);
        let leader = cache.read_through(&THINGS, &[3u32], |_ids| async {
            std::future::pending::<AppResult<Vec<(u32, u64, String)>>>().await
        });
        // The leader is dropped after 50 ms, while the follower waits on it.
        let leader = async {
            let _ = tokio::time::timeout(Duration::from_millis(50), leader).await;
        };
        let follower = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            cache
                .read_through(&THINGS, &[3u32], |ids| load_counting(&calls, ids, 1))
                .await
        };
        let ((), got) = tokio::join!(
            leader,
            tokio::time::timeout(Duration::from_secs(2), follower)
        );
        assert_eq!(got.expect("not stranded").unwrap()[&3], "v1");
    }

    /// A backend that fails while `down` is set, holding its data meanwhile.
    struct Flaky {
        inner: MemoryBackend,
        down: AtomicBool,
    }

    #[async_trait::async_trait]
    impl CacheBackend for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn mget(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
            anyhow::ensure!(!self.down.load(Ordering::SeqCst), "down");
            self.inner.mget(keys).await
        }
        async fn write_if_newer(&self, writes: &[Write]) -> anyhow::Result<()> {
            anyhow::ensure!(!self.down.load(Ordering::SeqCst), "down");
            self.inner.write_if_newer(writes).await
        }
        async fn ping(&self) -> anyhow::Result<()> {
            anyhow::ensure!(!self.down.load(Ordering::SeqCst), "down");
            Ok(())
        }
    }

    #[tokio::test]
    async fn after_a_failure_reads_skip_the_cache_until_trusted_again() {
        use std::sync::atomic::AtomicUsize;
        let backend = Arc::new(Flaky {
            inner: MemoryBackend::new(),
            down: AtomicBool::new(false),
        });
        let cache = Cache::new(backend.clone(), "t:");
        let calls = AtomicUsize::new(0);
        let calls = &calls;
        let cache = &cache;
        let read = |version: u64| async move {
            cache
                .read_through(&THINGS, &[1u32], |ids| load_counting(calls, ids, version))
                .await
        };
        assert_eq!(read(1).await.unwrap()[&1], "v1");
        // The write's tombstone cannot reach the backend, which keeps "v1".
        backend.down.store(true, Ordering::SeqCst);
        assert!(cache.invalidate(&[(THINGS.key(1), 2)]).await.is_err());
        assert!(!cache.is_trusted());
        // The backend answers again, still holding the stale value: reads
        // go to the database until the queued invalidation is delivered.
        backend.down.store(false, Ordering::SeqCst);
        assert_eq!(read(2).await.unwrap()[&1], "v2", "not the stale v1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        cache.invalidate(&[(THINGS.key(1), 2)]).await.unwrap();
        cache.trust_again();
        assert_eq!(read(2).await.unwrap()[&1], "v2");
        assert_eq!(read(2).await.unwrap()[&1], "v2");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one fill, then hits");
    }
}

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
//! Redis can also lose writes it acknowledged: a restart from an older
//! snapshot, or a failover to a replica that lagged. Every key lives under a
//! *generation* (`<prefix>g<N>:`) kept in the database; each replica's
//! worker compares Redis's `run_id` with the one last recorded there, and a
//! new one (a restarted or promoted server) bumps the generation, so nothing
//! the old server held is read again. A replica starts untrusted and trusts
//! the cache only after that check. (Cluster mode has no single `run_id`;
//! there this check is skipped, see the runbook.)
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    fn tombstone(key: String, version: u64, ttl: Duration) -> Self {
        let header = format!("{version}:-");
        Self {
            key,
            version,
            value: header.clone(),
            header,
            ttl,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.header.ends_with('-')
    }
}

/// Whether a stored value is a tombstone (`<version>:-`).
fn is_tombstone(stored: &str) -> bool {
    stored.split_once(':').is_some_and(|(_, rest)| rest == "-")
}

/// The version a stored value carries: its leading decimal digits.
fn version_of(stored: &str) -> Option<u64> {
    let (digits, _) = stored.split_once(':')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The replacement rule. `current` is replaced when it is older than `new`,
/// or of the same version but a tombstone or another shape while `new` is
/// data. A value without a version (written by an older release) is
/// replaced only by a tombstone, never by a fill: it may be that release's
/// own mark of a revocation.
pub fn replaces(current: &str, new: &Write) -> bool {
    let Some(version) = version_of(current) else {
        return new.is_tombstone();
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
    /// Shared by replicas (Redis), as opposed to in-process.
    fn shared(&self) -> bool;
    /// What identifies this server's lifetime (Redis's `run_id`): a new one
    /// means a restart or a failover, which may have lost writes. `None`
    /// where there is no single server to ask (in-process, cluster).
    async fn incarnation(&self) -> anyhow::Result<Option<String>>;
}

/// What a finished load hands to the requests that waited on it: the
/// version and JSON of the value, or `None` when the database has no such row.
type Outcome = Option<(u64, String)>;

type Flights = HashMap<String, watch::Sender<Option<Outcome>>>;

struct Inner {
    backend: Arc<dyn CacheBackend>,
    prefix: String,
    /// The generation every key lives under (see the module docs).
    generation: AtomicU64,
    /// False from a backend failure until every queued invalidation has been
    /// delivered: reads skip the cache meanwhile.
    trusted: AtomicBool,
    /// Bumped by every failure, so the worker can tell one happened while it
    /// was draining.
    failures: AtomicU64,
    /// Writes whose invalidation failed and that have not committed (or
    /// rolled back) yet: their outbox rows may still be invisible.
    unsettled: AtomicUsize,
    tombstone_ttl: Duration,
    /// Set once the worker has read the generation from the database: until
    /// then a tombstone could go to a generation nobody reads, so writes
    /// queue their invalidations instead.
    synced: AtomicBool,
    /// After a generation change the cache is not trusted again before
    /// this: requests that read the database before writes that other
    /// replicas, not yet moved, tombstoned in the old generation must have
    /// ended first.
    settle: Duration,
    settle_until: Mutex<Option<std::time::Instant>>,
    flights: Mutex<Flights>,
}

/// A failed invalidation whose write has not settled yet. The caller keeps
/// it until its transaction has committed or rolled back; meanwhile the
/// cache is not trusted again.
pub struct Unsettled(Arc<Inner>);

impl Drop for Unsettled {
    fn drop(&mut self) {
        self.0.unsettled.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Unsettled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unsettled")
    }
}

/// Values read ahead, in one multi-get, for one read-only request: the keys
/// every signed-in request needs (its session, its user, the user's roles,
/// the role catalogue) are known from the token alone, so they come in the
/// round trip that checks the session instead of one round trip each. A
/// resolver that knows what it reads next adds its keys in one more
/// ([`Cache::prefetch_more`]).
///
/// A hint stands for the reads of its key in the first [`HINT_LIFETIME`]
/// of the request (the session check, the permission check, `me`, the role
/// catalogue again for a list's roles), however many; a read after that
/// asks the cache, so a role revoked while a long query runs is seen by its
/// later checks as before. A hint is used only while the cache has
/// seen no failure since it was read and in the generation it was read in
/// (the full key carries it). A request that writes must read its own
/// writes: [`Prefetch::off`] is called for any document with a mutation
/// before anything runs, and a batch or a WebSocket connection never gets
/// hints.
#[derive(Default, Debug)]
pub struct Prefetch {
    /// Full key → raw value and when it was asked for. Only values: an
    /// absent key or a tombstone is a miss, whose load fills the cache, and
    /// a second read of it in the same request must find that fill rather
    /// than the miss again.
    values: Mutex<HashMap<String, (String, Instant)>>,
    /// [`Cache::failures`] when the values were read.
    failures: u64,
    /// [`HINT_LIFETIME`] (zero in a default, empty one).
    lifetime: Duration,
    off: AtomicBool,
}

impl Prefetch {
    /// From now on, every read goes to the cache itself.
    pub fn off(&self) {
        self.off.store(true, Ordering::SeqCst);
    }

    /// The hint of `full_key`, if there is one and it is younger than
    /// [`HINT_LIFETIME`]. It stays for the request's later reads of the
    /// same key (the role catalogue is read by the permission check and
    /// again by a list's roles).
    fn get(&self, full_key: &str) -> Option<String> {
        if self.off.load(Ordering::SeqCst) {
            return None;
        }
        let values = self.values.lock().ok()?;
        let (value, asked) = values.get(full_key)?;
        (asked.elapsed() <= self.lifetime).then(|| value.clone())
    }

    /// How many hints are held, expired ones included (tests).
    pub fn len(&self) -> usize {
        self.values.lock().map_or(0, |v| v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a hint stands in for reads of its key: the start of a request,
/// not a long query's later checks.
pub const HINT_LIFETIME: Duration = Duration::from_millis(100);

/// The hints a multi-get of `full` keys answered: values only, not
/// absent keys or tombstones, each stamped with when it was asked for.
fn hint_entries(
    full: Vec<String>,
    raw: Vec<Option<String>>,
    asked: Instant,
) -> impl Iterator<Item = (String, (String, Instant))> {
    full.into_iter()
        .zip(raw)
        .filter_map(move |(key, raw)| Some((key, (raw?, asked))))
        .filter(|(_, (raw, _))| !is_tombstone(raw))
}

/// Hints for a read (see [`Prefetch`]), or none.
pub type Hints<'a> = Option<&'a Prefetch>;

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
        let mut flights = self.cache.flights();
        for key in &self.keys {
            flights.remove(key);
        }
    }
}

impl Cache {
    /// A cache over `backend`. A shared one starts untrusted: the
    /// invalidation worker checks the server and delivers what is queued
    /// before reads use it. `tombstone_ttl` must outlast any request that
    /// could still fill what it read before a write.
    pub fn new(backend: Arc<dyn CacheBackend>, prefix: &str, tombstone_ttl: Duration) -> Self {
        let trusted = !backend.shared();
        let synced = trusted;
        let settle = tombstone_ttl / 2;
        metrics::gauge!("usergraph_cache_trusted").set(if trusted { 1.0 } else { 0.0 });
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix: prefix.to_owned(),
                generation: AtomicU64::new(0),
                trusted: AtomicBool::new(trusted),
                failures: AtomicU64::new(0),
                unsettled: AtomicUsize::new(0),
                tombstone_ttl: tombstone_ttl.max(TOMBSTONE_TTL),
                synced: AtomicBool::new(synced),
                settle,
                settle_until: Mutex::new(None),
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// An in-process cache (the zero-setup default; one replica only).
    pub fn memory(prefix: &str) -> Self {
        Self::new(Arc::new(MemoryBackend::new()), prefix, TOMBSTONE_TTL)
    }

    /// Whether replicas share this cache (Redis).
    pub fn is_shared(&self) -> bool {
        self.inner.backend.shared()
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, Flights> {
        // A panic while holding it leaves the map consistent: keep going.
        self.inner.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn full_key(&self, key: &str) -> String {
        format!(
            "{}g{}:{key}",
            self.inner.prefix,
            self.inner.generation.load(Ordering::SeqCst)
        )
    }

    /// The generation keys live under (see the module docs).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Moves to generation `n` (never back), as read from the database,
    /// which says when `n` replaced an earlier generation (`moved_at`). Until
    /// the settling period after that has passed, the cache is not trusted:
    /// replicas that had not moved yet may have tombstoned writes only in the
    /// old generation, and requests that read before those writes must have
    /// ended (see `Inner::settle`).
    pub fn set_generation(&self, n: u64, moved_at: Option<chrono::DateTime<chrono::Utc>>) {
        self.inner.generation.fetch_max(n, Ordering::SeqCst);
        self.inner.synced.store(true, Ordering::SeqCst);
        let Some(moved_at) = moved_at else { return };
        let Ok(since) = (chrono::Utc::now() - moved_at).to_std() else {
            // moved_at is in the future (clock skew): settle fully.
            self.settle_for(self.inner.settle, n);
            return;
        };
        if let Some(left) = self.inner.settle.checked_sub(since) {
            self.settle_for(left, n);
        }
    }

    fn settle_for(&self, left: Duration, generation: u64) {
        let until = std::time::Instant::now() + left;
        if let Ok(mut settle) = self.inner.settle_until.lock() {
            *settle = Some(settle.map_or(until, |t| t.max(until)));
        }
        if self.is_trusted() {
            self.failed(
                "generation",
                &anyhow::anyhow!(
                    "the cache moved to generation {generation}: settling for {left:?}"
                ),
            );
        }
    }

    /// The full key of a logical one, in the current generation (tests and
    /// diagnostics).
    pub fn key_of(&self, key: &str) -> String {
        self.full_key(key)
    }

    /// How many failures this replica has seen (see [`Cache::trust_again`]).
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::SeqCst)
    }

    /// How many failed invalidations wait for their write to settle.
    pub fn unsettled(&self) -> usize {
        self.inner.unsettled.load(Ordering::SeqCst)
    }

    /// Asks the server for its identity (see [`CacheBackend::incarnation`]).
    ///
    /// # Errors
    /// When it cannot answer (the cache is then untrusted).
    pub async fn incarnation(&self) -> anyhow::Result<Option<String>> {
        let result = self.inner.backend.incarnation().await;
        if let Err(e) = &result {
            self.failed("incarnation", e);
        }
        result
    }

    /// Whether reads may use the cache (no failure since the last full drain).
    pub fn is_trusted(&self) -> bool {
        self.inner.trusted.load(Ordering::SeqCst)
    }

    /// Stops trusting the cache after `err` (also for a server that may
    /// have lost writes).
    pub fn failed(&self, op: &str, err: &anyhow::Error) {
        self.inner.failures.fetch_add(1, Ordering::SeqCst);
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
    /// backend answers and nothing is left to deliver. `failures_before` is
    /// [`Cache::failures`] read before the worker looked at the outbox: a
    /// failure since then means there may be more to deliver, and so does an
    /// unsettled write.
    pub fn trust_again(&self, failures_before: u64) {
        let settling = self
            .inner
            .settle_until
            .lock()
            .map(|u| u.is_some_and(|t| std::time::Instant::now() < t))
            .unwrap_or(false);
        let clean = || self.failures() == failures_before && self.unsettled() == 0;
        if settling || !clean() {
            return;
        }
        let was = self.inner.trusted.swap(true, Ordering::SeqCst);
        // A failure between the check and the swap cleared the flag first
        // and the swap just set it again: look once more.
        if !clean() {
            self.inner.trusted.store(false, Ordering::SeqCst);
            return;
        }
        if !was {
            metrics::gauge!("usergraph_cache_trusted").set(1.0);
            tracing::info!(
                backend = self.inner.backend.name(),
                "cache reachable again and up to date; using it"
            );
        }
    }

    /// Reads logical `keys` ahead in one multi-get (see [`Prefetch`]). An
    /// untrusted or failing cache gives an empty prefetch.
    pub async fn prefetch(&self, keys: &[String]) -> Prefetch {
        let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
        let asked = Instant::now();
        let raw = self.mget(&full).await;
        if !self.is_trusted() {
            return Prefetch::default();
        }
        let values = hint_entries(full, raw, asked).collect();
        Prefetch {
            values: Mutex::new(values),
            failures: self.failures(),
            lifetime: HINT_LIFETIME,
            off: AtomicBool::new(false),
        }
    }

    /// Adds to `hints`, in one multi-get, the keys it does not hold yet:
    /// for a resolver that knows what its request reads next (`user(id:)`
    /// reads the user, then their roles). Nothing is asked for or added
    /// unless the hints are usable (on, read in this failure count while
    /// the cache is trusted; see [`Cache::mget_hinted`]); a key held already
    /// keeps its value, even when expired.
    pub async fn prefetch_more(&self, hints: &Prefetch, keys: &[String]) {
        let usable = |cache: &Self| {
            !hints.off.load(Ordering::SeqCst)
                && !hints.lifetime.is_zero()
                && cache.hints_usable(hints)
        };
        if !usable(self) {
            return;
        }
        let full: Vec<String> = {
            let Ok(held) = hints.values.lock() else {
                return;
            };
            keys.iter()
                .map(|k| self.full_key(k))
                .filter(|k| !held.contains_key(k))
                .collect()
        };
        if full.is_empty() {
            return;
        }
        let asked = Instant::now();
        let raw = self.mget(&full).await;
        // Read under the same failure count as the first hints, or they
        // would not be used anyway.
        if !usable(self) {
            return;
        }
        if let Ok(mut held) = hints.values.lock() {
            for (key, value) in hint_entries(full, raw, asked) {
                // A hint another resolver added meanwhile may have been
                // used already: the request keeps one version of each key.
                held.entry(key).or_insert(value);
            }
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
        self.read_through_hinted(family, ids, None, load).await
    }

    /// [`Cache::read_through`], taking what `hints` already holds instead of
    /// asking the backend for it again.
    ///
    /// # Errors
    /// Whatever `load` fails with.
    pub async fn read_through_hinted<K, T, F, Fut>(
        &self,
        family: &Family,
        ids: &[K],
        hints: Hints<'_>,
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
        let generation = self.generation();
        let cached = self.mget_hinted(&keys, hints).await;
        // After the multi-get: a failure of that very call counts too.
        let trusted = self.is_trusted();
        // A miss remembers the version it saw (a tombstone, another shape):
        // the database holds at least that version.
        let mut misses = Vec::new();
        for ((id, key), raw) in ids.iter().zip(keys).zip(cached) {
            match raw
                .as_deref()
                .and_then(|raw| decode::<T>(raw, family.shape))
            {
                Some(value) => {
                    found.insert(id.clone(), value);
                }
                None => misses.push((id.clone(), key, raw.as_deref().and_then(version_of))),
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
        if !trusted {
            // Without the cache there is nothing to tell a load that began
            // before another replica's write from one that began after it:
            // every request reads for itself.
            let ids = misses.into_iter().map(|(id, _, _)| id).collect();
            let loaded = self
                .load_and_fill(family, ids, &load, None, generation)
                .await?;
            found.extend(loaded.into_iter().map(|(id, (_, _, value))| (id, value)));
            return Ok(found);
        }

        // Lead the loads nobody runs yet; follow the others.
        let mut led = Vec::new();
        let mut followed = Vec::new();
        {
            let mut flights = self.flights();
            for (id, key, seen) in misses {
                match flights.get(&key) {
                    Some(flight) => followed.push((id, seen, flight.subscribe())),
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
            let ids = led.iter().map(|(id, _)| id.clone()).collect();
            let loaded = self
                .load_and_fill(family, ids, &load, Some(&led), generation)
                .await?;
            drop(lead);
            found.extend(loaded.into_iter().map(|(id, (_, _, value))| (id, value)));
        }
        let mut orphaned = Vec::new();
        for (id, seen, mut rx) in followed {
            metrics::counter!("usergraph_cache_coalesced_total").increment(1);
            let outcome = rx
                .wait_for(Option::is_some)
                .await
                .map(|o| o.clone().flatten());
            match outcome {
                // Older than what this request saw in the cache: the leader
                // read before a write that this request must see.
                Ok(Some((version, _))) if seen.is_some_and(|s| version < s) => orphaned.push(id),
                Ok(Some((_, json))) => match serde_json::from_str::<T>(&json) {
                    Ok(value) => {
                        found.insert(id, value);
                    }
                    Err(_) => orphaned.push(id),
                },
                // "No such row" from a leader that may have read before
                // the write this request saw.
                Ok(None) if seen.is_some() => orphaned.push(id),
                Ok(None) => {}
                // The leader was cancelled or failed: load it ourselves.
                Err(_) => orphaned.push(id),
            }
        }
        if !orphaned.is_empty() {
            let loaded = self
                .load_and_fill(family, orphaned, &load, None, generation)
                .await?;
            found.extend(loaded.into_iter().map(|(id, (_, _, value))| (id, value)));
        }
        Ok(found)
    }

    /// Runs `load`, hands the outcome to the requests waiting on the
    /// flights it `leads` (before filling, so they do not wait on the cache),
    /// then fills what it found. Returns each value with its version and JSON.
    async fn load_and_fill<K, T, F, Fut>(
        &self,
        family: &Family,
        ids: Vec<K>,
        load: &F,
        leads: Option<&[(K, String)]>,
        generation: u64,
    ) -> AppResult<HashMap<K, (u64, String, T)>>
    where
        K: Display + Eq + Hash + Clone,
        T: Serialize,
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = AppResult<Vec<(K, u64, T)>>>,
    {
        let rows = load(ids).await?;
        let mut out = HashMap::with_capacity(rows.len());
        for (id, version, value) in rows {
            if let Ok(json) = serde_json::to_string(&value) {
                out.insert(id, (version, json, value));
            }
        }
        if let Some(leads) = leads {
            let flights = self.flights();
            for (id, key) in leads {
                if let Some(flight) = flights.get(key) {
                    let outcome = out.get(id).map(|(v, json, _)| (*v, json.clone()));
                    flight.send_replace(Some(outcome));
                }
            }
        }
        // Fills are safe at any time (a newer value or tombstone wins), but
        // not worth a timeout while the backend is known to be failing; and
        // never into a generation other than the one this read began in.
        if self.is_trusted() && self.generation() == generation && !out.is_empty() {
            let writes: Vec<Write> = out
                .iter()
                .map(|(id, (version, json, _))| {
                    let key = self.full_key(&family.key(id));
                    Write::data(key, *version, family.shape, json, family.ttl)
                })
                .collect();
            if let Err(e) = self.inner.backend.write_if_newer(&writes).await {
                self.failed("fill", &e);
            }
        }
        Ok(out)
    }

    /// Whether hints may stand in for reads: the cache is trusted and has
    /// seen no failure since they were read (a failure may have hidden a
    /// tombstone from them, even if the cache is trusted again by now).
    fn hints_usable(&self, hints: &Prefetch) -> bool {
        self.is_trusted() && hints.failures == self.failures()
    }

    /// [`Cache::mget`] of the keys `hints` holds no live hint of.
    async fn mget_hinted(&self, keys: &[String], hints: Hints<'_>) -> Vec<Option<String>> {
        let Some(hints) = hints.filter(|h| self.hints_usable(h)) else {
            return self.mget(keys).await;
        };
        let mut out: Vec<Option<Option<String>>> =
            keys.iter().map(|k| hints.get(k).map(Some)).collect();
        let rest: Vec<String> = keys
            .iter()
            .zip(&out)
            .filter(|(_, hint)| hint.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if rest.is_empty() {
            metrics::counter!("usergraph_cache_prefetched_total").increment(keys.len() as u64);
            return out.into_iter().flatten().collect();
        }
        metrics::counter!("usergraph_cache_prefetched_total")
            .increment((keys.len() - rest.len()) as u64);
        let mut fetched = self.mget(&rest).await.into_iter();
        for slot in &mut out {
            if slot.is_none() {
                *slot = Some(fetched.next().flatten());
            }
        }
        out.into_iter().flatten().collect()
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
    /// in the outbox (`domain::invalidations`) and hold the [`Unsettled`]
    /// until its transaction has ended.
    pub async fn invalidate(&self, keys: &[(String, u64)]) -> Result<(), Unsettled> {
        if keys.is_empty() {
            return Ok(());
        }
        if !self.inner.synced.load(Ordering::SeqCst) {
            self.inner.unsettled.fetch_add(1, Ordering::SeqCst);
            return Err(Unsettled(Arc::clone(&self.inner)));
        }
        let ttl = self.inner.tombstone_ttl;
        let mut result;
        loop {
            // If the generation moves while we write, the new one needs the
            // tombstones too: a reader there may fill what it read before
            // this write.
            let generation = self.generation();
            let writes: Vec<Write> = keys
                .iter()
                .map(|(key, version)| Write::tombstone(self.full_key(key), *version, ttl))
                .collect();
            result = self.inner.backend.write_if_newer(&writes).await;
            if result.is_err() || self.generation() == generation {
                break;
            }
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                // Counted before the failure is, so the worker never sees
                // the failure without the write that depends on it.
                self.inner.unsettled.fetch_add(1, Ordering::SeqCst);
                self.failed("invalidate", &e);
                Err(Unsettled(Arc::clone(&self.inner)))
            }
        }
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
    fn shared(&self) -> bool {
        false
    }
    async fn incarnation(&self) -> anyhow::Result<Option<String>> {
        Ok(None)
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
            !replaces(&stored, &Write::tombstone("k".into(), 5, TOMBSTONE_TTL)),
            "a tombstone of the same version"
        );
        assert!(
            replaces(&stored, &Write::tombstone("k".into(), 6, TOMBSTONE_TTL)),
            "a newer tombstone"
        );
        let tomb = Write::tombstone("k".into(), 6, TOMBSTONE_TTL).value;
        assert!(!replaces(&tomb, &data(5, 1)), "a late fill of the old row");
        assert!(
            replaces(&tomb, &data(6, 1)),
            "the row the tombstone announced"
        );
        assert!(
            !replaces("{\"live\":false}", &data(0, 1)),
            "an older release's value is not filled over"
        );
        assert!(replaces(
            "{\"live\":false}",
            &Write::tombstone("k".into(), 0, TOMBSTONE_TTL)
        ));
        assert!(
            !replaces("+5:1:x", &data(9, 1)),
            "only plain digits are a version"
        );
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

    /// The in-process backend, counting its multi-gets.
    struct Counting(MemoryBackend, AtomicUsize);

    #[async_trait::async_trait]
    impl CacheBackend for Counting {
        fn name(&self) -> &'static str {
            "memory"
        }
        async fn mget(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.mget(keys).await
        }
        async fn write_if_newer(&self, writes: &[Write]) -> anyhow::Result<()> {
            self.0.write_if_newer(writes).await
        }
        async fn ping(&self) -> anyhow::Result<()> {
            Ok(())
        }
        fn shared(&self) -> bool {
            false
        }
        async fn incarnation(&self) -> anyhow::Result<Option<String>> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn hints_stand_in_for_reads_until_turned_off() {
        let backend = Arc::new(Counting(MemoryBackend::new(), AtomicUsize::new(0)));
        let mgets = || backend.1.load(Ordering::SeqCst);
        let cache = Cache::new(backend.clone(), "t:", TOMBSTONE_TTL);
        let calls = AtomicUsize::new(0);
        let loads = || calls.load(Ordering::SeqCst);
        let read = |hints, version| {
            let (cache, calls) = (&cache, &calls);
            async move {
                cache
                    .read_through_hinted(&THINGS, &[1u32, 2], hints, |ids| {
                        load_counting(calls, ids, version)
                    })
                    .await
                    .unwrap()
            }
        };
        read(None, 1).await;
        cache.invalidate(&[(THINGS.key(2), 2)]).await.unwrap();
        let (before, loaded) = (mgets(), loads());
        let mut ahead = cache.prefetch(&[THINGS.key(1), THINGS.key(2)]).await;
        assert_eq!(ahead.lifetime, HINT_LIFETIME);
        // Not a test of the clock: the loads below sleep.
        ahead.lifetime = Duration::from_secs(3600);
        assert_eq!(mgets(), before + 1);
        assert_eq!(ahead.len(), 1, "a tombstone is not a hint");

        // Thing 1 comes from its hint; tombstoned thing 2 is asked for (one
        // multi-get of it alone) and loaded at version 2, which fills.
        let got = read(Some(&ahead), 2).await;
        assert_eq!((got[&1].as_str(), got[&2].as_str()), ("v1", "v2"));
        assert_eq!(mgets(), before + 2, "one multi-get, for thing 2 only");
        assert_eq!(loads(), loaded + 1);
        assert_eq!(ahead.len(), 1, "the hint stays; the fill is no hint");

        // A second read in the same request takes thing 1 from its hint
        // again and asks the cache for thing 2, finding its fill: no load.
        let again = read(Some(&ahead), 3).await;
        assert_eq!((again[&1].as_str(), again[&2].as_str()), ("v1", "v2"));
        assert_eq!((mgets(), loads()), (before + 3, loaded + 1));

        // More hints in one multi-get: thing 2 (its fill) joins, thing 1
        // is not asked for again, a tombstone is left out.
        cache.invalidate(&[(THINGS.key(3), 9)]).await.unwrap();
        cache
            .prefetch_more(&ahead, &[THINGS.key(1), THINGS.key(2), THINGS.key(3)])
            .await;
        assert_eq!(mgets(), before + 4);
        assert_eq!(ahead.len(), 2);
        read(Some(&ahead), 3).await;
        assert_eq!(mgets(), before + 4, "both from hints");

        // Older than HINT_LIFETIME: asked for again.
        let aged = cache.prefetch(&[THINGS.key(1), THINGS.key(2)]).await;
        for (_, asked) in aged.values.lock().unwrap().values_mut() {
            *asked = asked.checked_sub(HINT_LIFETIME * 2).unwrap();
        }
        read(Some(&aged), 3).await;
        assert_eq!(
            mgets(),
            before + 6,
            "the prefetch, then one multi-get of both"
        );
        assert_eq!(aged.len(), 2, "expired, not removed");

        // Turned off: hints are not used.
        let ahead = cache.prefetch(&[THINGS.key(1)]).await;
        ahead.off();
        read(Some(&ahead), 3).await;
        assert_eq!(
            mgets(),
            before + 8,
            "the prefetch, then one multi-get of both"
        );
        assert_eq!(ahead.len(), 1, "its hint was left alone");
        cache.prefetch_more(&ahead, &[THINGS.key(2)]).await;
        assert_eq!((mgets(), ahead.len()), (before + 8, 1), "nor added to");

        // A failure after the prefetch: the hint may miss a tombstone that
        // could not be written, so it is not used, even once trusted again.
        let ahead = cache.prefetch(&[THINGS.key(1)]).await;
        cache.failed("test", &anyhow::anyhow!("a stall"));
        cache.trust_again(cache.failures());
        assert!(cache.is_trusted());
        read(Some(&ahead), 3).await;
        assert_eq!(mgets(), before + 10);
        assert_eq!(ahead.len(), 1, "its hint was left alone");
        cache.prefetch_more(&ahead, &[THINGS.key(2)]).await;
        assert_eq!((mgets(), ahead.len()), (before + 10, 1), "nor added to");
    }

    #[tokio::test]
    async fn a_request_that_saw_a_newer_tombstone_does_not_take_an_older_load() {
        use std::sync::atomic::AtomicUsize;
        let cache = Cache::memory("t:");
        let calls = AtomicUsize::new(0);
        // A leader reads version 1 slowly; meanwhile a write tombstones
        // version 2 and commits; then a request arrives and sees it.
        let leader = cache.read_through(&THINGS, &[5u32], |ids| load_counting(&calls, ids, 1));
        let follower = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            cache.invalidate(&[(THINGS.key(5), 2)]).await.unwrap();
            cache
                .read_through(&THINGS, &[5u32], |ids| load_counting(&calls, ids, 2))
                .await
        };
        let (old, new) = tokio::join!(leader, follower);
        assert_eq!(old.unwrap()[&5], "v1", "the leader began before the write");
        assert_eq!(new.unwrap()[&5], "v2", "the follower must see the write");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
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

    /// A backend that fails while `down` is set, holding its data meanwhile;
    /// `shared` makes it behave as Redis does (untrusted until synced).
    struct Flaky {
        inner: MemoryBackend,
        down: AtomicBool,
        shared: bool,
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
        fn shared(&self) -> bool {
            self.shared
        }
        async fn incarnation(&self) -> anyhow::Result<Option<String>> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn after_a_failure_reads_skip_the_cache_until_trusted_again() {
        use std::sync::atomic::AtomicUsize;
        let backend = Arc::new(Flaky {
            inner: MemoryBackend::new(),
            down: AtomicBool::new(false),
            shared: false,
        });
        let cache = Cache::new(backend.clone(), "t:", TOMBSTONE_TTL);
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
        let before = cache.failures();
        let unsettled = cache.invalidate(&[(THINGS.key(1), 2)]).await.unwrap_err();
        assert!(!cache.is_trusted());
        // The backend answers again, still holding the stale value: reads
        // go to the database until the queued invalidation is delivered.
        backend.down.store(false, Ordering::SeqCst);
        assert_eq!(read(2).await.unwrap()[&1], "v2", "not the stale v1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Not while the failed write has not settled, nor after a failure
        // the worker did not see.
        cache.trust_again(cache.failures());
        assert!(!cache.is_trusted(), "a write is unsettled");
        drop(unsettled);
        cache.trust_again(before);
        assert!(
            !cache.is_trusted(),
            "a failure came after the worker looked"
        );
        cache.invalidate(&[(THINGS.key(1), 2)]).await.unwrap();
        cache.trust_again(cache.failures());
        assert!(cache.is_trusted());
        assert_eq!(read(2).await.unwrap()[&1], "v2");
        assert_eq!(read(2).await.unwrap()[&1], "v2");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one fill, then hits");
    }

    #[tokio::test]
    async fn a_shared_cache_is_not_used_before_its_generation_is_known() {
        let backend = Arc::new(Flaky {
            inner: MemoryBackend::new(),
            down: AtomicBool::new(false),
            shared: true,
        });
        let cache = Cache::new(backend, "t:", TOMBSTONE_TTL);
        assert!(!cache.is_trusted(), "untrusted from the start");
        // A write before the first sync cannot know which generation replicas
        // read: it must queue its invalidation.
        let unsettled = cache.invalidate(&[(THINGS.key(1), 1)]).await.unwrap_err();
        drop(unsettled);
        cache.set_generation(3, None);
        assert_eq!(cache.generation(), 3);
        cache.trust_again(cache.failures());
        assert!(cache.is_trusted(), "the first sync sets no settling period");
        cache.invalidate(&[(THINGS.key(1), 1)]).await.unwrap();
        assert!(cache.key_of("user:1").starts_with("t:g3:"));

        // A later move, just now (by this replica or another): untrusted,
        // and not trusted again while it settles, even by a clean round.
        cache.set_generation(4, Some(chrono::Utc::now()));
        assert!(!cache.is_trusted());
        cache.trust_again(cache.failures());
        assert!(!cache.is_trusted(), "still settling");
        cache.set_generation(2, None);
        assert_eq!(cache.generation(), 4, "never back");

        // A replica that starts long after a move settles no more.
        let fresh = Cache::new(
            Arc::new(Flaky {
                inner: MemoryBackend::new(),
                down: AtomicBool::new(false),
                shared: true,
            }),
            "t:",
            TOMBSTONE_TTL,
        );
        let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        fresh.set_generation(4, Some(long_ago));
        fresh.trust_again(fresh.failures());
        assert!(fresh.is_trusted());
    }
}

//! argon2id hashing that never runs on the async runtime's worker threads
//! and never grows the process.
//!
//! Hashes run on a fixed set of dedicated threads, one per core. Each thread
//! owns the argon2 memory (19 MiB at OWASP's parameters) and reuses it for
//! every hash, so a login storm costs `cores × m` of memory once, instead of
//! leaving one freshly allocated block per blocking thread in the
//! allocator's arenas. Work reaches the threads through a bounded queue: when
//! it is full the caller is told to come back (`RATE_LIMITED`) at once, and a
//! job whose caller has gone (timeout, disconnect) is skipped, so a storm
//! can neither starve `/health` nor pile up hashes nobody waits for.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    Ident, Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, oneshot};

use crate::config::Argon2Params;
use crate::domain::types::Password;
use crate::error::AppError;

/// Jobs that may wait per hashing thread before callers are shed: about a
/// second of work at OWASP's parameters (~30 ms a hash). Shorter, and a
/// burst of logins from many clients is mostly turned away while the
/// threads have work for only a moment; each refusal still costs a parse
/// and a round trip, and the clients come straight back. Longer, and a
/// caller could wait out its request timeout.
const QUEUE_PER_THREAD: usize = 32;
/// The hashing threads' nice value: under a login storm, every other thread
/// of the process (probes, reads, the runtime) runs first, and argon2 takes
/// what is left, which on a busy machine is still almost all of it.
#[cfg(target_os = "linux")]
const HASHING_NICE: libc::c_int = 10;
/// How much costlier than ours a stored hash may be and still be verified
/// (in memory), and the memory any stored hash may use regardless, so that
/// lowering our cost never locks out users hashed at the old one.
const FOREIGN_COST_FACTOR: usize = 4;
const FOREIGN_MEMORY_FLOOR_KIB: usize = 64 * 1024;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, and the stored hash is weaker than today's parameters: a new
    /// hash to store.
    YesRehashed(String),
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

struct Inner {
    params: Argon2Params,
    queue: SyncSender<Job>,
    dummy_hash: OnceCell<String>,
    hashes_computed: Arc<AtomicU64>,
    threads: usize,
    /// Jobs queued or running.
    pending: Arc<AtomicUsize>,
    /// How long a job takes, on average (nanoseconds; 0 before the first).
    job_nanos: Arc<AtomicU64>,
    /// The longest a new job may expect to wait before it runs
    /// (nanoseconds): beyond it the caller is shed at once rather than left
    /// to wait out its request timeout.
    max_wait: AtomicU64,
}

/// Counts a job as pending until it has run, or was dropped unrun.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    /// Starts one hashing thread per core (they end when the hasher is dropped).
    pub fn new(params: Argon2Params) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_threads(params, threads)
    }

    /// As [`PasswordHasher::new`], with a chosen number of threads.
    pub fn with_threads(params: Argon2Params, threads: usize) -> Self {
        Self::with_queue(params, threads, QUEUE_PER_THREAD)
    }

    fn with_queue(params: Argon2Params, threads: usize, per_thread: usize) -> Self {
        let threads = threads.max(1);
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(threads * per_thread);
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..threads {
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&jobs));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            inner: Arc::new(Inner {
                params,
                queue,
                dummy_hash: OnceCell::new(),
                hashes_computed: Arc::new(AtomicU64::new(0)),
                threads,
                pending: Arc::new(AtomicUsize::new(0)),
                job_nanos: Arc::new(AtomicU64::new(0)),
                max_wait: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// Sheds a caller at once when the jobs ahead of it would keep it
    /// waiting longer than `max_wait` (the server sets half its request
    /// timeout), judged by how long jobs have taken so far.
    pub fn set_max_wait(&self, max_wait: Duration) {
        let nanos = u64::try_from(max_wait.as_nanos()).unwrap_or(u64::MAX);
        self.inner.max_wait.store(nanos, Ordering::Relaxed);
    }

    /// The wait a job queued now may expect: the jobs ahead of it beyond
    /// the free threads, shared by the threads.
    fn expected_wait(&self, ahead: usize) -> u64 {
        let threads = self.inner.threads as u64;
        let beyond = (ahead as u64 + 1).saturating_sub(threads);
        beyond.saturating_mul(self.inner.job_nanos.load(Ordering::Relaxed)) / threads
    }

    /// How many hashes or verifications ran (tests use it to prove that a
    /// refused input never reached the hasher).
    pub fn operations(&self) -> u64 {
        self.inner.hashes_computed.load(Ordering::Relaxed)
    }

    /// Queues `work` for a hashing thread and waits for its answer.
    ///
    /// # Errors
    /// `RATE_LIMITED` when the queue is full: shedding at once beats making
    /// the caller wait out its request timeout.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let (tx, rx) = oneshot::channel();
        let span = tracing::info_span!("argon2");
        let counter = Arc::clone(&self.inner.hashes_computed);
        let ahead = self.inner.pending.fetch_add(1, Ordering::SeqCst);
        let pending = Pending(Arc::clone(&self.inner.pending));
        if self.expected_wait(ahead) > self.inner.max_wait.load(Ordering::Relaxed) {
            metrics::counter!("usergraph_auth_shed_total").increment(1);
            return Err(AppError::RateLimited { retry_after: 1 });
        }
        let job_nanos = Arc::clone(&self.inner.job_nanos);
        let job: Job = Box::new(move |memory| {
            let pending = pending;
            // The caller gave up (timeout, disconnect): nobody needs this hash.
            if tx.is_closed() {
                return;
            }
            counter.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = span.in_scope(|| work(memory));
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let average = job_nanos.load(Ordering::Relaxed);
            let average = if average == 0 {
                took
            } else {
                average / 8 * 7 + took / 8
            };
            job_nanos.store(average, Ordering::Relaxed);
            // Done before the caller hears of it: its next job must not
            // find this one still counted ahead of it.
            drop(pending);
            let _ = tx.send(outcome);
        });
        match self.inner.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("usergraph_auth_shed_total").increment(1);
                return Err(AppError::RateLimited { retry_after: 1 });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AppError::internal(anyhow::anyhow!(
                    "the password hashing threads are gone"
                )));
            }
        }
        rx.await
            .map_err(|_| AppError::internal(anyhow::anyhow!("password hashing job was dropped")))?
    }

    /// Hashes a password into an argon2id PHC string.
    ///
    /// # Errors
    /// `RATE_LIMITED` when the hashing queue is full; `Internal` if hashing fails.
    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let params = self.inner.params;
        let secret = password.expose().to_owned();
        self.run(move |memory| hash_phc(params, &secret, memory))
            .await
    }

    /// Verifies `password` against `stored`; on success, tells whether the
    /// stored hash should be replaced by a stronger one.
    ///
    /// # Errors
    /// `RATE_LIMITED` when the hashing queue is full; `Internal` if the stored
    /// hash cannot be parsed.
    pub async fn verify(&self, password: &Password, stored: &str) -> Result<Verified, AppError> {
        let params = self.inner.params;
        let secret = password.expose().to_owned();
        let stored = stored.to_owned();
        self.run(move |memory| {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash: {e}")))?;
            let limit = our_params(params)?.block_count();
            if !verify_phc(&parsed, &secret, memory, limit)? {
                return Ok(Verified::No);
            }
            if is_weaker(&parsed, params) {
                Ok(Verified::YesRehashed(hash_phc(params, &secret, memory)?))
            } else {
                Ok(Verified::Yes)
            }
        })
        .await
    }

    /// Computes the dummy hash ahead of the first unknown-email login, so that
    /// one costs what every other failed login costs. Called at start.
    ///
    /// # Errors
    /// `Internal` if hashing fails.
    pub async fn warm_up(&self) -> Result<(), AppError> {
        self.dummy().await.map(|_| ())
    }

    async fn dummy(&self) -> Result<String, AppError> {
        Ok(self
            .inner
            .dummy_hash
            .get_or_try_init(|| async {
                let params = self.inner.params;
                self.run(move |memory| hash_phc(params, "usergraph dummy password", memory))
                    .await
            })
            .await?
            .clone())
    }

    /// Spends the time of one verification against a dummy hash, so that an
    /// unknown email costs what a wrong password costs (no account enumeration
    /// by timing).
    ///
    /// # Errors
    /// `RATE_LIMITED` when the hashing queue is full.
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), AppError> {
        let dummy = self.dummy().await?;
        self.verify(password, &dummy).await.map(|_| ())
    }
}

/// One hashing thread: takes jobs until the hasher is dropped. Its argon2
/// memory is allocated at the first job and reused by every later one. A
/// job that panics fails its own request only (its caller sees the answer
/// channel close): the thread lives on, so the pool never shrinks.
fn hashing_thread(jobs: &Mutex<Receiver<Job>>) {
    lower_priority();
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
        if ran.is_err() {
            tracing::error!("a password hashing job panicked");
            memory = Vec::new();
        }
    }
}

/// Lowers this thread's scheduling priority (see [`HASHING_NICE`]); a
/// refusal (a seccomp profile, say) leaves it as it was.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid, getpriority and setpriority take and return plain
    // integers and touch only this thread's scheduling attributes.
    let done = unsafe {
        #[allow(clippy::cast_sign_loss)]
        let tid = libc::gettid() as libc::id_t;
        // Never raise it: a process started at a lower priority stays there
        // (an error reads as -1, which only means setting ours).
        if libc::getpriority(libc::PRIO_PROCESS, tid) >= HASHING_NICE {
            return;
        }
        libc::setpriority(libc::PRIO_PROCESS, tid, HASHING_NICE)
    };
    if done != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "could not lower the hashing thread's priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn internal(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("{what}: {e}"))
}

/// Runs argon2 in the thread's `memory`, growing it up to `limit` blocks (our
/// configured cost). A stored hash that needs more than that (up to
/// [`FOREIGN_COST_FACTOR`] times) is computed in memory of its own, freed
/// afterwards, so one odd hash cannot pin it; a costlier one is refused
/// rather than risk the process's memory on one login.
fn compute(
    argon: &Argon2<'_>,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
    limit: usize,
) -> Result<(), AppError> {
    let need = argon.params().block_count();
    if need
        > limit
            .saturating_mul(FOREIGN_COST_FACTOR)
            .max(FOREIGN_MEMORY_FLOOR_KIB)
    {
        return Err(internal(
            "stored hash",
            format!("needs {need} KiB of memory, over the limit for stored hashes"),
        ));
    }
    if need > limit {
        let mut own = vec![Block::default(); need];
        return argon
            .hash_password_into_with_memory(secret, salt, out, &mut own)
            .map_err(|e| internal("argon2", e));
    }
    if memory.len() < need {
        memory.resize(need, Block::default());
    }
    argon
        .hash_password_into_with_memory(secret, salt, out, &mut memory[..need])
        .map_err(|e| internal("argon2", e))
}

fn our_params(params: Argon2Params) -> Result<Params, AppError> {
    Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| internal("argon2 params", e))
}

/// Hashes into an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
fn hash_phc(
    params: Argon2Params,
    secret: &str,
    memory: &mut Vec<Block>,
) -> Result<String, AppError> {
    let p = our_params(params)?;
    let limit = p.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| internal("salt", e))?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        compute(&argon, secret.as_bytes(), salt_bytes, out, memory, limit)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| internal("argon2 hash", e))?;
    let hash = PasswordHash {
        algorithm: Ident::new("argon2id").map_err(|e| internal("ident", e))?,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&p).map_err(|e| internal("params", e))?,
        salt: Some(Salt::from(&salt)),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Recomputes a stored PHC hash with its own algorithm, version and costs,
/// and compares in constant time (`Output`'s equality).
fn verify_phc(
    stored: &PasswordHash<'_>,
    secret: &str,
    memory: &mut Vec<Block>,
    limit: usize,
) -> Result<bool, AppError> {
    let algorithm = Algorithm::try_from(stored.algorithm).map_err(|e| internal("algorithm", e))?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| internal("version", e))?
        .unwrap_or_default();
    let expected = stored
        .hash
        .ok_or_else(|| internal("stored hash", "no output"))?;
    let salt = stored
        .salt
        .ok_or_else(|| internal("stored hash", "no salt"))?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| internal("salt", e))?;
    let params = Params::try_from(stored).map_err(|e| internal("params", e))?;
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(expected.len()),
    )
    .map_err(|e| internal("params", e))?;
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    compute(
        &argon,
        secret.as_bytes(),
        salt_bytes,
        &mut out,
        memory,
        limit,
    )?;
    let computed = Output::new(&out).map_err(|e| internal("output", e))?;
    Ok(computed == expected)
}

/// True when the stored hash is not argon2id or any cost is below `params`.
fn is_weaker(hash: &PasswordHash<'_>, params: Argon2Params) -> bool {
    if hash.algorithm.as_str() != "argon2id" {
        return true;
    }
    let get = |name: &str| hash.params.get_decimal(name).unwrap_or(0);
    get("m") < params.memory_kib || get("t") < params.iterations || get("p") < params.parallelism
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::{EmailAddress, Password};

    const CHEAP: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pw(s: &str) -> Password {
        Password::new_checked(
            s,
            &EmailAddress::parse("x@example.com").unwrap(),
            "password",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(CHEAP);
        let h = hasher.hash(&pw("a fine passphrase")).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&pw("a fine passphrase"), &h).await.unwrap(),
            Verified::Yes
        );
        assert_eq!(
            hasher.verify(&pw("another passphrase"), &h).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn weaker_hashes_are_rehashed() {
        let weak = PasswordHasher::new(CHEAP)
            .hash(&pw("a fine passphrase"))
            .await
            .unwrap();
        let strong = PasswordHasher::new(Argon2Params {
            memory_kib: 128,
            iterations: 2,
            parallelism: 1,
        });
        match strong
            .verify(&pw("a fine passphrase"), &weak)
            .await
            .unwrap()
        {
            Verified::YesRehashed(new) => assert!(new.contains("m=128,t=2,p=1")),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(CHEAP);
        let ours = hasher.hash(&pw("a fine passphrase")).await.unwrap();
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        argon
            .verify_password(b"a fine passphrase", &PasswordHash::new(&ours).unwrap())
            .expect("the crate verifies our hash");
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon
            .hash_password(b"a fine passphrase", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            hasher
                .verify(&pw("a fine passphrase"), &theirs)
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(
            hasher
                .verify(&pw("another passphrase"), &theirs)
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn a_full_queue_sheds_at_once() {
        let slow = Argon2Params {
            memory_kib: 8192,
            iterations: 8,
            parallelism: 1,
        };
        let hasher = PasswordHasher::with_queue(slow, 1, 4);
        let jobs: Vec<_> = (0..20)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash(&pw("a fine passphrase")).await })
            })
            .collect();
        let mut shed = 0;
        let mut done = 0;
        for job in jobs {
            match job.await.unwrap() {
                Ok(_) => done += 1,
                Err(AppError::RateLimited { retry_after }) => {
                    assert!(retry_after >= 1);
                    shed += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!((1..=1 + 4).contains(&done), "{done} done");
        assert_eq!(shed + done, 20);
    }

    #[tokio::test]
    async fn a_caller_who_would_wait_too_long_is_shed_at_once() {
        let slow = Argon2Params {
            memory_kib: 8192,
            iterations: 8,
            parallelism: 1,
        };
        let hasher = PasswordHasher::with_threads(slow, 1);
        hasher.set_max_wait(Duration::from_millis(1));
        // The first job teaches the hasher how long a job takes.
        hasher.hash(&pw("a fine passphrase")).await.unwrap();
        let jobs: Vec<_> = (0..5)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash(&pw("a fine passphrase")).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for job in jobs {
            outcomes.push(matches!(
                job.await.unwrap(),
                Err(AppError::RateLimited { .. })
            ));
        }
        // The queue has room for 32, but a job behind the running one
        // would wait a whole hash: only the first runs.
        assert_eq!(outcomes, [false, true, true, true, true]);
        assert_eq!(hasher.inner.pending.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn default_parameters_are_owasp() {
        assert_eq!(
            Argon2Params::OWASP,
            Argon2Params {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
    }
}

//! argon2id hashing that never runs on the async runtime's worker threads.
//!
//! Every hash and verify runs on tokio's blocking pool behind a semaphore
//! sized to the cores, so a login storm queues here instead of starving
//! `/health` or the rest of the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};
use tracing::Instrument as _;

use crate::config::Argon2Params;
use crate::domain::types::Password;
use crate::error::AppError;

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

struct Inner {
    params: Argon2Params,
    permits: Arc<Semaphore>,
    dummy_hash: OnceCell<String>,
    hashes_computed: AtomicU64,
}

impl PasswordHasher {
    pub fn new(params: Argon2Params) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                params,
                permits: Arc::new(Semaphore::new(cores)),
                dummy_hash: OnceCell::new(),
                hashes_computed: AtomicU64::new(0),
            }),
        }
    }

    fn argon2(params: Argon2Params) -> Result<Argon2<'static>, AppError> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 params: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }

    /// How many hashes or verifications ran (tests use it to prove that a
    /// refused input never reached the hasher).
    pub fn operations(&self) -> u64 {
        self.inner.hashes_computed.load(Ordering::Relaxed)
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        // The permit moves into the blocking task: if the request is cancelled
        // (timeout, client gone) the hash still holds its permit until it is
        // done, so cancelled requests cannot pile up hashes beyond the cores.
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(AppError::internal)?;
        self.inner.hashes_computed.fetch_add(1, Ordering::Relaxed);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .instrument(tracing::info_span!("argon2"))
        .await
        .context("password hashing task")?
    }

    /// Hashes a password into an argon2id PHC string.
    ///
    /// # Errors
    /// `Internal` only if the hashing task fails.
    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let params = self.inner.params;
        let secret = password.expose().to_owned();
        self.run(move || hash_blocking(params, &secret)).await
    }

    /// Verifies `password` against `stored`; on success, tells whether the
    /// stored hash should be replaced by a stronger one.
    ///
    /// # Errors
    /// `Internal` if the stored hash cannot be parsed or the task fails.
    pub async fn verify(&self, password: &Password, stored: &str) -> Result<Verified, AppError> {
        let params = self.inner.params;
        let secret = password.expose().to_owned();
        let stored = stored.to_owned();
        self.run(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash: {e}")))?;
            let argon = Self::argon2(params)?;
            if argon.verify_password(secret.as_bytes(), &parsed).is_err() {
                return Ok(Verified::No);
            }
            if is_weaker(&parsed, params) {
                Ok(Verified::YesRehashed(hash_blocking(params, &secret)?))
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
    /// `Internal` if the hashing task fails.
    pub async fn warm_up(&self) -> Result<(), AppError> {
        self.dummy().await.map(|_| ())
    }

    async fn dummy(&self) -> Result<String, AppError> {
        Ok(self
            .inner
            .dummy_hash
            .get_or_try_init(|| async {
                let params = self.inner.params;
                self.run(move || hash_blocking(params, "usergraph dummy password"))
                    .await
            })
            .await?
            .clone())
    }

    /// Spends the time of one verification against a dummy hash, so that an
    /// unknown email costs what a wrong password costs (no account enumeration
    /// by timing).
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), AppError> {
        let dummy = self.dummy().await?;
        self.verify(password, &dummy).await.map(|_| ())
    }
}

fn hash_blocking(params: Argon2Params, secret: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    PasswordHasher::argon2(params)?
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash: {e}")))
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

//! Opaque random tokens (refresh, email verification, password reset).
//!
//! A token is random bytes in base64url; only its SHA-256 is stored. The
//! tokens carry ≥ 128 bits of entropy, so a plain hash (no salt, no slow KDF)
//! is enough: nothing can be brute-forced from the stored value.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A freshly generated token and the hash to store for it.
pub struct NewToken {
    pub token: String,
    pub hash: String,
}

/// 256 bits: refresh tokens.
pub const REFRESH_TOKEN_BYTES: usize = 32;
/// 256 bits: email verification and password reset (≥ 128 required).
pub const EMAIL_TOKEN_BYTES: usize = 32;
/// No legitimate token is longer; a longer input is refused without hashing.
pub const MAX_TOKEN_LEN: usize = 128;

pub fn generate(bytes: usize) -> NewToken {
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(&raw);
    let hash = hash(&token);
    NewToken { token, hash }
}

/// SHA-256 of the token, base64url: the value stored and looked up.
pub fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate(REFRESH_TOKEN_BYTES);
        let b = generate(REFRESH_TOKEN_BYTES);
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 43);
        assert_eq!(hash(&a.token), a.hash);
        assert_ne!(a.token, a.hash);
    }
}

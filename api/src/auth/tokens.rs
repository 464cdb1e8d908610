//! Opaque random tokens (refresh, email verification, password reset).
//!
//! A token is random bytes in base64url; only its SHA-256 is stored. The
//! tokens carry ≥ 128 bits of entropy, so a plain hash (no salt, no slow KDF)
//! is enough: nothing can be brute-forced from the stored value.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
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

/// Encrypts `plaintext` under a key derived from `token` (ChaCha20-Poly1305,
/// random nonce): what a refresh token was exchanged for is kept only this
/// way, so the stored value opens only for someone who holds the token.
pub fn seal(token: &str, plaintext: &[u8]) -> String {
    let cipher = ChaCha20Poly1305::new(&sealing_key(token));
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let Ok(sealed) = cipher.encrypt(&Nonce::from(nonce), plaintext) else {
        // Encryption fails only for inputs of gigabytes.
        return String::new();
    };
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

/// Opens what [`seal`] made with the same token; `None` for anything else.
pub fn open(token: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, body) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    ChaCha20Poly1305::new(&sealing_key(token))
        .decrypt(&Nonce::from(nonce), body)
        .ok()
}

/// Not the stored lookup hash: a distinct, labelled derivation.
fn sealing_key(token: &str) -> Key {
    let mut hasher = Sha256::new();
    hasher.update(b"usergraph/refresh-successor/v1\0");
    hasher.update(token.as_bytes());
    Key::from(<[u8; 32]>::from(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_token() {
        let a = generate(REFRESH_TOKEN_BYTES);
        let b = generate(REFRESH_TOKEN_BYTES);
        let sealed = seal(&a.token, b"pair");
        assert!(!sealed.contains("pair"));
        assert_eq!(open(&a.token, &sealed).as_deref(), Some(&b"pair"[..]));
        assert_eq!(open(&b.token, &sealed), None);
        assert_eq!(open(&a.token, "garbage"), None);
        assert_ne!(seal(&a.token, b"pair"), sealed, "a fresh nonce each time");
    }

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

//! Credentials: argon2id password hashing on a bounded blocking pool,
//! JWT access tokens (HS256 or EdDSA) with their JWKS, and opaque random
//! tokens stored only as hashes.

pub mod jwt;
pub mod password;
pub mod tokens;

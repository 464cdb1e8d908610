//! JWT access tokens: signing, verification and the JWKS.
//!
//! The algorithm is pinned by configuration (HS256 for `JWT_SECRET`, EdDSA
//! for `JWT_PRIVATE_KEY_FILE`): a token whose header names any other
//! algorithm, `none` included, is refused before its signature is looked at.
//! `iss`, `aud`, `exp`, `sub` and `sid` are required.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{JwtConfig, JwtKeySource};
use crate::error::AppError;

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Signing and verifying keys plus the public JWKS document.
pub struct JwtKeys {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    jwks: serde_json::Value,
    issuer: String,
    audience: String,
    access_ttl: Duration,
}

/// Checks that a PEM holds an Ed25519 private key (PKCS#8).
///
/// # Errors
/// A message for the operator when it does not.
pub fn check_ed25519_pem(pem: &str) -> Result<(), String> {
    ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .map(|_| ())
        .map_err(|e| format!("not an Ed25519 private key in PKCS#8 PEM ({e})"))
}

impl JwtKeys {
    /// Builds the keys from configuration.
    ///
    /// # Errors
    /// When the configured key cannot be used (already checked at config time).
    pub fn from_config(config: &JwtConfig) -> anyhow::Result<Self> {
        let (algorithm, encoding, decoding, kid, jwks) = match &config.key {
            JwtKeySource::Secret(secret) => {
                let bytes = secret.expose().as_bytes();
                hmac_keys(bytes)
            }
            JwtKeySource::DevRandom => {
                tracing::warn!(
                    "JWT_SECRET is not set: signing tokens with a random per-process key. \
                     Tokens die with the process and replicas cannot share them; set JWT_SECRET."
                );
                let mut bytes = [0u8; 32];
                OsRng.fill_bytes(&mut bytes);
                hmac_keys(&bytes)
            }
            JwtKeySource::Ed25519Pem { pem, .. } => {
                let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.expose())
                    .map_err(|e| anyhow::anyhow!("JWT_PRIVATE_KEY_FILE: {e}"))?;
                let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
                // RFC 7638 thumbprint as the key id, so rotation can publish two keys.
                let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
                let encoding = EncodingKey::from_ed_pem(pem.expose().as_bytes())?;
                let decoding = DecodingKey::from_ed_components(&x)?;
                let jwks = serde_json::json!({ "keys": [{
                    "kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": kid,
                }]});
                (Algorithm::EdDSA, encoding, decoding, kid, jwks)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            algorithm,
            kid,
            encoding,
            decoding,
            validation,
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
        })
    }

    /// The JWKS document: public keys only, empty for HS256.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Signs an access token for `user_id` in session `session_id`.
    ///
    /// # Errors
    /// `Internal` if signing fails.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid: session_id,
            iat: now,
            exp: now + ttl,
            jti: Uuid::now_v7(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AppError::internal(anyhow::Error::new(e).context("signing a JWT")))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for any token that does not pass.
    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        if token.len() > 4096 {
            return Err(AppError::Unauthenticated("Invalid access token".into()));
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AppError::Unauthenticated("Access token expired".into())
                }
                _ => AppError::Unauthenticated("Invalid access token".into()),
            })
    }
}

type KeyParts = (
    Algorithm,
    EncodingKey,
    DecodingKey,
    String,
    serde_json::Value,
);

fn hmac_keys(bytes: &[u8]) -> KeyParts {
    // The kid names the key without revealing it: a hash prefix.
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(bytes)[..8]);
    (
        Algorithm::HS256,
        EncodingKey::from_secret(bytes),
        DecodingKey::from_secret(bytes),
        kid,
        serde_json::json!({ "keys": [] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(key: JwtKeySource) -> JwtConfig {
        JwtConfig {
            key,
            issuer: "usergraph".into(),
            audience: "usergraph".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(86400),
            reuse_interval: Duration::from_secs(5),
        }
    }

    #[test]
    fn hs256_round_trip_and_empty_jwks() {
        let keys = JwtKeys::from_config(&config(JwtKeySource::Secret(Secret::new("x".repeat(32)))))
            .unwrap();
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let claims = keys.verify(&keys.issue(user, session).unwrap()).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn other_keys_and_audiences_are_refused() {
        let a = JwtKeys::from_config(&config(JwtKeySource::Secret(Secret::new("a".repeat(32)))))
            .unwrap();
        let b = JwtKeys::from_config(&config(JwtKeySource::Secret(Secret::new("b".repeat(32)))))
            .unwrap();
        let token = a.issue(Uuid::now_v7(), Uuid::now_v7()).unwrap();
        assert!(b.verify(&token).is_err());
        let mut other_aud = config(JwtKeySource::Secret(Secret::new("a".repeat(32))));
        other_aud.audience = "someone-else".into();
        let c = JwtKeys::from_config(&other_aud).unwrap();
        assert!(c.verify(&token).is_err());
    }

    #[test]
    fn eddsa_publishes_its_key() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let pem = signing
            .to_pkcs8_pem(Default::default())
            .unwrap()
            .to_string();
        let keys = JwtKeys::from_config(&config(JwtKeySource::Ed25519Pem {
            path: "k.pem".into(),
            pem: Secret::new(pem),
        }))
        .unwrap();
        let token = keys.issue(Uuid::now_v7(), Uuid::now_v7()).unwrap();
        assert!(keys.verify(&token).is_ok());
        let jwk = &keys.jwks()["keys"][0];
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["alg"], "EdDSA");
        assert!(jwk.get("d").is_none());
    }
}

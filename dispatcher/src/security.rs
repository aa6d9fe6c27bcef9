//! Secrets and tokens: how credentials are made, stored and checked.
//!
//! - Provider API keys (`rk_…`) and session tokens (`st_…`) are 256-bit random values;
//!   only their SHA-256 is stored (a fast hash suffices for values no one can guess).
//! - Passwords are stored as argon2id PHC strings; hashing runs off the async runtime.
//! - Customer tokens (`ct_…`) are not stored at all: they carry the case id and an
//!   HMAC-SHA256 of it under the server secret, so a retried request can be answered with
//!   the same token and a stolen database reveals none.
//! - Comparisons of secrets are constant-time.

use std::path::Path;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::CaseId;
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Prefix of provider API keys.
pub const API_KEY_PREFIX: &str = "rk_";
/// Prefix of console session tokens.
pub const SESSION_PREFIX: &str = "st_";
/// Prefix of customer tokens.
pub const CUSTOMER_PREFIX: &str = "ct_";

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A new random token with `prefix`: 32 random bytes, base64url.
pub fn random_token(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|error| anyhow::anyhow!("hashing password: {error}"))?;
    Ok(hash.to_string())
}

/// Checks a password against its PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A hash of a password no one has, verified when a username is unknown so that a login
/// takes as long for a missing user as for a wrong password.
pub fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that is never used").unwrap_or_default())
}

/// Constant-time equality of two secrets of any length (compares their digests).
pub fn secrets_equal(given: &str, expected: &str) -> bool {
    sha256(given.as_bytes())
        .ct_eq(&sha256(expected.as_bytes()))
        .into()
}

/// The server secret and what is derived from it.
#[derive(Clone)]
pub struct Keys {
    secret: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Keys from a 32-byte secret.
    pub fn from_secret(secret: [u8; 32]) -> Keys {
        Keys { secret }
    }

    /// The secret from `RESCUE_SECRET_KEY` (hex) when given, else from the key file,
    /// which is created with a new random secret (mode 0600) when missing.
    pub fn load(from_env: Option<&SecretString>, key_file: &Path) -> anyhow::Result<Keys> {
        if let Some(hex_key) = from_env {
            let bytes =
                hex::decode(hex_key.expose_secret()).context("RESCUE_SECRET_KEY is not hex")?;
            let secret: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("RESCUE_SECRET_KEY must be 32 bytes"))?;
            return Ok(Keys::from_secret(secret));
        }
        match std::fs::read_to_string(key_file) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .with_context(|| format!("key file {} is not hex", key_file.display()))?;
                let secret: [u8; 32] = bytes.try_into().map_err(|_| {
                    anyhow::anyhow!("key file {} must hold 32 bytes", key_file.display())
                })?;
                Ok(Keys::from_secret(secret))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret)
                    .map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
                write_private_file(key_file, &hex::encode(secret))
                    .with_context(|| format!("creating key file {}", key_file.display()))?;
                tracing::warn!(
                    path = %key_file.display(),
                    "created a new server secret; set RESCUE_SECRET_KEY to share one across instances"
                );
                Ok(Keys::from_secret(secret))
            }
            Err(error) => {
                Err(error).with_context(|| format!("reading key file {}", key_file.display()))
            }
        }
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A key for `purpose` derived from the server secret (HMAC-SHA256), so each use of
    /// the secret gets its own key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        self.mac("derived-key", purpose.as_bytes())
    }

    /// A provider's webhook signing secret of one generation: `whsec_` +
    /// base64url(HMAC-SHA256(secret, "webhook-secret" ‖ provider id ‖ generation)).
    /// Derived, never stored; rotating the secret moves the generation on.
    pub fn webhook_secret(&self, provider: domain::ProviderId, generation: u32) -> String {
        let mut data = provider.as_uuid().into_bytes().to_vec();
        data.extend_from_slice(&generation.to_be_bytes());
        format!(
            "whsec_{}",
            URL_SAFE_NO_PAD.encode(self.mac("webhook-secret", &data))
        )
    }

    /// The customer token of a case: `ct_` + base64url(case id ‖ first 16 bytes of
    /// HMAC-SHA256(secret, "customer-token" ‖ case id)).
    pub fn customer_token(&self, case_id: CaseId) -> String {
        let id = case_id.as_uuid().into_bytes();
        let mac = self.mac("customer-token", &id);
        let mut token = [0u8; 32];
        token[..16].copy_from_slice(&id);
        token[16..].copy_from_slice(&mac[..16]);
        format!("{CUSTOMER_PREFIX}{}", URL_SAFE_NO_PAD.encode(token))
    }

    /// The case a customer token is for, if the token is genuine.
    pub fn verify_customer_token(&self, token: &str) -> Option<CaseId> {
        let encoded = token.strip_prefix(CUSTOMER_PREFIX)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if bytes.len() != 32 {
            return None;
        }
        let (id, given_mac) = bytes.split_at(16);
        let expected = self.mac("customer-token", id);
        if bool::from(given_mac.ct_eq(&expected[..16])) {
            let id: [u8; 16] = id.try_into().ok()?;
            Some(CaseId(uuid::Uuid::from_bytes(id)))
        } else {
            None
        }
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_token_verifies_for_its_case_only() {
        let keys = Keys::from_secret([9; 32]);
        let case = CaseId::new_v7();
        let token = keys.customer_token(case);
        assert!(token.starts_with("ct_"));
        assert_eq!(keys.verify_customer_token(&token), Some(case));
        assert_eq!(keys.customer_token(case), token, "deterministic");
        // Another server secret does not accept it.
        assert_eq!(
            Keys::from_secret([8; 32]).verify_customer_token(&token),
            None
        );
    }

    #[test]
    fn a_tampered_customer_token_is_refused() {
        let keys = Keys::from_secret([9; 32]);
        let token = keys.customer_token(CaseId::new_v7());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token[3..]).unwrap();
        bytes[3] ^= 1; // another case id, same MAC
        let forged = format!("ct_{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(keys.verify_customer_token(&forged), None);
        assert_eq!(keys.verify_customer_token("ct_short"), None);
        assert_eq!(keys.verify_customer_token("rk_whatever"), None);
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn random_tokens_differ_and_carry_their_prefix() {
        let a = random_token(API_KEY_PREFIX).unwrap();
        let b = random_token(API_KEY_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("rk_") && a.len() == 3 + 43);
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rescue.key");
        let first = Keys::load(None, &path).unwrap();
        let second = Keys::load(None, &path).unwrap();
        assert_eq!(first.secret, second.secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}

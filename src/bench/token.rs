//! Tokens for logins with identity (`--token-key`): the key a backend would sign with — a PEM private key
//! (RSA: RS256, EC P-256: ES256) or else an HS256 secret, the file's bytes — and one token per client, minted
//! before the clock starts so that what is measured is the server's verification, not the bench's signing.

use std::fmt;
use std::path::Path;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

/// How long the minted tokens are valid.
const VALID_SECS: u64 = 3600;

/// Why a token key cannot be used.
#[derive(Debug)]
pub enum TokenKeyError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file is empty.
    Empty,
    /// A PEM file that is no RSA or EC private key.
    Pem(String),
}

impl fmt::Display for TokenKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKeyError::Read(e) => write!(f, "cannot read it: {e}"),
            TokenKeyError::Empty => f.write_str("it is empty"),
            TokenKeyError::Pem(e) => write!(f, "a PEM file, but no RSA or EC private key: {e}"),
        }
    }
}

impl std::error::Error for TokenKeyError {}

/// The key the bench signs its clients' tokens with.
#[derive(Clone)]
pub struct TokenKey {
    key: EncodingKey,
    algorithm: Algorithm,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Reads the key file at `path`.
    pub fn load(path: &Path) -> Result<TokenKey, TokenKeyError> {
        TokenKey::from_bytes(&std::fs::read(path).map_err(TokenKeyError::Read)?)
    }

    /// A PEM private key (EC first, then RSA), or else an HS256 secret.
    pub fn from_bytes(bytes: &[u8]) -> Result<TokenKey, TokenKeyError> {
        if bytes.is_empty() {
            return Err(TokenKeyError::Empty);
        }
        if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Ok(TokenKey { key: EncodingKey::from_secret(bytes), algorithm: Algorithm::HS256 });
        }
        if let Ok(key) = EncodingKey::from_ec_pem(bytes) {
            return Ok(TokenKey { key, algorithm: Algorithm::ES256 });
        }
        EncodingKey::from_rsa_pem(bytes)
            .map(|key| TokenKey { key, algorithm: Algorithm::RS256 })
            .map_err(|e| TokenKeyError::Pem(e.to_string()))
    }

    /// The algorithm its tokens name.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A token for the account `user_id`, valid for an hour from `now` (seconds since the epoch).
    pub fn mint(&self, user_id: &str, now: u64) -> String {
        let claims = serde_json::json!({"sub": user_id, "exp": now + VALID_SECS});
        // Signing a small JSON object with a key that loaded cannot fail; an empty token would be refused
        // by the server and show up as a failed login.
        encode(&Header::new(self.algorithm), &claims, &self.key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::identity::{AuthKey, Verifier};

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/jwt/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn minted_tokens_verify_with_the_servers_half_of_the_key() {
        for (private, public, alg) in [
            (data("es256-private.pem"), data("es256-public.pem"), Algorithm::ES256),
            (data("rs256-private.pem"), data("rs256-public.pem"), Algorithm::RS256),
            (b"s3cret".to_vec(), b"s3cret".to_vec(), Algorithm::HS256),
        ] {
            let key = TokenKey::from_bytes(&private).unwrap();
            assert_eq!(key.algorithm(), alg);
            let verifier = Verifier::new(AuthKey::from_bytes(&public).unwrap(), false);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap();
            assert_eq!(verifier.verify(&key.mint("b7", now)).unwrap().user_id, "b7");
        }
        assert!(matches!(TokenKey::from_bytes(b""), Err(TokenKeyError::Empty)));
        assert!(matches!(TokenKey::from_bytes(&data("es256-public.pem")), Err(TokenKeyError::Pem(_))));
    }
}

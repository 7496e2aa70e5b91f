//! Signed identity for logins (`--auth-key`): the key a token must be signed with, and the verification of a
//! login's `"token"` (a JWT) into the application's account id and what the token allows. Verification is
//! jsonwebtoken's (on `ring`, the TLS stack's own crypto); this module only chooses the algorithm from the
//! key, insists on the claims the chat needs and names every refusal.

use std::fmt;
use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Seconds a token's `exp` and `nbf` may be off by (clocks of the backend and of the chat drift apart).
pub const LEEWAY_SECS: u64 = 5;

/// Longest `sub` (the application's account id), in bytes.
pub const MAX_USER_ID_BYTES: usize = 64;

/// Failed logins in a row after which the connection is closed with 1008.
pub const MAX_FAILURES: u8 = 5;

/// The DER of the P-256 curve's OID (1.2.840.10045.3.1.7), as it appears in an EC public key.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Why a key file cannot be used.
#[derive(Debug)]
pub enum KeyError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file is empty (an HS256 secret of no bytes would accept anything signed with nothing).
    Empty,
    /// A PEM block that is not an RSA or P-256 EC public key.
    UnusablePem(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Read(e) => write!(f, "cannot read it: {e}"),
            KeyError::Empty => f.write_str("it is empty (an HS256 secret needs bytes)"),
            KeyError::UnusablePem(why) => write!(f, "a PEM file, but not an RSA or P-256 public key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// The key logins' tokens are verified with, and the one algorithm it accepts.
#[derive(Clone)]
pub struct AuthKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl AuthKey {
    /// Reads the key file at `path` (see [`AuthKey::from_bytes`]).
    pub fn load(path: &Path) -> Result<AuthKey, KeyError> {
        AuthKey::from_bytes(&std::fs::read(path).map_err(KeyError::Read)?)
    }

    /// A PEM public key chooses its algorithm — RSA: RS256, EC on P-256: ES256 —; any other bytes are an
    /// HS256 secret, all of them (a trailing newline included: what the backend signs with must be the
    /// file's bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<AuthKey, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        let text = std::str::from_utf8(bytes).unwrap_or("");
        if !text.trim_start().starts_with("-----BEGIN") {
            return Ok(AuthKey { key: DecodingKey::from_secret(bytes), algorithm: Algorithm::HS256 });
        }
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::UnusablePem("a private key; give the chat the public half"));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
            if !pem_der(text).is_some_and(|der| der.windows(P256_OID.len()).any(|w| w == P256_OID)) {
                return Err(KeyError::UnusablePem("an EC key on a curve other than P-256 (ES256)"));
            }
            return Ok(AuthKey { key, algorithm: Algorithm::ES256 });
        }
        match DecodingKey::from_rsa_pem(bytes) {
            Ok(key) => Ok(AuthKey { key, algorithm: Algorithm::RS256 }),
            Err(_) => Err(KeyError::UnusablePem("neither an RSA nor an EC public key")),
        }
    }

    /// The one algorithm tokens must name (`alg`).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The DER bytes of the first PEM block of `text`.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}

/// Why a login's token was refused; each is answered `unauthorized` with its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// The login carried no token.
    Missing,
    /// Not a JWT: not three base64url parts, or a header or claims that are not JSON.
    Malformed,
    /// `exp` is past.
    Expired,
    /// `nbf` is still to come.
    NotYetValid,
    /// The signature does not verify with the server's key.
    BadSignature,
    /// `alg` is not the key's algorithm (`none` among them).
    WrongAlgorithm,
    /// `exp` missing, or `sub` missing, empty or over 64 bytes; or a claim of the wrong type.
    BadClaims,
}

impl TokenRefusal {
    /// The explanation sent in the error's `message`.
    pub fn message(self) -> &'static str {
        match self {
            TokenRefusal::Missing => "this chat needs a \"token\" with each login",
            TokenRefusal::Malformed => "the token is not a well-formed JWT",
            TokenRefusal::Expired => "the token has expired",
            TokenRefusal::NotYetValid => "the token is not valid yet (nbf)",
            TokenRefusal::BadSignature => "the token's signature does not verify",
            TokenRefusal::WrongAlgorithm => "the token's alg is not the one of the chat's key",
            TokenRefusal::BadClaims => {
                "the token needs exp and sub (1 to 64 bytes); name a string and rooms an array of strings"
            }
        }
    }
}

impl fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenRefusal {}

/// Who a verified token says the user is, and where it may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The application's account id (`sub`).
    pub user_id: String,
    /// The name to show (`name`), which wins over the login's.
    pub name: Option<String>,
    /// The only rooms this token may log in to (`rooms`); `None`: any room.
    pub rooms: Option<Vec<String>>,
}

impl Identity {
    /// Whether this token may log in to `room`.
    pub fn allows(&self, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r == room))
    }
}

/// The claims the chat reads; `exp` is checked by jsonwebtoken.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    name: Option<String>,
    rooms: Option<Vec<String>>,
}

/// Verifies logins' tokens against one key.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: AuthKey,
    validation: Validation,
    /// Logins without a token are admitted as anonymous users (`--auth-optional`).
    pub optional: bool,
}

impl Verifier {
    /// A verifier for tokens signed with `key`; `optional` admits logins without a token.
    pub fn new(key: AuthKey, optional: bool) -> Verifier {
        let mut validation = Validation::new(key.algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // An `aud` is the backend's business: the chat has no audience name of its own to insist on.
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECS;
        Verifier { key, validation, optional }
    }

    /// The identity `token` proves, or why it proves none.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenRefusal> {
        // The header's alg first: `none`, or any alg jsonwebtoken does not know, is a wrong algorithm rather
        // than a header it cannot read.
        match header_alg(token) {
            None => return Err(TokenRefusal::Malformed),
            Some(alg) if alg != algorithm_name(self.key.algorithm) => return Err(TokenRefusal::WrongAlgorithm),
            Some(_) => {}
        }
        let data = decode::<Claims>(token, &self.key.key, &self.validation).map_err(|e| refusal(e.kind()))?;
        let Claims { sub, name, rooms } = data.claims;
        if sub.is_empty() || sub.len() > MAX_USER_ID_BYTES {
            return Err(TokenRefusal::BadClaims);
        }
        Ok(Identity { user_id: sub, name, rooms })
    }
}

/// The `alg` of a JWT's header, if the token has a header that is a JSON object with a string `alg`.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let (header, _) = token.split_once('.')?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    value.get("alg")?.as_str().map(str::to_string)
}

/// The name of `alg` as a JWT header writes it.
fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "",
    }
}

/// jsonwebtoken's error, as the chat names it.
fn refusal(kind: &ErrorKind) -> TokenRefusal {
    match kind {
        ErrorKind::ExpiredSignature => TokenRefusal::Expired,
        ErrorKind::ImmatureSignature => TokenRefusal::NotYetValid,
        ErrorKind::InvalidSignature => TokenRefusal::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenRefusal::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(_) => TokenRefusal::BadClaims,
        ErrorKind::Json(_) => TokenRefusal::BadClaims,
        _ => TokenRefusal::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &[u8] = b"a secret of the backend\n";

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    fn hs(claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn hs_verifier() -> Verifier {
        Verifier::new(AuthKey::from_bytes(SECRET).unwrap(), false)
    }

    #[test]
    fn a_valid_token_names_the_user_and_what_it_allows() {
        let v = hs_verifier();
        let t = hs(serde_json::json!({"sub":"u-42","exp":now() + 60,"name":"Ann","rooms":["a","b"]}));
        let id = v.verify(&t).unwrap();
        assert_eq!(id.user_id, "u-42");
        assert_eq!(id.name.as_deref(), Some("Ann"));
        assert!(id.allows("a") && id.allows("b") && !id.allows("c"));
        let t = hs(serde_json::json!({"sub":"u-42","exp":now() + 60}));
        let id = v.verify(&t).unwrap();
        assert!(id.allows("anything") && id.name.is_none());
    }

    #[test]
    fn every_bad_token_is_refused_with_its_reason() {
        let v = hs_verifier();
        let cases = [
            (hs(serde_json::json!({"sub":"u","exp":now() - 60})), TokenRefusal::Expired),
            (hs(serde_json::json!({"sub":"u","exp":now() + 60,"nbf":now() + 60})), TokenRefusal::NotYetValid),
            (hs(serde_json::json!({"exp":now() + 60})), TokenRefusal::BadClaims),
            (hs(serde_json::json!({"sub":"u"})), TokenRefusal::BadClaims),
            (hs(serde_json::json!({"sub":"","exp":now() + 60})), TokenRefusal::BadClaims),
            (hs(serde_json::json!({"sub":"x".repeat(65),"exp":now() + 60})), TokenRefusal::BadClaims),
            (hs(serde_json::json!({"sub":7,"exp":now() + 60})), TokenRefusal::BadClaims),
            (hs(serde_json::json!({"sub":"u","exp":now() + 60,"rooms":"a"})), TokenRefusal::BadClaims),
            ("not a token".to_string(), TokenRefusal::Malformed),
            ("a.b.c".to_string(), TokenRefusal::Malformed),
        ];
        for (token, why) in cases {
            assert_eq!(v.verify(&token), Err(why), "{token}");
        }
        // Signed with another secret.
        let other = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub":"u","exp":now() + 60}),
            &EncodingKey::from_secret(b"another"),
        )
        .unwrap();
        assert_eq!(v.verify(&other), Err(TokenRefusal::BadSignature));
        // Within the leeway an expired token still passes; 64 bytes of sub do.
        assert!(v.verify(&hs(serde_json::json!({"sub":"x".repeat(64),"exp":now() - 2}))).is_ok());
    }

    #[test]
    fn alg_none_and_a_mismatched_alg_are_refused() {
        use base64::Engine as _;
        let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = b64(serde_json::json!({"sub":"u","exp":now() + 60}));
        let v = hs_verifier();
        for alg in ["none", "None", "HS384", "RS256", "ES256"] {
            let token = format!("{}.{claims}.", b64(serde_json::json!({"alg":alg,"typ":"JWT"})));
            assert_eq!(v.verify(&token), Err(TokenRefusal::WrongAlgorithm), "{alg}");
        }
    }

    #[test]
    fn the_key_file_chooses_the_algorithm() {
        assert_eq!(AuthKey::from_bytes(SECRET).unwrap().algorithm(), Algorithm::HS256);
        assert!(matches!(AuthKey::from_bytes(b""), Err(KeyError::Empty)));
        let pem = |name: &str| std::fs::read(format!("{}/tests/data/jwt/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(AuthKey::from_bytes(&pem("es256-public.pem")).unwrap().algorithm(), Algorithm::ES256);
        assert_eq!(AuthKey::from_bytes(&pem("rs256-public.pem")).unwrap().algorithm(), Algorithm::RS256);
        for bad in ["es384-public.pem", "es256-private.pem"] {
            let e = AuthKey::from_bytes(&pem(bad)).unwrap_err();
            assert!(matches!(e, KeyError::UnusablePem(_)), "{bad}: {e}");
        }
        assert!(matches!(
            AuthKey::from_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::UnusablePem(_))
        ));
    }

    #[test]
    fn tokens_signed_with_the_private_halves_verify_with_the_public_ones() {
        let pem = |name: &str| std::fs::read(format!("{}/tests/data/jwt/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let claims = serde_json::json!({"sub":"u-1","exp":now() + 60});
        let es = encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(&pem("es256-private.pem")).unwrap(),
        )
        .unwrap();
        let rs = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&pem("rs256-private.pem")).unwrap(),
        )
        .unwrap();
        let es_v = Verifier::new(AuthKey::from_bytes(&pem("es256-public.pem")).unwrap(), false);
        let rs_v = Verifier::new(AuthKey::from_bytes(&pem("rs256-public.pem")).unwrap(), false);
        assert_eq!(es_v.verify(&es).unwrap().user_id, "u-1");
        assert_eq!(rs_v.verify(&rs).unwrap().user_id, "u-1");
        assert_eq!(es_v.verify(&rs), Err(TokenRefusal::WrongAlgorithm));
        // An HS256 token against an EC key: the classic confusion (the public key used as an HMAC secret).
        let confused =
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&pem("es256-public.pem")))
                .unwrap();
        assert_eq!(es_v.verify(&confused), Err(TokenRefusal::WrongAlgorithm));
    }
}

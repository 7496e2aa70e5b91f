//! A TLS 1.3 client that writes its own records after a real handshake: rustls does the handshake (only
//! TLS_AES_128_GCM_SHA256 offered, the client's application traffic secret taken from its key log), then
//! records are sealed here with ring — what no well-behaved library sends: empty application-data records
//! and KeyUpdate messages back to back, the way an attacker would.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::hkdf;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, KeyLog};

/// The client's application traffic secret, caught from rustls's key log.
#[derive(Debug, Default)]
struct CatchSecret(Mutex<Option<Vec<u8>>>);

impl KeyLog for CatchSecret {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "CLIENT_TRAFFIC_SECRET_0" {
            *self.0.lock().unwrap() = Some(secret.to_vec());
        }
    }
    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// A TLS 1.3 connection past its handshake whose records this side writes by hand.
pub struct RawTls13 {
    /// The socket.
    pub sock: TcpStream,
    secret: Vec<u8>,
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label of RFC 8446 7.1 (SHA-256, empty context).
fn expand_label(secret: &[u8], label: &str, len: usize) -> Vec<u8> {
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
    let full = format!("tls13 {label}");
    let mut info = Vec::new();
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    let mut out = vec![0u8; len];
    prk.expand(&[&info], Len(len)).unwrap().fill(&mut out).unwrap();
    out
}

impl RawTls13 {
    /// Completes a TLS 1.3 handshake with the server at `sock` trusting `cert`; `None` if it fails.
    pub fn connect(sock: TcpStream, cert: &Path) -> Option<RawTls13> {
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(cert).ok()? {
            roots.add(der.ok()?).ok()?;
        }
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
        let catch = Arc::new(CatchSecret::default());
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.key_log = catch.clone();
        let mut stream = super::tls::client(sock, Arc::new(config));
        super::tls::handshake(&mut stream).ok()?;
        // The client's Finished must be on the wire before records under the application keys follow.
        while stream.conn.wants_write() {
            stream.conn.write_tls(&mut stream.sock).ok()?;
        }
        let secret = catch.0.lock().unwrap().clone()?;
        let (_, sock) = stream.into_parts();
        let (key, iv) = Self::key_of(&secret);
        Some(RawTls13 { sock, secret, key, iv, seq: 0 })
    }

    fn key_of(secret: &[u8]) -> (LessSafeKey, [u8; 12]) {
        let key = expand_label(secret, "key", 16);
        let iv: [u8; 12] = expand_label(secret, "iv", 12).try_into().unwrap();
        (LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap()), iv)
    }

    /// One record of `content_type` with `content`, sealed under the current keys, appended to `out`.
    pub fn seal(&mut self, content_type: u8, content: &[u8], out: &mut Vec<u8>) {
        let mut inner = content.to_vec();
        inner.push(content_type);
        let len = inner.len() + 16;
        let header = [0x17, 0x03, 0x03, (len >> 8) as u8, len as u8];
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(header), &mut inner).unwrap();
        out.extend_from_slice(&header);
        out.extend_from_slice(&inner);
    }

    /// An empty application-data record.
    pub fn empty_record(&mut self, out: &mut Vec<u8>) {
        self.seal(0x17, &[], out);
    }

    /// A KeyUpdate (update_not_requested); the keys that follow are the next generation's.
    pub fn key_update(&mut self, out: &mut Vec<u8>) {
        self.seal(0x16, &[24, 0, 0, 1, 0], out);
        self.secret = expand_label(&self.secret, "traffic upd", 32);
        let (key, iv) = Self::key_of(&self.secret);
        (self.key, self.iv, self.seq) = (key, iv, 0);
    }

    /// Application data in one record.
    pub fn data(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.seal(0x17, bytes, out);
    }

    /// Writes `bytes` to the socket.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sock.write_all(bytes)
    }
}

//! TLS for both ports, the configuration half (the stream that drives `rustls::ServerConnection` sans-IO in
//! the loop is [`crate::transport::TlsStream`]): a certificate chain and its key read from PEM files, TLS
//! 1.3 and 1.2 with ALPN `http/1.1`, and a store that SIGHUP reloads — new handshakes get the new pair, a bad or missing file
//! leaves the old one in place.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Why a certificate and key cannot be used.
#[derive(Debug)]
pub enum TlsError {
    /// A file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    NoCertificate(PathBuf),
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    NoKey(PathBuf),
    /// rustls refused the pair (a key that does not match the certificate, an unsupported key type).
    Refused(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            TlsError::NoCertificate(path) => write!(f, "{} holds no PEM certificate", path.display()),
            TlsError::NoKey(path) => write!(f, "{} holds no PEM private key", path.display()),
            TlsError::Refused(e) => write!(f, "the certificate and key cannot be used: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// The server configuration of the chain in `cert` (leaf first) and the key in `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(cert)?).filter_map(Result::ok).collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::NoKey(key.to_path_buf()))?;
    let provider = Arc::new(provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Refused)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // The server's order decides: AES-128-GCM first (see `provider`), whatever order the client lists.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// ring's suites with AES-128-GCM first (TLS 1.3, then 1.2), AES-256-GCM and ChaCha20 after. Every suite is
/// strong; AES-128 does 10 rounds to AES-256's 14, and every delivery is encrypted once per recipient, so it
/// is the one that lets a core serve the most (browsers prefer it too; rustls clients list AES-256 first).
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        _ => 1,
    });
    provider
}

/// The certificate and key in use, reloadable from their files.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<ServerConfig>,
}

impl CertStore {
    /// Loads `cert` and `key`; an error here stops the daemon at start.
    pub fn load(cert: &Path, key: &Path) -> Result<CertStore, TlsError> {
        let current = server_config(cert, key)?;
        Ok(CertStore { cert: cert.to_path_buf(), key: key.to_path_buf(), current })
    }

    /// The configuration for a new handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.clone()
    }

    /// Reads the files again (SIGHUP): on success new handshakes get the new pair; on error the old one
    /// stays and the error says why. Connections already open keep theirs either way.
    pub fn reload(&mut self) -> Result<(), TlsError> {
        self.current = server_config(&self.cert, &self.key)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// A self-signed ECDSA P-256 end-entity certificate for 127.0.0.1 (and DNS name `localhost`) made by the
    /// openssl command, which the test client trusts directly: (cert, key).
    pub(crate) fn make_pair(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some((cert, key))
    }

    /// Without the openssl command the tests cannot make certificates: skipped, but failed under CI (which
    /// installs it through mk/deps.list).
    pub(crate) fn no_openssl() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the openssl command is missing (Debian package openssl)"
        );
        eprintln!("SKIP: tls tests: the openssl command is missing (Debian package openssl)");
    }

    /// A fresh directory for one test's files.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wschat-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs a whole handshake in memory between a client that trusts `cert` and a server on `config`;
    /// returns the ALPN protocol the server chose.
    fn handshake(config: Arc<ServerConfig>, cert: &Path) -> Option<Vec<u8>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(config).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets().unwrap();
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut &buf[..]).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                return server.alpn_protocol().map(<[u8]>::to_vec);
            }
        }
        None
    }

    #[test]
    fn a_pair_from_pem_files_serves_tls_with_alpn() {
        let dir = temp_dir("pair");
        let Some((cert, key)) = make_pair(&dir, "a") else { return no_openssl() };
        let store = CertStore::load(&cert, &key).unwrap();
        assert_eq!(handshake(store.config(), &cert), Some(b"http/1.1".to_vec()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_explained_and_a_reload_keeps_the_old_pair() {
        let dir = temp_dir("bad");
        let Some((cert, key)) = make_pair(&dir, "a") else { return no_openssl() };
        let Some((other_cert, other_key)) = make_pair(&dir, "b") else { return };
        let missing = dir.join("missing.pem");
        assert!(matches!(server_config(&missing, &key), Err(TlsError::Read { .. })));
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not PEM at all").unwrap();
        assert!(matches!(server_config(&garbage, &key), Err(TlsError::NoCertificate(_))));
        assert!(matches!(server_config(&cert, &garbage), Err(TlsError::NoKey(_))));
        assert!(matches!(server_config(&cert, &other_key), Err(TlsError::Refused(_))), "a key of another certificate");
        for e in [TlsError::NoCertificate(garbage.clone()), TlsError::NoKey(garbage.clone())] {
            assert!(e.to_string().contains("garbage.pem"));
        }
        // Reload: the files replaced by another pair → new handshakes use it; a broken file → the old stays.
        let mut store = CertStore::load(&cert, &key).unwrap();
        std::fs::copy(&other_cert, &cert).unwrap();
        std::fs::copy(&other_key, &key).unwrap();
        store.reload().unwrap();
        assert!(handshake(store.config(), &other_cert).is_some(), "the new pair after a reload");
        std::fs::write(&key, "broken").unwrap();
        assert!(store.reload().is_err());
        assert!(handshake(store.config(), &other_cert).is_some(), "the old pair kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

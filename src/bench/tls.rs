//! The client side of wss:// for the bench: one rustls `ClientConfig` per run (ring provider, TLS 1.3 and 1.2,
//! ALPN `http/1.1`) that trusts either the certificates of a PEM file (`--ca`) or, with `--insecure`, any
//! certificate at all — signatures are still checked, so the handshake costs what a verifying client's does
//! apart from the chain walk. There is no system root store: a wss:// run names what it trusts. Session
//! resumption is off, so every connection is a full handshake, as each real client's first one is.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme};

/// What the bench trusts on wss://.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The certificates of this PEM file (CA or leaf certificates), as roots.
    Ca(PathBuf),
    /// Any certificate (signatures are still verified).
    Insecure,
}

/// Why the TLS client configuration cannot be built.
#[derive(Debug)]
pub enum TlsConfigError {
    /// The CA file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The CA file holds no PEM certificate.
    NoCertificate(PathBuf),
    /// A certificate of the CA file cannot be a root (not parseable as X.509).
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the configuration (no protocol version the provider supports).
    Refused(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            TlsConfigError::NoCertificate(path) => write!(f, "{} holds no PEM certificate", path.display()),
            TlsConfigError::BadCertificate { path, source } => {
                write!(f, "{} holds a certificate that cannot be a root: {source}", path.display())
            }
            TlsConfigError::Refused(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// The roots of a PEM file: every certificate in it.
pub fn roots_from_pem(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let pem = std::fs::read(path).map_err(|source| TlsConfigError::Read { path: path.to_path_buf(), source })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
        roots.add(cert).map_err(|source| TlsConfigError::BadCertificate { path: path.to_path_buf(), source })?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCertificate(path.to_path_buf()));
    }
    Ok(roots)
}

/// The client configuration of a wss:// run.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsConfigError::Refused)?;
    let mut config = match trust {
        Trust::Ca(path) => builder.with_root_certificates(roots_from_pem(path)?).with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: the URL's host, an IP address when it is one.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

/// One line on an established session: version, cipher suite and ALPN, e.g.
/// `TLS1.3 TLS13_AES_128_GCM_SHA256, ALPN http/1.1`.
pub fn describe(conn: &ClientConnection) -> String {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "TLS (version unknown)".to_string(),
    };
    let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
    let suite = suite.map(|s| s.as_str().map_or_else(|| format!("{s:?}"), str::to_string)).unwrap_or_default();
    let alpn = match conn.alpn_protocol() {
        Some(p) => String::from_utf8_lossy(p).into_owned(),
        None => "none".to_string(),
    };
    format!("{version} {suite}, ALPN {alpn}")
}

/// `--insecure`: accepts any certificate chain for any name, but still checks that the server holds the key
/// of the certificate it sent (the handshake signature, with the provider's algorithms).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Certificates for tests, made by the openssl command as `crate::tls`'s tests make them.
#[cfg(test)]
pub(crate) mod testcert {
    use std::path::Path;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::ServerConfig;

    /// The daemon's test certificates (one maker for the whole crate).
    pub(crate) use crate::tls::tests::{make_pair, no_openssl, temp_dir};

    /// A server configuration on the pair (TLS 1.3 and 1.2, ALPN http/1.1), as the daemon's.
    pub(crate) fn server_config(
        cert: &Path,
        key: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::testcert::{make_pair, no_openssl, server_config, temp_dir};
    use super::*;
    use rustls::ServerConnection;

    /// Runs a handshake in memory; Ok(description) or the first error of either side.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<rustls::ServerConfig>,
        name: &str,
    ) -> Result<String, rustls::Error> {
        let mut c = ClientConnection::new(client, server_name(name).unwrap())?;
        let mut s = ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            let server_result = s.process_new_packets().map(|_| ());
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
            server_result?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(describe(&c));
            }
        }
        Err(rustls::Error::General("no progress".into()))
    }

    #[test]
    fn ca_trusts_its_certificates_only_and_insecure_trusts_any() {
        let dir = temp_dir("config");
        let Some((cert, key)) = make_pair(&dir, "a") else { return no_openssl() };
        let Some((other, _)) = make_pair(&dir, "b") else { return };
        let tls13 = server_config(&cert, &key, &[&rustls::version::TLS13]);
        let ok = client_config(&Trust::Ca(cert.clone())).unwrap();
        assert_eq!(
            handshake(ok.clone(), tls13.clone(), "127.0.0.1").unwrap(),
            "TLS1.3 TLS13_AES_256_GCM_SHA384, ALPN http/1.1"
        );
        assert!(handshake(ok.clone(), tls13.clone(), "localhost").is_ok(), "a DNS name of the certificate");
        let wrong_name = handshake(ok, tls13.clone(), "127.0.0.2").unwrap_err();
        assert!(matches!(wrong_name, rustls::Error::InvalidCertificate(_)), "{wrong_name}");
        let wrong_ca = handshake(client_config(&Trust::Ca(other)).unwrap(), tls13.clone(), "127.0.0.1").unwrap_err();
        assert!(wrong_ca.to_string().contains("invalid peer certificate"), "{wrong_ca}");
        let insecure = client_config(&Trust::Insecure).unwrap();
        assert!(handshake(insecure.clone(), tls13, "127.0.0.2").is_ok());
        let tls12 = server_config(&cert, &key, &[&rustls::version::TLS12]);
        let d = handshake(insecure, tls12, "127.0.0.1").unwrap();
        assert!(d.starts_with("TLS1.2 TLS_ECDHE_ECDSA_WITH_"), "{d}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_ca_files_are_explained() {
        let dir = temp_dir("badca");
        let missing = dir.join("missing.pem");
        let e = client_config(&Trust::Ca(missing)).unwrap_err();
        assert!(matches!(e, TlsConfigError::Read { .. }) && e.to_string().contains("missing.pem"), "{e}");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not PEM at all").unwrap();
        let e = client_config(&Trust::Ca(garbage)).unwrap_err();
        assert!(matches!(e, TlsConfigError::NoCertificate(_)) && e.to_string().contains("garbage.pem"), "{e}");
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = client_config(&Trust::Ca(broken)).unwrap_err();
        assert!(matches!(e, TlsConfigError::BadCertificate { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn server_names_are_ip_addresses_or_dns_names() {
        assert!(matches!(server_name("127.0.0.1"), Some(ServerName::IpAddress(_))));
        assert!(matches!(server_name("::1"), Some(ServerName::IpAddress(_))));
        assert!(matches!(server_name("localhost"), Some(ServerName::DnsName(_))));
        assert!(server_name("not a name").is_none());
    }
}

//! TLS for the integration tests: certificates made by the `openssl` command (ECDSA P-256, as a real
//! deployment would use), a rustls client that trusts exactly the files it is given, and the switch that
//! runs a whole suite over TLS (`WSCHAT_TEST_TLS=1`: every [`super::Daemon`] gets `--tls-cert/--tls-key` of
//! one pair per process, and every [`super::Raw`] speaks TLS to it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The PEM certificate (self-signed, for 127.0.0.1 and localhost).
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// True when the whole suite runs over TLS (`WSCHAT_TEST_TLS=1`).
pub fn suite_over_tls() -> bool {
    std::env::var("WSCHAT_TEST_TLS").is_ok_and(|v| v == "1")
}

/// A fresh folder for a test's certificates.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wschat-test-tls-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Makes a self-signed ECDSA P-256 server certificate `NAME.crt` / `NAME.key` in `dir` with the openssl
/// command; `None` when openssl is missing (the caller skips with [`super::skip_or_fail`]).
pub fn make_pair(dir: &Path, name: &str) -> Option<Pair> {
    let pair = Pair { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", &format!("/CN=wschat test {name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&pair.key)
        .arg("-out")
        .arg(&pair.cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(pair)
}

/// The pair of this test process for suites run over TLS (made once).
pub fn suite_pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        make_pair(&temp_dir("suite"), "suite")
            .expect("WSCHAT_TEST_TLS=1 needs the openssl command (Debian package openssl)")
    })
}

/// A client configuration that trusts exactly the certificates in `trusted` (TLS 1.3 and 1.2, or only
/// `versions`), asking for ALPN http/1.1.
pub fn client_config(
    trusted: &[&Path],
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for file in trusted {
        for cert in CertificateDer::pem_file_iter(file).expect("read certificate") {
            roots.add(cert.expect("PEM certificate")).expect("add root");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = match versions {
        Some(v) => builder.with_protocol_versions(v),
        None => builder.with_safe_default_protocol_versions(),
    }
    .expect("protocol versions");
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS client stream over `sock` (the handshake happens at the first read or write).
pub fn client(sock: TcpStream, config: Arc<ClientConfig>) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    StreamOwned::new(ClientConnection::new(config, name).expect("client connection"), sock)
}

/// Completes the handshake on `stream` now; the error when it fails (a certificate not trusted, an alert).
pub fn handshake(stream: &mut StreamOwned<ClientConnection, TcpStream>) -> std::io::Result<()> {
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(())
}

/// A client's TLS stream.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A daemon with `--tls-cert/--tls-key` of a fresh pair and `extra` flags, and the pair; `None` (skipped)
/// without openssl.
pub fn daemon(test: &str, extra: &[&str]) -> Option<(super::Daemon, Pair)> {
    let Some(pair) = make_pair(&temp_dir(test), "a") else {
        super::skip_or_fail(test, "the openssl command (Debian package openssl)");
        return None;
    };
    let cert = pair.cert.to_str().expect("path");
    let key = pair.key.to_str().expect("path");
    let mut args = vec!["--tls-cert", cert, "--tls-key", key];
    args.extend_from_slice(extra);
    Some((super::Daemon::start(&args), pair))
}

/// A TLS connection to `addr` trusting `trusted`, handshake done.
pub fn connect(addr: std::net::SocketAddr, trusted: &Path) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut s = client(sock, client_config(&[trusted], None));
    handshake(&mut s)?;
    Ok(s)
}

//! A TLS connection over a non-blocking socket: a `rustls::ServerConnection` driven sans-IO by the reactor's
//! reads and writes (no thread, no runtime). Reading pulls records from the socket and hands out plaintext;
//! writing hands plaintext to rustls, which encrypts it into records, and pushes those to the socket — a
//! broadcast frame is still encoded once, only its encryption is per recipient. What rustls holds unsent is
//! bounded by its buffer limit and pushed at the next write attempt or writable edge.
//!
//! The first bytes of a connection are looked at before rustls sees them: a plain HTTP request gets a
//! plain-text 400 that says to use https:// or wss://, anything else that is not a TLS handshake record is
//! refused without a word. Behind a PROXY-protocol proxy the stream starts raw (the reactor reads the PROXY
//! header) and TLS begins after it ([`TlsStream::begin_tls`]).

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// What rustls may hold in encrypted records not yet on the socket (and in plaintext before the handshake
/// is done). Beyond it a write takes nothing more until the socket took some; the reactor's own queue keeps
/// the rest, where the send-buffer limit sees it.
const HELD_LIMIT: usize = 32 * 1024;

/// The first byte of a TLS handshake record (content type 22).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The plain-text answer to a plain HTTP request on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 50\r\nConnection: close\r\n\r\nThis port speaks TLS: use https:// or wss:// here\n";

/// Why a TLS connection was given up.
#[derive(Debug)]
pub enum TlsFailure {
    /// A plain HTTP request came to a TLS port (answered 400 in plain text).
    PlainHttp,
    /// The first byte was neither a TLS handshake record nor a letter of an HTTP method.
    NotTls(u8),
    /// rustls refused what the peer sent (during the handshake or after), and sent an alert.
    Refused {
        /// Whether the handshake was still going on.
        in_handshake: bool,
        /// rustls's reason.
        error: rustls::Error,
    },
}

impl TlsFailure {
    /// The `reason` label of `wschat_tls_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsFailure::PlainHttp => "plain_http",
            TlsFailure::NotTls(_) => "not_tls",
            TlsFailure::Refused { in_handshake: true, .. } => "handshake",
            TlsFailure::Refused { in_handshake: false, .. } => "protocol",
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::PlainHttp => {
                write!(f, "plain HTTP request on a TLS port (answered 400: use https:// or wss://)")
            }
            TlsFailure::NotTls(b) => write!(f, "not a TLS handshake (first byte 0x{b:02x})"),
            TlsFailure::Refused { in_handshake: true, error } => write!(f, "TLS handshake failed: {error}"),
            TlsFailure::Refused { in_handshake: false, error } => write!(f, "TLS error: {error}"),
        }
    }
}

/// One server-side TLS connection and its socket.
pub struct TlsStream {
    sock: TcpStream,
    conn: ServerConnection,
    /// Bytes pass through untouched until [`TlsStream::begin_tls`] (a PROXY header comes first).
    raw: bool,
    /// The first bytes were looked at.
    sniffed: bool,
    /// The handshake's completion is yet to be reported ([`TlsStream::take_established`]).
    established_unreported: bool,
    /// A FIN follows once the held records (and the close_notify) are on the socket.
    fin_pending: bool,
    /// Encrypted bytes written to the socket.
    written: u64,
    failure: Option<TlsFailure>,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.conn.is_handshaking())
            .field("raw", &self.raw)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl TlsStream {
    /// A server connection on `sock` with `config`; `raw_first` when a PROXY header precedes the handshake.
    pub fn new(sock: TcpStream, config: Arc<ServerConfig>, raw_first: bool) -> Result<TlsStream, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(HELD_LIMIT));
        Ok(TlsStream {
            sock,
            conn,
            raw: raw_first,
            sniffed: false,
            established_unreported: true,
            fin_pending: false,
            written: 0,
            failure: None,
        })
    }

    /// The socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    pub(super) fn socket_ref(&self) -> &TcpStream {
        &self.sock
    }

    /// Encrypted bytes written to the socket so far.
    pub fn written_to_socket(&self) -> u64 {
        self.written
    }

    /// True until the handshake is done (a connection still waiting for its PROXY header included).
    pub fn handshaking(&self) -> bool {
        self.raw || !self.sniffed || self.conn.is_handshaking()
    }

    /// Why the connection failed, once a read or write returned an error for a TLS reason.
    pub fn failure(&self) -> Option<&TlsFailure> {
        self.failure.as_ref()
    }

    /// Once, when the handshake has completed: the protocol version and cipher suite agreed, for the log.
    pub fn take_established(&mut self) -> Option<String> {
        if !self.established_unreported || self.handshaking() {
            return None;
        }
        self.established_unreported = false;
        let version = self.conn.protocol_version().and_then(|v| v.as_str()).unwrap_or("TLS");
        let suite = self.conn.negotiated_cipher_suite().and_then(|s| s.suite().as_str()).unwrap_or("?");
        Some(format!("{version} {suite}"))
    }

    /// Ends the raw phase (the PROXY header was read): TLS starts, `rest` being the bytes after the header.
    pub fn begin_tls(&mut self, rest: &[u8]) -> io::Result<()> {
        self.raw = false;
        if rest.is_empty() {
            return Ok(());
        }
        self.sniffed = true;
        self.feed_first(rest)
    }

    /// True while records, a close_notify or a FIN wait to be pushed to the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write() || self.fin_pending
    }

    /// Pushes the records rustls holds to the socket, then the pending FIN; true when nothing is left
    /// (false when the socket would block).
    pub fn push_tls(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(n) => self.written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        if std::mem::take(&mut self.fin_pending) {
            self.sock.shutdown(Shutdown::Write)?;
        }
        Ok(true)
    }

    /// Sends close_notify, then FIN once everything held is on the socket.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if self.raw {
            return self.sock.shutdown(Shutdown::Write);
        }
        self.conn.send_close_notify();
        self.fin_pending = true;
        self.push_tls().map(|_| ())
    }

    /// Looks at the first bytes of the stream: a TLS handshake goes to rustls; anything else fails.
    fn feed_first(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        match bytes.first() {
            None | Some(&HANDSHAKE_RECORD) => {}
            Some(b'A'..=b'Z') => {
                // Best effort, like any refusal: the request was read, so closing after it does not reset.
                let _ = self.sock.write(PLAIN_HTTP_ANSWER);
                let _ = self.sock.shutdown(Shutdown::Write);
                return Err(self.fail(TlsFailure::PlainHttp));
            }
            Some(&b) => return Err(self.fail(TlsFailure::NotTls(b))),
        }
        while !bytes.is_empty() {
            if self.conn.read_tls(&mut bytes)? == 0 {
                break;
            }
            self.process()?;
        }
        Ok(())
    }

    /// Decrypts what arrived and pushes what rustls has to say (handshake messages, alerts).
    fn process(&mut self) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(_) => {
                // What would not go out now goes at the next writable edge.
                self.push_tls()?;
                Ok(())
            }
            Err(error) => {
                // The alert rustls queued for the peer, best effort.
                let _ = self.push_tls();
                let in_handshake = self.conn.is_handshaking();
                Err(self.fail(TlsFailure::Refused { in_handshake, error }))
            }
        }
    }

    fn fail(&mut self, failure: TlsFailure) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, failure.to_string());
        self.failure = Some(failure);
        e
    }
}

impl Read for TlsStream {
    /// Plaintext, as much as is decrypted (up to `buf`), reading the socket as needed; `Ok(0)` at the end
    /// (a close_notify, or TCP's end without one: the chat's own framing tells a cut message apart).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.raw {
            return self.sock.read(buf);
        }
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if !self.sniffed {
                let n = match self.sock.read(buf) {
                    Ok(0) => return Ok(0),
                    Ok(n) => n,
                    Err(e) => return Err(e),
                };
                self.sniffed = true;
                // rustls copies these bytes in before any plaintext is written back into `buf`.
                self.feed_first(&buf[..n])?;
                continue;
            }
            match self.conn.read_tls(&mut self.sock) {
                // At the end, rustls's reader says whether it was clean; either way the next turn returns 0.
                Ok(_) => self.process()?,
                Err(e) => return Err(e),
            }
        }
    }
}

impl TlsStream {
    /// Hands plaintext to rustls (as much as its limit takes) after pushing what it held; `WouldBlock`
    /// when the socket takes nothing.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.raw {
            return self.sock.write_vectored(bufs);
        }
        if !self.push_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.conn.writer().write_vectored(bufs)?;
        // What does not fit on the socket now waits in rustls for the next writable edge.
        self.push_tls()?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::{make_pair, no_openssl, temp_dir};
    use std::net::TcpListener;
    use std::thread;
    use std::time::{Duration, Instant};

    /// A server-side stream on a fresh loopback connection and the client's end of it.
    fn pair(test: &str, raw_first: bool) -> Option<(TlsStream, std::net::TcpStream, std::path::PathBuf)> {
        let dir = temp_dir(&format!("transport-{test}"));
        let Some((cert, key)) = make_pair(&dir, "t") else {
            no_openssl();
            return None;
        };
        let config = crate::tls::server_config(&cert, &key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let tls = TlsStream::new(TcpStream::from_std(server), config, raw_first).unwrap();
        Some((tls, client, cert))
    }

    /// Reads until something other than `WouldBlock` (the test's stand-in for readiness events).
    fn read_until_ready(s: &mut TlsStream, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    fn client_stream(
        sock: std::net::TcpStream,
        cert: &std::path::Path,
    ) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        let der = rustls::pki_types::CertificateDer::from_pem_file(cert).unwrap();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        rustls::StreamOwned::new(rustls::ClientConnection::new(Arc::new(config), name).unwrap(), sock)
    }

    use rustls::pki_types::pem::PemObject;

    #[test]
    fn plain_http_gets_a_plain_400_and_garbage_is_not_tls() {
        let Some((mut s, mut client, _)) = pair("plain", false) else { return };
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 1024];
        assert!(read_until_ready(&mut s, &mut buf).is_err());
        assert!(matches!(s.failure(), Some(TlsFailure::PlainHttp)));
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 ") && answer.ends_with("use https:// or wss:// here\n"), "{answer}");
        let body_len = answer.split("\r\n\r\n").nth(1).map(str::len);
        assert_eq!(body_len, Some(50), "Content-Length matches the body");

        let Some((mut s, mut client, _)) = pair("garbage", false) else { return };
        client.write_all(&[0x00, 0x01]).unwrap();
        assert!(read_until_ready(&mut s, &mut buf).is_err());
        assert_eq!(s.failure().map(TlsFailure::reason), Some("not_tls"));
    }

    #[test]
    fn a_session_carries_data_both_ways_and_ends_with_close_notify() {
        let Some((mut s, client, cert)) = pair("session", false) else { return };
        let peer = thread::spawn(move || {
            let mut c = client_stream(client, &cert);
            c.write_all(b"hello over tls").unwrap();
            let mut got = Vec::new();
            // read_to_end succeeds only on a clean close_notify (a bare TCP end is UnexpectedEof).
            c.read_to_end(&mut got).map(|_| got)
        });
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 14 {
            let n = read_until_ready(&mut s, &mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hello over tls");
        assert!(!s.handshaking());
        assert!(s.take_established().is_some_and(|v| v.starts_with("TLSv1_3")));
        assert!(s.take_established().is_none(), "reported once");
        let n = s.write_vectored(&[IoSlice::new(b"answer, "), IoSlice::new(b"in two slices")]).unwrap();
        assert_eq!(n, 21);
        s.shutdown_write().unwrap();
        while s.wants_write() {
            s.push_tls().unwrap();
        }
        assert_eq!(peer.join().unwrap().unwrap(), b"answer, in two slices");
        assert!(s.written_to_socket() > 21, "records are longer than their plaintext");
    }

    #[test]
    fn what_rustls_holds_is_bounded() {
        let Some((mut s, client, cert)) = pair("bounded", false) else { return };
        // The client completes the handshake, sends one byte, then stops reading.
        let peer = thread::spawn(move || {
            let mut c = client_stream(client, &cert);
            c.write_all(b"x").unwrap();
            thread::sleep(Duration::from_millis(300));
            c
        });
        let mut buf = [0u8; 8];
        assert_eq!(read_until_ready(&mut s, &mut buf).unwrap(), 1);
        let chunk = vec![7u8; 64 * 1024];
        let mut accepted = 0u64;
        loop {
            match s.write_vectored(&[IoSlice::new(&chunk)]) {
                Ok(n) => accepted += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(s.wants_write(), "the socket is full, records wait");
        let held = accepted.saturating_sub(s.written_to_socket());
        assert!(held <= HELD_LIMIT as u64, "{held} bytes of plaintext held beyond the socket");
        drop(peer.join());
    }

    #[test]
    fn a_raw_start_passes_bytes_then_tls_begins_with_what_followed() {
        let Some((mut s, mut client, cert)) = pair("raw", true) else { return };
        client.write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n").unwrap();
        let mut buf = [0u8; 256];
        let n = read_until_ready(&mut s, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n", "raw bytes pass through");
        assert!(s.handshaking());
        s.begin_tls(b"").unwrap();
        let peer = thread::spawn(move || {
            let mut c = client_stream(client, &cert);
            c.write_all(b"after the header").unwrap();
            c
        });
        let n = read_until_ready(&mut s, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"after the header");
        drop(peer.join());
    }
}

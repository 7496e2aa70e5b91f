//! A TLS connection over a non-blocking socket: a rustls `UnbufferedServerConnection` driven sans-IO by the
//! reactor's reads and writes (no thread, no runtime). rustls's unbuffered API leaves the buffers to us, so an
//! idle connection holds none: ciphertext is read into a buffer shared by all connections of the thread and
//! only an unfinished record is kept per connection; plaintext is encrypted into another shared buffer and
//! written at once, and only what the socket did not take is kept. A broadcast frame is still encoded once;
//! only its encryption is per recipient.
//!
//! The first bytes of a connection are looked at before rustls sees them: a plain HTTP request gets a
//! plain-text 400 that says to use https:// or wss://, anything else that is not a TLS handshake record is
//! refused without a word. Behind a PROXY-protocol proxy the stream starts raw (the reactor reads the PROXY
//! header) and TLS begins after it ([`TlsStream::begin_tls`]).

use std::cell::RefCell;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::ServerConfig;

pub use super::tls_limits::TlsFailure;
use super::tls_limits::{client_hello_too_large, InputLedger, HANDSHAKE_RECORD};

/// Plaintext taken per write: what a connection may hold encrypted beyond the socket is at most this (plus
/// record overhead). The reactor's own queue keeps the rest, where the send-buffer limit sees it.
const HELD_LIMIT: usize = 32 * 1024;

/// Ciphertext read from the socket per read (the plaintext it yields always fits the reactor's 64 KiB read
/// buffer, an unfinished record of up to 16 KiB included).
const READ_SIZE: usize = 40 * 1024;

/// Room for one record's header, tag and content type beyond its plaintext.
const RECORD_OVERHEAD: usize = 5 + 16 + 1 + 256;

/// Largest plaintext of one TLS record.
const MAX_FRAGMENT: usize = 16 * 1024;

/// The plain-text answer to a plain HTTP request on a TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 50\r\nConnection: close\r\n\r\nThis port speaks TLS: use https:// or wss:// here\n";

thread_local! {
    /// Ciphertext being read: an unfinished record carried over, then what the socket gave.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Plaintext of several slices gathered for one encryption, and the records it becomes.
    static WRITE_BUF: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// One server-side TLS connection and its socket.
pub struct TlsStream {
    sock: TcpStream,
    conn: UnbufferedServerConnection,
    /// An unfinished record (or handshake flight) carried to the next read; empty, without memory, when idle.
    incoming: Vec<u8>,
    /// Encrypted bytes the socket has not taken yet, from `out_pos` on; without memory when drained.
    outgoing: Vec<u8>,
    out_pos: usize,
    /// Decrypted bytes beyond what the last read's buffer could take (rare).
    plain_over: Vec<u8>,
    /// Bytes pass through untouched until [`TlsStream::begin_tls`] (a PROXY header comes first).
    raw: bool,
    /// The first bytes were looked at.
    sniffed: bool,
    /// The socket reached its end, or the peer sent close_notify.
    ended: bool,
    /// The handshake's completion is yet to be reported ([`TlsStream::take_established`]).
    established_unreported: bool,
    /// A FIN follows once `outgoing` (with the close_notify) is on the socket.
    fin_pending: bool,
    /// Encrypted bytes written to the socket.
    written: u64,
    /// What the peer sent, judged against the bounds of [`super::tls_limits`].
    ledger: InputLedger,
    failure: Option<TlsFailure>,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.handshaking())
            .field("raw", &self.raw)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// What one step of rustls's state machine leaves to do.
enum Step {
    /// Ask rustls again.
    Again,
    /// Handshake records wait in `outgoing`: write them, then ask again.
    Transmit,
    /// rustls needs more bytes from the peer, or is ready for application data.
    Stop,
    /// rustls refused the peer's bytes.
    Failed(rustls::Error),
}

impl TlsStream {
    /// A server connection on `sock` with `config`; `raw_first` when a PROXY header precedes the handshake.
    pub fn new(sock: TcpStream, config: Arc<ServerConfig>, raw_first: bool) -> Result<TlsStream, rustls::Error> {
        Ok(TlsStream {
            sock,
            conn: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            out_pos: 0,
            plain_over: Vec::new(),
            raw: raw_first,
            sniffed: false,
            ended: false,
            established_unreported: true,
            fin_pending: false,
            written: 0,
            ledger: InputLedger::default(),
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

    /// True while the TLS handshake itself is under way (not before a PROXY header): a read may cost a key
    /// exchange and a signature.
    pub fn in_tls_handshake(&self) -> bool {
        !self.raw && self.handshaking()
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
        self.sniff(rest)?;
        let mut cipher = rest.to_vec();
        let (used, _) = self.process(&mut cipher, &mut [])?;
        self.incoming = cipher.split_off(used);
        Ok(())
    }

    /// True while records or a FIN wait to be pushed to the socket.
    pub fn wants_write(&self) -> bool {
        self.out_pos < self.outgoing.len() || self.fin_pending
    }

    /// Pushes the records held to the socket, then the pending FIN; true when nothing is left (false when
    /// the socket would block).
    pub fn push_tls(&mut self) -> io::Result<bool> {
        while self.out_pos < self.outgoing.len() {
            match self.sock.write(&self.outgoing[self.out_pos..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(n) => {
                    self.out_pos += n;
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        // Drained: an idle connection keeps no buffer.
        self.outgoing = Vec::new();
        self.out_pos = 0;
        if std::mem::take(&mut self.fin_pending) {
            self.sock.shutdown(Shutdown::Write)?;
        }
        Ok(true)
    }

    /// Sends close_notify, then FIN once everything held is on the socket.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if self.raw || self.handshaking() {
            return self.sock.shutdown(Shutdown::Write);
        }
        self.process_held()?;
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = self.conn.process_tls_records(&mut self.incoming).state
        {
            let mut record = [0u8; 64];
            if let Ok(n) = traffic.queue_close_notify(&mut record) {
                self.outgoing.extend_from_slice(&record[..n]);
            }
        }
        self.fin_pending = true;
        self.push_tls().map(|_| ())
    }

    /// Looks at the first bytes of the stream: a TLS handshake goes on; anything else fails.
    fn sniff(&mut self, first: &[u8]) -> io::Result<()> {
        self.sniffed = true;
        match first.first() {
            None => Ok(()),
            Some(&HANDSHAKE_RECORD) => match client_hello_too_large(first) {
                Some(failure) => Err(self.fail(failure)),
                None => Ok(()),
            },
            Some(b'A'..=b'Z') => {
                // Best effort, like any refusal: the request was read, so closing after it does not reset.
                let _ = self.sock.write(PLAIN_HTTP_ANSWER);
                let _ = self.sock.shutdown(Shutdown::Write);
                Err(self.fail(TlsFailure::PlainHttp))
            }
            Some(&b) => Err(self.fail(TlsFailure::NotTls(b))),
        }
    }

    /// Runs rustls over the ciphertext in `cipher` until it needs more or is ready for application data:
    /// decrypted bytes go to `out` (beyond it, to `plain_over`), handshake records are written out. Returns
    /// the ciphertext bytes used and the plaintext bytes put in `out`.
    fn process(&mut self, cipher: &mut [u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        let (mut used, mut produced) = (0, 0);
        loop {
            let status = self.conn.process_tls_records(&mut cipher[used..]);
            let discard = status.discard;
            let step = match status.state {
                Err(error) => Step::Failed(error),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut step = Step::Again;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                self.ledger.plaintext(record.payload.len());
                                let take = record.payload.len().min(out.len() - produced);
                                out[produced..produced + take].copy_from_slice(&record.payload[..take]);
                                produced += take;
                                self.plain_over.extend_from_slice(&record.payload[take..]);
                            }
                            Err(error) => {
                                step = Step::Failed(error);
                                break;
                            }
                        }
                    }
                    step
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let start = self.outgoing.len();
                    self.outgoing.resize(start + 4096, 0);
                    loop {
                        match encode.encode(&mut self.outgoing[start..]) {
                            Ok(n) => {
                                self.outgoing.truncate(start + n);
                                break;
                            }
                            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                                self.outgoing.resize(start + required_size, 0);
                            }
                            Err(_) => {
                                self.outgoing.truncate(start);
                                break;
                            }
                        }
                    }
                    Step::Again
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // The records are in `outgoing`, which keeps them until the socket took them.
                    transmit.done();
                    Step::Transmit
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.ended = true;
                    Step::Again
                }
                Ok(ConnectionState::Closed) => {
                    self.ended = true;
                    Step::Stop
                }
                Ok(_) => Step::Stop,
            };
            used += discard;
            match step {
                Step::Again => {}
                Step::Transmit => {
                    // What the socket does not take now goes at the next writable edge.
                    self.push_tls()?;
                }
                Step::Stop => return Ok((used, produced)),
                Step::Failed(error) => {
                    self.send_alert(&mut cipher[used..]);
                    let in_handshake = self.conn.is_handshaking();
                    return Err(self.fail(TlsFailure::Refused { in_handshake, error }));
                }
            }
        }
    }

    /// Runs rustls over the bytes held from earlier reads (an unfinished record, or a handshake message
    /// split over records), with no new input: what it still has to send is written. rustls's unbuffered API
    /// keeps positions into the bytes it has not told us to discard, so every call must see those same bytes
    /// at the front — never an empty buffer in their place (its deframer would index past the end).
    fn process_held(&mut self) -> io::Result<()> {
        let mut held = std::mem::take(&mut self.incoming);
        let result = self.process(&mut held, &mut []);
        if let Ok((used, _)) = result {
            held.drain(..used);
        }
        if !held.is_empty() {
            self.incoming = held;
        }
        result.map(|_| ())
    }

    /// After a failure rustls reported: the alert it queued for the peer, best effort (`cipher`: the bytes
    /// it has not discarded, see [`TlsStream::process_held`]).
    fn send_alert(&mut self, cipher: &mut [u8]) {
        for _ in 0..4 {
            match self.conn.process_tls_records(cipher).state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let mut record = [0u8; 64];
                    if let Ok(n) = encode.encode(&mut record) {
                        self.outgoing.extend_from_slice(&record[..n]);
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => break,
            }
        }
        let _ = self.push_tls();
    }

    fn fail(&mut self, failure: TlsFailure) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, failure.to_string());
        self.failure = Some(failure);
        e
    }

    /// One socket read into `cipher` (after the carried-over record) and rustls over it: the plaintext bytes
    /// put in `out`; `Ok(0)` without `ended` when a record or the handshake is still unfinished.
    fn read_once(&mut self, cipher: &mut Vec<u8>, out: &mut [u8]) -> io::Result<usize> {
        let carried = self.incoming.len();
        if cipher.len() < carried + READ_SIZE {
            cipher.resize(carried + READ_SIZE, 0);
        }
        cipher[..carried].copy_from_slice(&self.incoming);
        let n = self.sock.read(&mut cipher[carried..carried + READ_SIZE])?;
        if n == 0 {
            self.ended = true;
        } else if !self.sniffed {
            self.sniff(&cipher[..n])?;
        }
        let handshaking = self.conn.is_handshaking();
        let plain_before = self.ledger.plain_in();
        let (used, produced) = self.process(&mut cipher[..carried + n], out)?;
        let judged = if handshaking {
            // Held and used bytes together: what rustls and this stream keep of an unfinished handshake.
            let held = carried + n - used;
            self.ledger.handshake_read(used, held, self.conn.is_handshaking())
        } else {
            self.ledger.traffic_read(used, self.ledger.plain_in() - plain_before)
        };
        if let Err(failure) = judged {
            return Err(self.fail(failure));
        }
        self.incoming.clear();
        self.incoming.extend_from_slice(&cipher[used..carried + n]);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        Ok(produced)
    }

    /// Encrypts `plain` and writes it; what the socket does not take is kept for the next writable edge.
    fn encrypt_and_write(&mut self, plain: &[u8], cipher: &mut Vec<u8>) -> io::Result<()> {
        let need = plain.len() + plain.len().div_ceil(MAX_FRAGMENT).max(1) * RECORD_OVERHEAD;
        if cipher.len() < need {
            cipher.resize(need, 0);
        }
        let n = loop {
            let state = self.conn.process_tls_records(&mut self.incoming).state;
            let ConnectionState::WriteTraffic(mut traffic) =
                state.map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?
            else {
                return Err(io::Error::other("TLS connection not ready for application data"));
            };
            match traffic.encrypt(plain, cipher) {
                Ok(n) => break n,
                Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    cipher.resize(required_size, 0);
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        };
        let mut sent = 0;
        while sent < n {
            match self.sock.write(&cipher[sent..n]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        self.written += sent as u64;
        self.outgoing.extend_from_slice(&cipher[sent..n]);
        Ok(())
    }

    /// Hands plaintext to rustls (up to [`HELD_LIMIT`] bytes) after pushing what was held; `WouldBlock`
    /// when the socket takes nothing.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.raw {
            return self.sock.write_vectored(bufs);
        }
        if !self.push_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Records rustls still has to send (a session ticket after the handshake) go first.
        self.process_held()?;
        if !self.push_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        WRITE_BUF.with_borrow_mut(|(gathered, cipher)| {
            let plain: &[u8] = match bufs {
                [one] => &one[..one.len().min(HELD_LIMIT)],
                _ => {
                    gathered.clear();
                    for b in bufs {
                        let take = b.len().min(HELD_LIMIT - gathered.len());
                        gathered.extend_from_slice(&b[..take]);
                        if gathered.len() == HELD_LIMIT {
                            break;
                        }
                    }
                    gathered
                }
            };
            if plain.is_empty() {
                return Ok(0);
            }
            self.encrypt_and_write(plain, cipher)?;
            Ok(plain.len())
        })
    }
}

impl Read for TlsStream {
    /// Plaintext, as much as one socket read decrypts (up to `buf`); `Ok(0)` at the end (a close_notify, or
    /// TCP's end without one: the chat's own framing tells a cut message apart); `Interrupted` when the read
    /// took bytes that gave no plaintext yet (read again), `WouldBlock` when the socket had nothing.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.raw {
            return self.sock.read(buf);
        }
        if !self.plain_over.is_empty() {
            let n = self.plain_over.len().min(buf.len());
            buf[..n].copy_from_slice(&self.plain_over[..n]);
            self.plain_over.drain(..n);
            if self.plain_over.is_empty() {
                self.plain_over = Vec::new();
            }
            return Ok(n);
        }
        if self.ended {
            return Ok(0);
        }
        // One socket read per call, like a plain socket's: records that carry nothing (handshake flights,
        // empty records, key updates) cannot hold the loop. `Interrupted` says: bytes were taken and none
        // came out yet; read again (the reactor does, on its next turn).
        let n = READ_BUF.with_borrow_mut(|cipher| self.read_once(cipher, buf))?;
        if n > 0 || self.ended {
            return Ok(n);
        }
        Err(io::ErrorKind::Interrupted.into())
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
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
#[cfg(test)]
mod size {
    #[test]
    fn a_tls_connection_stays_small() {
        // Boxed beside the plain connection state; with no buffer held while idle this is most of what an
        // idle TLS connection costs beyond a plain one (rustls's keys are the rest: about 3.5 KiB in all).
        let size = std::mem::size_of::<super::TlsStream>();
        println!("TlsStream is {size} bytes");
        assert!(size <= 1312, "TlsStream grew to {size} bytes");
    }
}

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
Content-Length: 49\r\nConnection: close\r\n\r\nThis port speaks TLS: use https:// or wss:// here\n";

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

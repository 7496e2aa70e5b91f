//! The TLS layer of one wss:// connection: a rustls `ClientConnection` driven sans-IO by the engine's loop.
//! Ciphertext the engine read from the socket goes in through `read_tls` and `process_new_packets`, and the
//! plaintext comes out into the engine's shared read buffer, where the usual decode path takes it; plaintext
//! the engine queued goes in through `writer()`, and the records (with the handshake's own messages, which
//! must go out whether or not the bench has anything queued) leave through `write_tls` until the socket would
//! block. The socket is read by the engine in big reads and the bytes handed over from memory: rustls's own
//! reads from a socket are 4 KiB at a time, several system calls where the plain path makes one.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::read::process;
use super::types::{ConnFailure, Phase};
use super::Engine;

/// Why TLS failed on one connection.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsFailure {
    /// rustls refused the server: a certificate it does not trust, an alert, a protocol violation.
    Refused(rustls::Error),
    /// The server closed the connection before the handshake completed.
    ClosedInHandshake,
    /// rustls could not take the bytes read (its buffers full), or could not start the connection.
    Stuck(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::Refused(e) => write!(f, "{e}"),
            TlsFailure::ClosedInHandshake => f.write_str("the server closed the connection during the TLS handshake"),
            TlsFailure::Stuck(e) => write!(f, "{e}"),
        }
    }
}

/// What one batch of ciphertext gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Fed {
    /// Plaintext bytes appended to the buffer.
    pub(super) plain: usize,
    /// The server sent close_notify: nothing more will come.
    pub(super) closed: bool,
    /// This batch completed the handshake.
    pub(super) handshake_done: bool,
}

/// The TLS state of one connection.
pub(super) struct TlsLayer {
    conn: ClientConnection,
}

impl fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsLayer").field("handshaking", &self.conn.is_handshaking()).finish()
    }
}

impl TlsLayer {
    /// A client connection to `name`, its ClientHello queued.
    pub(super) fn new(config: Arc<ClientConfig>, name: ServerName<'static>) -> Result<TlsLayer, TlsFailure> {
        let conn = ClientConnection::new(config, name).map_err(TlsFailure::Refused)?;
        Ok(TlsLayer { conn })
    }

    /// The session in one line (version, suite, ALPN).
    pub(super) fn describe(&self) -> String {
        crate::bench::tls::describe(&self.conn)
    }

    /// What a socket EOF means here: the server closing, or a handshake that never completed.
    pub(super) fn eof_failure(&self) -> Option<TlsFailure> {
        self.conn.is_handshaking().then_some(TlsFailure::ClosedInHandshake)
    }

    /// Feeds `cipher`, bytes just read from the socket, to rustls and appends the plaintext they carry to
    /// `buf` from `at` on (growing it when a read brings more than it has room for).
    pub(super) fn feed(&mut self, mut cipher: &[u8], buf: &mut Vec<u8>, at: usize) -> Result<Fed, TlsFailure> {
        let was_handshaking = self.conn.is_handshaking();
        let mut fed = Fed::default();
        while !cipher.is_empty() {
            match self.conn.read_tls(&mut cipher) {
                // Only after close_notify: whatever follows it is not the server's any more.
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(TlsFailure::Stuck(e.to_string())),
            }
            let state = self.conn.process_new_packets().map_err(TlsFailure::Refused)?;
            let want = state.plaintext_bytes_to_read();
            fed.closed |= state.peer_has_closed();
            if want == 0 {
                continue;
            }
            let start = at + fed.plain;
            if buf.len() < start + want {
                buf.resize(start + want, 0);
            }
            // rustls holds the plaintext in memory: all of it comes out now (and must, or `read_tls`
            // refuses the next bytes once its plaintext buffer is full).
            self.conn
                .reader()
                .read_exact(&mut buf[start..start + want])
                .map_err(|e| TlsFailure::Stuck(e.to_string()))?;
            fed.plain += want;
        }
        fed.handshake_done = was_handshaking && !self.conn.is_handshaking();
        Ok(fed)
    }

    /// Moves `out[*pos..]` into rustls (encrypted at once after the handshake, held until it completes before)
    /// and writes the records out, until everything is written or the socket would block; returns the
    /// successful write calls. rustls takes at most 64 KiB of records ahead of the socket: what it does not
    /// take stays in `out`, so a connection backing up is seen there as on the plain path.
    pub(super) fn flush<W: Write>(&mut self, io: &mut W, out: &[u8], pos: &mut usize) -> io::Result<u64> {
        let mut writes = 0;
        loop {
            if *pos < out.len() {
                // Writing into rustls's buffers cannot fail; 0 means they are full.
                *pos += self.conn.writer().write(&out[*pos..]).unwrap_or(0);
            }
            if !self.conn.wants_write() {
                return Ok(writes);
            }
            match self.conn.write_tls(io) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => writes += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(writes),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Best effort, before closing on a TLS failure: the alert rustls queued, so the server learns why.
    pub(super) fn send_alert<W: Write>(&mut self, io: &mut W) {
        while self.conn.wants_write() {
            if !matches!(self.conn.write_tls(io), Ok(n) if n > 0) {
                return;
            }
        }
    }
}

/// The engine's wss:// paths, taken instead of the plain ones when a connection has a TLS layer.
impl Engine {
    /// Moves the connection's queued output through TLS and writes the records (the handshake's included);
    /// while connecting, the first write that succeeds proves the TCP connection, as on the plain path.
    pub(super) fn flush_tls(&mut self, idx: usize) {
        let conn = &mut self.conns[idx];
        let (Some(stream), Some(tls)) = (conn.stream.as_mut(), conn.tls.as_mut()) else { return };
        match tls.flush(stream, &conn.out, &mut conn.out_pos) {
            Ok(writes) => {
                self.sink.counters.writes += writes;
                if writes > 0 && conn.phase == Phase::Connecting {
                    conn.phase = Phase::Handshaking;
                }
            }
            Err(e) if conn.phase == Phase::Connecting && e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) if conn.phase == Phase::Connecting => {
                return self.close(idx, Some(ConnFailure::Connect(e.to_string())))
            }
            Err(e) => return self.close(idx, Some(ConnFailure::Io(e.to_string()))),
        }
        conn.settle_out();
    }

    /// Reads the socket until it is drained (a short read) or would block; each read's ciphertext goes
    /// through TLS, its plaintext (after the pending bytes, as on the plain path) through `process`, and
    /// whatever TLS or the bench has to say goes out at once.
    pub(super) fn on_readable_tls(&mut self, idx: usize) {
        loop {
            let conn = &mut self.conns[idx];
            if conn.phase == Phase::Connecting || conn.phase == Phase::Closed {
                return;
            }
            let (Some(stream), Some(tls)) = (conn.stream.as_mut(), conn.tls.as_mut()) else { return };
            let n = match stream.read(&mut self.tls_in) {
                Ok(0) => {
                    let why = tls.eof_failure().map_or(ConnFailure::Eof, ConnFailure::Tls);
                    return self.close(idx, Some(why));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(idx, Some(ConnFailure::Io(e.to_string()))),
            };
            self.sink.counters.reads += 1;
            self.sink.counters.bytes_in += n as u64;
            let keep = conn.pending.len();
            let fed = match tls.feed(&self.tls_in[..n], &mut self.scratch, keep) {
                Ok(fed) => fed,
                Err(why) => {
                    tls.send_alert(stream);
                    return self.close(idx, Some(ConnFailure::Tls(why)));
                }
            };
            if fed.handshake_done {
                self.sink.counters.tls_handshakes += 1;
                if self.sink.counters.tls_session.is_none() {
                    self.sink.counters.tls_session = Some(tls.describe());
                }
            }
            if fed.plain > 0 {
                self.scratch[..keep].copy_from_slice(&conn.pending);
                conn.pending.clear();
                let now = self.clock.elapsed().as_nanos() as u64;
                let buf = &mut self.scratch[..keep + fed.plain];
                if let Err(why) = process(idx, conn, buf, &mut self.sink, now, &mut self.rng) {
                    return self.close(idx, Some(why));
                }
            }
            // The handshake's own messages go out whether or not the bench queued anything.
            self.flush_tls(idx);
            if fed.closed {
                return self.close(idx, Some(ConnFailure::Eof));
            }
            if n < self.tls_in.len() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tls::testcert::{make_pair, no_openssl, server_config, temp_dir};
    use crate::bench::tls::{client_config, server_name, Trust};
    use rustls::ServerConnection;

    /// A socket in memory: what the client writes piles up in `sent`; it takes at most `room` bytes before
    /// it would block.
    struct Socket {
        sent: Vec<u8>,
        room: usize,
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.sent.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn socket() -> Socket {
        Socket { sent: Vec::new(), room: usize::MAX }
    }

    /// The server's turn: takes what the client wrote, answers; returns the server's records and its
    /// plaintext so far.
    fn serve(
        server: &mut ServerConnection,
        from_client: &mut Socket,
        plain: &mut Vec<u8>,
    ) -> Result<Vec<u8>, rustls::Error> {
        let bytes = std::mem::take(&mut from_client.sent);
        let mut rd = &bytes[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets()?;
        }
        let _ = server.reader().read_to_end(plain);
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).unwrap();
        }
        Ok(out)
    }

    struct Pair {
        client: TlsLayer,
        server: ServerConnection,
        dir: std::path::PathBuf,
    }

    fn pair(name: &str, trust_other: bool) -> Option<Pair> {
        let dir = temp_dir(name);
        let Some((cert, key)) = make_pair(&dir, "a") else {
            no_openssl();
            return None;
        };
        let (other, _) = make_pair(&dir, "b")?;
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let server = ServerConnection::new(server_config(&cert, &key, &versions)).unwrap();
        let trust = Trust::Ca(if trust_other { other } else { cert });
        let client = TlsLayer::new(client_config(&trust).unwrap(), server_name("127.0.0.1").unwrap()).unwrap();
        Some(Pair { client, server, dir })
    }

    #[test]
    fn handshake_then_plaintext_both_ways_with_the_request_queued_early() {
        let Some(Pair { mut client, mut server, dir }) = pair("both", false) else { return };
        let request = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let mut sock = socket();
        let mut pos = 0;
        // Nothing is plaintext yet: the request waits inside rustls, the ClientHello goes out.
        assert_eq!(client.flush(&mut sock, &request, &mut pos).unwrap(), 1);
        assert_eq!(pos, request.len());
        assert!(!sock.sent.is_empty() && client.conn.is_handshaking());
        let mut at_server = Vec::new();
        let mut buf = vec![0u8; 8];
        let (mut got, mut done, mut answered) = (0, 0, false);
        for _ in 0..10 {
            let mut records = serve(&mut server, &mut sock, &mut at_server).unwrap();
            if at_server == request && !answered {
                answered = true;
                server.writer().write_all(b"101 ok").unwrap();
                while server.wants_write() {
                    server.write_tls(&mut records).unwrap();
                }
            }
            let fed = client.feed(&records, &mut buf, 2 + got).unwrap();
            got += fed.plain;
            done += usize::from(fed.handshake_done);
            // The handshake's own messages (the client's Finished) go out with nothing queued.
            client.flush(&mut sock, &[], &mut 0).unwrap();
            if got > 0 && sock.sent.is_empty() {
                break;
            }
        }
        assert_eq!(at_server, request, "the early request arrives after the handshake");
        assert_eq!(&buf[2..2 + got], b"101 ok");
        assert_eq!(done, 1);
        assert!(!client.conn.is_handshaking());
        assert_eq!(client.describe(), "TLS1.3 TLS13_AES_256_GCM_SHA384, ALPN http/1.1");
        // A big batch of records grows the buffer and comes out whole.
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        server.set_buffer_limit(None);
        server.writer().write_all(&big).unwrap();
        let mut records = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut records).unwrap();
        }
        let mut buf = vec![0u8; 16];
        let mut plain = 0;
        for chunk in records.chunks(65536) {
            plain += client.feed(chunk, &mut buf, 3 + plain).unwrap().plain;
        }
        assert_eq!(plain, big.len());
        assert_eq!(&buf[3..3 + plain], &big[..]);
        // close_notify is seen.
        server.send_close_notify();
        let mut records = Vec::new();
        server.write_tls(&mut records).unwrap();
        assert!(client.feed(&records, &mut buf, 0).unwrap().closed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_socket_that_would_block_keeps_the_rest_for_later() {
        let Some(Pair { mut client, mut server, dir }) = pair("block", false) else { return };
        let mut sock = socket();
        let mut plain_at_server = Vec::new();
        client.flush(&mut sock, &[], &mut 0).unwrap();
        for _ in 0..4 {
            let records = serve(&mut server, &mut sock, &mut plain_at_server).unwrap();
            client.feed(&records, &mut Vec::new(), 0).unwrap();
            client.flush(&mut sock, &[], &mut 0).unwrap();
        }
        assert!(!client.conn.is_handshaking());
        serve(&mut server, &mut sock, &mut plain_at_server).unwrap();
        // 300 KB queued into a socket taking 10 000 bytes per turn: rustls takes some, the rest stays queued.
        let out: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut pos = 0;
        let mut turns = 0;
        while pos < out.len() || client.conn.wants_write() {
            sock.room = 10_000;
            client.flush(&mut sock, &out, &mut pos).unwrap();
            serve(&mut server, &mut sock, &mut plain_at_server).unwrap();
            turns += 1;
            assert!(turns < 100, "no progress");
        }
        assert!(turns > 20, "the socket's room set the pace: {turns}");
        assert_eq!(plain_at_server, out);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_untrusted_certificate_is_a_failure_with_its_reason_and_an_alert() {
        let Some(Pair { mut client, mut server, dir }) = pair("untrusted", true) else { return };
        let mut sock = socket();
        client.flush(&mut sock, b"GET", &mut 0).unwrap();
        let records = serve(&mut server, &mut sock, &mut Vec::new()).unwrap();
        let err = client.feed(&records, &mut Vec::new(), 0).unwrap_err();
        assert!(matches!(err, TlsFailure::Refused(rustls::Error::InvalidCertificate(_))), "{err:?}");
        assert!(err.to_string().contains("invalid peer certificate"), "{err}");
        client.send_alert(&mut sock);
        let at_server = serve(&mut server, &mut sock, &mut Vec::new()).unwrap_err();
        assert!(matches!(at_server, rustls::Error::AlertReceived(_)), "{at_server:?}");
        assert_eq!(client.eof_failure(), Some(TlsFailure::ClosedInHandshake));
        // Garbage from the "server" is refused too, never a panic.
        let _ = std::fs::remove_dir_all(&dir);
        let Some(Pair { mut client, dir, .. }) = pair("garbage", false) else { return };
        let err = client.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n", &mut Vec::new(), 0).unwrap_err();
        assert!(matches!(err, TlsFailure::Refused(_)), "{err:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Accepting and admission: both listeners (a deep accept queue, TCP_NODELAY inherited), a budget of
//! sockets per port and a per-address cap on unfinished web requests, and shedding at descriptor
//! exhaustion (a spare descriptor given up to answer waiting connections 503 instead of leaving them in the
//! backlog). The WebSocket handshake's own admission (origin, `--max-connections`) is in `input`.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::Duration;

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::addresses::address_key;
use super::{Conn, Kind, Reactor, HTTP_REQUEST_TIMEOUT};
use crate::transport::{TlsStream, Transport};
use crate::ws::handshake::error_response;

/// How long accepting pauses after the process runs out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Sockets on the WebSocket port beyond `--max-connections`, for handshakes in flight; past this the reactor
/// answers 503 at accept and closes, so file descriptors stay bounded. The web port has its own budget
/// (`--max-web-connections`), so neither port can take the other's sockets.
const EXTRA_SOCKETS: usize = 1024;

impl Reactor {
    pub(super) fn accept(&mut self, kind: Kind) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let listener = match kind {
                Kind::WebSocket => self.ws_listener.as_ref(),
                Kind::Http => self.http_listener.as_ref(),
                Kind::Api => self.api_listener.as_ref(),
            };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, kind),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // Out of file descriptors (EMFILE/ENFILE): free the spare one and use it to answer the
                    // waiting connections with 503 instead of leaving them unanswered in the backlog.
                    if is_out_of_descriptors(&e) && self.shed_backlog(kind) {
                        self.warn_accept(&e, "refusing new connections with 503");
                        continue;
                    }
                    // Otherwise (ENOBUFS, ENOMEM, or no spare): the connection stays in the backlog, and
                    // retrying at once would spin the CPU, so pause accepting briefly and retry from the loop.
                    self.accept_paused_until = Some(self.now + ACCEPT_BACKOFF);
                    self.warn_accept(&e, "pausing accepts for 100 ms");
                    return;
                }
            }
        }
    }

    /// Logs an accept failure at most once every 5 seconds.
    fn warn_accept(&mut self, e: &io::Error, action: &str) {
        let quiet = self.last_accept_warning.is_some_and(|t| self.now.duration_since(t) < Duration::from_secs(5));
        if !quiet {
            warn!("accept failed: {e}; {action}");
            self.last_accept_warning = Some(self.now);
        }
    }

    /// With the spare descriptor closed, accepts every waiting connection on the listener, answers it 503
    /// and closes it; then takes the spare back. Returns false when there was no spare to give up.
    fn shed_backlog(&mut self, kind: Kind) -> bool {
        let Some(spare) = self.spare_fd.take() else { return false };
        drop(spare);
        let listener = match kind {
            Kind::WebSocket => self.ws_listener.as_ref(),
            Kind::Http => self.http_listener.as_ref(),
            Kind::Api => self.api_listener.as_ref(),
        };
        let mut shed = 0u64;
        let tls = self.tls.is_some();
        if let Some(listener) = listener {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        refuse_at_accept(stream, &mut self.scratch, tls);
                        shed += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        self.metrics.accepted_total += shed;
        match kind {
            Kind::WebSocket => self.metrics.handshake_rejections_total += shed,
            Kind::Http | Kind::Api => self.metrics.web_rejections_total += shed,
        }
        self.spare_fd = std::fs::File::open("/dev/null").ok();
        // Without a spare now, report "no progress" so the caller pauses instead of looping.
        self.spare_fd.is_some() && shed > 0
    }

    pub(super) fn resume_accepting(&mut self) {
        if self.accept_paused_until.is_some_and(|t| self.now >= t) {
            self.accept_paused_until = None;
            self.accept(Kind::WebSocket);
            self.accept(Kind::Http);
            self.accept(Kind::Api);
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, kind: Kind) {
        self.metrics.accepted_total += 1;
        if kind == Kind::Api {
            return self.admit_api(stream, peer);
        }
        let trusted = self.cfg.trusted_proxies.is_trusted(peer.ip());
        if self.cfg.proxy_protocol && !trusted {
            // Only the proxies may speak: anyone else could claim any address in a PROXY header.
            debug!("{peer}: not a trusted proxy; closed (--proxy-protocol)");
            self.metrics.proxy_rejections_total += 1;
            return;
        }
        let sockets = self.admission.sockets(kind);
        match kind {
            Kind::WebSocket if sockets >= self.cfg.max_connections + EXTRA_SOCKETS => {
                debug!("{peer}: refused at accept, {sockets} WebSocket-port sockets open");
                self.metrics.handshake_rejections_total += 1;
                refuse_at_accept(stream, &mut self.scratch, self.tls.is_some());
                return;
            }
            Kind::Http if sockets >= self.cfg.max_web_connections => {
                debug!("{peer}: refused at accept, {sockets} web-port sockets open");
                self.metrics.web_rejections_total += 1;
                refuse_at_accept(stream, &mut self.scratch, self.tls.is_some());
                return;
            }
            _ => {}
        }
        // A trusted proxy speaks for many clients: its connections count against the client's address once
        // it says who that is (its PROXY header, or a forwarding header in the request).
        let key = (!trusted).then(|| address_key(peer.ip()));
        if let Some(refusal) = key.and_then(|key| self.address_refusal(kind, key)) {
            debug!("{peer}: refused at accept, {refusal}");
            self.count_refusal(&refusal);
            refuse_at_accept_with(stream, &mut self.scratch, self.tls.is_some(), &refusal.answer());
            return;
        }
        let transport = match &self.tls {
            None => Transport::plain(stream),
            // Behind --proxy-protocol the PROXY header comes before the handshake, in the clear.
            Some(store) => match TlsStream::new(stream, store.config(), self.cfg.proxy_protocol) {
                Ok(tls) => Transport::Tls(Box::new(tls)),
                Err(e) => {
                    warn!("{peer}: cannot start TLS: {e}");
                    return;
                }
            },
        };
        let timeout = match kind {
            Kind::WebSocket => self.cfg.handshake_timeout,
            Kind::Http | Kind::Api => HTTP_REQUEST_TIMEOUT,
        };
        self.register(transport, peer, kind, key, timeout);
    }

    /// Registers an accepted connection of port `kind` with the loop, its ticket taken (against `key` when
    /// the client is known) and its first deadline `timeout` from now; its slab key, unless the
    /// registration failed (then it is dropped).
    pub(super) fn register(
        &mut self,
        mut transport: Transport,
        peer: SocketAddr,
        kind: Kind,
        key: Option<IpAddr>,
        timeout: Duration,
    ) -> Option<usize> {
        let session = self.new_session();
        let entry = self.conns.vacant_entry();
        let k = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(transport.socket(), Token(k), interest) {
            warn!("{peer}: cannot register socket: {e}");
            return None;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        entry.insert(Conn::new(transport, peer, self.admission.admit(kind, key), serial, session));
        self.arm_timer(k, self.now + timeout);
        let port = match kind {
            Kind::WebSocket => "ws",
            Kind::Http => "http",
            Kind::Api => "api",
        };
        debug!("{peer}: accepted on the {port} port as #{k}");
        Some(k)
    }
}

impl Reactor {
    /// Unfinished handshakes one address may hold on the WebSocket port: half its socket budget, so that
    /// one address can never take it all (with `--max-connections-per-ip` the flag's lower cap applies too).
    fn pending_share(&self) -> usize {
        (self.cfg.max_connections + EXTRA_SOCKETS) / 2
    }

    /// Whether the address `key` may not hold another socket on the port, and why.
    pub(super) fn address_refusal(&self, kind: Kind, key: IpAddr) -> Option<AddressRefusal> {
        let tally = self.admission.tally(kind, key);
        match kind {
            Kind::WebSocket => {
                let limit = self.cfg.max_connections_per_ip;
                if limit > 0 && tally.total() as usize >= limit {
                    Some(AddressRefusal::PerAddressLimit { held: tally.total(), limit })
                } else if tally.pending as usize >= self.pending_share() {
                    Some(AddressRefusal::PendingShare { pending: tally.pending, share: self.pending_share() })
                } else {
                    None
                }
            }
            Kind::Http => {
                let limit = self.cfg.max_web_pending_per_ip;
                (tally.pending as usize >= limit)
                    .then_some(AddressRefusal::WebPending { pending: tally.pending, limit })
            }
            // The API is for the application's backend, behind its key: its port's budget is the bound.
            Kind::Api => None,
        }
    }

    /// Counts connection `k` against its client's address, once that is known (at accept, or from a
    /// trusted proxy's word); a connection already counted, or whose peer is itself a trusted proxy (which
    /// said nothing of a client), is left as it is. Refused when the address is at its share.
    pub(super) fn count_client(&mut self, k: usize) -> Result<(), AddressRefusal> {
        let Some(conn) = self.conns.get(k) else { return Ok(()) };
        if !conn.ticket.awaits_client() || self.cfg.trusted_proxies.is_trusted(conn.peer.ip()) {
            return Ok(());
        }
        let (kind, key) = (conn.kind, address_key(conn.peer.ip()));
        if let Some(refusal) = self.address_refusal(kind, key) {
            return Err(refusal);
        }
        if let Some(conn) = self.conns.get_mut(k) {
            self.admission.count_client(&mut conn.ticket, key);
        }
        Ok(())
    }

    /// Counts a refusal for an address's share in the port's metric.
    pub(super) fn count_refusal(&mut self, refusal: &AddressRefusal) {
        match refusal {
            AddressRefusal::WebPending { .. } => self.metrics.web_rejections_total += 1,
            _ => {
                self.metrics.per_ip_rejections_total += 1;
                self.metrics.handshake_rejections_total += 1;
            }
        }
    }

    /// Refuses connection `k`, whose client's address is at its share, once its PROXY header said who the
    /// client is: as at accept, answered (429 or 503) in plain text and closed at once — it does not linger
    /// holding one of the port's sockets; on a TLS port only closed (nothing can be said before a handshake).
    pub(super) fn refuse_counted(&mut self, k: usize, refusal: AddressRefusal) {
        use std::io::Write;
        let Some(conn) = self.conns.get_mut(k) else { return };
        debug!("{}: refused, {refusal}", conn.peer);
        if conn.transport.tls().is_none() {
            let _ = conn.transport.write(&refusal.answer());
            let _ = conn.transport.shutdown_write();
        }
        self.count_refusal(&refusal);
        self.remove(k);
    }
}

/// Why a client's address may not have another socket on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddressRefusal {
    /// `--max-connections-per-ip`: open WebSockets and unfinished handshakes together.
    PerAddressLimit {
        /// What the address holds.
        held: u32,
        /// The flag.
        limit: usize,
    },
    /// Unfinished handshakes past the address's share of the WebSocket port's budget.
    PendingShare {
        /// Unfinished handshakes the address holds.
        pending: u32,
        /// Its share.
        share: usize,
    },
    /// `--max-web-pending-per-ip`: unanswered web requests (and answers being written).
    WebPending {
        /// What the address holds.
        pending: u32,
        /// The flag.
        limit: usize,
    },
}

impl AddressRefusal {
    /// The HTTP answer: 429 on the WebSocket port, 503 on the web port.
    pub(super) fn answer(&self) -> Vec<u8> {
        match self {
            AddressRefusal::WebPending { .. } => {
                error_response(503, "Retry-After: 1\r\n", "too many unfinished requests from your address\n")
            }
            _ => error_response(429, "Retry-After: 1\r\n", "too many connections from your address\n"),
        }
    }
}

impl fmt::Display for AddressRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressRefusal::PerAddressLimit { held, limit } => {
                write!(f, "{held} connections from this address (--max-connections-per-ip {limit})")
            }
            AddressRefusal::PendingShare { pending, share } => {
                write!(f, "{pending} unfinished handshakes from this address (its share is {share})")
            }
            AddressRefusal::WebPending { pending, limit } => {
                write!(f, "{pending} unfinished web requests from this address (--max-web-pending-per-ip {limit})")
            }
        }
    }
}

/// Length of the listen queue asked for (the kernel caps it at `net.core.somaxconn`). The usual 128 overflows
/// when thousands of clients connect at once: their SYNs are dropped and they retry a second later.
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listening socket on `addr` with address reuse and a deep accept queue.
pub(super) fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    // Several daemons on one port (`--reuse-port`, one cluster node per core): the kernel spreads the
    // connections over them.
    socket.set_reuse_port(reuse_port)?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one system call less per connection.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// EMFILE or ENFILE: the process or the system has no file descriptor left.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Answers a connection that will not be served with 503 and closes it. The request it may already have
/// sent is read first, so that closing does not reset the connection and destroy the answer in flight. On
/// a TLS port there is no answer a client could read before a handshake: it is only closed.
fn refuse_at_accept(stream: TcpStream, scratch: &mut [u8], tls: bool) {
    let answer = error_response(503, "Retry-After: 1\r\n", "server at capacity\n");
    refuse_at_accept_with(stream, scratch, tls, &answer);
}

/// As [`refuse_at_accept`], with `answer` in place of the 503.
fn refuse_at_accept_with(mut stream: TcpStream, scratch: &mut [u8], tls: bool, answer: &[u8]) {
    use std::io::Write;
    if !tls {
        let _ = stream.write(answer);
    }
    let _ = stream.read(scratch);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Whether a handshake's Origin passes the allow-list; no list allows all, no Origin (not a browser) passes.
pub(super) fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(_) if allowed.is_empty() => true,
        Some(o) => {
            let o = o.trim().trim_end_matches('/');
            allowed.iter().any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_policy() {
        let list = vec!["http://127.0.0.1:55151".to_string()];
        assert!(origin_allowed(&[], Some("http://evil")));
        assert!(origin_allowed(&list, None));
        assert!(origin_allowed(&list, Some("http://127.0.0.1:55151")));
        assert!(origin_allowed(&list, Some("HTTP://127.0.0.1:55151/")));
        assert!(!origin_allowed(&list, Some("http://evil.example")));
    }

    #[test]
    fn accepted_connections_inherit_nodelay_and_the_queue_is_deep() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", addr.port())])
            .output()
            .expect("ss from iproute2 (`make deps` installs it)");
        // `ss` shows the accept queue's limit in the Send-Q column of a listening socket.
        let text = String::from_utf8_lossy(&out.stdout);
        let limit = text.split_whitespace().nth(2).and_then(|v| v.parse::<u32>().ok());
        assert!(limit.is_some_and(|l| l > 128), "listen backlog {limit:?}: {text}");
    }
}

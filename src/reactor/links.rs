//! The application's outside links (a cluster node's Redis connections) as sockets of this loop: connected
//! when the application asks, read into it, written from it once per turn, closed when either side is done.
//! The protocol is the application's ([`crate::app::LinkHost`]); this file only moves bytes.

use std::io::{self, Read, Write};

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::Reactor;
use crate::app::LinkRequest;

/// Links an application may keep (a cluster node: three to Redis, 32 peer links).
pub(super) const MAX_LINKS: usize = 35;

/// Bytes written to a link that stay unacknowledged this long fail it (`TCP_USER_TIMEOUT`): a peer or a
/// Redis cut off without a reset is noticed.
const LINK_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The token of link 0; link `i` is `LINK_BASE - i`.
const LINK_BASE: usize = usize::MAX - 16;

/// A link's socket.
#[derive(Debug)]
pub(super) struct LinkSocket {
    stream: TcpStream,
    connected: bool,
}

/// The link a token belongs to, if it is a link's.
pub(super) fn link_of(token: Token) -> Option<usize> {
    let i = LINK_BASE.checked_sub(token.0)?;
    (i < MAX_LINKS).then_some(i)
}

fn token(link: usize) -> Token {
    Token(LINK_BASE - link)
}

impl Reactor {
    /// A link's socket is readable or writable (or failed); `to_end`: the peer's FIN or an error came with
    /// the event, so it is read until EOF or EAGAIN (no further edge will come for it).
    pub(super) fn on_link_event(&mut self, link: usize, readable: bool, writable: bool, to_end: bool) {
        if writable || readable {
            self.check_link_connected(link);
        }
        if readable {
            self.read_link(link, to_end);
        }
        self.links_touched = true;
    }

    /// Whether the connect of `link` completed; tells the application once.
    fn check_link_connected(&mut self, link: usize) {
        let Some(sock) = self.link_sockets.get_mut(link).and_then(Option::as_mut) else { return };
        if sock.connected {
            return;
        }
        let outcome = match sock.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match sock.stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(true) => {
                sock.connected = true;
                if let Some(host) = self.app.links() {
                    host.connected(link);
                }
            }
            Ok(false) => {}
            Err(e) => self.link_failed(link, &e.to_string()),
        }
    }

    fn read_link(&mut self, link: usize, to_end: bool) {
        loop {
            let Some(sock) = self.link_sockets.get_mut(link).and_then(Option::as_mut) else { return };
            if !sock.connected {
                return;
            }
            match sock.stream.read(&mut self.scratch) {
                Ok(0) => return self.link_failed(link, "the server closed the connection"),
                Ok(n) => {
                    if let Some(host) = self.app.links() {
                        host.input(link, &self.scratch[..n]);
                    }
                    if n < self.scratch.len() && !to_end {
                        // A short read emptied the socket: the next bytes bring a new edge, so no further
                        // call just to hear EAGAIN (as for the clients).
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.link_failed(link, &e.to_string()),
            }
        }
    }

    /// The socket of `link` failed: dropped, and the application told.
    fn link_failed(&mut self, link: usize, reason: &str) {
        self.drop_link(link);
        if let Some(host) = self.app.links() {
            host.closed(link, reason);
        }
    }

    fn drop_link(&mut self, link: usize) {
        if let Some(mut sock) = self.link_sockets.get_mut(link).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut sock.stream);
        }
    }

    /// Once per turn: carries out the application's connects and closes, lets it apply what its links
    /// brought in, and writes what it queued for them.
    pub(super) fn drive_links(&mut self) {
        if self.app.links().is_none() {
            return;
        }
        if std::mem::take(&mut self.links_touched) {
            self.with_app(|app, out| app.after_links(out));
        }
        let mut requests = std::mem::take(&mut self.link_requests);
        if let Some(host) = self.app.links() {
            host.requests(&mut requests);
        }
        for request in requests.drain(..) {
            match request {
                LinkRequest::Connect { link, addr } if link < MAX_LINKS => {
                    self.drop_link(link);
                    match self.open_link(link, addr) {
                        Ok(sock) => self.link_sockets[link] = Some(sock),
                        Err(e) => {
                            if let Some(host) = self.app.links() {
                                host.closed(link, &e.to_string());
                            }
                        }
                    }
                }
                LinkRequest::Close { link } if link < MAX_LINKS => self.drop_link(link),
                other => debug!("link request out of range: {other:?}"),
            }
        }
        self.link_requests = requests;
        self.write_links();
    }

    /// Writes what the application queued for its links. Called right after the turn's end, before any
    /// client connection is flushed: a message is on its way to Redis before a local member can have read
    /// it, so a node killed between the two cannot leave a say its own users saw that the cluster never got.
    /// While a `--coalesce-us` window is open the links wait for its end like the clients they serve — one
    /// write to Redis a window rather than one a turn — unless a client is written first ([`Self::flush`]
    /// writes them before any client's bytes).
    pub(super) fn write_links(&mut self) {
        if self.app.links().is_none() {
            return;
        }
        if self.coalesce.until().is_some() {
            self.links_deferred = true;
            return;
        }
        self.write_links_now();
    }

    /// Seals what the application gathered for its links and writes them, whatever the window.
    pub(super) fn release_links(&mut self) {
        if let Some(host) = self.app.links() {
            host.gather(false);
        }
        self.write_links_now();
    }

    /// Writes the links' output whatever the window.
    fn write_links_now(&mut self) {
        self.links_deferred = false;
        for link in 0..MAX_LINKS {
            self.write_link(link);
        }
    }

    fn open_link(&mut self, link: usize, addr: std::net::SocketAddr) -> io::Result<LinkSocket> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(LINK_USER_TIMEOUT))?;
        self.register_link(&mut stream, link)?;
        Ok(LinkSocket { stream, connected: false })
    }

    fn register_link(&self, stream: &mut TcpStream, link: usize) -> io::Result<()> {
        self.poll.registry().register(stream, token(link), Interest::READABLE | Interest::WRITABLE)
    }

    fn write_link(&mut self, link: usize) {
        loop {
            let Some(sock) = self.link_sockets.get_mut(link).and_then(Option::as_mut) else { return };
            if !sock.connected {
                return;
            }
            let Some(host) = self.app.links() else { return };
            let out = host.output(link);
            if out.is_empty() {
                return;
            }
            match sock.stream.write(out) {
                Ok(0) => return self.link_failed(link, "the connection accepts no more bytes"),
                Ok(n) => host.written(link, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.link_failed(link, &e.to_string()),
            }
        }
    }

    /// Connections other hosts opened on the application's link listener: each becomes the link the
    /// application names, or is closed at once when it names none.
    pub(super) fn accept_links(&mut self) {
        loop {
            let Some(listener) = &self.link_listener else { return };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    let Some(link) = self.app.links().and_then(|host| host.accepted()) else {
                        debug!("link from {addr} refused: no link left");
                        continue;
                    };
                    let registered = if link >= MAX_LINKS || self.link_sockets[link].is_some() {
                        Err(io::Error::other(format!("link {link} is not free")))
                    } else {
                        stream.set_nodelay(true).and_then(|()| self.register_link(&mut stream, link))
                    };
                    match registered {
                        Ok(()) => self.link_sockets[link] = Some(LinkSocket { stream, connected: true }),
                        Err(e) => {
                            debug!("link from {addr} refused: {e}");
                            if let Some(host) = self.app.links() {
                                host.closed(link, &e.to_string());
                            }
                        }
                    }
                    self.links_touched = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors or the like: the other node's connect times out and it tries again.
                    debug!("accepting a link failed: {e}");
                    return;
                }
            }
        }
    }

    /// Whether the application's links have nothing left to write.
    pub(super) fn links_idle(&mut self) -> bool {
        self.app.links().is_none_or(|host| host.idle())
    }
}

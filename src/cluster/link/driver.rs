//! The mio side of a link: connect, write the pending output, read into the link.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::Link;

/// A [`Link`] over a non-blocking mio `TcpStream`: register [`Driver::socket`] for readable and writable
/// events, call [`Driver::on_writable`] and [`Driver::on_readable`] on them, and [`Driver::flush`] after
/// queuing commands (at the end of a loop turn).
#[derive(Debug)]
pub struct Driver {
    stream: TcpStream,
    link: Link,
    connected: bool,
}

impl Driver {
    /// Starts a non-blocking connect to `addr` for `link`.
    pub fn connect(addr: SocketAddr, link: Link) -> io::Result<Driver> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Driver { stream, link, connected: false })
    }

    /// The socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The link, to queue commands and take events.
    pub fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Whether the connect has completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// A writable event: completes the connect (an error if it failed) and writes what is queued.
    pub fn on_writable(&mut self) -> io::Result<()> {
        self.flush().map(|_| ())
    }

    fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(true);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the link's pending output until it is all written or the socket would block; returns the
    /// bytes written (0 while the connect is under way).
    pub fn flush(&mut self) -> io::Result<usize> {
        if !self.check_connected()? {
            return Ok(0);
        }
        let mut written = 0;
        while !self.link.pending_output().is_empty() {
            match self.stream.write(self.link.pending_output()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.link.consumed_output(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// A readable event: reads until the socket would block, feeding the link through `buf`. Returns
    /// `Ok(false)` at end of stream (the link is then failed as closed).
    pub fn on_readable(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if !self.check_connected()? {
            return Ok(true);
        }
        loop {
            match self.stream.read(buf) {
                Ok(0) => {
                    self.link.closed();
                    return Ok(false);
                }
                Ok(n) => self.link.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

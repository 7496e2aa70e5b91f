//! The transport seam: one connection's byte stream as the reactor drives it — read, vectored write, and
//! shutting the write side — whatever carries it. Plain TCP is the only transport today; a TLS one (a
//! rustls connection driven sans-IO over the same socket) becomes another variant, which is why the rule
//! for when a read has emptied the stream belongs to the transport and not to the reactor.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

/// A connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// Bytes straight on the TCP socket.
    Plain(TcpStream),
}

impl Transport {
    /// A plain TCP transport.
    pub fn plain(stream: TcpStream) -> Transport {
        Transport::Plain(stream)
    }

    /// The socket to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
        }
    }

    /// Whether a read that returned fewer bytes than asked for has emptied the stream, so that the next
    /// data will raise a new readiness edge. True for plain TCP: a short read means the kernel buffer was
    /// empty at that moment. (A TLS transport holds decrypted bytes of its own and must read until
    /// `WouldBlock`.)
    pub fn short_read_drains(&self) -> bool {
        match self {
            Transport::Plain(_) => true,
        }
    }

    /// Bytes written to the socket that the peer has not acknowledged yet (TIOCOUTQ), when the kernel says.
    pub fn kernel_unsent(&self) -> Option<usize> {
        use std::os::fd::AsRawFd;
        let Transport::Plain(stream) = self;
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int through the pointer, which points to a live c_int.
        let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        (r == 0).then(|| usize::try_from(n).unwrap_or(0))
    }

    /// Sends FIN: the peer sees our last bytes and then end of stream; reading goes on.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

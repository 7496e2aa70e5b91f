//! The transport seam: one connection's byte stream as the reactor drives it — read, vectored write, and
//! shutting the write side — whatever carries it: plain TCP, or TLS ([`TlsStream`], a rustls connection
//! driven sans-IO over the same non-blocking socket). The rules that differ between them live here, not in
//! the reactor: when a read has emptied the stream, whether bytes are still held after the queue drained,
//! how much of what was written the peer has taken.

mod tls;
mod tls_limits;

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

pub use tls::{TlsFailure, TlsStream};

/// A connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// Bytes straight on the TCP socket.
    Plain(TcpStream),
    /// TLS over the TCP socket (boxed: rustls's state is large, and plain connections should not pay for it).
    Tls(Box<TlsStream>),
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
            Transport::Tls(t) => t.socket(),
        }
    }

    /// Whether a read that returned fewer bytes than asked for has emptied the stream, so that the next
    /// data will raise a new readiness edge. True for plain TCP: a short read means the kernel buffer was
    /// empty at that moment. False for TLS, which holds decrypted bytes of its own and reads the socket in
    /// record-sized steps: it must be read until `WouldBlock`, one read per loop turn like any connection
    /// (a TLS read that took bytes but has no plaintext yet says `Interrupted`: read again next turn).
    pub fn short_read_drains(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// True while bytes are held above the socket that a write attempt must push (TLS records, a
    /// close_notify, a FIN waiting for them); always false for plain TCP.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.wants_write(),
        }
    }

    /// Pushes what the transport holds (see [`Transport::wants_write`]); true when nothing is left.
    pub fn push_held(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(t) => t.push_tls(),
        }
    }

    /// Of the bytes this connection wrote (`plain_written` before any encryption), how many the peer has
    /// taken, judged on the socket's unacknowledged bytes (TIOCOUTQ) when the kernel says.
    pub fn peer_taken(&self, plain_written: u64) -> Option<u64> {
        let (stream, written) = match self {
            Transport::Plain(s) => (s, plain_written),
            Transport::Tls(t) => (t.socket_ref(), t.written_to_socket()),
        };
        kernel_unsent(stream).map(|q| written.saturating_sub(q as u64))
    }

    /// Sends FIN (TLS: a close_notify first): the peer sees our last bytes and then end of stream; reading
    /// goes on.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.shutdown(Shutdown::Write),
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// The TLS stream, when this is one.
    pub fn tls(&self) -> Option<&TlsStream> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => Some(t),
        }
    }

    /// The TLS stream, when this is one.
    pub fn tls_mut(&mut self) -> Option<&mut TlsStream> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => Some(t),
        }
    }
}

/// Bytes written to the socket that the peer has not acknowledged yet (TIOCOUTQ), when the kernel says.
fn kernel_unsent(stream: &TcpStream) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer, which points to a live c_int.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (r == 0).then(|| usize::try_from(n).unwrap_or(0))
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
            Transport::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

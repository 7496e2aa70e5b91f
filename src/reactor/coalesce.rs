//! `--coalesce-us N`: chat output is held for up to N µs after the first byte held, then written — one write
//! per connection for everything the window gathered rather than one per message. Anything that must not
//! wait (a ping or pong, a close, a handshake or HTTP answer) is written at once, with whatever its
//! connection holds; so is a connection holding [`FLUSH_AT`] bytes or more. The window's end wakes the loop
//! through a timerfd registered with it (epoll's own timeout counts whole milliseconds): no thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A connection holding this many bytes is written without waiting for the window's end.
pub const FLUSH_AT: usize = 32 * 1024;

/// The window and its timer.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    /// When the held output goes out, while some is held.
    until: Option<Instant>,
    timer: Option<OwnedFd>,
}

impl Coalescer {
    /// No window: everything is written at the end of the turn that produced it.
    pub fn off() -> Coalescer {
        Coalescer { window: Duration::ZERO, until: None, timer: None }
    }

    /// A window of `window`, its timer registered with `registry` under `token`.
    pub fn new(window: Duration, registry: &Registry, token: Token) -> io::Result<Coalescer> {
        if window.is_zero() {
            return Ok(Coalescer::off());
        }
        // SAFETY: timerfd_create has no memory-safety preconditions; the descriptor it returns is owned here.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let timer = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&timer.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Coalescer { window, until: None, timer: Some(timer) })
    }

    /// Whether output is held at all.
    pub fn is_on(&self) -> bool {
        !self.window.is_zero()
    }

    /// Whether output that may wait waits at `now`: a window opens with the first held byte and closes
    /// when its time is up (then everything held goes out, and the next byte opens a new one).
    pub fn holds(&mut self, now: Instant, something_held: bool) -> bool {
        if self.window.is_zero() {
            return false;
        }
        match self.until {
            Some(until) if now >= until => {
                self.until = None;
                false
            }
            Some(_) => true,
            None if something_held => {
                let until = now + self.window;
                self.until = Some(until);
                self.arm(self.window);
                true
            }
            None => false,
        }
    }

    /// The timer fired (its count is read so that the next edge comes).
    pub fn on_timer(&mut self) {
        if let Some(timer) = &self.timer {
            let mut count = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from a descriptor this owns.
            let _ = unsafe { libc::read(timer.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        }
    }

    /// When the loop must wake for the window, if one is open.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    fn arm(&self, after: Duration) {
        let Some(timer) = &self.timer else { return };
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: after.as_secs() as libc::time_t, tv_nsec: after.subsec_nanos() as _ },
        };
        // SAFETY: a valid itimerspec for a timerfd this owns; the old value is not asked for.
        unsafe {
            libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_opens_with_the_first_held_byte_and_closes_on_time() {
        let mut poll = mio::Poll::new().unwrap();
        let mut c = Coalescer::new(Duration::from_micros(200), poll.registry(), Token(7)).unwrap();
        let t0 = Instant::now();
        assert!(!c.holds(t0, false), "nothing held, no window");
        assert!(c.holds(t0, true));
        assert_eq!(c.until(), Some(t0 + Duration::from_micros(200)));
        assert!(c.holds(t0 + Duration::from_micros(100), true), "inside the window");
        assert!(!c.holds(t0 + Duration::from_micros(200), true), "its end lets everything out");
        assert_eq!(c.until(), None);
        // The timer wakes the loop.
        assert!(c.holds(Instant::now(), true));
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(7)), "the timerfd fired");
        c.on_timer();
        let mut off = Coalescer::off();
        assert!(!off.is_on() && !off.holds(t0, true));
    }
}

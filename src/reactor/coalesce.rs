//! `--coalesce-us N`: output held for a window, for connections that receive a stream. A connection that
//! has been getting [`START_PER_WINDOW`] chat frames a window or more (judged over [`PERIOD_WINDOWS`]
//! windows; it keeps streaming down to [`KEEP_PER_WINDOW`]) has its chat output held: a window opens with
//! the first output held and closes at the next tick of a clock of period N µs, and then every held
//! connection is written — one write per connection for everything the window gathered rather than one per
//! message, and all of them in one burst, so that the readers wake once for it. The clock is the machine's
//! monotonic clock cut into periods of N µs, so output waits at most N µs, a busy connection is written once
//! a period however long a burst of writes takes, and every daemon on the machine with the same N (the
//! nodes of a cluster) writes at the same instants: their readers wake once for all of them. A connection
//! below that rate is written at once, as without a window. Anything that must not wait (a ping or pong, a
//! close, a handshake or HTTP answer) is written at once with whatever its connection holds; so is a
//! connection holding [`FLUSH_AT`] bytes or more. The window's end wakes the loop through a timerfd
//! registered with it (epoll's own timeout counts whole milliseconds): no thread.
//!
//! While a window is open the loop sleeps on that timer alone and takes all its input at the tick: what it
//! would write waits for the tick anyway, and a loop woken for every message it reads spends more on the
//! wake-ups than on the messages — a cluster node most, being idler between its ticks than one node doing
//! everything. So while a daemon streams, what it reads waits up to N µs as well (timers are kept); while
//! no window is open, nothing waits.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A connection holding this many bytes is written without waiting for its due time.
pub const FLUSH_AT: usize = 32 * 1024;

/// A connection starts to stream at this many chat frames a window on average…
pub const START_PER_WINDOW: u64 = 3;
/// …and keeps streaming while it gets at least this many (so a rate near the line does not flap).
pub const KEEP_PER_WINDOW: u64 = 2;
/// The rate is judged over periods of this many windows (long enough that a burst of a lighter connection
/// seldom passes the start line).
pub const PERIOD_WINDOWS: u32 = 8;

/// One connection's pace: whether it streams, and whether it is held. Eight bytes: every connection has
/// one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pace {
    /// When the current period began, in µs of [`clock`] (wrapping after 71 minutes: a period is
    /// milliseconds long, and a wrong judgement after a longer silence holds one window at most).
    period_start: u32,
    /// Frames in the current period; zero before the first.
    frames: u16,
    streaming: bool,
    /// In the coalescer's held list.
    pub held: bool,
}

/// Microseconds since the process's first use of the clock, wrapping.
fn clock(now: Instant) -> u32 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    now.saturating_duration_since(epoch).as_micros() as u32
}

impl Pace {
    /// `n` chat frames were queued for the connection at `now`; a period's end judges the rate.
    pub fn count(&mut self, now: Instant, n: u32, window: Duration) {
        let now_us = clock(now);
        if self.frames == 0 && !self.streaming {
            self.period_start = now_us;
        }
        let elapsed = u64::from(now_us.wrapping_sub(self.period_start));
        let window_us = window.as_micros() as u64;
        if elapsed >= window_us * u64::from(PERIOD_WINDOWS) {
            // Frames a window over the whole stretch since the period began (a quiet spell makes it longer).
            let line = if self.streaming { KEEP_PER_WINDOW } else { START_PER_WINDOW };
            self.streaming = u64::from(self.frames) * window_us >= line * elapsed;
            self.frames = 0;
            self.period_start = now_us;
        }
        self.frames = self.frames.saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
    }

    /// Whether its chat output may be held: it streams.
    pub fn streams(&self) -> bool {
        self.streaming
    }
}

/// The window, the connections held in it and the timer that ends it.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    /// An instant and the monotonic clock's reading then (ns): where the ticks fall.
    anchor: (Instant, u128),
    /// When the held output goes out, while a window is open.
    until: Option<Instant>,
    /// (slab key, serial) of the held connections; entries of connections written since, or gone, are stale.
    held: Vec<(usize, u64)>,
    timer: Option<OwnedFd>,
}

impl Coalescer {
    /// No window: everything is written at the end of the turn that produced it.
    pub fn off() -> Coalescer {
        Coalescer { window: Duration::ZERO, anchor: (Instant::now(), 0), until: None, held: Vec::new(), timer: None }
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
        Ok(Coalescer {
            window,
            anchor: (Instant::now(), monotonic_ns()),
            until: None,
            held: Vec::new(),
            timer: Some(timer),
        })
    }

    /// Whether output is held at all.
    pub fn is_on(&self) -> bool {
        !self.window.is_zero()
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Connection `k` (of `serial`) is held from `now`: into the open window, or one that opens now.
    pub fn hold(&mut self, now: Instant, k: usize, serial: u64) {
        if self.until.is_none() {
            let until = self.next_tick(now);
            self.until = Some(until);
            self.arm(until.saturating_duration_since(Instant::now()));
        }
        self.held.push((k, serial));
    }

    /// When the window is over at `now`: every held connection into `out` (as slab key and serial).
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<(usize, u64)>) {
        if self.until.is_some_and(|until| now >= until) {
            self.until = None;
            out.append(&mut self.held);
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

    /// While a window is open, blocks until its tick (the timer fires) or `max` passes, whichever is first:
    /// the loop then takes everything that came meanwhile in one turn. Whether it waited (no window open,
    /// or nothing to wait for, returns at once).
    pub fn wait_for_tick(&self, max: Option<Duration>) -> bool {
        let Some(timer) = &self.timer else { return false };
        if self.until.is_none() || max.is_some_and(|d| d.is_zero()) {
            return false;
        }
        let mut fd = libc::pollfd { fd: timer.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ts = max.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as _,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: one valid pollfd for a descriptor this owns, a valid (or null: no limit) timeout, no mask.
        unsafe { libc::ppoll(&mut fd, 1, ts_ptr, std::ptr::null()) };
        true
    }

    /// When the loop must wake for the window, if one is open.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// The first tick after `now` of the clock of period `window` (the monotonic clock's multiples of it).
    fn next_tick(&self, now: Instant) -> Instant {
        let (at, ns) = self.anchor;
        let mono = ns + now.saturating_duration_since(at).as_nanos();
        let period = self.window.as_nanos().max(1);
        now + Duration::from_nanos((period - mono % period) as u64)
    }

    fn arm(&self, after: Duration) {
        let Some(timer) = &self.timer else { return };
        // A zero it_value would disarm the timer: the tick is now, so it fires at once.
        let after = after.max(Duration::from_nanos(1));
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

/// The machine's monotonic clock (the one `Instant` reads), in ns.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_micros(500);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Feeds one frame every `gap` µs for `ms` milliseconds; whether the connection streams at the end.
    fn streams_at(gap: u64, ms: u64) -> bool {
        let t0 = Instant::now();
        let mut p = Pace::default();
        for i in 0..(ms * 1000 / gap) {
            p.count(t0 + us(gap * i), 1, W);
        }
        p.streams()
    }

    #[test]
    fn a_connection_streams_from_three_frames_a_window() {
        assert!(!streams_at(500, 40), "one frame a window");
        assert!(!streams_at(300, 40), "1.7 frames a window");
        assert!(!streams_at(200, 40), "2.5 frames a window");
        assert!(streams_at(150, 40), "3.3 frames a window");
        assert!(streams_at(100, 40), "5 frames a window");
        // The first period is judged only at its end.
        assert!(!streams_at(10, 3));
    }

    #[test]
    fn a_stream_keeps_streaming_down_to_two_frames_a_window() {
        let mut p = Pace::default();
        let mut t = Instant::now();
        let mut feed = |p: &mut Pace, gap: u64, ms: u64| {
            for _ in 0..(ms * 1000 / gap) {
                t += us(gap);
                p.count(t, 1, W);
            }
        };
        feed(&mut p, 100, 20);
        assert!(p.streams());
        feed(&mut p, 200, 20);
        assert!(p.streams(), "2.5 frames a window keeps it");
        feed(&mut p, 300, 20);
        assert!(!p.streams(), "1.7 frames a window ends it");
        feed(&mut p, 200, 20);
        assert!(!p.streams(), "and 2.5 does not start it again");
    }

    #[test]
    fn a_quiet_spell_ends_the_stream() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        for i in 0..100 {
            p.count(t0 + us(50 * i), 1, W);
        }
        assert!(p.streams());
        // 20 ms later: the rate over the stretch is low, so its next frame is not held.
        p.count(t0 + us(25_000), 1, W);
        assert!(!p.streams());
    }

    #[test]
    fn a_window_opens_with_the_first_held_connection_and_lets_all_out_at_the_next_tick() {
        let mut poll = mio::Poll::new().unwrap();
        let mut c = Coalescer::new(us(200), poll.registry(), Token(7)).unwrap();
        assert!(c.is_on());
        let t0 = Instant::now();
        c.hold(t0, 1, 10);
        let until = c.until().expect("the first held opened it");
        assert!(until > t0 && until <= t0 + us(200), "at most a period: {:?}", until - t0);
        c.hold(until - us(1), 2, 20);
        assert_eq!(c.until(), Some(until), "the window stays as it opened");
        let mut out = Vec::new();
        c.take_due(until - us(1), &mut out);
        assert!(out.is_empty());
        c.take_due(until, &mut out);
        assert_eq!(out, vec![(1, 10), (2, 20)]);
        // The next window ends at a later tick, a whole number of periods on.
        c.hold(until + us(1), 3, 30);
        assert_eq!(c.until(), Some(until + us(200)));
        c.take_due(until + us(200), &mut out);
        // Another coalescer with the same period (another daemon on the machine) ticks at the same instants.
        let mut other = Coalescer::new(us(200), poll.registry(), Token(8)).unwrap();
        other.hold(until + us(250), 1, 1);
        // (Within the few µs between reading `Instant` and the clock itself when each started.)
        let off = other.until().map_or(u128::MAX, |t| t.duration_since(until).as_nanos() % 200_000);
        assert!(off.min(200_000 - off) < 5_000, "{off} ns off the tick");
        assert_eq!(c.until(), None);
        // The timer wakes the loop.
        c.hold(Instant::now(), 3, 30);
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(7)), "the timerfd fired");
        c.on_timer();
        let off = Coalescer::off();
        assert!(!off.is_on() && off.until().is_none());
    }

    #[test]
    fn the_loop_sleeps_to_the_tick_only_while_a_window_is_open() {
        let poll = mio::Poll::new().unwrap();
        let mut c = Coalescer::new(us(2000), poll.registry(), Token(7)).unwrap();
        assert!(!c.wait_for_tick(None), "no window: the loop blocks in epoll as usual");
        let t0 = Instant::now();
        c.hold(t0, 1, 1);
        let until = c.until().unwrap();
        assert!(!c.wait_for_tick(Some(Duration::ZERO)), "something is due now: no wait");
        assert!(c.wait_for_tick(Some(Duration::from_secs(1))));
        assert!(Instant::now() >= until, "woken by the tick, not before");
        assert!(Instant::now() < until + Duration::from_millis(500));
        // An earlier deadline (a timer of the loop) cuts the wait short.
        c.on_timer();
        let mut out = Vec::new();
        c.take_due(Instant::now(), &mut out);
        c.hold(Instant::now(), 2, 2);
        let before = Instant::now();
        assert!(c.wait_for_tick(Some(us(1))));
        assert!(Instant::now() < before + us(1900), "the deadline, not the tick");
    }
}

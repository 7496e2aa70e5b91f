//! One of a node's two Redis connections as the node sees it: down (waiting to retry, with back-off),
//! connecting, or up with its sans-IO [`Link`].

use std::time::{Duration, Instant};

use crate::cluster::link::{Link, RedisUrl};

/// The first wait before reconnecting; it doubles with every failure in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two reconnects.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A connect that has not completed after this long is given up and retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a connection is.
#[derive(Debug)]
pub enum SlotState {
    /// Not connected; a connect is due at `retry_at`.
    Down {
        /// When to try again.
        retry_at: Instant,
    },
    /// A connect was asked of the reactor at `since`.
    Connecting {
        /// When it was asked.
        since: Instant,
    },
    /// Connected.
    Up(Link),
}

/// A connection, its back-off, and why it last went down.
#[derive(Debug)]
pub struct Slot {
    /// Where it is.
    pub state: SlotState,
    /// The wait before the next reconnect.
    pub backoff: Duration,
    /// When the last byte came from Redis (or the connection came up).
    pub last_input: Instant,
    /// Why it last went down ("not connected yet" at first).
    pub down_reason: String,
}

impl Slot {
    /// A connection due at once.
    pub fn new(now: Instant) -> Slot {
        Slot {
            state: SlotState::Down { retry_at: now },
            backoff: FIRST_BACKOFF,
            last_input: now,
            down_reason: "not connected yet".to_string(),
        }
    }

    /// The link, when up.
    pub fn link(&mut self) -> Option<&mut Link> {
        match &mut self.state {
            SlotState::Up(link) => Some(link),
            _ => None,
        }
    }

    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        matches!(self.state, SlotState::Up(_))
    }

    /// The connect completed: a fresh link (AUTH and SELECT queued first).
    pub fn up(&mut self, url: &RedisUrl, now: Instant) {
        self.state = SlotState::Up(Link::new(url));
        self.last_input = now;
    }

    /// The connection is gone for `reason`: retry after the back-off, which doubles up to [`MAX_BACKOFF`].
    pub fn down(&mut self, reason: &str, now: Instant) {
        self.state = SlotState::Down { retry_at: now + self.backoff };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.down_reason = reason.to_string();
    }

    /// Redis answered on this connection: the next failure starts the back-off afresh.
    pub fn answered(&mut self, now: Instant) {
        self.last_input = now;
        self.backoff = FIRST_BACKOFF;
    }

    /// When something is due: the retry, or the connect's time-out.
    pub fn due(&self) -> Option<Instant> {
        match self.state {
            SlotState::Down { retry_at } => Some(retry_at),
            SlotState::Connecting { since } => Some(since + CONNECT_TIMEOUT),
            SlotState::Up(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_on_an_answer() {
        let now = Instant::now();
        let mut s = Slot::new(now);
        assert_eq!(s.due(), Some(now));
        let mut waits = Vec::new();
        for _ in 0..8 {
            s.down("refused", now);
            waits.push(s.due().map(|t| t - now));
        }
        assert_eq!(waits[0], Some(Duration::from_millis(100)));
        assert_eq!(waits[1], Some(Duration::from_millis(200)));
        assert_eq!(waits[7], Some(MAX_BACKOFF));
        s.up(&RedisUrl::parse("redis://127.0.0.1:1").unwrap(), now);
        assert!(s.is_up() && s.link().is_some() && s.due().is_none());
        s.answered(now);
        s.down("closed", now);
        assert_eq!(s.due(), Some(now + FIRST_BACKOFF));
        assert_eq!(s.down_reason, "closed");
    }
}

//! Each connection's one timer on the wheel: arming it, and what its deadline means when it comes (a
//! handshake or request not finished in time, a ping due, an idle connection, a last answer lingering).

use std::time::Instant;

use log::debug;

use super::Reactor;
use crate::session::{Deadline, Phase, LINGER};
use crate::ws::frame::{close_code, OpCode};

impl Reactor {
    /// Arms connection `k`'s one timer for `at` (a later arming makes the earlier entry stale).
    pub(super) fn arm_timer(&mut self, k: usize, at: Instant) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.timer_tick = self.wheel.schedule(at, k, conn.serial);
    }

    /// Runs the deadlines of the connections whose timers came due by the turn's time.
    pub(super) fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(self.now, &mut expired);
        for entry in expired.drain(..) {
            let Some(conn) = self.conns.get_mut(entry.key) else { continue };
            if conn.serial != entry.serial || conn.timer_tick != entry.tick {
                continue; // Stale: the connection was replaced or re-armed since.
            }
            self.on_deadline(entry.key);
        }
        self.expired = expired;
    }

    /// A connection's deadline came: linger, remove, close as idle, ping, or look again later.
    fn on_deadline(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if let Some(written) = conn.session.writing_last_answer() {
            // A last answer still being written (a large file of --web-root to a slow reader) lingers as long
            // as the peer keeps taking bytes: more of what was written has left the kernel since the last look.
            let taken = conn.transport.peer_taken(written);
            if let Some(taken) = taken.filter(|&t| t > conn.linger_taken) {
                conn.linger_taken = taken;
                self.arm_timer(k, self.now + LINGER);
                return;
            }
        }
        match conn.session.on_deadline(self.now, self.cfg.ping_interval) {
            Deadline::Remove => {
                if conn.transport.tls().is_some_and(|t| t.handshaking()) {
                    debug!("{}: TLS handshake not finished in time; closing", conn.peer);
                    if let Some(tls) = self.metrics.tls.as_mut() {
                        tls.count_failure("timeout");
                    }
                } else if conn.session.phase() == Phase::Handshake {
                    debug!("{}: no complete request in time; closing", conn.peer);
                }
                self.remove(k);
            }
            Deadline::CloseIdle => {
                debug!("{}: silent for two ping intervals; closing", conn.peer);
                self.close(k, close_code::GOING_AWAY, "idle timeout");
            }
            Deadline::Ping { rearm } => {
                self.send_control(k, OpCode::Ping, b"");
                self.arm_timer(k, rearm);
            }
            Deadline::Rearm(at) => self.arm_timer(k, at),
        }
    }
}

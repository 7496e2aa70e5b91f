//! Output: queuing what the application and the session produce, writing each touched connection once
//! per loop turn (one vectored write), and the two budgets — a client whose unsent output stays over
//! `--send-buffer-limit` after a write attempt is cut as a slow consumer, and when all clients' unsent
//! output passes `--max-output-bytes` the largest backlogs are cut first. A file body of a web answer counts
//! like any output while a chunk of it is in memory; it is written one chunk per connection per loop turn, and
//! at most [`BODY_CHUNKS_PER_TURN`] chunks a turn to readers that keep up.

use log::{debug, info, warn};

use super::admission::Moment;
use super::{trace, Kind, Reactor};
use crate::outbox::Flushed;
use crate::session::{AfterWrite, Session};
use crate::shared_bytes::SharedBytes;
use crate::ws::frame::{close_code, frame, OpCode};

/// File-body chunks ([`crate::outbox::BODY_CHUNK`]) written a loop turn to readers whose sockets keep taking
/// them (256 KiB): however many fast readers fetch large files, the turn's cost stays bounded and the chat
/// keeps its latency. Readers whose sockets had to drain first get their chunk at their writable edge.
const BODY_CHUNKS_PER_TURN: usize = 4;

/// Unsent bytes queued for all clients (`wschat_output_queued_bytes`, held against `--max-output-bytes`):
/// the sum of every connection's queue, kept so by moving it only around what changes a queue.
#[derive(Debug, Default)]
pub(super) struct OutputGauge(u64);

impl OutputGauge {
    /// Bytes queued for all clients.
    pub(super) fn bytes(&self) -> u64 {
        self.0
    }

    /// Runs `f` — whatever queues, writes or drops a connection's output — on its session, and moves the
    /// gauge by what that changed in the queue (a write that failed half-way included).
    pub(super) fn track<R>(&mut self, session: &mut Session, f: impl FnOnce(&mut Session) -> R) -> R {
        let before = session.queued_bytes() as u64;
        let result = f(session);
        self.0 = (self.0 + session.queued_bytes() as u64).saturating_sub(before);
        result
    }

    /// A dropped connection's queue leaves the gauge.
    pub(super) fn forget(&mut self, session: &Session) {
        self.0 = self.0.saturating_sub(session.queued_bytes() as u64);
    }
}

impl Reactor {
    /// Queues data frames (`messages` of them) for an open connection. The send-buffer limit is judged
    /// after the next write attempt, on what stays unsent ([`Reactor::flush`]).
    pub(super) fn deliver(&mut self, k: usize, frame: SharedBytes, messages: u32, welcome: bool) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if !conn.session.is_open() {
            return;
        }
        self.metrics.deliveries_total += u64::from(messages);
        if self.cfg.trace_frames {
            trace::outgoing(conn.peer, k, &frame);
        }
        self.queued.track(&mut conn.session, |s| s.queue(frame, welcome));
        if self.coalesce.is_on() {
            conn.pace.count(self.now, messages, self.coalesce.window());
        }
        self.mark_held(k);
    }

    /// Queues a ping, or the pong for a ping's payload (replacing a pong still waiting to go out).
    pub(super) fn send_control(&mut self, k: usize, op: OpCode, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if !conn.session.is_open() {
            return;
        }
        self.queued.track(&mut conn.session, |s| match op {
            OpCode::Pong => s.queue_pong(payload),
            _ => s.queue(SharedBytes::from(frame(op, payload)), false),
        });
        self.mark_dirty(k);
    }

    /// Cuts a client whose unsent output stayed over `--send-buffer-limit` after a write attempt (its
    /// welcome excepted): its queue is dropped and it gets close 1008.
    fn cut_slow_consumer(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        self.metrics.slow_consumer_disconnects_total += 1;
        info!(
            "{}: slow consumer: {} bytes unsent after a write, limit {}; disconnecting",
            conn.peer,
            conn.session.held_bytes(),
            self.cfg.send_buffer_limit
        );
        self.discard_output(k);
        self.close(k, close_code::POLICY_VIOLATION, "send buffer limit exceeded");
    }

    /// Drops what a connection has queued and not started to write.
    fn discard_output(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        self.queued.track(&mut conn.session, |s| s.discard_unstarted());
    }

    /// When the output queued for all clients together passes `--max-output-bytes`, cuts the clients with
    /// the largest backlogs first until it is back under the budget.
    pub(super) fn enforce_output_budget(&mut self) {
        let mut budget = self.cfg.max_output_bytes as u64;
        let (queued, held) = (self.queued.bytes(), self.app.held_output() as u64);
        if queued + held <= budget {
            return;
        }
        // What the application holds for later (resume's say logs) gives way before anyone is cut.
        let freed = self.app.shed_output(usize::try_from(queued + held - budget).unwrap_or(usize::MAX)) as u64;
        budget = budget.saturating_sub(held.saturating_sub(freed));
        if queued <= budget {
            return;
        }
        let mut backlogs: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session.owes_output())
            .map(|(k, c)| (c.session.queued_bytes(), k))
            .collect();
        backlogs.sort_unstable_by(|a, b| b.cmp(a));
        warn!(
            "output budget exceeded: {} bytes queued, budget {budget}; cutting the largest backlogs",
            self.queued.bytes()
        );
        for (_, k) in backlogs {
            if self.queued.bytes() <= budget {
                break;
            }
            self.metrics.output_budget_disconnects_total += 1;
            if let Some(conn) = self.conns.get(k).filter(|c| c.session.is_open()) {
                debug!("{}: cut at the output budget with {} bytes queued", conn.peer, conn.session.queued_bytes());
                self.discard_output(k);
                self.close(k, close_code::POLICY_VIOLATION, "server output budget exceeded");
            } else {
                self.remove(k);
            }
        }
        // The cuts' logouts and close frames are small; write them now.
        self.flush_dirty();
    }

    /// Connections that wrote a chunk of a file body with the socket still taking bytes get their next chunk
    /// (no writable edge will come for them): at most [`BODY_CHUNKS_PER_TURN`] of them a turn, first come
    /// first served, the others keeping their place.
    pub(super) fn resume_writing(&mut self) {
        let n = self.write_again.len().min(BODY_CHUNKS_PER_TURN);
        let mut waiting = std::mem::take(&mut self.write_again);
        for k in waiting.drain(..n) {
            self.mark_dirty(k);
        }
        self.write_again = waiting;
    }

    /// `k` has output that must go out this turn (a control frame, a close, an answer), with whatever it
    /// holds.
    pub(super) fn mark_dirty(&mut self, k: usize) {
        if let Some(conn) = self.conns.get_mut(k) {
            // Dirty but not urgent: it may be in the held list, which waits; the dirty list does not.
            if !conn.dirty || !conn.urgent {
                self.dirty.push(k);
            }
            conn.dirty = true;
            conn.urgent = true;
        }
    }

    /// `k` has chat output, which may wait for the coalescing window (`--coalesce-us`); a held connection
    /// that gathered [`coalesce::FLUSH_AT`] bytes goes out now.
    fn mark_held(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(k);
        } else if conn.pace.held && conn.session.queued_bytes() >= super::coalesce::FLUSH_AT {
            self.mark_dirty(k);
        }
    }

    /// Whether `k`'s output may wait for the window: only chat output (nothing urgent), under
    /// [`coalesce::FLUSH_AT`], of a connection that streams.
    fn may_wait(&self, k: usize) -> bool {
        self.conns
            .get(k)
            .is_some_and(|c| !c.urgent && c.pace.streams() && c.session.queued_bytes() < super::coalesce::FLUSH_AT)
    }

    pub(super) fn flush_dirty(&mut self) {
        // A write error removes a connection, and its logout can open a batch and dirty others: seal and
        // flush until nothing is left, reusing the two lists' allocations. What the turn sends to the
        // cluster goes out first (see `write_links`): with a window, before the first client write of the
        // turn or at the end of the window.
        let coalescing = self.coalesce.is_on();
        if coalescing {
            // The turn's message to the cluster may gather with the window's others (written at its end or
            // before the first client write, whichever is first).
            if let Some(host) = self.app.links() {
                host.gather(true);
            }
        }
        self.end_app_turn(coalescing);
        let mut dirty = std::mem::take(&mut self.dirty);
        if coalescing {
            // At the window's end the held connections are written (entries of connections written since,
            // or gone, are stale).
            let mut due = std::mem::take(&mut self.due_now);
            self.coalesce.take_due(self.now, &mut due);
            for (k, serial) in due.drain(..) {
                if self.conns.get(k).is_some_and(|c| c.serial == serial && c.pace.held) {
                    self.flush(k);
                }
            }
            self.due_now = due;
        }
        while !dirty.is_empty() {
            for &k in &dirty {
                if coalescing && self.may_wait(k) {
                    // Stays dirty, out of the list: the window's end brings it back.
                    if let Some(conn) = self.conns.get_mut(k) {
                        if !conn.pace.held {
                            conn.pace.held = true;
                            self.coalesce.hold(self.now, k, conn.serial);
                            self.metrics.coalesce_held_total += 1;
                        }
                    }
                } else {
                    self.flush(k);
                }
            }
            dirty.clear();
            self.end_app_turn(coalescing);
            std::mem::swap(&mut dirty, &mut self.dirty);
        }
        self.dirty = dirty;
        if coalescing && self.links_deferred && self.coalesce.until().is_none() {
            // Now, unless a window is open (then at its end, or before the first client write).
            self.release_links();
        }
    }

    /// Ends the application's turn; what it queued for the cluster is written now, or with a window left for
    /// the window's end or the first client write.
    fn end_app_turn(&mut self, coalescing: bool) {
        self.with_app(|app, out| app.end_turn(out));
        if coalescing {
            self.links_deferred = self.app.links().is_some();
        } else {
            self.write_links();
        }
    }

    /// Writes what the connection has queued, then applies the session's judgement of what is left.
    pub(super) fn flush(&mut self, k: usize) {
        let Some(conn) = self.conns.get(k) else { return };
        if self.links_deferred && (conn.session.owes_output() || conn.transport.wants_write()) {
            // The cluster hears of what this client reads before the client can (see `write_links`).
            self.release_links();
        }
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.dirty = false;
        conn.urgent = false;
        conn.pace.held = false;
        let result = if conn.session.owes_output() {
            // Drained only when the transport holds nothing either (TLS records the socket did not take).
            let transport = &mut conn.transport;
            let flushed = self.queued.track(&mut conn.session, |s| s.write_to(transport));
            flushed.map(|d| Flushed { drained: d.drained && !transport.wants_write(), ..d })
        } else if conn.transport.wants_write() {
            conn.transport.push_held().map(|drained| Flushed { drained, ..Flushed::default() })
        } else {
            return;
        };
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                debug!("{}: write error: {e}", conn.peer);
                self.remove(k);
                return;
            }
        };
        if done.again && !self.write_again.contains(&k) {
            self.write_again.push(k);
        }
        if conn.kind == Kind::WebSocket {
            self.metrics.bytes_out_total += done.written as u64;
        }
        match conn.session.after_write(done.drained, self.cfg.send_buffer_limit) {
            AfterWrite::Keep => {}
            AfterWrite::CutSlow => self.cut_slow_consumer(k),
            AfterWrite::ShutWrite { remove } => {
                // Half-close: the peer sees our last bytes and EOF; we keep reading until it closes so unread
                // input never turns our close into a reset.
                let shut = conn.transport.shutdown_write();
                self.admission.passed(&mut conn.ticket, Moment::Written);
                if let Err(e) = shut {
                    let Some(conn) = self.conns.get(k) else { return };
                    debug!("{}: shutdown failed: {e}", conn.peer);
                    self.remove(k);
                } else if remove {
                    // Both sides are done: the peer closed first and everything it was owed is written.
                    self.remove(k);
                }
            }
            AfterWrite::Remove => self.remove(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_gauge_follows_what_is_queued_written_and_dropped() {
        let (mut gauge, mut a, mut b) =
            (OutputGauge::default(), Session::new(Instant::now(), 1024, 0), Session::new(Instant::now(), 1024, 0));
        gauge.track(&mut a, |s| s.open(SharedBytes::from(vec![1; 100]), 0));
        gauge.track(&mut b, |s| s.open(SharedBytes::from(vec![2; 40]), 0));
        gauge.track(&mut a, |s| s.queue_pong(b"ping"));
        gauge.track(&mut a, |s| s.queue(SharedBytes::from(vec![3; 60]), false));
        assert_eq!(gauge.bytes(), 100 + 40 + 6 + 60);
        let mut wire = Vec::new();
        let written = gauge.track(&mut b, |s| s.write_to(&mut wire)).map(|f| f.written).ok();
        assert_eq!((written, gauge.bytes()), (Some(40), 166));
        let dropped = gauge.track(&mut a, |s| s.discard_unstarted());
        assert_eq!((dropped, gauge.bytes()), (166, 0));
        gauge.track(&mut b, |s| s.finish(SharedBytes::from(vec![4; 8])));
        gauge.forget(&b);
        assert_eq!(gauge.bytes(), 0);
    }
}

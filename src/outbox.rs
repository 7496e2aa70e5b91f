//! A connection's queued output: shared frames plus how much of the first one is already written. Flushes
//! with vectored writes (one `writev` for everything a loop turn produced), accounts bytes, and tells the
//! reactor when the send-buffer limit is exceeded.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::chat::hub::Frame;

/// Most frames handed to one `writev`.
const MAX_IOVECS: usize = 128;

/// Queued output of one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    frames: VecDeque<Frame>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Unsent bytes in the queue.
    queued: usize,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Bytes written by this flush.
    pub written: usize,
    /// True when the queue is now empty; false when the socket would block.
    pub drained: bool,
}

impl Outbox {
    /// Queues a frame.
    pub fn push(&mut self, frame: Frame) {
        self.queued += frame.len();
        self.frames.push_back(frame);
    }

    /// Unsent bytes.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// True when the first frame is partly written, so nothing may be inserted before its end.
    pub fn is_mid_frame(&self) -> bool {
        self.head_written > 0
    }

    /// Drops every queued frame except a partly written first one (which must finish to keep the stream
    /// well-formed); used before a last close frame to a slow consumer.
    pub fn discard_unstarted(&mut self) {
        let keep = usize::from(self.head_written > 0);
        while self.frames.len() > keep {
            if let Some(f) = self.frames.pop_back() {
                self.queued -= f.len();
            }
        }
    }

    /// Gives back the queue's memory when it is empty (for idle connections).
    pub fn release_if_empty(&mut self) {
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// Writes as much as the writer takes, in vectored writes of up to 128 frames.
    pub fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        let mut written = 0;
        while !self.frames.is_empty() {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n = 0;
            for (i, f) in self.frames.iter().take(MAX_IOVECS).enumerate() {
                let bytes: &[u8] = if i == 0 { &f[self.head_written..] } else { f };
                slices[n] = IoSlice::new(bytes);
                n += 1;
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(done) => {
                    written += done;
                    self.consume(done);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed { written, drained: false }),
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed { written, drained: true })
    }

    /// Marks `n` bytes from the front as written.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.frames.front() else { break };
            let left = front.len() - self.head_written;
            if n >= left {
                n -= left;
                self.head_written = 0;
                self.frames.pop_front();
            } else {
                self.head_written += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// A writer that takes at most `budget` bytes per call and then would block once `total` is reached.
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        total: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let room = self.total.saturating_sub(self.got.len()).min(self.per_call);
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut taken = 0;
            for b in bufs {
                let t = b.len().min(room - taken);
                self.got.extend_from_slice(&b[..t]);
                taken += t;
                if taken == room {
                    break;
                }
            }
            Ok(taken)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn frame(bytes: &[u8]) -> Frame {
        Rc::from(bytes)
    }

    #[test]
    fn one_vectored_write_for_many_frames() {
        let mut o = Outbox::default();
        for i in 0..10u8 {
            o.push(frame(&[i; 3]));
        }
        assert_eq!(o.queued_bytes(), 30);
        let mut w = Trickle { got: vec![], per_call: 1000, total: 1000, calls: 0 };
        assert_eq!(o.flush(&mut w).unwrap(), Flushed { written: 30, drained: true });
        assert_eq!(w.calls, 1);
        assert_eq!(w.got.len(), 30);
        assert!(o.is_empty());
    }

    #[test]
    fn partial_writes_resume_mid_frame_in_order() {
        let mut o = Outbox::default();
        o.push(frame(b"hello "));
        o.push(frame(b"world"));
        let mut w = Trickle { got: vec![], per_call: 4, total: 8, calls: 0 };
        assert_eq!(o.flush(&mut w).unwrap(), Flushed { written: 8, drained: false });
        assert!(o.is_mid_frame());
        assert_eq!(o.queued_bytes(), 3);
        w.total = 100;
        assert_eq!(o.flush(&mut w).unwrap(), Flushed { written: 3, drained: true });
        assert_eq!(w.got, b"hello world");
    }

    #[test]
    fn discard_keeps_a_started_frame() {
        let mut o = Outbox::default();
        o.push(frame(b"abcd"));
        o.push(frame(b"efgh"));
        o.push(frame(b"ijkl"));
        let mut w = Trickle { got: vec![], per_call: 2, total: 2, calls: 0 };
        o.flush(&mut w).unwrap();
        o.discard_unstarted();
        assert_eq!(o.queued_bytes(), 2);
        o.push(frame(b"CLOSE"));
        w.total = 100;
        o.flush(&mut w).unwrap();
        assert_eq!(w.got, b"abcdCLOSE");
        let mut o = Outbox::default();
        o.push(frame(b"abcd"));
        o.discard_unstarted();
        assert!(o.is_empty());
        assert_eq!(o.queued_bytes(), 0);
    }

    #[test]
    fn more_frames_than_one_writev_takes() {
        let mut o = Outbox::default();
        for _ in 0..300 {
            o.push(frame(b"xy"));
        }
        let mut w = Trickle { got: vec![], per_call: 10_000, total: 10_000, calls: 0 };
        assert!(o.flush(&mut w).unwrap().drained);
        assert_eq!(w.got.len(), 600);
        assert_eq!(w.calls, 3);
        o.release_if_empty();
        assert_eq!(o.frames.capacity(), 0);
    }
}

//! A connection's queued output: shared frames plus how much of the first one is already written. Flushes
//! with vectored writes (one `writev` for everything a loop turn produced) and accounts bytes: what is
//! queued, and what of it counts against the send-buffer limit (the reactor judges that after each write
//! attempt). At most a few pongs wait unstarted; past that a new one replaces the latest (RFC 6455 5.5.3
//! allows answering only the most recent ping), so a ping flood cannot grow the queue.
//!
//! A last answer may end in a file body ([`FileBody`], a large file of `--web-root`): it is read from the
//! open file one chunk at a time ([`BODY_CHUNK`], into a buffer the connection reuses) as the socket takes
//! the previous one, at most one chunk per flush, so a reader that does not keep up holds a chunk of the
//! daemon's memory, not the file, and a fast one costs a loop turn no more than a chunk's copy.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;

use crate::shared_bytes::SharedBytes;
use crate::ws::frame::{frame, OpCode};

/// Most frames handed to one `writev`.
const MAX_IOVECS: usize = 128;

/// Pongs that may wait unstarted in the queue; past this a new pong replaces the latest one.
pub const MAX_PENDING_PONGS: u8 = 16;

/// First byte of an unmasked final pong frame: how the queue recognises its pongs.
const PONG_BYTE: u8 = 0x8A;

/// Bytes of a file body read from the file at a time: what a connection streaming a file holds.
pub const BODY_CHUNK: usize = 64 * 1024;

/// The body of a last answer sent from an open file, after its head: the first `len` bytes of `file`.
#[derive(Debug)]
pub struct FileBody {
    file: File,
    len: u64,
}

impl FileBody {
    /// The first `len` bytes of `file` (the length its head announced; a file that turns out shorter ends
    /// the connection, a longer one is cut at `len`).
    pub fn new(file: File, len: u64) -> FileBody {
        FileBody { file, len }
    }

    /// The bytes the body is made of.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A last answer: bytes queued as they are, then, for a large file, its body streamed from the file.
#[derive(Debug)]
pub struct Reply {
    /// The answer, or its head when a body follows.
    pub head: SharedBytes,
    /// The file body after the head.
    pub body: Option<FileBody>,
}

impl From<SharedBytes> for Reply {
    fn from(head: SharedBytes) -> Reply {
        Reply { head, body: None }
    }
}

impl From<Vec<u8>> for Reply {
    fn from(bytes: Vec<u8>) -> Reply {
        Reply { head: bytes.into(), body: None }
    }
}

/// A file body being sent: the file, how far it has been read, and the chunk read last.
#[derive(Debug)]
struct Stream {
    file: File,
    /// Offset in the file of the next chunk.
    offset: u64,
    /// Where the body ends in the file.
    end: u64,
    /// The chunk read last; reused for the next one.
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    sent: usize,
    /// Absolute index of the frame the body follows (its head): the body goes only if its head does.
    after: u64,
}

/// Why a file body could not be sent to its end.
fn shrank(at: u64, end: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file shrank while it was sent: it ends at {at} of the {end} bytes announced"),
    )
}

/// Queued output of one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    frames: VecDeque<SharedBytes>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Unsent bytes in the queue.
    queued: usize,
    /// Bytes written since the connection opened: the stream offset of the first unsent byte.
    written_total: u64,
    /// Frames taken off the front since the connection opened: the absolute index of `frames[0]`.
    popped: u64,
    /// Absolute index of the latest queued pong.
    pong_at: u64,
    /// Pongs queued and not yet started.
    pongs_waiting: u8,
    /// Stream offsets `[start, end)` of the latest welcome (user list and history): not held against the
    /// send-buffer limit.
    welcome: (u64, u64),
    /// A file body after the last frame, sent a chunk at a time (boxed: WebSocket connections never have one).
    stream: Option<Box<Stream>>,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    /// Bytes written by this flush.
    pub written: usize,
    /// True when the queue is now empty; false when the socket would block or `again`.
    pub drained: bool,
    /// Bytes this flush read from a file body into the queue (they count as queued until written).
    pub loaded: usize,
    /// The flush stopped after its one chunk of a file body with the socket still taking bytes: flush
    /// again next loop turn (no writable edge will come).
    pub again: bool,
}

impl Outbox {
    /// Queues a frame.
    pub fn push(&mut self, frame: SharedBytes) {
        self.queued += frame.len();
        self.frames.push_back(frame);
    }

    /// Queues a frame of a newcomer's welcome: its bytes are not held against the send-buffer limit.
    pub fn push_welcome(&mut self, frame: SharedBytes) {
        let start = self.written_total + self.queued as u64;
        let end = start + frame.len() as u64;
        // Consecutive welcome frames (a user list, then history) extend one range.
        self.welcome = if self.welcome.1 == start { (self.welcome.0, end) } else { (start, end) };
        self.push(frame);
    }

    /// Queues a pong for `payload`. While [`MAX_PENDING_PONGS`] wait unstarted, the new one replaces the
    /// latest instead (only the most recent ping needs an answer), so pings cost bounded memory however
    /// fast they come. Returns the change in queued bytes.
    pub fn push_pong(&mut self, payload: &[u8]) -> isize {
        if self.pongs_waiting >= MAX_PENDING_PONGS {
            // The latest pong is unstarted: pongs start in order and some are waiting.
            let i = (self.pong_at - self.popped) as usize;
            let old = &self.frames[i];
            // An unmasked control frame: a two-byte header, then the payload.
            if old.get(2..) == Some(payload) {
                return 0;
            }
            let new: SharedBytes = frame(OpCode::Pong, payload).into();
            let delta = new.len() as isize - old.len() as isize;
            self.queued = (self.queued as isize + delta) as usize;
            self.frames[i] = new;
            return delta;
        }
        let new: SharedBytes = frame(OpCode::Pong, payload).into();
        let len = new.len();
        self.pong_at = self.popped + self.frames.len() as u64;
        self.pongs_waiting += 1;
        self.push(new);
        len as isize
    }

    /// Queues `body` after everything queued: it is read from its file a chunk at a time as it is written.
    pub fn push_body(&mut self, body: FileBody) {
        if body.len == 0 {
            return;
        }
        let after = (self.popped + self.frames.len() as u64).saturating_sub(1);
        let FileBody { file, len } = body;
        self.stream = Some(Box::new(Stream { file, offset: 0, end: len, buf: Vec::new(), sent: 0, after }));
    }

    /// Unsent bytes in memory (a file body's current chunk included, the rest of its file not).
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Unsent bytes held against the send-buffer limit: all but what is left of the latest welcome.
    pub fn held_bytes(&self) -> usize {
        let (start, end) = self.welcome;
        let unsent_welcome = end.saturating_sub(start.max(self.written_total)) as usize;
        self.queued.saturating_sub(unsent_welcome)
    }

    /// True when nothing is waiting, in memory or in a file body.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.stream.is_none()
    }

    /// Drops every queued frame except a partly written first one (which must finish to keep the stream
    /// well-formed); used before a last close frame to a slow consumer. Returns the bytes dropped.
    pub fn discard_unstarted(&mut self) -> usize {
        let before = self.queued;
        let keep = usize::from(self.head_written > 0);
        while self.frames.len() > keep {
            if let Some(f) = self.frames.pop_back() {
                self.queued -= f.len();
                if f.first() == Some(&PONG_BYTE) {
                    self.pongs_waiting -= 1;
                }
            }
        }
        if self.stream.as_ref().is_some_and(|s| s.after >= self.popped + self.frames.len() as u64) {
            // Its head was dropped unstarted: the body goes with it.
            self.stream = None;
        }
        let end = self.written_total + self.queued as u64;
        self.welcome = (self.welcome.0.min(end), self.welcome.1.min(end));
        before - self.queued
    }

    /// Gives back the queue's memory when it is empty (for idle connections).
    pub fn release_if_empty(&mut self) {
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// Bytes written to the socket since the connection began.
    pub fn written_total(&self) -> u64 {
        self.written_total
    }

    /// Writes as much as the writer takes, in vectored writes of up to 128 frames, then a file body's
    /// chunks: at most one chunk is read from the file per call (`again` says the writer took all of it). An
    /// error is the writer's or the file's (read failed, or shorter than announced): the stream is broken.
    pub fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        let mut done = self.flush_frames(w)?;
        if !done.drained {
            return Ok(done);
        }
        let Some(stream) = self.stream.as_deref_mut() else { return Ok(done) };
        loop {
            if stream.sent == stream.buf.len() {
                if stream.offset == stream.end {
                    self.stream = None;
                    return Ok(done);
                }
                if done.loaded > 0 {
                    // One chunk per call: the rest waits for the next loop turn.
                    done.drained = false;
                    done.again = true;
                    return Ok(done);
                }
                let n = stream.load()?;
                self.queued += n;
                done.loaded = n;
            }
            match w.write(&stream.buf[stream.sent..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(n) => {
                    stream.sent += n;
                    self.queued -= n;
                    self.written_total += n as u64;
                    done.written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    done.drained = false;
                    return Ok(done);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the queued frames as far as the writer takes them.
    fn flush_frames<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Flushed { written, drained: false, ..Flushed::default() })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed { written, drained: true, ..Flushed::default() })
    }

    /// Marks `n` bytes from the front as written.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        self.written_total += n as u64;
        while n > 0 {
            let Some(front) = self.frames.front() else { break };
            if self.head_written == 0 && front.first() == Some(&PONG_BYTE) {
                self.pongs_waiting -= 1; // This pong starts to go out now.
            }
            let left = front.len() - self.head_written;
            if n >= left {
                n -= left;
                self.head_written = 0;
                self.frames.pop_front();
                self.popped += 1;
            } else {
                self.head_written += n;
                n = 0;
            }
        }
    }
}

impl Stream {
    /// Reads the next chunk of the body into the reused buffer: its size, never 0.
    fn load(&mut self) -> io::Result<usize> {
        let want = (self.end - self.offset).min(BODY_CHUNK as u64) as usize;
        self.buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut self.buf[got..], self.offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got < want {
            return Err(shrank(self.offset + got as u64, self.end));
        }
        self.offset += got as u64;
        self.sent = 0;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn frame(bytes: &[u8]) -> SharedBytes {
        SharedBytes::from(bytes)
    }

    #[test]
    fn one_vectored_write_for_many_frames() {
        let mut o = Outbox::default();
        for i in 0..10u8 {
            o.push(frame(&[i; 3]));
        }
        assert_eq!(o.queued_bytes(), 30);
        let mut w = Trickle { got: vec![], per_call: 1000, total: 1000, calls: 0 };
        assert_eq!(o.flush(&mut w).unwrap(), Flushed { written: 30, drained: true, ..Flushed::default() });
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
        assert_eq!(o.flush(&mut w).unwrap(), Flushed { written: 8, drained: false, ..Flushed::default() });
        assert_eq!(o.head_written, 2);
        assert_eq!(o.queued_bytes(), 3);
        w.total = 100;
        assert_eq!(o.flush(&mut w).unwrap(), Flushed { written: 3, drained: true, ..Flushed::default() });
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
    fn a_ping_flood_keeps_a_bounded_number_of_pongs() {
        let mut o = Outbox::default();
        o.push(frame(b"data"));
        for i in 0..MAX_PENDING_PONGS {
            assert_eq!(o.push_pong(&[i]), 3);
        }
        assert_eq!(o.push_pong(b"bb"), 1, "past the cap a newer payload replaces the latest pong");
        assert_eq!(o.push_pong(b"bb"), 0, "the same payload again costs nothing");
        for _ in 0..10_000 {
            o.push_pong(b"zz");
        }
        assert_eq!(o.frames.len(), 1 + MAX_PENDING_PONGS as usize);
        assert_eq!(o.queued_bytes(), 4 + 3 * (MAX_PENDING_PONGS as usize - 1) + 4);
        // Once the first pong has started to go out, one more may wait.
        let mut w = Trickle { got: vec![], per_call: 5, total: 5, calls: 0 };
        o.flush(&mut w).unwrap();
        assert_eq!(o.pongs_waiting, MAX_PENDING_PONGS - 1);
        assert_eq!(o.push_pong(b"c"), 3);
        assert_eq!(o.push_pong(b"d"), 0);
        w.total = 1000;
        o.flush(&mut w).unwrap();
        assert!(w.got.ends_with(b"\x8a\x02zz\x8a\x01d"), "{:?}", w.got);
        assert_eq!(o.pongs_waiting, 0);
        // Discarding forgets the pongs it drops.
        o.push_pong(b"e");
        o.discard_unstarted();
        assert_eq!(o.pongs_waiting, 0);
        assert!(o.is_empty());
    }

    #[test]
    fn the_welcome_is_not_held_against_the_limit() {
        let mut o = Outbox::default();
        o.push(frame(b"0123"));
        o.push_welcome(frame(b"userlist"));
        o.push_welcome(frame(b"history"));
        o.push(frame(b"login"));
        assert_eq!(o.queued_bytes(), 24);
        assert_eq!(o.held_bytes(), 9);
        let mut w = Trickle { got: vec![], per_call: 6, total: 6, calls: 0 };
        o.flush(&mut w).unwrap();
        assert_eq!((o.queued_bytes(), o.held_bytes()), (18, 5));
        w.total = 23;
        o.flush(&mut w).unwrap();
        assert_eq!((o.queued_bytes(), o.held_bytes()), (1, 1));
        // Discarding the queue clips the welcome to what is left.
        let mut o = Outbox::default();
        o.push_welcome(frame(b"userlist"));
        o.discard_unstarted();
        o.push(frame(b"abc"));
        assert_eq!(o.held_bytes(), 3);
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
    /// A file under the temp dir holding `len` bytes of a known pattern, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(len: usize) -> (TempFile, Vec<u8>) {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("wschat-outbox-{}-{n}", std::process::id()));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            (TempFile(path), bytes)
        }

        fn body(&self, len: u64) -> FileBody {
            FileBody::new(File::open(&self.0).unwrap(), len)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_file_body_goes_one_chunk_per_flush_byte_exact() {
        let len = 3 * BODY_CHUNK + BODY_CHUNK / 2;
        let (file, bytes) = TempFile::new(len);
        let mut o = Outbox::default();
        o.push(frame(b"HEAD"));
        o.push_body(file.body(len as u64));
        assert!(!o.is_empty());
        let mut w = Trickle { got: vec![], per_call: usize::MAX, total: usize::MAX, calls: 0 };
        let mut flushes = Vec::new();
        loop {
            let done = o.flush(&mut w).unwrap();
            flushes.push(done);
            assert!(o.queued_bytes() == 0, "what the writer took is not held");
            if done.drained {
                break;
            }
            assert!(done.again, "the socket took everything: flush again next turn");
        }
        let loaded: Vec<usize> = flushes.iter().map(|f| f.loaded).collect();
        assert_eq!(loaded, [BODY_CHUNK, BODY_CHUNK, BODY_CHUNK, BODY_CHUNK / 2]);
        assert_eq!(flushes[0].written, 4 + BODY_CHUNK);
        assert!(o.is_empty() && o.stream.is_none());
        assert_eq!(&w.got[..4], b"HEAD");
        assert!(w.got[4..] == bytes[..], "the file, byte for byte");
        assert_eq!(o.written_total(), (4 + len) as u64);
    }

    #[test]
    fn a_slow_writer_holds_one_chunk_at_most() {
        let len = 2 * BODY_CHUNK + 10;
        let (file, bytes) = TempFile::new(len);
        let mut o = Outbox::default();
        o.push(frame(b"H"));
        o.push_body(file.body(len as u64));
        let mut w = Trickle { got: vec![], per_call: 1000, total: 1 + 3000, calls: 0 };
        let done = o.flush(&mut w).unwrap();
        assert_eq!(done, Flushed { written: 3001, drained: false, loaded: BODY_CHUNK, again: false });
        assert_eq!(o.queued_bytes(), BODY_CHUNK - 3000, "the rest of the chunk, not of the file");
        let mut held = 0;
        while !o.is_empty() {
            w.total += 7000;
            let done = o.flush(&mut w).unwrap();
            assert!(done.loaded <= BODY_CHUNK);
            held = held.max(o.queued_bytes());
        }
        assert!(held <= BODY_CHUNK, "{held}");
        assert!(w.got[1..] == bytes[..]);
    }

    #[test]
    fn a_file_that_shrinks_ends_the_stream_and_one_that_grows_is_cut() {
        let len = 2 * BODY_CHUNK;
        let (file, bytes) = TempFile::new(len);
        let mut o = Outbox::default();
        o.push(frame(b"H"));
        o.push_body(file.body(len as u64));
        let mut w = Trickle { got: vec![], per_call: usize::MAX, total: usize::MAX, calls: 0 };
        assert!(o.flush(&mut w).unwrap().again);
        std::fs::OpenOptions::new().write(true).open(&file.0).unwrap().set_len(BODY_CHUNK as u64 + 5).unwrap();
        let e = o.flush(&mut w).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(w.got[1..] == bytes[..BODY_CHUNK], "nothing but the file's bytes, and none past where it ends");

        // Bytes appended after the head was made are not sent: the body is the length announced.
        let (file, bytes) = TempFile::new(BODY_CHUNK + 3);
        let mut o = Outbox::default();
        o.push(frame(b"H"));
        o.push_body(file.body(100));
        let mut w = Trickle { got: vec![], per_call: usize::MAX, total: usize::MAX, calls: 0 };
        assert!(o.flush(&mut w).unwrap().drained);
        assert!(w.got[1..] == bytes[..100]);
    }

    #[test]
    fn a_body_is_discarded_with_its_unstarted_head_only() {
        let (file, _) = TempFile::new(BODY_CHUNK * 2);
        let mut o = Outbox::default();
        o.push(frame(b"first"));
        o.push(frame(b"HEAD"));
        o.push_body(file.body(BODY_CHUNK as u64 * 2));
        o.discard_unstarted();
        assert!(o.is_empty(), "the head went unstarted, its body with it");
        let mut o = Outbox::default();
        o.push(frame(b"HEAD"));
        o.push_body(file.body(BODY_CHUNK as u64 * 2));
        let mut w = Trickle { got: vec![], per_call: 2, total: 2, calls: 0 };
        o.flush(&mut w).unwrap();
        o.discard_unstarted();
        assert!(o.stream.is_some(), "a started answer keeps its body");
        let mut o = Outbox::default();
        o.push(frame(b"HEAD"));
        o.push_body(file.body(0));
        assert_eq!(o.frames.len(), 1);
        assert!(o.stream.is_none(), "an empty body is nothing to send");
    }
}

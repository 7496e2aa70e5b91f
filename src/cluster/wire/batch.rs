//! The message one node publishes for a room's batch of one loop turn: encoding and validated decoding.

use std::fmt;

/// The first bytes of every message: "wc" then the version.
pub const MAGIC: [u8; 2] = *b"wc";

/// The version of the message format this code writes and reads.
pub const VERSION: u8 = 1;

pub(super) const TAG_LOGIN: u8 = 1;
pub(super) const TAG_SAY: u8 = 2;
const TAG_LOGOUT: u8 = 3;

/// A chat event as nodes exchange it: what happened, in no dialect; every node encodes it for its own
/// connections. Uids are positive (a zero uid makes a batch that does not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireEvent<'a> {
    /// Someone logged in to the batch's room.
    Login {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A say, to the room or to one user of it.
    Say {
        /// The sender's uid.
        from_uid: u64,
        /// The recipient's uid; `None` for the whole room.
        to_uid: Option<u64>,
        /// The text, unchanged.
        content: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// Someone left the batch's room.
    Logout {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
}

impl WireEvent<'_> {
    /// Its time stamp.
    pub fn time(&self) -> &str {
        match self {
            WireEvent::Login { time, .. } | WireEvent::Say { time, .. } | WireEvent::Logout { time, .. } => time,
        }
    }
}

/// Why bytes are not a message; the receiver logs it and skips the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside the message (`at` is where more was needed).
    Truncated {
        /// Offset of the field that did not fit.
        at: usize,
    },
    /// Not a wschat message (another program's data on the channel or key).
    Foreign,
    /// A wschat message of a version this node does not read.
    Version(u8),
    /// A number longer than 64 bits.
    Overlong {
        /// Offset of the number.
        at: usize,
    },
    /// A text that is not UTF-8.
    Utf8 {
        /// Offset of the text.
        at: usize,
    },
    /// An event kind this version does not know.
    UnknownEvent {
        /// The kind byte.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A zero where a sequence number or uid must be positive.
    Zero {
        /// Offset of the number.
        at: usize,
    },
    /// A time stamp that repeats the previous one in the first event of a batch.
    NoPreviousTime {
        /// Offset of the time field.
        at: usize,
    },
    /// Bytes after the end of the message.
    Trailing {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { at } => write!(f, "truncated cluster message: more bytes needed at offset {at}"),
            WireError::Foreign => f.write_str("not a wschat cluster message"),
            WireError::Version(v) => write!(f, "cluster message version {v}, this node reads version {VERSION}"),
            WireError::Overlong { at } => write!(f, "number longer than 64 bits at offset {at}"),
            WireError::Utf8 { at } => write!(f, "text that is not UTF-8 at offset {at}"),
            WireError::UnknownEvent { tag, at } => write!(f, "unknown event kind {tag} at offset {at}"),
            WireError::Zero { at } => write!(f, "zero sequence number or uid at offset {at}"),
            WireError::NoPreviousTime { at } => write!(f, "first event repeats a time stamp at offset {at}"),
            WireError::Trailing { extra } => write!(f, "{extra} bytes after the end of the cluster message"),
        }
    }
}

impl std::error::Error for WireError {}

/// Writes one batch into a buffer the caller reuses: [`BatchWriter::begin`], then [`BatchWriter::push`]
/// per event, then [`BatchWriter::finish`]. It appends, so one buffer can hold a turn's batches one after
/// the other (each is self-delimiting).
#[derive(Debug)]
pub struct BatchWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    count_at: usize,
    count: u32,
    prev_time: Option<(usize, usize)>,
}

impl<'b> BatchWriter<'b> {
    /// Starts the batch of `origin`'s message number `seq` (from 1) for `room`.
    pub fn begin(buf: &'b mut Vec<u8>, origin: u64, seq: u64, room: &str) -> BatchWriter<'b> {
        let start = buf.len();
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.extend_from_slice(&origin.to_le_bytes());
        put_varint(buf, seq);
        put_str(buf, room);
        let count_at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        BatchWriter { buf, start, count_at, count: 0, prev_time: None }
    }

    /// Appends `event`.
    pub fn push(&mut self, event: &WireEvent<'_>) {
        match *event {
            WireEvent::Login { uid, name, .. } | WireEvent::Logout { uid, name, .. } => {
                self.buf.push(if matches!(event, WireEvent::Login { .. }) { TAG_LOGIN } else { TAG_LOGOUT });
                put_varint(self.buf, uid);
                put_str(self.buf, name);
            }
            WireEvent::Say { from_uid, to_uid, content, .. } => {
                self.buf.push(TAG_SAY);
                put_varint(self.buf, from_uid);
                put_varint(self.buf, to_uid.unwrap_or(0));
                put_str(self.buf, content);
            }
        }
        let time = event.time();
        let same = self.prev_time.is_some_and(|(at, len)| self.buf.get(at..at + len) == Some(time.as_bytes()));
        if same {
            self.buf.push(0);
        } else {
            put_varint(self.buf, time.len() as u64 + 1);
            let at = self.buf.len();
            self.buf.extend_from_slice(time.as_bytes());
            self.prev_time = Some((at, time.len()));
        }
        self.count += 1;
    }

    /// Ends the batch; returns its length in bytes.
    pub fn finish(self) -> usize {
        self.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
        self.buf.len() - self.start
    }
}

/// Appends the whole batch of `events` to `buf`; returns its length.
pub fn encode(buf: &mut Vec<u8>, origin: u64, seq: u64, room: &str, events: &[WireEvent<'_>]) -> usize {
    let mut w = BatchWriter::begin(buf, origin, seq, room);
    for e in events {
        w.push(e);
    }
    w.finish()
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// A decoded batch, borrowing the bytes it came from. Every field and event was checked by
/// [`Batch::decode`]; [`Batch::events`] only walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The node that published it.
    pub origin: u64,
    /// Its number in the origin's sequence, from 1.
    pub seq: u64,
    /// The room its events happened in.
    pub room: &'a str,
    /// How many events it holds.
    pub count: u32,
    body: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The message that is the whole of `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Batch<'a>, WireError> {
        let (batch, used) = Batch::decode_prefix(bytes)?;
        match bytes.len() - used {
            0 => Ok(batch),
            extra => Err(WireError::Trailing { extra }),
        }
    }

    /// The message at the start of `bytes` and its length (what follows is left alone).
    pub fn decode_prefix(bytes: &'a [u8]) -> Result<(Batch<'a>, usize), WireError> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.len() < 2 || bytes[..2] != MAGIC {
            return Err(if MAGIC.starts_with(bytes) {
                WireError::Truncated { at: bytes.len() }
            } else {
                WireError::Foreign
            });
        }
        r.at = 2;
        let version = r.byte()?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let origin = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| WireError::Truncated { at: 3 })?);
        let seq_at = r.at;
        let seq = r.varint()?;
        if seq == 0 {
            return Err(WireError::Zero { at: seq_at });
        }
        let room = r.str()?;
        let count = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| WireError::Truncated { at: r.at })?);
        let body_at = r.at;
        let mut prev_time = None;
        for _ in 0..count {
            r.event(&mut prev_time)?;
        }
        let batch = Batch { origin, seq, room, count, body: &bytes[body_at..r.at] };
        Ok((batch, r.at))
    }

    /// Its events, in the order they happened.
    pub fn events(&self) -> Events<'a> {
        Events { r: Reader { bytes: self.body, at: 0 }, left: self.count, prev_time: None }
    }
}

/// The events of a [`Batch`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    r: Reader<'a>,
    left: u32,
    prev_time: Option<&'a str>,
}

impl<'a> Iterator for Events<'a> {
    type Item = WireEvent<'a>;

    fn next(&mut self) -> Option<WireEvent<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked by `Batch::decode`; an error here cannot happen and would end the walk.
        self.r.event(&mut self.prev_time).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Events<'_> {}

#[derive(Debug, Clone)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(WireError::Truncated { at: self.at })?;
        let got = &self.bytes[self.at..end];
        self.at = end;
        Ok(got)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(WireError::Overlong { at: start });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Overlong { at: start })
    }

    fn positive(&mut self) -> Result<u64, WireError> {
        let at = self.at;
        match self.varint()? {
            0 => Err(WireError::Zero { at }),
            v => Ok(v),
        }
    }

    fn text(&mut self, len: u64) -> Result<&'a str, WireError> {
        let at = self.at;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated { at })?;
        std::str::from_utf8(self.take(len)?).map_err(|_| WireError::Utf8 { at })
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let len = self.varint()?;
        self.text(len)
    }

    fn event(&mut self, prev_time: &mut Option<&'a str>) -> Result<WireEvent<'a>, WireError> {
        let at = self.at;
        let tag = self.byte()?;
        let event = match tag {
            TAG_LOGIN | TAG_LOGOUT => {
                let uid = self.positive()?;
                let name = self.str()?;
                if tag == TAG_LOGIN {
                    WireEvent::Login { uid, name, time: "" }
                } else {
                    WireEvent::Logout { uid, name, time: "" }
                }
            }
            TAG_SAY => {
                let from_uid = self.positive()?;
                let to_uid = Some(self.varint()?).filter(|&u| u != 0);
                let content = self.str()?;
                WireEvent::Say { from_uid, to_uid, content, time: "" }
            }
            tag => return Err(WireError::UnknownEvent { tag, at }),
        };
        let time_at = self.at;
        let time = match self.varint()? {
            0 => prev_time.ok_or(WireError::NoPreviousTime { at: time_at })?,
            n => self.text(n - 1)?,
        };
        *prev_time = Some(time);
        Ok(match event {
            WireEvent::Login { uid, name, .. } => WireEvent::Login { uid, name, time },
            WireEvent::Logout { uid, name, .. } => WireEvent::Logout { uid, name, time },
            WireEvent::Say { from_uid, to_uid, content, .. } => WireEvent::Say { from_uid, to_uid, content, time },
        })
    }
}

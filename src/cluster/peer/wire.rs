//! What two nodes say on a peer link, sans-IO. The connecting node opens with one line —
//! `WSCHAT-PEER/1 <prefix> <from> <to> <token>\n`, node ids as 16 hex digits, `token` the one the receiving
//! node put in Redis next to its address (so only someone who can read the cluster's keys gets in) — and the
//! receiver answers `OK\n`. From then on the connecting node sends its messages, each as a 4-byte big-endian
//! length and the message's bytes (the same bytes it would publish on the bus); the receiver sends nothing.

use std::fmt;

/// The first word of the opening line.
pub const MAGIC: &str = "WSCHAT-PEER/1";

/// The receiver's answer to a good opening line.
pub const ACCEPTED: &[u8] = b"OK\n";

/// An opening line longer than this is refused (a prefix is at most 64 bytes).
pub const MAX_HELLO: usize = 256;

/// The opening line of a peer link, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The cluster's prefix (`--cluster-prefix`): nodes of different chats never talk.
    pub prefix: String,
    /// The connecting node.
    pub from: u64,
    /// The node it meant to reach.
    pub to: u64,
    /// The receiving node's token, as Redis gave it to the connecting node.
    pub token: String,
}

/// Why a peer link's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// The opening line is longer than [`MAX_HELLO`].
    HelloTooLong,
    /// The opening line is not `WSCHAT-PEER/1 <prefix> <from> <to> <token>`.
    BadHello,
    /// The answer to the opening line is not `OK`.
    Refused,
    /// A message longer than the receiver takes.
    TooLarge {
        /// Its announced length.
        len: usize,
        /// The most the receiver takes.
        max: usize,
    },
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::HelloTooLong => write!(f, "the opening line is longer than {MAX_HELLO} bytes"),
            PeerError::BadHello => write!(f, "the opening line is not {MAGIC} <prefix> <from> <to> <token>"),
            PeerError::Refused => write!(f, "the other node did not accept the link"),
            PeerError::TooLarge { len, max } => write!(f, "a message of {len} bytes (at most {max} are taken)"),
        }
    }
}

impl std::error::Error for PeerError {}

impl Hello {
    /// The opening line, newline included.
    pub fn encode(&self) -> Vec<u8> {
        format!("{MAGIC} {} {:016x} {:016x} {}\n", self.prefix, self.from, self.to, self.token).into_bytes()
    }

    /// Takes the opening line from the front of `buf` once it is complete: `Ok(None)` while its newline has
    /// not come yet; the line's length is returned with it.
    pub fn take(buf: &[u8]) -> Result<Option<(Hello, usize)>, PeerError> {
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_HELLO { Err(PeerError::HelloTooLong) } else { Ok(None) };
        };
        if end > MAX_HELLO {
            return Err(PeerError::HelloTooLong);
        }
        let line = std::str::from_utf8(&buf[..end]).map_err(|_| PeerError::BadHello)?;
        let mut words = line.split(' ');
        let (Some(MAGIC), Some(prefix), Some(from), Some(to), Some(token), None) =
            (words.next(), words.next(), words.next(), words.next(), words.next(), words.next())
        else {
            return Err(PeerError::BadHello);
        };
        let id = |s: &str| (s.len() == 16).then(|| u64::from_str_radix(s, 16).ok()).flatten();
        let (Some(from), Some(to)) = (id(from), id(to)) else { return Err(PeerError::BadHello) };
        if prefix.is_empty() || token.is_empty() {
            return Err(PeerError::BadHello);
        }
        Ok(Some((Hello { prefix: prefix.to_string(), from, to, token: token.to_string() }, end + 1)))
    }
}

/// Appends one message as a frame.
pub fn write_frame(out: &mut Vec<u8>, message: &[u8]) {
    // Messages are bounded by --cluster-buffer (at most a few GiB in any sane setting); one that does not fit
    // a u32 is never framed (the sender publishes it on the bus instead).
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
}

/// Whether a message of `len` bytes can go on a peer link at all.
pub fn fits(len: usize, max: usize) -> bool {
    len <= max && u32::try_from(len).is_ok()
}

/// Cuts the frames out of a receiver's buffer: the whole messages at its front, and how many bytes they
/// took; a length over `max` is an error (the link is dropped).
pub fn take_frames(buf: &[u8], max: usize, out: &mut Vec<Vec<u8>>) -> Result<usize, PeerError> {
    let mut at = 0;
    while let Some(head) = buf.get(at..at + 4) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > max {
            return Err(PeerError::TooLarge { len, max });
        }
        let Some(body) = buf.get(at + 4..at + 4 + len) else { break };
        out.push(body.to_vec());
        at += 4 + len;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello { prefix: "wschat".into(), from: 0xab, to: u64::MAX, token: "0123abcd".into() }
    }

    #[test]
    fn the_opening_line_goes_there_and_back() {
        let bytes = hello().encode();
        assert_eq!(bytes, b"WSCHAT-PEER/1 wschat 00000000000000ab ffffffffffffffff 0123abcd\n");
        let mut buf = bytes.clone();
        buf.extend_from_slice(b"\0\0\0\x01x");
        assert_eq!(Hello::take(&buf), Ok(Some((hello(), bytes.len()))));
        assert_eq!(Hello::take(&bytes[..10]), Ok(None), "not complete yet");
    }

    #[test]
    fn a_bad_opening_line_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"WSCHAT-PEER/1 wschat ab ffffffffffffffff t\n",
            b"WSCHAT-PEER/1 wschat 00000000000000ab ffffffffffffffff\n",
            b"WSCHAT-PEER/1 wschat 00000000000000ab ffffffffffffffff t extra\n",
            b"WSCHAT-PEER/1 wschat 00000000000000zz ffffffffffffffff t\n",
            b"WSCHAT-PEER/1  00000000000000ab ffffffffffffffff t\n",
            b"WSCHAT-PEER/1 wschat 00000000000000ab ffffffffffffffff \xff\n",
        ] {
            assert_eq!(Hello::take(bad), Err(PeerError::BadHello), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Hello::take(&[b'x'; MAX_HELLO + 1]), Err(PeerError::HelloTooLong), "no newline in sight");
        let mut long = vec![b'x'; MAX_HELLO + 1];
        long.push(b'\n');
        assert_eq!(Hello::take(&long), Err(PeerError::HelloTooLong));
    }

    #[test]
    fn frames_are_cut_whole_and_bounded() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"one");
        write_frame(&mut buf, b"");
        write_frame(&mut buf, b"three");
        let mut out = Vec::new();
        // Byte by byte: a frame comes out only once whole.
        let mut fed = Vec::new();
        let mut taken = 0;
        for &b in &buf {
            fed.push(b);
            taken += take_frames(&fed[taken..], 16, &mut out).unwrap();
        }
        assert_eq!(taken, buf.len());
        assert_eq!(out, vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        assert_eq!(take_frames(&buf, 4, &mut Vec::new()), Err(PeerError::TooLarge { len: 5, max: 4 }));
        assert_eq!(take_frames(&[0, 0], 4, &mut out), Ok(0), "a length not complete yet");
        assert!(fits(16, 16) && !fits(17, 16));
    }
}

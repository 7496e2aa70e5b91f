//! A light pre-scan of RESP2 replies, run over the link's input before anything is decoded: it finds where
//! each complete reply ends and refuses, as soon as their headers arrive, replies that no command of a node
//! asks for — arrays nested deeper than [`Limits::max_depth`], aggregates announcing more elements than
//! [`Limits::max_elements`], bulk strings or whole replies over [`Limits::max_reply_bytes`], and bytes that
//! are not RESP2 at all. The decoder (recursive, in `redis-protocol`) then only ever sees one complete reply
//! within those bounds.
//!
//! Iterative (a fixed stack of counters, no recursion) and resumable: a reply arriving in many reads is
//! scanned once, each byte of it looked at a bounded number of times, so a large XRANGE answer costs time
//! linear in its size whatever the reads' sizes.

use std::fmt;

/// Default [`Limits::max_depth`]: our commands' replies nest at most four levels (an EXEC of XRANGEs:
/// transaction, entries, entry, fields); twice that is left as headroom.
pub const MAX_DEPTH: usize = 8;

/// Default [`Limits::max_elements`]: the fill of a whole stream is 10 000 entries of four elements
/// each; a million elements is far beyond any reply a node asks for, and bounds the decoded form's
/// memory (tens of bytes per element) to tens of MiB.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// Default [`Limits::max_reply_bytes`], the link's input budget: 512 MiB, Redis's own cap on one bulk
/// string (`proto-max-bulk-len`), so no value Redis holds is refused.
pub const MAX_REPLY_BYTES: usize = 512 * 1024 * 1024;

/// The longest header line of a length or an integer (`$`, `*`, `:`): a sign and 19 digits, with room.
const MAX_NUMBER_LINE: usize = 32;

/// What a link accepts from its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Arrays nested in one another, the outermost counted.
    pub max_depth: usize,
    /// Elements announced by the aggregates of one reply, summed.
    pub max_elements: usize,
    /// Bytes of one reply, headers included: the input kept for a reply that is not complete yet.
    pub max_reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_depth: MAX_DEPTH, max_elements: MAX_ELEMENTS, max_reply_bytes: MAX_REPLY_BYTES }
    }
}

/// Why the server's bytes were refused before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// A byte that starts no RESP2 value.
    BadType(u8),
    /// A length that is not `-1` or a decimal number.
    BadLength,
    /// A length or integer line longer than any number.
    LongLine,
    /// A bulk string not followed by CRLF.
    BadTerminator,
    /// Arrays nested deeper than the limit.
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// An aggregate (or the reply's aggregates together) announcing more elements than the limit.
    TooManyElements {
        /// Elements announced.
        announced: u64,
        /// The limit.
        limit: usize,
    },
    /// A bulk string announcing more bytes than the budget.
    BulkTooLarge {
        /// Bytes announced.
        announced: u64,
        /// The budget.
        limit: usize,
    },
    /// A reply over the budget.
    ReplyTooLarge {
        /// The budget.
        limit: usize,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::BadType(b) => write!(f, "byte {b:#04x} starts no RESP2 value"),
            ReplyError::BadLength => f.write_str("a length that is not a number"),
            ReplyError::LongLine => write!(f, "a length or integer line over {MAX_NUMBER_LINE} bytes"),
            ReplyError::BadTerminator => f.write_str("a bulk string not ended by CRLF"),
            ReplyError::TooDeep { limit } => write!(f, "arrays nested deeper than {limit}"),
            ReplyError::TooManyElements { announced, limit } => {
                write!(f, "{announced} elements announced in one reply, over {limit}")
            }
            ReplyError::BulkTooLarge { announced, limit } => {
                write!(f, "a bulk string of {announced} bytes, over the link's budget of {limit}")
            }
            ReplyError::ReplyTooLarge { limit } => write!(f, "a reply over the link's budget of {limit} bytes"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// The scan of the input: where the reply being scanned started, how far it got, and the elements still
/// due in each array it is inside. Offsets are into the link's input buffer; [`Scanner::consumed`] moves
/// them when the link drops bytes from its front.
#[derive(Debug, Clone)]
pub struct Scanner {
    limits: Limits,
    /// Where the reply being scanned starts.
    start: usize,
    /// Where the next value (its type byte) starts.
    pos: usize,
    /// The current header line was searched for its CRLF up to here.
    searched: usize,
    /// A bulk string's body (and CRLF) ends here: nothing to look at before the input reaches it.
    body_end: Option<usize>,
    /// Elements still due in each open array, the innermost last.
    open: Vec<u64>,
    /// Elements announced so far in this reply.
    elements: u64,
}

impl Scanner {
    /// A scanner at the start of the input.
    pub fn new(limits: Limits) -> Scanner {
        Scanner {
            limits,
            start: 0,
            pos: 0,
            searched: 0,
            body_end: None,
            open: Vec::with_capacity(limits.max_depth),
            elements: 0,
        }
    }

    /// Scans on over `input` (the same bytes as before, maybe more after them): `Ok(Some(end))` when the
    /// reply that started at the previous end (or the start) is complete at `end`, `Ok(None)` when more
    /// input is needed, an error when the input is refused.
    pub fn next(&mut self, input: &[u8]) -> Result<Option<usize>, ReplyError> {
        loop {
            if let Some(end) = self.body_end {
                if input.len() < end {
                    return self.need_more(input);
                }
                if &input[end - 2..end] != b"\r\n" {
                    return Err(ReplyError::BadTerminator);
                }
                self.body_end = None;
                if let Some(done) = self.value_done(end) {
                    return Ok(Some(done));
                }
                continue;
            }
            let Some(&kind) = input.get(self.pos) else { return self.need_more(input) };
            if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
                return Err(ReplyError::BadType(kind));
            }
            let from = self.searched.max(self.pos + 1);
            let number = !matches!(kind, b'+' | b'-');
            let Some(cr) = find_crlf(input, from) else {
                // A CR last may be the first half of the CRLF: look at it again.
                let cr_last = input.last() == Some(&b'\r');
                self.searched = (input.len() - usize::from(cr_last)).max(self.pos + 1);
                if number && self.searched - (self.pos + 1) > MAX_NUMBER_LINE {
                    return Err(ReplyError::LongLine);
                }
                return self.need_more(input);
            };
            let line = &input[self.pos + 1..cr];
            let after = cr + 2;
            if number && line.len() > MAX_NUMBER_LINE {
                return Err(ReplyError::LongLine);
            }
            if after - self.start > self.limits.max_reply_bytes {
                return Err(ReplyError::ReplyTooLarge { limit: self.limits.max_reply_bytes });
            }
            match kind {
                b'+' | b'-' | b':' => {}
                b'$' => match length(line)? {
                    None => {}
                    Some(n) => {
                        let limit = self.limits.max_reply_bytes;
                        if n > limit as u64 {
                            return Err(ReplyError::BulkTooLarge { announced: n, limit });
                        }
                        let end = usize::try_from(n).ok().and_then(|n| after.checked_add(n)?.checked_add(2));
                        let Some(end) = end.filter(|end| end - self.start <= limit) else {
                            return Err(ReplyError::ReplyTooLarge { limit });
                        };
                        self.pos = end;
                        self.searched = end;
                        self.body_end = Some(end);
                        continue;
                    }
                },
                _ => match length(line)? {
                    None | Some(0) => {}
                    Some(n) => {
                        self.elements = self.elements.saturating_add(n);
                        let limit = self.limits.max_elements;
                        if self.elements > limit as u64 {
                            return Err(ReplyError::TooManyElements { announced: self.elements, limit });
                        }
                        if self.open.len() >= self.limits.max_depth {
                            return Err(ReplyError::TooDeep { limit: self.limits.max_depth });
                        }
                        self.open.push(n);
                        self.pos = after;
                        self.searched = after;
                        continue;
                    }
                },
            }
            if let Some(done) = self.value_done(after) {
                return Ok(Some(done));
            }
        }
    }

    /// A value ended at `end`: counted in the arrays it closes; the reply's end when it was the last.
    fn value_done(&mut self, end: usize) -> Option<usize> {
        self.pos = end;
        self.searched = end;
        while let Some(due) = self.open.last_mut() {
            *due -= 1;
            if *due > 0 {
                return None;
            }
            self.open.pop();
        }
        self.start = end;
        self.elements = 0;
        Some(end)
    }

    fn need_more(&self, input: &[u8]) -> Result<Option<usize>, ReplyError> {
        if input.len() - self.start > self.limits.max_reply_bytes {
            return Err(ReplyError::ReplyTooLarge { limit: self.limits.max_reply_bytes });
        }
        Ok(None)
    }

    /// The first `n` bytes of the input were dropped (`n` at most the last reply's end).
    pub fn consumed(&mut self, n: usize) {
        self.start -= n;
        self.pos -= n;
        self.searched -= n;
        if let Some(end) = &mut self.body_end {
            *end -= n;
        }
    }
}

/// Where the first CRLF at or after `from` starts.
fn find_crlf(input: &[u8], from: usize) -> Option<usize> {
    let rest = input.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// A bulk or array length: `None` for `-1` (nil), else the count.
fn length(line: &[u8]) -> Result<Option<u64>, ReplyError> {
    if line == b"-1" {
        return Ok(None);
    }
    if line.is_empty() || line.len() > 19 || !line.iter().all(u8::is_ascii_digit) {
        return Err(ReplyError::BadLength);
    }
    Ok(Some(line.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))))
}

#[cfg(test)]
mod tests;

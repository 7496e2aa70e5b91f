//! TCP reassembly of one direction of a connection: sequence numbers to stream offsets (with wrap-around),
//! in-order delivery of out-of-order segments, trimming of retransmissions, gaps for bytes that never made it
//! into the capture, and the FIN at its place in the stream. Pure: segments in, [`Flow`] items out.

use std::collections::BTreeMap;

/// Most bytes held out of order before the hole in front of them is declared lost.
pub const MAX_PENDING_BYTES: usize = 8 << 20;

/// What the reassembler hands on, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// The next bytes of the stream. `segment_start`: they start where their segment started (a place where a
    /// sender's write, and so usually a WebSocket frame, begins).
    Data {
        /// The bytes.
        bytes: Vec<u8>,
        /// Whether the bytes begin at their segment's first byte.
        segment_start: bool,
    },
    /// Bytes of the stream that are not in the capture.
    Gap {
        /// How many.
        bytes: u64,
    },
    /// The sender's FIN, after all its data.
    Fin,
    /// A segment (or part of one) carrying bytes already delivered.
    Retransmission {
        /// Bytes repeated.
        bytes: u64,
    },
    /// A segment that arrived ahead of a hole and waits for it.
    OutOfOrder {
        /// Bytes buffered.
        bytes: u64,
    },
}

/// A segment waiting for the bytes in front of it.
#[derive(Debug, Clone)]
struct Pending {
    /// Captured payload.
    data: Vec<u8>,
    /// Payload bytes after `data` that were not captured.
    missing: u64,
    /// Whether `data` starts at the segment's first byte.
    segment_start: bool,
}

impl Pending {
    /// Stream bytes covered.
    fn len(&self) -> u64 {
        self.data.len() as u64 + self.missing
    }
}

/// One direction of a TCP connection being reassembled.
#[derive(Debug, Clone, Default)]
pub struct HalfStream {
    /// The sequence number of stream offset `offset`, once known.
    next: Option<u32>,
    /// Stream bytes delivered (or declared lost) so far.
    offset: u64,
    /// Segments ahead of `offset`, by stream offset.
    pending: BTreeMap<u64, Pending>,
    /// Captured bytes in `pending`.
    pending_bytes: usize,
    /// Stream offset of the FIN, once seen.
    fin_at: Option<u64>,
    /// The FIN has been handed on.
    fin_done: bool,
    /// Highest stream offset the peer has acknowledged.
    peer_acked: u64,
}

impl HalfStream {
    /// A direction whose first sequence number is not known yet.
    pub fn new() -> HalfStream {
        HalfStream::default()
    }

    /// The sender's SYN with its initial sequence number: the stream starts right after it.
    pub fn syn(&mut self, isn: u32) {
        *self = HalfStream { next: Some(isn.wrapping_add(1)), ..HalfStream::default() };
    }

    /// Whether the FIN has been handed on.
    #[cfg(test)]
    pub fn is_finished(&self) -> bool {
        self.fin_done
    }

    /// Stream bytes delivered or declared lost so far.
    #[cfg(test)]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The stream offset of sequence number `seq`, relative to the current position (within ±2 GiB); negative
    /// for bytes from before the first one seen.
    fn position(&self, seq: u32, next: u32) -> i64 {
        let delta = i64::from(seq.wrapping_sub(next) as i32);
        i64::try_from(self.offset).unwrap_or(i64::MAX).saturating_add(delta)
    }

    /// Takes one segment: `payload` captured, `missing` more payload bytes not captured, `fin` flag.
    pub fn segment(&mut self, seq: u32, payload: &[u8], missing: u32, fin: bool, out: &mut Vec<Flow>) {
        let next = *self.next.get_or_insert(seq);
        let start = self.position(seq, next);
        let len = payload.len() as u64 + u64::from(missing);
        let end = start.saturating_add(len as i64);
        let offset = self.offset as i64;
        if fin && self.fin_at.is_none() {
            self.fin_at = Some(end.max(0) as u64);
        }
        if len > 0 {
            if end <= offset {
                out.push(Flow::Retransmission { bytes: len });
            } else if start <= offset {
                let trim = (offset - start) as u64;
                if trim > 0 {
                    out.push(Flow::Retransmission { bytes: trim });
                }
                self.deliver(payload, u64::from(missing), trim, out);
                self.drain(out);
            } else {
                self.hold(start as u64, payload, u64::from(missing), out);
            }
        }
        self.check_fin(out);
    }

    /// The peer acknowledged up to `ack`: a hole it has acknowledged behind held segments will not be filled.
    pub fn peer_ack(&mut self, ack: u32, out: &mut Vec<Flow>) {
        if let Some(next) = self.next {
            let pos = self.position(ack, next).max(0) as u64;
            self.peer_acked = self.peer_acked.max(pos);
            self.check_lost(out);
        }
    }

    /// End of capture: declares every remaining hole lost and hands on all that is held, then the FIN.
    pub fn flush(&mut self, out: &mut Vec<Flow>) {
        while let Some((&first, _)) = self.pending.first_key_value() {
            if first > self.offset {
                self.skip_to(first, out);
            }
            self.drain(out);
        }
        if let Some(fin_at) = self.fin_at {
            if fin_at > self.offset {
                self.skip_to(fin_at, out);
            }
        }
        self.check_fin(out);
    }

    /// Hands on `payload[trim..]` plus `missing` uncaptured bytes, trimming `trim` stream bytes already delivered.
    fn deliver(&mut self, payload: &[u8], missing: u64, trim: u64, out: &mut Vec<Flow>) {
        let captured = payload.len() as u64;
        if trim < captured {
            let bytes = payload[trim as usize..].to_vec();
            self.advance(bytes.len() as u64);
            out.push(Flow::Data { bytes, segment_start: trim == 0 });
        }
        let lost = (captured + missing).saturating_sub(trim.max(captured));
        if lost > 0 {
            self.advance(lost);
            out.push(Flow::Gap { bytes: lost });
        }
    }

    /// Moves the stream position forward by `n` bytes.
    fn advance(&mut self, n: u64) {
        self.offset += n;
        if let Some(next) = self.next.as_mut() {
            *next = next.wrapping_add(n as u32);
        }
    }

    /// Declares the bytes up to stream offset `to` lost.
    fn skip_to(&mut self, to: u64, out: &mut Vec<Flow>) {
        let bytes = to - self.offset;
        self.advance(bytes);
        out.push(Flow::Gap { bytes });
    }

    /// Holds a segment that starts ahead of the stream position.
    fn hold(&mut self, start: u64, payload: &[u8], missing: u64, out: &mut Vec<Flow>) {
        let seg = Pending { data: payload.to_vec(), missing, segment_start: true };
        match self.pending.get(&start) {
            Some(old) if old.len() >= seg.len() => out.push(Flow::Retransmission { bytes: seg.len() }),
            _ => {
                out.push(Flow::OutOfOrder { bytes: seg.len() });
                self.pending_bytes += seg.data.len();
                if let Some(old) = self.pending.insert(start, seg) {
                    self.pending_bytes -= old.data.len();
                }
            }
        }
        self.check_lost(out);
    }

    /// Hands on held segments that have become contiguous.
    fn drain(&mut self, out: &mut Vec<Flow>) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.offset {
                break;
            }
            let seg = entry.remove();
            self.pending_bytes -= seg.data.len();
            let end = start + seg.len();
            if end <= self.offset {
                out.push(Flow::Retransmission { bytes: seg.len() });
                continue;
            }
            let trim = self.offset - start;
            let at_start = seg.segment_start && trim == 0;
            let before = out.len();
            self.deliver(&seg.data, seg.missing, trim, out);
            if let Some(Flow::Data { segment_start, .. }) = out.get_mut(before) {
                *segment_start = at_start;
            }
        }
    }

    /// Declares the hole in front of the held segments lost when the peer acknowledged past it, or when too
    /// much is held.
    fn check_lost(&mut self, out: &mut Vec<Flow>) {
        while let Some((&first, _)) = self.pending.first_key_value() {
            if first <= self.offset {
                self.drain(out);
                continue;
            }
            if self.peer_acked < first && self.pending_bytes <= MAX_PENDING_BYTES {
                break;
            }
            self.skip_to(first, out);
            self.drain(out);
        }
    }

    /// Hands on the FIN once the stream has reached it.
    fn check_fin(&mut self, out: &mut Vec<Flow>) {
        if let Some(fin_at) = self.fin_at {
            if !self.fin_done && self.offset >= fin_at {
                self.fin_done = true;
                out.push(Flow::Fin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(out: &[Flow]) -> Vec<u8> {
        out.iter()
            .flat_map(|f| match f {
                Flow::Data { bytes, .. } => bytes.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn in_order_stream_after_syn() {
        let mut h = HalfStream::new();
        h.syn(1000);
        let mut out = Vec::new();
        h.segment(1001, b"hello ", 0, false, &mut out);
        h.segment(1007, b"world", 0, true, &mut out);
        assert_eq!(data(&out), b"hello world");
        assert_eq!(out.last(), Some(&Flow::Fin));
        assert!(h.is_finished());
    }

    #[test]
    fn out_of_order_segments_are_reordered() {
        let mut h = HalfStream::new();
        h.syn(0);
        let mut out = Vec::new();
        h.segment(7, b"world", 0, false, &mut out);
        assert_eq!(out, vec![Flow::OutOfOrder { bytes: 5 }]);
        h.segment(1, b"hello ", 0, false, &mut out);
        assert_eq!(data(&out), b"hello world");
        assert!(out.iter().all(|f| !matches!(f, Flow::Data { segment_start: false, .. })));
    }

    #[test]
    fn retransmissions_and_overlaps_are_trimmed() {
        let mut h = HalfStream::new();
        h.syn(0);
        let mut out = Vec::new();
        h.segment(1, b"abcd", 0, false, &mut out);
        h.segment(1, b"abcd", 0, false, &mut out);
        h.segment(3, b"cdefg", 0, false, &mut out);
        assert_eq!(data(&out), b"abcdefg");
        assert!(out.contains(&Flow::Retransmission { bytes: 4 }));
        assert!(out.contains(&Flow::Retransmission { bytes: 2 }));
        assert!(out.contains(&Flow::Data { bytes: b"efg".to_vec(), segment_start: false }));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut h = HalfStream::new();
        h.syn(u32::MAX - 2);
        let mut out = Vec::new();
        h.segment(u32::MAX - 1, b"ab", 0, false, &mut out);
        h.segment(2, b"ef", 0, false, &mut out);
        h.segment(0, b"cd", 0, false, &mut out);
        assert_eq!(data(&out), b"abcdef");
    }

    #[test]
    fn acknowledged_hole_becomes_a_gap() {
        let mut h = HalfStream::new();
        h.syn(0);
        let mut out = Vec::new();
        h.segment(1, b"ab", 0, false, &mut out);
        h.segment(6, b"fg", 0, false, &mut out);
        assert_eq!(data(&out), b"ab");
        h.peer_ack(8, &mut out);
        assert!(out.contains(&Flow::Gap { bytes: 3 }));
        assert_eq!(data(&out), b"abfg");
    }

    #[test]
    fn flush_hands_on_everything_with_gaps_and_the_fin() {
        let mut h = HalfStream::new();
        h.syn(0);
        let mut out = Vec::new();
        h.segment(4, b"de", 0, true, &mut out);
        h.flush(&mut out);
        assert_eq!(
            out,
            vec![
                Flow::OutOfOrder { bytes: 2 },
                Flow::Gap { bytes: 3 },
                Flow::Data { bytes: b"de".to_vec(), segment_start: true },
                Flow::Fin
            ]
        );
    }

    #[test]
    fn uncaptured_tail_is_a_gap() {
        let mut h = HalfStream::new();
        let mut out = Vec::new();
        h.segment(500, b"abc", 4, false, &mut out);
        h.segment(507, b"h", 0, false, &mut out);
        assert_eq!(
            out,
            vec![
                Flow::Data { bytes: b"abc".to_vec(), segment_start: true },
                Flow::Gap { bytes: 4 },
                Flow::Data { bytes: b"h".to_vec(), segment_start: true },
            ]
        );
    }

    #[test]
    fn bytes_from_before_the_first_segment_seen_are_old() {
        let mut h = HalfStream::new();
        let mut out = Vec::new();
        h.segment(1000, b"now", 0, false, &mut out);
        h.segment(990, b"0123456789", 0, false, &mut out);
        h.segment(995, b"56789now!", 0, false, &mut out);
        assert_eq!(data(&out), b"now!");
        assert_eq!(out[1], Flow::Retransmission { bytes: 10 });
    }

    #[test]
    fn fin_waits_for_the_data_before_it() {
        let mut h = HalfStream::new();
        h.syn(10);
        let mut out = Vec::new();
        h.segment(14, b"", 0, true, &mut out);
        assert!(out.is_empty());
        h.segment(11, b"abc", 0, false, &mut out);
        assert_eq!(out.last(), Some(&Flow::Fin));
    }

    #[test]
    fn too_much_held_data_declares_the_hole_lost() {
        let mut h = HalfStream::new();
        h.syn(0);
        let mut out = Vec::new();
        let big = vec![7u8; MAX_PENDING_BYTES / 2 + 1];
        h.segment(100, &big, 0, false, &mut out);
        let second = 100 + big.len() as u32;
        h.segment(second, &big, 0, false, &mut out);
        assert!(out.contains(&Flow::Gap { bytes: 99 }));
        assert_eq!(h.offset(), 99 + 2 * big.len() as u64);
    }
}

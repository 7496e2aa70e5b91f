//! The message a node sends to one other node alone: the server API's acts on users that node holds (text
//! pushed to them, users closed), published on the receiver's own channel `{p}:node:{id}:direct` so that no
//! other node gets a byte of it. Not numbered like the bus's messages: an act is done at most once, by the
//! node that holds the user when it arrives (as GatewayWorker's sendToUid: a node that is down has nobody
//! to push to).

use super::bytes::{put_str, put_varint, Reader};
use super::message::WireError;
use crate::chat::event::Directed;
use crate::chat::roster::Audience;

/// The first bytes of a directed message: "wd" then the version.
pub const DIRECT_MAGIC: [u8; 2] = *b"wd";

/// The version of the directed message this code writes and reads.
pub const DIRECT_VERSION: u8 = 1;

const SEND: u8 = 1;
const CLOSE: u8 = 2;

const TO_ALL: u8 = 0;
const TO_ROOM: u8 = 1;
const TO_ACCOUNT: u8 = 2;
const TO_UID: u8 = 3;

/// Writes the header of a message from `origin` to `target` into an empty or reused buffer.
pub fn write_direct_header(buf: &mut Vec<u8>, origin: u64, target: u64) {
    buf.extend_from_slice(&DIRECT_MAGIC);
    buf.push(DIRECT_VERSION);
    buf.extend_from_slice(&origin.to_le_bytes());
    buf.extend_from_slice(&target.to_le_bytes());
}

/// Appends one act to a directed message.
pub fn put_directed(buf: &mut Vec<u8>, act: &Directed<'_>) {
    match act {
        Directed::Send { to, exclude, data } => {
            buf.push(SEND);
            match *to {
                Audience::All => buf.push(TO_ALL),
                Audience::Room(room) => {
                    buf.push(TO_ROOM);
                    put_str(buf, room);
                }
                Audience::Account(id) => {
                    buf.push(TO_ACCOUNT);
                    put_str(buf, id);
                }
                Audience::Uid(uid) => {
                    buf.push(TO_UID);
                    put_varint(buf, uid);
                }
            }
            put_varint(buf, exclude.len() as u64);
            for &uid in exclude {
                put_varint(buf, uid);
            }
            put_str(buf, data);
        }
        Directed::Close { uid, reason } => {
            buf.push(CLOSE);
            put_varint(buf, *uid);
            put_str(buf, reason);
        }
    }
}

/// A directed message, decoded: who sent it, whom it is for, its acts in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectMessage<'a> {
    /// The node whose API was called.
    pub origin: u64,
    /// The node it is for.
    pub target: u64,
    /// What to do, in order.
    pub acts: Vec<Directed<'a>>,
}

impl<'a> DirectMessage<'a> {
    /// Whether `bytes` are a directed message (rather than a bus message).
    pub fn is_direct(bytes: &[u8]) -> bool {
        bytes.starts_with(&DIRECT_MAGIC)
    }

    /// The message that is the whole of `bytes`, every field checked.
    pub fn decode(bytes: &'a [u8]) -> Result<DirectMessage<'a>, WireError> {
        if !Self::is_direct(bytes) {
            return Err(if DIRECT_MAGIC.starts_with(bytes) {
                WireError::Truncated { at: bytes.len() }
            } else {
                WireError::Foreign
            });
        }
        let mut r = Reader::new(bytes);
        r.take(2)?;
        let version = r.byte()?;
        if version != DIRECT_VERSION {
            return Err(WireError::Version(version));
        }
        let origin = r.u64_le()?;
        let target = r.u64_le()?;
        let mut acts = Vec::new();
        while r.at < bytes.len() {
            let at = r.at;
            acts.push(match r.byte()? {
                SEND => {
                    let to_at = r.at;
                    let to = match r.byte()? {
                        TO_ALL => Audience::All,
                        TO_ROOM => Audience::Room(r.str()?),
                        TO_ACCOUNT => Audience::Account(r.str()?),
                        TO_UID => Audience::Uid(r.positive()?),
                        tag => return Err(WireError::UnknownRecord { tag, at: to_at }),
                    };
                    let n = r.varint()?;
                    // Each uid is at least a byte: a count past what is left is a lie, not an allocation.
                    if n > (bytes.len() - r.at) as u64 {
                        return Err(WireError::Truncated { at: r.at });
                    }
                    let exclude = (0..n).map(|_| r.varint()).collect::<Result<Vec<u64>, _>>()?;
                    Directed::Send { to, exclude, data: r.str()? }
                }
                CLOSE => Directed::Close { uid: r.positive()?, reason: r.str()? },
                tag => return Err(WireError::UnknownRecord { tag, at }),
            });
        }
        Ok(DirectMessage { origin, target, acts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acts_round_trip_in_order() {
        let acts = vec![
            Directed::Send { to: Audience::All, exclude: vec![], data: "{\"x\":1}" },
            Directed::Send { to: Audience::Room("r:1"), exclude: vec![3, 300], data: "猪" },
            Directed::Send { to: Audience::Account("acct"), exclude: vec![], data: "" },
            Directed::Send { to: Audience::Uid(7), exclude: vec![7], data: "y" },
            Directed::Close { uid: 9, reason: "bye" },
        ];
        let mut buf = Vec::new();
        write_direct_header(&mut buf, 0xaa, 0xbb);
        for act in &acts {
            put_directed(&mut buf, act);
        }
        let m = DirectMessage::decode(&buf).unwrap();
        assert_eq!((m.origin, m.target), (0xaa, 0xbb));
        assert_eq!(m.acts, acts);
        assert!(DirectMessage::is_direct(&buf));
    }

    #[test]
    fn every_cut_and_bad_byte_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        write_direct_header(&mut buf, 1, 2);
        let mut ends = vec![buf.len()];
        put_directed(&mut buf, &Directed::Send { to: Audience::Room("room"), exclude: vec![1, 2], data: "hello" });
        ends.push(buf.len());
        put_directed(&mut buf, &Directed::Close { uid: 4, reason: "r" });
        for cut in 0..buf.len() {
            // A cut between two acts is a shorter message; anywhere else it is an error.
            assert_eq!(DirectMessage::decode(&buf[..cut]).is_ok(), ends.contains(&cut), "cut at {cut}");
        }
        for i in 0..buf.len() {
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut bad = buf.clone();
                bad[i] = b;
                let _ = DirectMessage::decode(&bad);
            }
        }
        assert_eq!(DirectMessage::decode(b"wc\x01"), Err(WireError::Foreign));
        let mut v2 = buf.clone();
        v2[2] = 2;
        assert_eq!(DirectMessage::decode(&v2), Err(WireError::Version(2)));
        let mut lying = Vec::new();
        write_direct_header(&mut lying, 1, 2);
        lying.extend_from_slice(&[SEND, TO_ALL, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(DirectMessage::decode(&lying), Err(WireError::Truncated { .. })));
    }
}

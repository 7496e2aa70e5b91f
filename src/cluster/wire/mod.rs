//! What nodes exchange through Redis: the key and channel layout under the cluster prefix ([`Keys`]), the
//! message one node publishes per loop turn ([`Section`], [`write_header`], [`Message`]), and the recovery
//! bookkeeping that tells a delivered message from a duplicate or a gap ([`Tracker`]). Pure code: no socket,
//! no Redis; `docs/CLUSTER.md` is the prose.
//!
//! # Identity and order
//!
//! A node's id is a random 64-bit number drawn at start, not a counter in Redis: a restart is a new id,
//! and a Redis that comes back empty cannot hand a live node's id to a newcomer. Each node numbers the
//! messages it publishes 1, 2, 3… (one sequence over all rooms), writes each to its own capped stream
//! `{prefix}:node:{id}:stream` under the explicit stream id `{seq}-0`, and publishes it on the bus. A
//! receiver keeps the last sequence it delivered per origin; a gap is fetched with one
//! `XRANGE {prefix}:node:{id}:stream {from}-0 {to}-0`, and after its own subscription link dropped a node
//! resumes every origin from [`Tracker::origins`] the same way (the recovery of Centrifugo, with the origin
//! rather than the channel as the unit, so that a stream has one writer and its ids are the sequence).

mod bytes;
mod direct;
mod keys;
mod message;
mod recovery;

pub use direct::{put_directed, write_direct_header, DirectMessage, DIRECT_MAGIC, DIRECT_VERSION};
pub use keys::{node_hex, Keys, PrefixError, DEFAULT_PREFIX, MAX_PREFIX_LEN};
pub use message::{
    history_entry, read_history_entry, write_header, Message, Record, Section, WireError, MAGIC, VERSION,
};
pub use recovery::{Tracker, Verdict};

#[cfg(test)]
mod tests;

//! The cluster through Redis: several daemons act as one chat. [`wire`] is what nodes exchange (keys, the
//! message format, recovery bookkeeping), [`link`] the Redis connection driven sans-IO, [`node`] one node's
//! Redis side (found through [`sentinel`] when Sentinel watches it) (leases, publishing, ordered receiving), and [`ClusterPresence`] the chat's presence seam
//! filled by it: the node's own room events out, the other nodes' decoded into the chat's remote events. `docs/CLUSTER.md` is the prose.

pub mod flags;
pub mod link;
mod metrics;
pub mod node;
pub mod peer;
mod presence;
pub mod sentinel;
pub mod wire;

pub use presence::ClusterPresence;

//! The cluster through Redis (groundwork; not wired into the daemon yet): the key and channel layout, the
//! message format nodes exchange, and the Redis link driven sans-IO so that its socket can be one more
//! source of the single mio loop.

pub mod link;
pub mod wire;

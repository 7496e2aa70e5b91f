//! The chat application of workerman-chat, in layers:
//!
//! - [`hub`], the chat core: who gets what — users, rooms, history and limits; commands in, [`event`]s out,
//!   no wire format. Uids and who is in which room are [`presence`]'s (a trait, so a cluster can share them).
//! - [`fanout`]: the events encoded in each connection's [`dialect`] and batched per (room, dialect) and loop
//!   turn into deliveries.
//! - [`dialect`]: how a client speaks — the seed protocol ([`dialect::seed`]) or workerman-chat's current one
//!   ([`dialect::workerman`]), each with its JSON.
//! - [`app`]: all of it as the reactor's [`crate::app::Application`].

pub mod app;
pub mod dialect;
pub mod event;
pub mod fanout;
pub mod hub;
pub mod name;
pub mod presence;
pub use dialect::seed as protocol;
#[cfg(test)]
mod testing;

pub use app::{ChatApp, ChatLimits};
